"""Re-running after an edit of the manifest that changes no input file: nothing is segmented
again, but what the manifest says about each scan (course, scan date, image path) is what
the table and the database hold, exactly as a fresh run into a new folder would."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from test_pipeline import comparable, make_tiny_trial, tiny_config
from volumetry.pipeline import run_study
from volumetry.store import ResultStore


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    base = tmp_path_factory.mktemp("rerun")
    study = base / "study"
    make_tiny_trial(study)
    out = base / "out"
    first = run_study(study, tiny_config(masks=False, seg=False), out, jobs=1, progress=False)
    assert first.ok and first.n_computed == 5
    return base, study, out


def _copy(done, tmp_path):
    base, study, out = done
    shutil.copytree(study, tmp_path / "study")
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "study", tmp_path / "out"


def _columns(table: pd.DataFrame) -> pd.DataFrame:
    t = table[table["method"] == "voxel"]
    return t[["subject_id", "visit", "lesion_id", "course", "scan_date", "days_from_baseline", "volume_ml",
              "percent_change", "response"]].sort_values(["subject_id", "visit"]).reset_index(drop=True)


def test_edited_scan_date_and_course_reach_the_table_without_recomputing(done, tmp_path):
    study, out = _copy(done, tmp_path)
    manifest = study / "manifest.csv"
    text = manifest.read_text()
    assert "S01,w12,1,2024-04-08," in text
    # a typo fixed in the manifest: S01's w12 scan was on another day (its image is unchanged)
    manifest.write_text(text.replace("S01,w12,1,2024-04-08,", "S01,w12,1,2024-04-22,"))
    again = run_study(study, tiny_config(masks=False, seg=False), out, jobs=1, progress=False)
    assert again.ok and again.n_computed == 0 and again.n_cached == 5
    assert again.assessed == ["S01"]  # only that subject is re-assessed
    fresh = run_study(study, tiny_config(masks=False, seg=False), tmp_path / "fresh", jobs=1, progress=False)
    got, want = _columns(again.table), _columns(fresh.table)
    row = got[(got["subject_id"] == "S01") & (got["visit"] == "w12")].iloc[0]
    assert str(row["scan_date"])[:10] == "2024-04-22" and row["days_from_baseline"] == 98
    pd.testing.assert_frame_equal(got, want)
    written = pd.read_csv(out / "volumes.csv").drop(columns="computed_at")
    pd.testing.assert_frame_equal(written, pd.read_csv(tmp_path / "fresh" / "volumes.csv").drop(columns="computed_at"))

    # the course too (w12 declared as course 2)
    manifest.write_text(manifest.read_text().replace("S01,w12,1,2024-04-22,", "S01,w12,2,2024-04-22,"))
    again = run_study(study, tiny_config(masks=False, seg=False), out, jobs=1, progress=False)
    assert again.n_computed == 0
    row = _columns(again.table).query("subject_id == 'S01' and visit == 'w12'").iloc[0]
    assert row["course"] == 2


def test_moved_study_is_not_recomputed_and_the_database_names_the_new_paths(done, tmp_path):
    study, out = _copy(done, tmp_path)
    before = comparable(pd.read_csv(out / "volumes.csv"))
    moved = tmp_path / "elsewhere" / "trial"
    moved.parent.mkdir()
    shutil.move(str(study), moved)
    again = run_study(moved, tiny_config(masks=False, seg=False), out, jobs=1, progress=False)
    assert again.ok and again.n_computed == 0 and again.assessed == []
    pd.testing.assert_frame_equal(comparable(pd.read_csv(out / "volumes.csv")), before)
    store = ResultStore(out / "results.sqlite")
    try:
        images = sorted(s["image"] for s in store.scans())
    finally:
        store.close()
    # the report's overlays read the image from here: the old folder is gone
    assert images == sorted(str(p) for p in moved.glob("S0*/*.nii.gz"))


def test_an_empty_image_folder_names_the_manifest_line_and_column(done, tmp_path):
    study, out = _copy(done, tmp_path)
    (study / "S02" / "empty").mkdir()
    manifest = study / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("S02/baseline.nii.gz", "S02/empty"))
    s = run_study(study, tiny_config(masks=False, seg=False), out, jobs=1, progress=False)
    failures = {(f.subject_id, f.visit): f for f in s.failures}
    assert sorted(failures) == [("S02", "baseline"), ("S02", "w12")]
    own = failures["S02", "baseline"]
    assert own.stage == "input" and own.message == (
        f"{manifest} line 5, column 'image': {study / 'S02' / 'empty'}: the folder holds no file; "
        "give the image file or the DICOM folder")
    assert failures["S02", "w12"].stage == "propagate"
    assert failures["S02", "w12"].message.startswith(
        f"{manifest} line 6: baseline 'baseline' ({manifest} line 5) could not be used for propagation: ")
    assert s.n_computed == 0  # S01 unchanged


def test_pseudonymised_failures_hold_no_path_outside_the_study(done, tmp_path, monkeypatch):
    """Images named by an absolute path or by '..' out of the study folder: with
    --pseudonymize their paths (which often hold names) are not in any output."""
    from volumetry.pseudonym import KEY_ENV

    monkeypatch.setenv(KEY_ENV, "test-key")
    study, _ = _copy(done, tmp_path)
    outside = tmp_path / "Doe_Jane"
    outside.mkdir()
    (outside / "w24.nii.gz").write_bytes(b"corrupt")  # S01 w24: a reader's message names the file
    manifest = study / "manifest.csv"
    text = manifest.read_text()
    text = text.replace("S01/w24.nii.gz", str(outside / "w24.nii.gz"))
    text = text.replace("S02/baseline.nii.gz", "../Doe_Jane/baseline.nii.gz")  # missing; w12 propagates from it
    manifest.write_text(text)
    out = tmp_path / "pseudo"
    s = run_study(study, tiny_config(masks=False, seg=False), out, jobs=1, progress=False, pseudonymize=True)
    assert len(s.failures) == 3
    stages = sorted(f.stage for f in s.failures)
    assert stages == ["input", "load", "propagate"]
    for f in s.failures:
        assert "Doe_Jane" not in f.message and "<image>" in f.message, f.message
        assert f.message.startswith("<study>/manifest.csv line "), f.message
    for f in out.rglob("*"):
        if f.is_file():
            assert b"Doe_Jane" not in f.read_bytes(), f


def test_a_cached_scan_recorded_again_keeps_the_series_it_was_measured_on(tmp_path):
    """A DICOM folder given without series_uid: the series loaded is recorded with the result;
    recording the cached scan again (its scan date edited) must not blank it (the table's
    series_uid and the DICOM SEG's source come from it)."""
    from test_pipeline_volume import _write_dual_echo

    study = tmp_path / "study"
    _write_dual_echo(study / "D1" / "baseline", [(9, 7, 7), (6, 5, 5)], (0, 0, 0), seed=500)
    _write_dual_echo(study / "D1" / "w12", [(8, 7, 6), (5, 4, 4)], (2, -2, 0), seed=510)
    seed = "33,30,24"
    manifest = study / "manifest.csv"
    manifest.write_text("subject_id,visit,course,scan_date,image,volume,seed_x,seed_y,seed_z\n"
                        f"D1,baseline,0,2024-01-15,D1/baseline,1,{seed}\n"
                        "D1,w12,1,2024-04-08,D1/w12,1,,,\n")
    out = tmp_path / "out"
    first = run_study(study, tiny_config(masks=False, seg=False), out, jobs=1, progress=False)
    assert first.ok, [f.line() for f in first.failures]
    uids = first.table.groupby("visit")["series_uid"].first().to_dict()
    assert uids == {"baseline": "1.2.826.0.1.3680043.10.1453.77.500", "w12": "1.2.826.0.1.3680043.10.1453.77.510"}
    manifest.write_text(manifest.read_text().replace("2024-04-08", "2024-04-15"))
    again = run_study(study, tiny_config(masks=False, seg=False), out, jobs=1, progress=False)
    assert again.n_computed == 0 and again.assessed == ["D1"]
    assert again.table.groupby("visit")["series_uid"].first().to_dict() == uids
    assert set(pd.read_csv(out / "volumes.csv")["series_uid"]) == set(uids.values())
