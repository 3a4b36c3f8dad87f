"""Pseudonymised DICOM UIDs: real scanner UIDs embed the acquisition date and identify the
study, so a ``--pseudonymize`` run (dates moved or kept) replaces every source instance UID in
its outputs (tables, database, DICOM SEG, report) by a keyed ``2.25.`` pseudo UID, the same
one everywhere, while the SEG still reads back onto its image and re-runs recompute nothing."""
from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pydicom
import pytest

from output_texts import output_texts
from test_pipeline import tiny_config
from test_pipeline_dicom_tree import _write_tree
from volumetry.pipeline import run_study
from volumetry.pseudonym import KEY_ENV, Pseudonymizer

KEY = "uid-test-key"
DATES = ("20240115", "2024-01-15", "20240408", "2024-04-08")


def _siemens_uids(tree):
    """Rewrite the tree's UIDs the way a Siemens scanner makes them (date and time inside);
    return every real UID written."""
    real = set()
    for n, (date, study) in enumerate((("20240115", "study0"), ("20240408", "study1"))):
        study_uid = f"1.3.12.2.1107.5.2.30.300000{date[2:]}0930123450000{n}"
        for_uid = f"1.3.12.2.1107.5.2.30.67060.1.{date}093012345"
        for s, series in enumerate(("t2fs", "t1")):
            series_uid = f"1.3.12.2.1107.5.2.30.67060.{date}0930{s}12345"
            for f in sorted((tree / study / series).iterdir()):
                ds = pydicom.dcmread(f)
                sop = f"1.3.12.2.1107.5.2.30.67060.{date}09301{s}{int(ds.InstanceNumber):03d}"
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
                ds.save_as(f)
                real |= {study_uid, for_uid, series_uid, sop}
    return real


def leaks(out, real_uids, dates=()):
    """(file, leaked text) of every real UID or date found in an output file."""
    return [(name, x) for name, text in output_texts(out) for x in (*real_uids, *dates) if x in text]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tree = tmp_path_factory.mktemp("uids") / "tree"
    _write_tree(tree, patient_id="SUBJ7")
    real = _siemens_uids(tree)
    base = tmp_path_factory.mktemp("uids-out")
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, KEY)
    try:
        moved = run_study(tree, tiny_config(report=True), base / "moved", jobs=1, progress=False, pseudonymize=True)
        again = run_study(tree, tiny_config(report=True), base / "moved", jobs=1, progress=False, pseudonymize=True)
        kept = run_study(tree, tiny_config(), base / "kept", jobs=1, progress=False, pseudonymize=True,
                         keep_dates=True)
        plain = run_study(tree, tiny_config(), base / "plain", jobs=1, progress=False)
    finally:
        mp.undo()
    return tree, real, base, moved, again, kept, plain


def test_pseudo_uid_is_keyed_stable_and_valid():
    pz, other = Pseudonymizer(b"a"), Pseudonymizer(b"b")
    real = "1.3.12.2.1107.5.2.30.67060.2022040715044210837860713"
    u = pz.uid(real)
    assert u == pz.uid(real) and u != other.uid(real) and u != pz.uid(real + "1")
    assert u.startswith("2.25.") and len(u) <= 64 and u[5] != "0" and u[5:].isdigit()
    assert int(u[5:]) < 2 ** 120 and "2022" not in u[:9]


def test_no_real_uid_or_date_in_any_output(runs):
    tree, real, base, moved, again, kept, plain = runs
    assert moved.ok and kept.ok and plain.ok
    assert leaks(base / "moved", real, DATES) == []
    assert leaks(base / "kept", real) == []
    # the identified run still shows them (the check can fail)
    assert leaks(base / "plain", real)


