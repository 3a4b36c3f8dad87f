"""`volumetry info PATH [--json] [--series UID]`, in-process through volumetry.cli.main."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import phantom, rotation, write_series

from volumetry.cli import main

REQUIRED = {"size", "spacing", "origin", "direction", "series_uid", "description", "modality", "files", "warnings"}


def _run_json(capsys, *argv):
    code = main(["info", *map(str, argv), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_one_dicom_series_json(tmp_path, capsys):
    r = rotation(10, 20)
    write_series(tmp_path, phantom((5, 6, 7), seed=50), origin=(1.5, -2, 3), row=r[:, 0], col=r[:, 1],
                 slice_step=2.5, pixel_spacing=(0.8, 0.6), description="T2 tra", shuffle_names=True, seed=9)
    d = _run_json(capsys, tmp_path)
    assert REQUIRED <= d.keys()
    assert d["size"] == [7, 6, 5]
    assert d["spacing"] == pytest.approx([0.6, 0.8, 2.5])
    assert d["origin"] == pytest.approx([1.5, -2, 3], abs=1e-5)
    expected = np.column_stack([r[:, 0], r[:, 1], np.cross(r[:, 0], r[:, 1])])
    assert d["direction"] == pytest.approx(expected.ravel().tolist(), abs=1e-6)  # row-major LPS
    assert d["description"] == "T2 tra" and d["modality"] == "MR" and len(d["files"]) == 5
    assert d["warnings"] == []
    assert d["voxel_volume_mm3"] == pytest.approx(0.6 * 0.8 * 2.5)


def test_several_series_list_and_selection(tmp_path, capsys):
    study = "1.2.826.0.1.3680043.10.1453.55"
    write_series(tmp_path, phantom((3, 8, 8), seed=51), description="A", series_number=1, name_prefix="a",
                 study_uid=study, seed=1)
    write_series(tmp_path, phantom((4, 8, 8), seed=52), description="B", series_number=2, name_prefix="b",
                 study_uid=study, seed=2)
    listing = _run_json(capsys, tmp_path)
    assert isinstance(listing, list) and [d["description"] for d in listing] == ["A", "B"]
    assert all(REQUIRED <= d.keys() for d in listing)
    assert [d["size"][2] for d in listing] == [3, 4]
    one = _run_json(capsys, tmp_path, "--series", listing[1]["series_uid"])
    assert isinstance(one, dict) and one["description"] == "B"
    assert main(["info", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "'A'" in text and "'B'" in text and "size 8x8x3" in text


def test_bad_series_uid_is_exit_2_one_line(tmp_path, capsys):
    write_series(tmp_path, phantom((3, 8, 8), seed=53))
    assert main(["info", str(tmp_path), "--series", "9.9.9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no stack" in err and "9.9.9" in err and "Traceback" not in err


def test_missing_path_is_exit_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_geometry_error_single_stack_exit_2_listing_reports_it(tmp_path, capsys):
    paths = write_series(tmp_path / "bad", phantom((6, 8, 8), seed=54), description="gappy")
    paths[2].unlink()
    assert main(["info", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "a slice is missing" in err and err.count("\n") == 1
    write_series(tmp_path / "good", phantom((3, 8, 8), seed=55), description="fine", seed=77)
    listing = _run_json(capsys, tmp_path)
    by_desc = {d["description"]: d for d in listing}
    assert "a slice is missing" in by_desc["gappy"]["error"] and by_desc["gappy"]["size"] is None
    assert by_desc["fine"]["size"] == [8, 8, 3]


def test_truncated_file_is_exit_2_naming_it(tmp_path, capsys):
    paths = write_series(tmp_path, phantom((3, 8, 8), seed=56))
    paths[1].write_bytes(paths[1].read_bytes()[:200])
    assert main(["info", str(tmp_path)]) == 2
    assert paths[1].name in capsys.readouterr().err


def test_nifti_file_in_lps(tmp_path, capsys):
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [10, 20, 30]  # RAS
    img = nib.Nifti1Image(np.zeros((5, 6, 7), np.int16), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, tmp_path / "x.nii.gz")
    d = _run_json(capsys, tmp_path / "x.nii.gz")
    assert REQUIRED <= d.keys()
    assert d["size"] == [5, 6, 7]
    assert d["spacing"] == pytest.approx([2, 3, 4])
    assert d["origin"] == pytest.approx([-10, -20, 30])
    assert d["direction"] == pytest.approx([-1, 0, 0, 0, -1, 0, 0, 0, 1])


@pytest.mark.shared_data
def test_real_multi_volume_series(shared_data, capsys):
    d = _run_json(capsys, shared_data / "dicom" / "ge_epi_slicegap_3mm_thk_5mm_spacing" / "dicom")
    assert d["size"] == [64, 64, 15] and d["n_volumes"] == 10
    assert d["spacing"] == pytest.approx([3.75, 3.75, 5.0])
    assert len(d["files"]) == 150


@pytest.mark.shared_data
def test_volume_out_of_range_is_exit_2(shared_data, capsys):
    folder = shared_data / "dicom" / "siemens_xa10_enhanced_multiframe" / "dicom"
    assert main(["info", str(folder), "--volume", "7"]) == 2
    err = capsys.readouterr().err
    assert "volume index 7 is out of range" in err and err.count("\n") == 1
    d = _run_json(capsys, folder, "--volume", "3")
    assert d["volume_index"] == 3 and d["n_volumes"] == 4 and d["size"] == [64, 64, 6]
