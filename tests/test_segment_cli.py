"""`volumetry segment` in-process: JSON output, the mask file, exit codes and messages."""
from __future__ import annotations

import json

import numpy as np

from volumetry.cli import main
from volumetry.io.nifti import write_nifti
from volumetry.io.reader import read_image

from test_segment_helpers import ellipsoid_phantom


def _image(tmp_path):
    image, truth, true_ml, centres = ellipsoid_phantom(noise=10.0, seed=2)
    path = write_nifti(image, tmp_path / "t2.nii.gz")
    return path, image, truth, centres


def test_segment_writes_the_mask_and_prints_json(tmp_path, capsys):
    path, image, truth, centres = _image(tmp_path)
    ras = centres[0] * [-1, -1, 1]
    out = tmp_path / "out" / "lesion.nii.gz"
    rc = main(["segment", str(path), "--seed", *map(str, ras), "--seed-space", "ras", "--out", str(out), "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["status"] == "ok" and d["method"] == "region_growing" and d["flags"] == []
    assert d["prompt"]["source"]["space"] == "ras"
    np.testing.assert_allclose(d["prompt"]["seeds_lps"][0], centres[0], atol=1e-6)
    mask = read_image(out)
    assert mask.same_grid(read_image(path))
    assert np.count_nonzero(mask.array) * mask.voxel_volume_mm3 / 1000 == d["volume_ml"]
    assert abs(d["volume_ml"] / (truth.sum() * image.voxel_volume_mm3 / 1000) - 1) < 0.05


def test_seed_outside_is_exit_2_with_the_message(tmp_path, capsys):
    path, *_ = _image(tmp_path)
    rc = main(["segment", str(path), "--seed", "500", "0", "0", "--seed-space", "voxel",
               "--out", str(tmp_path / "m.nii.gz")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "volumetry segment: error: lesion '1': seed 1 at (500.0, 0.0, 0.0) (voxel i, j, k) lies outside" in err
    assert "to (47.0, 47.0, 13.0)" in err
    assert not (tmp_path / "m.nii.gz").exists()


def test_seed_on_background_fails_without_a_mask(tmp_path, capsys):
    path, image, _, _ = _image(tmp_path)
    rc = main(["segment", str(path), "--seed", "3", "3", "6", "--seed-space", "voxel", "--box", "0", "0", "3", "8",
               "8", "9", "--seed-space", "voxel", "--out", str(tmp_path / "m.nii.gz"), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 1 and d["status"] == "failed" and d["volume_ml"] is None and d["out"] is None
    assert "not on lesion-like tissue" in d["reason"]
    assert not (tmp_path / "m.nii.gz").exists()


def test_bad_output_name_and_method(tmp_path, capsys):
    path, _, _, centres = _image(tmp_path)
    seed = list(map(str, centres[0]))
    assert main(["segment", str(path), "--seed", *seed, "--out", str(tmp_path / "m.png")]) == 2
    assert "the mask is written as NIfTI" in capsys.readouterr().err
    assert main(["segment", str(path), "--seed", *seed, "--method", "magic", "--out", str(tmp_path / "m.nii")]) == 2
    assert "unknown segmentation method 'magic'" in capsys.readouterr().err


def test_seed_outside_message_names_the_image_file(tmp_path, capsys):
    path, *_ = _image(tmp_path)
    rc = main(["segment", str(path), "--seed", "0", "0", "900", "--seed-space", "ras",
               "--out", str(tmp_path / "m.nii.gz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert f"lies outside the image {path}, whose extent in RAS" in err and "--seed-space" in err
