"""Lesions of one visit read on different series (different grids): their masks are compared
in scanner space, so that one lesion segmented on two series is not summed twice, while two
distinct lesions that touch are summed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from volumetry.image import Volume
from volumetry.io.nifti import write_nifti
from volumetry.pipeline import run_study
from volumetry.pipeline.overlaps import OVERLAP_FLAG

from test_pipeline import LESION_CENTRE, SPACING, make_image, tiny_config

#: A second series of the same visit: coronal-like 1 mm grid with its own origin (LPS mm).
OTHER_SPACING = (1.0, 1.0, 1.0)
OTHER_ORIGIN = (4.3, 2.7, 1.1)


def _ball(vol: Volume, centre, radius):
    """Voxels of ``vol``'s grid whose centre lies within ``radius`` mm of ``centre`` (LPS mm)."""
    nk, nj, ni = vol.array.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    pts = np.stack([i, j, k], -1) * np.asarray(vol.spacing) @ np.asarray(vol.direction).T + np.asarray(vol.origin)
    return np.linalg.norm(pts - np.asarray(centre), axis=-1) <= radius


def _run(tmp_path, second_centre, second_radius):
    image, _ = make_image((9, 7, 7), (0, 0, 0), seed=1)
    other = Volume(np.zeros((50, 60, 70), np.float32), OTHER_SPACING, OTHER_ORIGIN, np.eye(3))
    other = other.with_array(np.where(_ball(other, second_centre, second_radius), 1000.0, 20.0).astype(np.float32))
    root = tmp_path / "study"
    root.mkdir()
    write_nifti(image, root / "axial.nii.gz")
    write_nifti(other, root / "other.nii.gz")
    write_nifti(image.with_array(_ball(image, LESION_CENTRE, 7.0).astype(np.uint8)), root / "a.nii.gz")
    write_nifti(other.with_array(_ball(other, second_centre, second_radius).astype(np.uint8)), root / "b.nii.gz")
    lines = ["subject_id,visit,course,scan_date,image,lesion_id,mask",
             "S01,baseline,0,2024-01-15,axial.nii.gz,L1,a.nii.gz",
             "S01,baseline,0,2024-01-15,other.nii.gz,L2,b.nii.gz"]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    s = run_study(root, tiny_config(seg=False), tmp_path / "out", jobs=1, progress=False)
    t = s.table[s.table["method"] == "voxel"].set_index("lesion_id")
    assert t.loc["L1", "status"] == t.loc["L2", "status"] == "ok"
    return t


def test_one_lesion_read_on_two_series_is_not_summed_twice(tmp_path):
    t = _run(tmp_path, LESION_CENTRE, 7.0)
    assert t.loc["L1", "volume_ml"] == pytest.approx(t.loc["L2", "volume_ml"], rel=0.15)  # the same ball
    assert OVERLAP_FLAG in t.loc["L1", "flags"] and OVERLAP_FLAG in t.loc["L2", "flags"]
    assert t.loc["total", "status"] == "incomplete" and pd.isna(t.loc["total", "volume_ml"])
    # before: compared only on one grid, the total was the sum of both (about 2 x 1.44 mL), status ok


def test_two_touching_lesions_on_two_series_are_summed(tmp_path):
    centre = (LESION_CENTRE[0] + 7.0 + 5.0, LESION_CENTRE[1], LESION_CENTRE[2])  # a 5 mm ball touching L1's 7 mm one
    t = _run(tmp_path, centre, 5.0)
    assert OVERLAP_FLAG not in str(t.loc["L1", "flags"]) and OVERLAP_FLAG not in str(t.loc["L2", "flags"])
    assert t.loc["total", "status"] == "ok"
    assert t.loc["total", "volume_ml"] == pytest.approx(t.loc["L1", "volume_ml"] + t.loc["L2", "volume_ml"])
