"""Pseudonymised dates written the way sites write them: inside visit labels (``V2_20240408``,
``15/01/2024``, ``w24 (2024.07.01)``) and in image folder names that a failure message shows.
No output of a run with moved dates holds a real date in any of these forms; intervals,
courses and responses are those of a plain run."""
from __future__ import annotations

import datetime as dt
import gzip
import shutil
import sqlite3

import pandas as pd
import pytest

from output_texts import output_texts
from test_pipeline import TRIAL, make_tiny_trial, tiny_config
from volumetry.manifest import ScanRow
from volumetry.pipeline import run_study
from volumetry.pipeline.deid import Shown
from volumetry.pseudonym import KEY_ENV, Pseudonymizer

KEY = "hostile-date-key"
#: (subject, visit of TRIAL) -> (visit label written by the site, image folder)
LABELS = {("S01", "baseline"): ("15/01/2024", "15-01-2024"),
          ("S01", "w12"): ("V2_20240408", "20240408_w12"),
          ("S01", "w24"): ("w24 (2024.07.01)", "2024.07.01"),
          ("S02", "baseline"): ("2024_02_01", "01.02.2024"),
          ("S02", "w12"): ("MRI 25 Apr 2024", "25-APR-2024")}
FORMS = ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%Y.%m.%d", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y",
         "%Y_%m_%d", "%d%m%Y", "%d.%m.%y", "%d %b %Y", "%d-%b-%Y", "%d%b%Y", "%b %d, %Y", "%d %B %Y")


def _forms(day):
    """``day`` written in every form of :data:`FORMS`, month names also in capitals (``25-APR-2024``)."""
    out = {day.strftime(f) for f in FORMS}
    return out | {t.upper() for t in out}


