"""Audit of the command line's edges: hostile-but-plausible input that volumetry already handles
right, pinned here (exit 2 and one line naming the file, the problem and the fix; outputs inside
the output folder; no real identifier in a pseudonymised run's files or log)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_audit_edges import _run, tiny  # noqa: F401 (tiny is a fixture)
from volumetry.cli import main

HEADER = "subject_id,visit,course,scan_date,image,lesion_id,seed_x,seed_y,seed_z,seed_space"
ROW = "S01,baseline,0,2024-01-15,S01/baseline.nii.gz,1,33,30,24,lps"


@pytest.mark.parametrize("data, problem", [
    (b"", "the file is empty; it needs a header line"),
    ((HEADER + "\n").encode(), "the manifest has a header but no scans"),
    ((HEADER + "\nS\xe9,baseline,0,2024-01-15,a.nii.gz,1,1,2,3,lps\n").encode("latin-1"),
     "not UTF-8 text (.*); save the manifest as UTF-8 CSV"),
    ((HEADER + "\n" + ROW.replace(",33,", ",nan,") + "\n").encode(), "line 2, column 'seed_x': 'nan' is not a finite"),
    ((HEADER + "\n" + ROW.replace(",33,", ",-inf,") + "\n").encode(), "line 2, column 'seed_x': '-inf' is not a finite"),
    ((HEADER + "\n" + ROW.replace(",lps", ",lsp") + "\n").encode(), "line 2, column 'seed_space': 'lsp' is not one of"),
    ((HEADER + "\n" + ROW.replace("2024-01-15", "2024-13-40") + "\n").encode(),
     "line 2, column 'scan_date': '2024-13-40' is not an ISO date"),
    ((HEADER + "\n" + ROW.replace("S01,", "S\x0001,", 1) + "\n").encode(),
     r"line 2, column 'subject_id': 'S\\x0001' holds a line break or control character"),
    ((HEADER + "\n" + ROW + '\n"S01 ",baseline,0,2024-01-15,S01/baseline.nii.gz,1,33,30,24,lps\n').encode(),
     "line 3: subject 'S01' visit 'baseline' lesion '1' is already on line 2"),
    ((HEADER + "\n" + ROW + "\n" + ROW + "\n").encode(), "line 3: subject 'S01' visit 'baseline' lesion '1' is already"),
])
def test_bad_manifest_is_exit_2_and_one_line(tiny, tmp_path, capsys, data, problem):
    import re

    study = tmp_path / "study"
    shutil.copytree(tiny, study)
    (study / "manifest.csv").write_bytes(data)
    rc, err = _run(capsys, "run", str(study), "--out", str(tmp_path / "out"), "--no-progress")
    assert rc == 2 and len(err) == 1, err
    assert re.match(rf"volumetry run: error: {re.escape(str(study / 'manifest.csv'))}[ :].*{problem}", err[0]), err[0]
    assert not (tmp_path / "out").exists()


def test_bom_and_windows_line_ends_are_read(tiny, tmp_path, capsys):
    study = tmp_path / "study"
    shutil.copytree(tiny, study)
    (study / "manifest.csv").write_bytes(("\ufeff" + HEADER + "\r\n" + ROW + "\r\n").encode())
    rc, _ = _run(capsys, "run", str(study), "--out", str(tmp_path / "out"), "--jobs", "1", "--no-progress")
    assert rc == 0
    assert (tmp_path / "out" / "sub-S01" / "ses-baseline" / "anat" / "sub-S01_ses-baseline_desc-lesion_mask.nii.gz").is_file()


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_below_one_is_a_usage_error(tiny, tmp_path, capsys, jobs):
    rc, err = _run(capsys, "run", str(tiny), "--out", str(tmp_path / "out"), "--jobs", jobs)
    assert rc == 2 and err[-1].startswith("volumetry run: error: argument --jobs: ")
    assert not (tmp_path / "out").exists()


def test_hostile_visit_and_lesion_names_stay_inside_the_output_folder(tiny, tmp_path, capsys):
    study = tmp_path / "a" / "study"
    shutil.copytree(tiny, study)
    (study / "manifest.csv").write_text(HEADER + "\n" + ROW.replace("baseline,", "../../..,", 1) + "\n"
                                        + ROW.replace("S01,baseline,", "S02,base/line,").replace(",1,33", ",/etc,33")
                                        + "\n")
    out = tmp_path / "a" / "out"
    before = set(tmp_path.rglob("*"))
    rc, _ = _run(capsys, "run", str(study), "--out", str(out), "--jobs", "1", "--no-progress")
    assert rc == 0
    new = set(tmp_path.rglob("*")) - before
    assert new and all(p == out or out in p.parents for p in new)
    masks = sorted(p.relative_to(out).parts[1] for p in out.rglob("*_mask.nii.gz"))
    assert len(masks) == 2 and all(m.startswith("ses-") and m[4:].isalnum() for m in masks)


def test_pseudonymised_dicom_run_keeps_no_real_identifier_in_files_or_log(tmp_path, capsys, monkeypatch):
    """The sample trial's DICOM scans of PH001 (PatientName PHANTOM^001, accession ACC0010)."""
    from volumetry.pseudonym import KEY_ENV
    from volumetry.phantoms.trial import write_trial

    monkeypatch.setenv(KEY_ENV, "audit-key")
    trial = tmp_path / "trial"
    write_trial(trial)
    lines = (trial / "manifest.csv").read_text().splitlines()
    (trial / "manifest.csv").write_text("\n".join([lines[0]] + [l for l in lines[1:] if l.startswith("PH001,")][:2]) + "\n")
    out = tmp_path / "out"
    rc = main(["-v", "run", str(trial), "--out", str(out), "--jobs", "1", "--no-progress", "--pseudonymize"])
    logs = capsys.readouterr()
    assert rc == 0
    assert len(list(out.rglob("*_desc-lesion_mask.dcm"))) == 2
    real = ["PH001", "PHANTOM^001", "ACC0010", str(trial)]
    for text in (logs.out, logs.err):
        assert not [r for r in real if r in text], text
    for path in out.rglob("*"):
        assert not [r for r in real if r in str(path.relative_to(out))], path
        if path.is_file():
            data = path.read_bytes()
            assert not [r for r in real if r.encode() in data], path
