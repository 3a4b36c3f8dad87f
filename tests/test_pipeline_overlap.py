"""Lesions of one visit whose masks share voxels: flagged, and the visit's total is incomplete
(a sum would count the shared voxels twice), never a double-counted number."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from volumetry.image import Volume
from volumetry.io.nifti import write_nifti
from volumetry.longitudinal import assess
from volumetry.pipeline import run_study
from volumetry.pipeline.overlaps import OVERLAP_FLAG, shared_voxels
from volumetry.pipeline.tasks import pack_mask

from test_pipeline import LESION_CENTRE, SPACING, make_image, tiny_config

SECOND = (15.0, 18.0, 24.0)  # a second lesion's centre (mm), 20 mm from the first


def _study(root, rows, image=None):
    """A baseline-only study (no registration: fast) of subject S01 on one image."""
    root.mkdir(parents=True, exist_ok=True)
    if image is None:
        image, _ = make_image((9, 7, 7), (0, 0, 0), seed=1)
    write_nifti(image, root / "base.nii.gz")
    lines = ["subject_id,visit,course,scan_date,image,lesion_id,seed_x,seed_y,seed_z,seed_space,mask"]
    lines += [f"S01,baseline,0,2024-01-15,base.nii.gz,{lid},{seed},{mask}" for lid, seed, mask in rows]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def _seed(c):
    return ",".join(f"{v:g}" for v in c) + ",lps"


def _voxel(table):
    return table[table["method"] == "voxel"].set_index("lesion_id")


def test_two_seeds_on_one_lesion_flag_both_and_leave_the_total_incomplete(tmp_path):
    shifted = (LESION_CENTRE[0] + 3.0, LESION_CENTRE[1], LESION_CENTRE[2])
    root = _study(tmp_path / "study", [("L1", _seed(LESION_CENTRE), ""), ("L2", _seed(shifted), "")])
    s = run_study(root, tiny_config(seg=False), tmp_path / "out", jobs=1, progress=False)
    t = _voxel(s.table)
    assert t.loc["L1", "volume_ml"] == t.loc["L2", "volume_ml"] > 0  # the same lesion, twice
    for lid in ("L1", "L2"):
        assert OVERLAP_FLAG in t.loc[lid, "flags"].split(";")
    assert t.loc["total", "status"] == "incomplete" and pd.isna(t.loc["total", "volume_ml"])
    assert "L1, L2" in t.loc["total", "reason"] and OVERLAP_FLAG in t.loc["total", "reason"]
    # before: the total read 2 x the lesion, status ok


def test_two_separate_lesions_are_summed(tmp_path):
    image, first = make_image((9, 7, 7), (0, 0, 0), seed=1)
    nk, nj, ni = image.array.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    second = sum(((v * s - m) / 5.0) ** 2 for v, s, m in zip((i, j, k), SPACING, SECOND)) <= 1
    assert not (first & second).any()
    arr = image.array.copy()
    arr[second] = 1000.0 + np.random.default_rng(2).normal(0, 20, int(second.sum()))
    root = _study(tmp_path / "study", [("L1", _seed(LESION_CENTRE), ""), ("L2", _seed(SECOND), "")],
                  image.with_array(arr))
    s = run_study(root, tiny_config(seg=False), tmp_path / "out", jobs=1, progress=False)
    t = _voxel(s.table)
    assert not any(OVERLAP_FLAG in str(f) for f in t["flags"])
    assert t.loc["total", "status"] == "ok"
    assert t.loc["total", "volume_ml"] == pytest.approx(t.loc["L1", "volume_ml"] + t.loc["L2", "volume_ml"], rel=1e-12)
    assert abs(t.loc["L2", "volume_ml"] / (second.sum() * np.prod(SPACING) / 1000) - 1) < 0.1


def test_imported_masks_drawn_over_each_other_are_flagged(tmp_path):
    image, lesion = make_image((9, 7, 7), (0, 0, 0), seed=1)
    root = tmp_path / "study"
    root.mkdir()
    a = lesion.copy()
    b = np.zeros_like(lesion)
    b[:, :, 20:] = lesion[:, :, 20:]  # the lesion's right part drawn again as another lesion
    b[:, :, 30:] |= np.roll(lesion, 8, axis=2)[:, :, 30:]
    for name, m in (("a.nii.gz", a), ("b.nii.gz", b)):
        write_nifti(image.with_array(m.astype(np.uint8)), root / name)
    _study(root, [("L1", ",,,", "a.nii.gz"), ("L2", ",,,", "b.nii.gz")], image)
    s = run_study(root, tiny_config(seg=False), tmp_path / "out", jobs=1, progress=False)
    t = _voxel(s.table)
    assert t.loc["L1", "status"] == t.loc["L2", "status"] == "ok"
    assert OVERLAP_FLAG in t.loc["L1", "flags"] and OVERLAP_FLAG in t.loc["L2", "flags"]
    assert t.loc["total", "status"] == "incomplete"


def test_shared_voxels_counts_the_intersection():
    rng = np.random.default_rng(0)
    grid = dict(spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    for _ in range(20):
        a = np.zeros((12, 20, 24), bool)
        b = np.zeros_like(a)
        for m in (a, b):
            lo = rng.integers(0, 10, 3)
            hi = lo + rng.integers(1, 10, 3)
            m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = rng.random((hi - lo).clip(max=np.array(a.shape) - lo)) < 0.7
        rows = []
        for m in (a, b):
            data, g, _ = pack_mask(Volume(m, **grid))
            rows.append({"data": data, "grid": g})
        assert shared_voxels(*rows) == int((a & b).sum())


def test_a_total_over_overlapping_lesions_is_incomplete_in_the_assessment():
    rows = [{"subject_id": "S", "lesion_id": lid, "visit": v, "method": "voxel", "course": c,
             "scan_date": d, "volume_ml": vol, "status": "ok", "flags": flags}
            for lid, v, c, d, vol, flags in [
                ("A", "baseline", 0, "2024-01-01", 10.0, OVERLAP_FLAG), ("B", "baseline", 0, "2024-01-01", 4.0, OVERLAP_FLAG),
                ("A", "w12", 1, "2024-03-25", 5.0, ""), ("B", "w12", 1, "2024-03-25", 2.0, "")]]
    t = assess(pd.DataFrame(rows)).set_index(["lesion_id", "visit"])
    assert t.loc[("total", "baseline"), "status"] == "incomplete"
    assert "A, B" in t.loc[("total", "baseline"), "reason"]
    # the follow-up's total is summed (its masks do not overlap) but has no baseline total to compare with
    assert t.loc[("total", "w12"), "status"] == "no-baseline" and t.loc[("total", "w12"), "volume_ml"] == 7.0
    assert t.loc[("total", "w12"), "response"] == "NE"
    assert t.loc[("A", "w12"), "percent_change"] == -50.0  # each lesion is still assessed
