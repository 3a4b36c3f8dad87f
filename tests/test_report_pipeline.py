"""The report of a real ``volumetry run`` (pipeline → tables → report) on a tiny trial.

Until the sample trial can be run in a test, this trial is generated here: NIfTI
images and one DICOM series (SeriesDescription ``<script>alert(1)</script>``),
a manifest with a seed on each baseline; follow-ups are propagated by the
pipeline. Also used by the browser test.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from volumetry.image import Volume
from volumetry.io.nifti import write_nifti
from volumetry.report.overlays import CONTOUR_RGB

from test_report_fixture import INJECTED
from test_seg import write_mr_series

SPACING = (1.25, 1.25, 3.0)
SHAPE = (16, 44, 44)
CENTRE = (27.0, 27.0, 24.0)
#: subject -> visit -> (course, date, radii mm, patient shift mm, as DICOM)
TRIAL = {
    "P01": {"baseline": (0, "2024-01-15", (9, 7, 7), (0, 0, 0), False),
            "w12": (1, "2024-04-08", (7, 5.5, 5.5), (2, -1.5, 0), False),
            "w24": (2, "2024-07-01", (5.5, 4.5, 4.5), (-1, 1, 0), False)},
    "P02": {"baseline": (0, "2024-02-01", (8, 8, 6), (0, 0, 0), False),
            "w12": (1, "2024-04-25", (9, 8.5, 6.5), (1.5, 1.5, 0), True)},
    "P03": {"baseline": (0, "2024-03-01", (7, 7, 7), (0, 0, 0), False),
            "w12": (1, "2024-05-24", (6.5, 6.5, 6.5), (0, 0, 0), False)},
}


def _image(radii, shift, seed):
    rng = np.random.default_rng(seed)
    grid = Volume(np.zeros(SHAPE, np.float32), SPACING, (0.0, 0.0, 0.0), np.eye(3))
    kk, jj, ii = np.indices(SHAPE)
    xyz = grid.index_to_lps(np.stack([ii, jj, kk], axis=-1)) - np.asarray(shift)
    lesion = np.sum(((xyz - np.asarray(CENTRE)) / np.asarray(radii)) ** 2, axis=-1) <= 1
    body = np.sum(((xyz - np.asarray(CENTRE)) / np.array([24.0, 24.0, 60.0])) ** 2, axis=-1) <= 1
    arr = 20 + 200 * body + 600 * lesion + 10 * rng.standard_normal(SHAPE)
    return grid.with_array(np.clip(arr, 0, None).astype(np.float32))


def make_trial(root: Path) -> Path:
    lines = ["subject_id,visit,course,scan_date,image,lesion_id,seed_x,seed_y,seed_z,seed_space"]
    for n, (subject, visits) in enumerate(TRIAL.items()):
        for m, (visit, (course, date, radii, shift, dicom)) in enumerate(visits.items()):
            img = _image(radii, shift, 10 * n + m)
            if dicom:
                rel = f"{subject}/{visit}_dicom"
                write_mr_series(root / rel, img.array.round().astype(np.uint16), img.spacing, img.origin,
                                img.direction, patient_id=subject, description=INJECTED)
            else:
                rel = f"{subject}/{visit}.nii.gz"
                write_nifti(img, root / rel)
            seed = ",".join(f"{v:g}" for v in CENTRE) + ",lps" if course == 0 else ",,,"
            lines.append(f"{subject},{visit},{course},{date},{rel},1,{seed}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def run_trial(root: Path) -> Path:
    """Run the pipeline (which builds the report at its end); return the output folder."""
    from volumetry.config import validate_pipeline
    from volumetry.pipeline import run_study

    cfg = validate_pipeline({
        "name": "report-test", "series": {"modality": "MR"},
        "segmentation": {"method": "region_growing"},
        "courses": {"length_weeks": 12, "max_courses": 4, "visit_window_days": 21},
        "response": {"criteria": "vascular-anomaly"},
        "outputs": {"report": True},
    }, source="report-test.yaml")
    study = make_trial(root / "study")
    out = root / "out"
    run_study(study, cfg, out, jobs=1, progress=False)
    return out


@pytest.fixture(scope="module")
def pipeline_report(tmp_path_factory):
    out = run_trial(tmp_path_factory.mktemp("pipeline-report"))
    page = out / "report" / "index.html"
    assert page.is_file(), "volumetry run did not write the report"
    return out, page.read_text(encoding="utf-8")


def test_pipeline_report_waterfall_matches_the_table(pipeline_report):
    import pandas as pd

    out, text = pipeline_report
    df = pd.read_csv(out / "volumes.csv", dtype={"subject_id": str, "lesion_id": str})
    rows = df[(df.method == "voxel") & (df.lesion_id == "total") & (df.days_from_baseline > 0)
              & df.status.isin(["ok", "empty"])]
    expected = rows.groupby("subject_id").percent_change.min()
    bars = re.findall(r'class="bar" data-subject="([^"]*)" data-percent-change="([^"]*)"', text)
    assert len(bars) == len(TRIAL) == len(expected)
    got = {html.unescape(s): float(v) for s, v in bars}
    for s, v in expected.items():
        assert got[s] == pytest.approx(v, abs=0.051)
    assert got["P01"] < -40 and got["P02"] > 10  # shrinking and growing lesions


def test_pipeline_report_overlays_and_escaping(pipeline_report):
    out, text = pipeline_report
    assert INJECTED not in text and html.escape(INJECTED) in text
    srcs = re.findall(r'<img src="(img/ov-\d+\.png)"', text)
    n_scans = sum(len(v) for v in TRIAL.values())
    assert len(srcs) == n_scans
    for src in srcs:
        rgb = np.asarray(Image.open(out / "report" / src).convert("RGB"))
        assert np.all(rgb == CONTOUR_RGB, axis=-1).any(), f"{src} has no contour"
