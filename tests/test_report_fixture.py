"""A small pipeline output folder with the layout of ``volumetry run`` (helpers, no tests).

Used by the report and browser tests until the sample trial can be run in a
test: images and masks are NIfTI ellipsoid phantoms with known volumes, the
tables follow docs/tables.md, and ``results.sqlite`` holds the tables the
report reads (scans, masks, failures, runs).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from volumetry.image import Volume
from volumetry.io.nifti import write_nifti

from test_seg import write_mr_series

INJECTED = "<script>alert(1)</script>"
#: The scan stored as DICOM, with SeriesDescription = INJECTED.
DICOM_SCAN = ("S02", "C1")

#: subject -> list of (visit, days, lesion radius scale); subject "S03" has no follow-up mask at week 24.
SUBJECTS = {
    "S01": [("baseline", 0, 1.0), ("C1", 84, 0.80), ("C2", 168, 0.60)],
    "S02": [("baseline", 0, 1.0), ("C1", 85, 1.05), ("C2", 170, 1.12)],
    "S03": [("baseline", 0, 1.0), ("C1", 83, 0.95), ("C2", 166, None)],
    "S&4": [("baseline", 0, 1.0), ("C1", 84, 0.70)],
}


def _phantom(scale: float, seed: int, origin_shift: float) -> tuple[Volume, Volume]:
    rng = np.random.default_rng(seed)
    shape, spacing = (16, 48, 48), (0.8, 0.8, 2.5)
    origin = (-19.0 + origin_shift, -19.0, 10.0 + origin_shift)
    grid = Volume(np.zeros(shape, np.float32), spacing, origin, np.eye(3))
    kk, jj, ii = np.indices(shape)
    xyz = grid.index_to_lps(np.stack([ii, jj, kk], axis=-1))
    radii = np.array([8.0, 6.0, 9.0]) * scale
    inside = np.sum(((xyz - np.array([1.0, 2.0, 30.0])) / radii) ** 2, axis=-1) <= 1
    img = (120 + 15 * rng.standard_normal(shape) + 280 * inside).astype(np.float32)
    return grid.with_array(img), grid.with_array(inside)


def make_output_folder(root: Path) -> tuple[Path, pd.DataFrame]:
    """Write the output folder; return its path and the tidy table written."""
    out = root / "out"
    images = root / "study"
    rows, scans, masks, failures = [], [], [], []
    seed = 0
    for subject, visits in SUBJECTS.items():
        base_ml = None
        best = None
        for visit, days, scale in visits:
            seed += 1
            img, mask = _phantom(scale or 1.0, seed, origin_shift=0.4 * seed % 2)
            key = f"k{seed}"
            if (subject, visit) == DICOM_SCAN:  # a DICOM series whose description is a script
                ipath = images / f"{subject}_{visit}_dicom"
                files = write_mr_series(ipath, np.clip(img.array, 0, 4000).astype(np.uint16), img.spacing,
                                        img.origin, img.direction, description=INJECTED)
                series_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
                scans.append((subject, visit, "1", str(ipath), key, series_uid))
            else:
                ipath = images / f"{subject}_{visit}.nii.gz"
                write_nifti(img, ipath)
                series_uid = f"1.2.3.{seed}"
                scans.append((subject, visit, "1", str(ipath), key, None))
            if scale is None:
                failures.append((key, subject, visit, "1", "segment", "SegmentationFailed",
                                 "segmentation failed: no region grew from the seed"))
                rows.append(dict(subject_id=subject, lesion_id="1", visit=visit, course=2, scan_date="2024-07-01",
                                 days_from_baseline=days, method="voxel", volume_ml=np.nan,
                                 baseline_volume_ml=base_ml, percent_change=np.nan, nadir_volume_ml=np.nan,
                                 response="", best_response=best, status="failed",
                                 reason="segmentation failed: no region grew from the seed", flags="",
                                 series_uid=series_uid))
                continue
            mpath = out / f"sub-{subject}" / f"ses-{visit}" / "anat" / f"sub-{subject}_ses-{visit}_desc-lesion_mask.nii.gz"
            write_nifti(mask, mpath)
            masks.append((key, str(mpath.relative_to(out))))
            ml = mask.array.sum() * mask.voxel_volume_mm3 / 1000.0
            base_ml = ml if days == 0 else base_ml
            pc = 100.0 * (ml / base_ml - 1.0)
            response = "PR" if pc <= -30 else ("PD" if pc >= 20 else "SD")
            if days > 0:
                best = response if best is None or pc < best_pc else best
                best_pc = pc if best == response else best_pc
            else:
                best_pc = np.inf
            rows.append(dict(subject_id=subject, lesion_id="1", visit=visit, course=days // 84, scan_date="2024-01-01",
                             days_from_baseline=days, method="voxel", volume_ml=ml, baseline_volume_ml=base_ml,
                             percent_change=pc if days > 0 else 0.0, nadir_volume_ml=ml,
                             response=response if days > 0 else "", best_response=best if days > 0 else "",
                             status="ok", reason="", flags="touches-border;resampled" if seed == 5 else "",
                             series_uid=series_uid))
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "volumes.csv", index=False)
    summary = (df[df.days_from_baseline > 0].groupby("course")
               .agg(n_subjects=("subject_id", "nunique"), median_percent_change=("percent_change", "median"))
               .reset_index())
    summary.to_csv(out / "summary.csv", index=False)
    con = sqlite3.connect(out / "results.sqlite")
    con.executescript("""
        CREATE TABLE runs (run_id INTEGER PRIMARY KEY, started_at TEXT, finished_at TEXT, status TEXT,
                           package_version TEXT, pipeline_hash TEXT, n_scans INTEGER, n_failed INTEGER);
        CREATE TABLE scans (subject_id TEXT, visit TEXT, lesion_id TEXT, image TEXT, task_key TEXT, series_uid TEXT);
        CREATE TABLE masks (task_key TEXT, path TEXT);
        CREATE TABLE failures (task_key TEXT, subject_id TEXT, visit TEXT, lesion_id TEXT, stage TEXT,
                               error_type TEXT, message TEXT);
    """)
    con.execute("INSERT INTO runs VALUES (1, '2024-01-01T00:00:00+00:00', '2024-01-01T00:01:00+00:00', 'done',"
                " '0.1', 'abcdef0123456789', ?, ?)", (len(scans), len(failures)))
    con.executemany("INSERT INTO scans VALUES (?, ?, ?, ?, ?, ?)", scans)
    con.executemany("INSERT INTO masks VALUES (?, ?)", masks)
    con.executemany("INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?, ?)", failures)
    con.commit()
    con.close()
    return out, df