def _study(root):
    """The tiny trial with the site's labels and folders; S01's last image is corrupt."""
    make_tiny_trial(root)
    man = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    for n, row in man.iterrows():
        label, folder = LABELS[(row["subject_id"], row["visit"])]
        src = root / row["image"]
        dst = root / row["subject_id"] / folder / "scan.nii.gz"
        dst.parent.mkdir(parents=True)
        shutil.move(src, dst)
        if label.startswith("w24"):
            dst.write_bytes(gzip.compress(b"not a nifti file" * 10))
        man.loc[n, "visit"], man.loc[n, "image"] = label, str(dst.relative_to(root))
    man.to_csv(root / "manifest.csv", index=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "study"
    _study(root)
    base = tmp_path_factory.mktemp("hostile-out")
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    try:
        plain = run_study(root, tiny_config(), base / "plain", jobs=1, progress=False)
        moved = run_study(root, tiny_config(report=True), base / "moved", jobs=1, progress=False, pseudonymize=True)
    finally:
        mp.undo()
    return plain, moved


def test_no_output_shows_a_real_date_in_any_form(runs):
    _, moved = runs
    real = {dt.date.fromisoformat(d) for visits in TRIAL.values() for (_, d, _, _) in visits.values()}
    forms = set().union(*(_forms(d) for d in real))
    assert len(moved.failures) == 1
    leaks = [(name, form) for name, text in output_texts(moved.out_dir) for form in forms if form in text]
    assert leaks == []


def test_dates_inside_labels_and_messages_move_in_their_own_form(runs):
    plain, moved = runs
    pz = Pseudonymizer(KEY.encode())
    s01 = dt.timedelta(days=pz.date_shift_days("S01"))
    s02 = dt.timedelta(days=pz.date_shift_days("S02"))
    visits = set(moved.table["visit"])
    assert f"{dt.date(2024, 1, 15) - s01:%d/%m/%Y}" in visits
    assert f"V2_{dt.date(2024, 4, 8) - s01:%Y%m%d}" in visits
    assert f"w24 ({dt.date(2024, 7, 1) - s01:%Y.%m.%d})" in visits
    assert f"{dt.date(2024, 2, 1) - s02:%Y_%m_%d}" in visits
    assert f"MRI {dt.date(2024, 4, 25) - s02:%d %b %Y}" in visits
    message = moved.failures[0].line()
    assert f"/{dt.date(2024, 7, 1) - s01:%Y.%m.%d}/" in message, message
    # intervals, courses, volumes and responses are the plain run's
    same = ["lesion_id", "course", "days_from_baseline", "method", "volume_ml", "percent_change", "response",
            "best_response", "status"]
    for subject in TRIAL:
        a = plain.table[plain.table["subject_id"] == subject].reset_index(drop=True)
        b = moved.table[moved.table["subject_id"] == pz(subject)].reset_index(drop=True)
        assert len(a) == len(b) > 0
        pd.testing.assert_frame_equal(a[same], b[same])


def test_shift_text_moves_every_written_date_and_nothing_else():
    pz = Pseudonymizer(b"k")
    shown = Shown(pz)
    d = dt.timedelta(days=pz.date_shift_days("S9"))

    def label(text, scan_date=None):
        return shown.visit(ScanRow(subject_id="S9", visit=text, image=None, lesion_id="1", scan_date=scan_date))

    day = dt.date(2024, 1, 8)
    assert label("08/01/2024") == f"{day - d:%d/%m/%Y}"  # day first when the order is ambiguous
    assert label("01/08/2024", scan_date=day) == f"{day - d:%m/%d/%Y}"  # unless the scan's date reads month first
    assert label("2024.01.08") == f"{day - d:%Y.%m.%d}"
    assert label("08012024") == f"{day - d:%d%m%Y}"
    assert label("08.01.24") == f"{day - d:%d.%m.%y}"
    assert label("course3 (2024-01-08)") == f"course3 ({day - d:%Y-%m-%d})"
    assert label("20240108") == (day - d).isoformat()  # a label that is a date: ISO, as before
    # month names, in the writer's order, separators, padding, length and case
    assert label("MRI 8 Jan 2024") == f"MRI {(day - d).day} {day - d:%b %Y}"
    assert label("08-JAN-2024") == f"{day - d:%d-%b-%Y}".upper()
    assert label("V2_08jan2024_T2") == f"V2_{f'{day - d:%d%b%Y}'.lower()}_T2"
    assert label("Jan 08, 2024") == f"{day - d:%b %d, %Y}"
    assert label("January 08 2024") == f"{day - d:%B %d %Y}"
    assert label("2024-Jan-08") == f"{day - d:%Y-%b-%d}"
    for text in ("may 2024", "Mayo 8 2024", "31 Feb 2024", "8 Janx 2024", "X8 Jan 2024"):
        assert label(text) == text
    for text in ("baseline", "w12", "C1D1", "v0.3.0", "1.2.840.113619.2.408.5282380", "2024-13-45", "12345678"):
        assert label(text) == text
    assert Shown(pz, shift_dates=False).visit(ScanRow(subject_id="S9", visit="V2_20240108", image=None,
                                                      lesion_id="1")) == "V2_20240108"


def test_real_and_moved_dates_are_never_mixed_in_one_folder(tmp_path, monkeypatch):
    from volumetry.errors import InputError

    monkeypatch.setenv(KEY_ENV, KEY)
    root = tmp_path / "study"
    make_tiny_trial(root)
    run_study(root, tiny_config(), tmp_path / "out", jobs=1, progress=False, pseudonymize=True, keep_dates=True)
    with pytest.raises(InputError, match="made with real dates .*add --keep-dates"):
        run_study(root, tiny_config(), tmp_path / "out", jobs=1, progress=False, pseudonymize=True)
    # and the reverse
    run_study(root, tiny_config(), tmp_path / "out2", jobs=1, progress=False, pseudonymize=True)
    with pytest.raises(InputError, match="made with moved dates; a run with --keep-dates"):
        run_study(root, tiny_config(), tmp_path / "out2", jobs=1, progress=False, pseudonymize=True, keep_dates=True)
    # a pseudonymised folder made before dates were moved (0.2.0: no dates_moved column) holds real dates
    import sqlite3

    con = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    con.execute("ALTER TABLE runs DROP COLUMN dates_moved")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="made with real dates"):
        run_study(root, tiny_config(), tmp_path / "out", jobs=1, progress=False, pseudonymize=True)
    run_study(root, tiny_config(), tmp_path / "out", jobs=1, progress=False, pseudonymize=True, keep_dates=True)
