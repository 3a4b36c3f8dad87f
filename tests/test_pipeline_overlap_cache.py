"""The overlap check on re-runs: replacing one imported mask so that two lesions of a visit come
to share voxels (or stop sharing them) re-assesses the subject; no cached total survives it."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from volumetry.io.nifti import write_nifti
from volumetry.pipeline import run_study
from volumetry.pipeline.overlaps import OVERLAP_FLAG

from test_pipeline import make_image, tiny_config
from test_pipeline_overlap import _study, _voxel


def _write(image, m, path):
    write_nifti(image.with_array(m.astype(np.uint8)), path)
    st = path.stat()  # a new modification time, whatever the clock's resolution
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_replacing_one_mask_makes_and_unmakes_an_overlap(tmp_path):
    image, lesion = make_image((9, 7, 7), (0, 0, 0), seed=1)
    root = tmp_path / "study"
    root.mkdir()
    left, right = lesion.copy(), lesion.copy()
    left[:, :, 25:] = False
    right[:, :, :25] = False
    _write(image, left, root / "a.nii.gz")
    _write(image, right, root / "b.nii.gz")
    _study(root, [("L1", ",,,", "a.nii.gz"), ("L2", ",,,", "b.nii.gz")], image)
    out = tmp_path / "out"
    vox_ml = float(np.prod(image.spacing)) / 1000

    first = _voxel(run_study(root, tiny_config(seg=False), out, jobs=1, progress=False).table)
    assert first.loc["total", "status"] == "ok"
    assert first.loc["total", "volume_ml"] == pytest.approx(lesion.sum() * vox_ml, rel=1e-12)

    overlapping = lesion.copy()
    overlapping[:, :, :20] = False  # L2 now covers columns 20-24 of L1 too
    _write(image, overlapping, root / "b.nii.gz")
    second = run_study(root, tiny_config(seg=False), out, jobs=1, progress=False)
    assert second.n_computed == 1 and second.n_cached == 1
    t = _voxel(second.table)
    assert OVERLAP_FLAG in t.loc["L1", "flags"] and OVERLAP_FLAG in t.loc["L2", "flags"]
    assert t.loc["total", "status"] == "incomplete" and pd.isna(t.loc["total", "volume_ml"])

    _write(image, right, root / "b.nii.gz")  # corrected: the overlap is gone
    third = _voxel(run_study(root, tiny_config(seg=False), out, jobs=1, progress=False).table)
    assert OVERLAP_FLAG not in str(third.loc["L1", "flags"]) and OVERLAP_FLAG not in str(third.loc["L2", "flags"])
    assert third.loc["total", "status"] == "ok"
    assert third.loc["total", "volume_ml"] == pytest.approx(lesion.sum() * vox_ml, rel=1e-12)
    # the unchanged lesion L1 was cached every time, its row re-flagged and un-flagged all the same
    pd.testing.assert_series_equal(first.loc["L1"].drop("computed_at"), third.loc["L1"].drop("computed_at"))
