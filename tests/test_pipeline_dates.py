"""Pseudonymised dates: every date of a subject moves back by one keyed number of days, so
no output shows a real scan date while days from baseline, courses and responses stay the
same; ``keep_dates`` shows the real ones."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from output_texts import output_texts
from test_pipeline import TRIAL, tiny_config
from test_pipeline_dicom_tree import _write_tree
from volumetry.manifest import ScanRow
from volumetry.paths import safe_label
from volumetry.pipeline import run_study
from volumetry.pipeline.deid import Shown
from volumetry.pseudonym import KEY_ENV, MAX_DATE_SHIFT_DAYS, Pseudonymizer

KEY = "date-test-key"
SAME = ["lesion_id", "visit", "course", "days_from_baseline", "method", "volume_ml", "percent_change", "response",
        "best_response", "status"]


def _real_dates():
    return {date for visits in TRIAL.values() for (_, date, _, _) in visits.values()}


def _no_real_date_in(out, dates):
    forms = set(dates) | {d.replace("-", "") for d in dates}
    leaks = [(name, form) for name, text in output_texts(out) for form in forms if form in text]
    assert leaks == []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from test_pipeline import make_tiny_trial

    root = tmp_path_factory.mktemp("dates") / "study"
    make_tiny_trial(root)
    base = tmp_path_factory.mktemp("dates-out")
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    try:
        plain = run_study(root, tiny_config(), base / "plain", jobs=1, progress=False)
        moved = run_study(root, tiny_config(report=True), base / "moved", jobs=1, progress=False, pseudonymize=True)
        kept = run_study(root, tiny_config(), base / "kept", jobs=1, progress=False, pseudonymize=True,
                         keep_dates=True)
    finally:
        mp.undo()
    return plain, moved, kept


def test_each_subject_moves_back_by_its_own_keyed_shift(runs):
    plain, moved, _ = runs
    pz = Pseudonymizer(KEY.encode())
    for subject in TRIAL:
        shift = pz.date_shift_days(subject)
        assert 1 <= shift <= MAX_DATE_SHIFT_DAYS
        a = plain.table[plain.table["subject_id"] == subject].reset_index(drop=True)
        b = moved.table[moved.table["subject_id"] == pz(subject)].reset_index(drop=True)
        assert len(a) == len(b) > 0
        real = pd.to_datetime(a["scan_date"]).dt.date
        shown = pd.to_datetime(b["scan_date"]).dt.date
        assert all(r - s == dt.timedelta(days=shift) for r, s in zip(real, shown))
        # intervals, courses, volumes and responses are those of the plain run
        pd.testing.assert_frame_equal(a[SAME], b[SAME])
    assert pz.date_shift_days("S01") != pz.date_shift_days("S02")


def test_no_output_holds_a_real_scan_date(runs):
    _, moved, _ = runs
    assert (moved.out_dir / "report" / "index.html").is_file()
    _no_real_date_in(moved.out_dir, _real_dates())


def test_keep_dates_shows_the_real_ones(runs):
    plain, _, kept = runs
    pz = Pseudonymizer(KEY.encode())
    assert set(kept.table["subject_id"]) == {pz(s) for s in TRIAL}
    for subject in TRIAL:
        a = plain.table[plain.table["subject_id"] == subject]["scan_date"]
        b = kept.table[kept.table["subject_id"] == pz(subject)]["scan_date"]
        assert list(a) == list(b) and len(a) > 0


def test_dicom_tree_visit_labels_and_seg_dates_are_moved(tmp_path, monkeypatch):
    import pydicom

    monkeypatch.setenv(KEY_ENV, KEY)
    tree = tmp_path / "tree"
    _write_tree(tree, patient_id="PT7")
    s = run_study(tree, tiny_config(report=True), tmp_path / "out", jobs=1, progress=False, pseudonymize=True)
    assert s.ok, [f.line() for f in s.failures]
    shift = dt.timedelta(days=Pseudonymizer(KEY.encode()).date_shift_days("PT7"))
    expected = {(dt.date(2024, 1, 15) - shift).isoformat(), (dt.date(2024, 4, 8) - shift).isoformat()}
    assert set(s.table["visit"]) == expected
    assert {p.name for p in s.out_dir.glob("sub-*/ses-*")} == {f"ses-{safe_label(v)}" for v in expected}
    _no_real_date_in(s.out_dir, {"2024-01-15", "2024-04-08"})
    segs = sorted(s.out_dir.rglob("*_desc-lesion_mask.dcm"))
    assert len(segs) == 2
    headers = [pydicom.dcmread(seg, stop_before_pixels=True) for seg in segs]
    assert sorted(ds.StudyDate for ds in headers) == sorted(v.replace("-", "") for v in expected)  # moved
    for ds in headers:
        # no contributing equipment (the source's institution, station, acquisition date and time)
        assert len(ds.get("ContributingEquipmentSequence", [])) == 0


def test_keep_dates_seg_keeps_the_study_date(tmp_path, monkeypatch):
    import pydicom

    monkeypatch.setenv(KEY_ENV, KEY)
    tree = tmp_path / "tree"
    _write_tree(tree, patient_id="PT7")
    s = run_study(tree, tiny_config(), tmp_path / "out", jobs=1, progress=False, pseudonymize=True, keep_dates=True)
    dates = sorted(pydicom.dcmread(f, stop_before_pixels=True).StudyDate for f in s.out_dir.rglob("*.dcm"))
    assert dates == ["20240115", "20240408"]


def test_shown_moves_date_labels_and_scrubs_messages():
    pz = Pseudonymizer(b"k")
    shown = Shown(pz)
    shift = dt.timedelta(days=pz.date_shift_days("S9"))
    row = ScanRow(subject_id="S9", visit="20240301", image=None, lesion_id="1", scan_date=dt.date(2024, 3, 1))
    moved = dt.date(2024, 3, 1) - shift
    assert shown.visit(row) == moved.isoformat()
    assert shown.date("S9", dt.date(2024, 3, 1)) == moved
    text = "S9 visit 20240301 (2024-03-01) failed"
    for real, new in shown.replacements(row):
        text = text.replace(real, new)
    # the visit label reads as the outputs show it (ISO), the date in either form moved
    assert text == f"{pz('S9')} visit {moved.isoformat()} ({moved.isoformat()}) failed"
    text = "baseline scanned on 20240301"
    for real, new in Shown(pz).replacements(ScanRow(subject_id="S9", visit="base", image=None, lesion_id="1",
                                                    scan_date=dt.date(2024, 3, 1))):
        text = text.replace(real, new)
    assert text == f"baseline scanned on {moved:%Y%m%d}"
    # labels that are not dates, and keep_dates, show the visit as written
    assert shown.visit(ScanRow(subject_id="S9", visit="w12", image=None, lesion_id="1")) == "w12"
    assert Shown(pz, shift_dates=False).visit(row) == "20240301"
    assert Shown().date("S9", dt.date(2024, 3, 1)) == dt.date(2024, 3, 1)


def test_keep_dates_without_pseudonymize_is_a_usage_error(tmp_path, capsys):
    from volumetry.cli import main

    assert main(["run", str(tmp_path), "--keep-dates", "--out", str(tmp_path / "o")]) == 2
    assert "--keep-dates applies only with --pseudonymize" in capsys.readouterr().err