def test_series_uid_is_the_same_pseudo_uid_in_table_database_and_seg(runs):
    tree, real, base, moved, again, kept, plain = runs
    pz = Pseudonymizer(KEY.encode())
    loaded = set(plain.table["series_uid"].dropna())  # the real series measured (identified run)
    assert len(loaded) == 2 and loaded <= real
    want = {pz.uid(u) for u in loaded}
    table = pd.read_csv(base / "moved" / "volumes.csv")
    assert set(table["series_uid"].dropna()) == want
    con = sqlite3.connect(base / "moved" / "results.sqlite")
    try:
        assert {r[0] for r in con.execute("SELECT series_uid FROM scans")} == want
        assert {r[0] for r in con.execute("SELECT series_uid FROM masks")} == want
    finally:
        con.close()
    segs = sorted((base / "moved").rglob("*_desc-lesion_mask.dcm"))
    assert len(segs) == 2
    for seg in segs:
        ds = pydicom.dcmread(seg)
        ref = ds.ReferencedSeriesSequence[0]
        assert ref.SeriesInstanceUID in want
        assert ds.FrameOfReferenceUID.startswith("2.25.") and ds.StudyInstanceUID.startswith("2.25.")
        sops = {i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence}
        assert len(sops) == 16 and all(u.startswith("2.25.") for u in sops)
        frame_refs = {s.ReferencedSOPInstanceUID for fr in ds.PerFrameFunctionalGroupsSequence
                      for d in fr.DerivationImageSequence for s in d.SourceImageSequence}
        assert frame_refs == sops  # the SEG's references agree among themselves
        # standard UIDs are untouched
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
        assert {s.ReferencedSOPClassUID for s in ref.ReferencedInstanceSequence} == {"1.2.840.10008.5.1.4.1.1.4"}


def test_pseudonymised_seg_reads_back_onto_the_image(runs):
    from volumetry.io.reader import read_image
    from volumetry.io.seg import read_seg

    tree, real, base, *_ = runs
    for seg in sorted((base / "moved").rglob("*_desc-lesion_mask.dcm")):
        nii = read_image(seg.with_name(seg.name.replace(".dcm", ".nii.gz")))
        back = read_seg(seg, nii)
        assert nii.array.any() and np.array_equal(back.array.astype(bool), nii.array.astype(bool))


def test_rerun_recomputes_nothing_and_keeps_the_pseudo_uids(runs):
    tree, real, base, moved, again, *_ = runs
    assert again.ok and again.n_computed == 0 and again.n_cached == moved.n_scans
    assert list(again.table["series_uid"]) == list(moved.table["series_uid"])
    assert leaks(base / "moved", real, DATES) == []


def test_rerun_rewrites_a_removed_seg_from_the_series_found_again(runs, monkeypatch):
    """A cached scan whose series the rule chose: only its pseudo UID is stored, so the SEG of
    a re-run is made from the series found again in the folder (the same references)."""
    tree, real, base, moved, *_ = runs
    segs = sorted((base / "moved").rglob("*_desc-lesion_mask.dcm"))
    before = [pydicom.dcmread(s) for s in segs]
    for s in segs:
        s.unlink()
    monkeypatch.setenv(KEY_ENV, KEY)
    s = run_study(tree, tiny_config(report=True), base / "moved", jobs=1, progress=False, pseudonymize=True)
    assert s.ok and s.n_computed == 0
    for path, old in zip(segs, before):
        new = pydicom.dcmread(path)
        assert new.ReferencedSeriesSequence[0].SeriesInstanceUID == old.ReferencedSeriesSequence[0].SeriesInstanceUID
        assert new.FrameOfReferenceUID == old.FrameOfReferenceUID
    assert leaks(base / "moved", real, DATES) == []


def test_failure_messages_show_pseudo_uids(runs, tmp_path, monkeypatch):
    """A series UID that the folder does not hold: the failure lists the folder's series by
    their UIDs, which a pseudonymised run shows as pseudo UIDs."""
    from test_pipeline import LESION_CENTRE

    tree, real, *_ = runs
    missing = "1.3.12.2.1107.5.2.30.67060.2024011599999999"
    (tmp_path / "manifest.csv").write_text(
        "subject_id,visit,image,series_uid,seed_x,seed_y,seed_z,seed_space\n"
        f"SUBJ7,baseline,{tree / 'study0'},{missing},{LESION_CENTRE[0]},{LESION_CENTRE[1]},{LESION_CENTRE[2]},lps\n")
    monkeypatch.setenv(KEY_ENV, KEY)
    s = run_study(tmp_path / "manifest.csv", tiny_config(), tmp_path / "out", jobs=1, progress=False,
                  pseudonymize=True)
    pz = Pseudonymizer(KEY.encode())
    (failure,) = s.failures
    assert pz.uid(missing) in failure.message and "available" in failure.message
    assert not any(u in failure.message for u in (*real, missing))
    assert leaks(tmp_path / "out", {*real, missing}, DATES) == []
    plain = run_study(tmp_path / "manifest.csv", tiny_config(), tmp_path / "plain", jobs=1, progress=False)
    assert missing in plain.failures[0].message  # identified runs say it as it is
