"""``volumetry measure`` in-process."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from volumetry.cli import main
from volumetry.image import Volume


@pytest.fixture()
def files(tmp_path):
    arr = np.zeros((12, 14, 16), np.uint8)
    arr[2:7, 3:9, 4:12] = 1  # 5 x 6 x 8 voxels
    arr[8:10, 10:12, 12:14] = 2
    d = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # a sagittal-like grid
    labels = Volume(arr, (0.5, 0.8, 2.0), (10.0, -20.0, 30.0), d)
    rng = np.random.default_rng(3)
    image = labels.with_array(rng.normal(50, 5, arr.shape).astype(np.float32))
    sitk.WriteImage(image.to_sitk(), str(tmp_path / "t2.nrrd"))
    sitk.WriteImage(labels.to_sitk(), str(tmp_path / "labels.nrrd"))
    sitk.WriteImage(labels.with_array(arr == 1).to_sitk(), str(tmp_path / "mask.nrrd"))
    return tmp_path


def test_measure_json(files, capsys):
    assert main(["measure", str(files / "t2.nrrd"), "--mask", str(files / "mask.nrrd"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok"
    assert out["volume_ml"] == pytest.approx(5 * 6 * 8 * 0.5 * 0.8 * 2.0 / 1000, rel=1e-9)
    for key in ("mesh_volume_ml", "ellipsoid_volume_ml", "diameters_mm", "flags", "longest_inplane_diameter_mm"):
        assert key in out
    assert len(out["diameters_mm"]) == 3 and out["flags"] == []


def test_measure_label_and_text(files, capsys):
    assert main(["measure", str(files / "t2.nrrd"), "--mask", str(files / "labels.nrrd"), "--label", "2"]) == 0
    text = capsys.readouterr().out
    assert "0.0064 mL" in text  # 8 voxels of 0.8 mm^3
    assert main(["measure", str(files / "t2.nrrd"), "--mask", str(files / "labels.nrrd"), "--label", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "empty" and out["volume_ml"] is None and "label 5" in out["reason"]


def test_measure_label_map_without_label_is_a_usage_error(files, capsys):
    assert main(["measure", str(files / "t2.nrrd"), "--mask", str(files / "labels.nrrd")]) == 2
    assert "--label" in capsys.readouterr().err


def test_measure_mask_on_another_grid_is_a_usage_error(files, capsys):
    arr = np.zeros((12, 14, 16), np.uint8)
    arr[3:5, 3:5, 3:5] = 1
    other = Volume(arr, (0.5, 0.8, 2.0), (10.0, -20.0, 31.0), np.eye(3))
    sitk.WriteImage(other.to_sitk(), str(files / "other.nrrd"))
    assert main(["measure", str(files / "t2.nrrd"), "--mask", str(files / "other.nrrd")]) == 2
    err = capsys.readouterr().err
    assert "not on the image's grid" in err and "resample it with nearest neighbour" in err


def test_measure_errors_name_the_mask_file(files, capsys):
    # one line on stderr, exit 2, naming the offending file and the fix
    assert main(["measure", str(files / "t2.nrrd"), "--mask", str(files / "labels.nrrd")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(files / "labels.nrrd") in err and "--label" in err and "\n" not in err
    arr = np.zeros((12, 14, 16), np.uint8)
    arr[3:5, 3:5, 3:5] = 1
    other = Volume(arr, (0.5, 0.8, 2.0), (10.0, -20.0, 31.0), np.eye(3))
    sitk.WriteImage(other.to_sitk(), str(files / "other.nrrd"))
    assert main(["measure", str(files / "t2.nrrd"), "--mask", str(files / "other.nrrd")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(files / "other.nrrd") in err and "not on the image's grid" in err and "\n" not in err
