"""Audit of the command line's edges: bugs found here and fixed in modules outside this audit
(volumetry/pipeline/outputs.py, volumetry/io/dicom_frames.py, volumetry/segment/registry.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_audit_edges import TINY_YAML, _run, tiny  # noqa: F401 (tiny is a fixture)
from volumetry.cli import main


# ------------------------------------------------------------------ found here, fixed elsewhere
def _dicom_tree(root: Path, patient_id: str, **info) -> None:
    """Two studies of one patient (baseline and w12) as DICOM, with a seeds.csv side file."""
    import numpy as np

    from test_pipeline import LESION_CENTRE, make_image
    from volumetry.io.dicom_write import SeriesInfo, write_dicom_series

    for n, (date, radii, shift) in enumerate([("20240115", (9, 7, 7), (0, 0, 0)), ("20240408", (7, 6, 6), (3, -2, 0))]):
        img, _ = make_image(radii, shift, seed=50 + n)
        img = img.with_array(np.round(img.array).astype(np.int16))
        write_dicom_series(img, root / f"study{n}" / "t2fs", SeriesInfo(
            series_description="T2 FS COR", series_number=3, patient_id=patient_id, study_date=date,
            uid_seed=f"audit-{n}", **info))
    (root / "seeds.csv").write_text("subject_id,seed_x,seed_y,seed_z,seed_space\n"
                                    f"\"{patient_id}\",{','.join(map(str, LESION_CENTRE))},lps\n")


def test_pseudonymised_seg_drops_the_study_description(tmp_path, monkeypatch):
    from volumetry.pseudonym import KEY_ENV

    monkeypatch.setenv(KEY_ENV, "k")
    tree = tmp_path / "tree"
    _dicom_tree(tree, "SECRET42", patient_name="DOE^JANE", study_description="MRI OF JANE DOE",
                patient_birth_date="20150304", accession_number="ACC98765")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(TINY_YAML.replace("name: tiny", "name: tiny\nseries: {description_regex: t2}"))
    out = tmp_path / "out"
    assert main(["-q", "run", str(tree), "--pipeline", str(pipeline), "--out", str(out), "--jobs", "1",
                 "--no-progress", "--pseudonymize"]) == 0
    segs = sorted(out.rglob("*.dcm"))
    assert len(segs) == 2
    for seg in segs:
        data = seg.read_bytes()
        for real in (b"SECRET42", b"DOE", b"20150304", b"ACC98765"):
            assert real not in data, (seg.name, real)


def test_a_backslash_in_a_patient_id_is_kept_as_written(tmp_path):
    from volumetry.manifest import read_study

    tree = tmp_path / "tree"
    _dicom_tree(tree, "AB\\12")
    study = read_study(tree, {"modality": "MR", "description_regex": "t2"})
    assert {r.subject_id for r in study.rows} == {"AB\\12"}


def test_a_segmentation_parameter_of_the_wrong_type_fails_before_any_scan(tiny, tmp_path, capsys):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(TINY_YAML.replace("{method: region_growing}",
                                          "{method: region_growing, params: {closing_mm: {a: 1}}}"))
    out = tmp_path / "out"
    rc, err = _run(capsys, "run", str(tiny), "--pipeline", str(pipeline), "--out", str(out), "--jobs", "1",
                   "--no-progress")
    assert rc == 2 and len(err) == 1 and "closing_mm" in err[0], err
