"""`volumetry run` end to end: command line, exit statuses and messages, a replaced mask,
a run killed with SIGKILL then re-run, a real Dask LocalCluster, bad inputs."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_pipeline import TRIAL, comparable, make_image, make_tiny_trial, tiny_config, voxel_rows
from volumetry.cli import main
from volumetry.pipeline import run_study

ROOT = Path(__file__).resolve().parents[1]

TINY_YAML = """\
name: tiny
segmentation: {method: region_growing}
courses: {length_weeks: 12, max_courses: 4, visit_window_days: 21}
outputs: {report: false}
"""

#: a larger tiny trial for the SIGKILL test (9 scans: enough to be killed in the middle)
TRIAL9 = {
    **TRIAL,
    "S02": {**TRIAL["S02"], "w24": (2, "2024-07-18", (7, 7, 5), (1, -1, 0))},
    "S03": {"baseline": (0, "2024-03-01", (8, 7, 6), (0, 0, 0)),
            "w12": (1, "2024-05-24", (8, 7, 5.5), (-2, 2, 0)),
            "w24": (2, "2024-08-16", (6, 6, 5), (2, 0, 0))},
}


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "study"
    make_tiny_trial(root)
    pipe = root.parent / "tiny.yaml"
    pipe.write_text(TINY_YAML)
    return root, pipe


def test_cli_run_rerun_and_messages(trial, tmp_path, capsys):
    root, pipe = trial
    out = tmp_path / "out"
    assert main(["run", str(root), "--pipeline", str(pipe), "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Processed 5 scans: 5 computed, 0 unchanged (cached), 0 failed" in text
    assert f"Results in {out.resolve()}" in text and "volumes.csv" in text
    assert main(["run", str(root), "--pipeline", str(pipe), "--out", str(out), "--no-progress"]) == 0
    assert "Nothing recomputed: all 5 scans unchanged" in capsys.readouterr().out


def test_cli_unknown_pipeline_key_writes_nothing(trial, tmp_path, capsys):
    root, _ = trial
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_YAML + "segmentaton: {method: threshold}\n")
    out = tmp_path / "out"
    assert main(["run", str(root), "--pipeline", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: key 'segmentaton' is not a valid key. Did you mean 'segmentation'?" in err
    assert not out.exists()


def test_cli_bad_method_and_schedule_fail_before_any_scan(trial, tmp_path, capsys):
    root, _ = trial
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_YAML.replace("region_growing", "watershed"))
    assert main(["run", str(root), "--pipeline", str(bad), "--out", str(tmp_path / "o1")]) == 2
    assert "key 'segmentation': unknown segmentation method 'watershed'" in capsys.readouterr().err
    bad.write_text(TINY_YAML.replace("visit_window_days: 21", "visit_window_days: 60"))
    assert main(["run", str(root), "--pipeline", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "key 'courses'" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_cli_failed_scan_exit_status_and_summary(trial, tmp_path, capsys):
    root, pipe = trial
    study = tmp_path / "study"
    shutil.copytree(root, study)
    (study / "S02" / "w12.nii.gz").write_bytes(b"not a nifti at all")
    out = tmp_path / "out"
    assert main(["run", str(study), "--pipeline", str(pipe), "--out", str(out), "--jobs", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 scan(s) FAILED:" in err and "S02 w12 lesion 1: load:" in err and "w12.nii.gz" in err
    csv = pd.read_csv(out / "volumes.csv")
    bad = csv[(csv["subject_id"] == "S02") & (csv["visit"] == "w12") & (csv["lesion_id"] != "total")]
    assert len(bad) == 3
    assert (bad["status"] == "failed").all() and bad["volume_ml"].isna().all() and bad["reason"].notna().all()


def test_cli_defaults_need_sample_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    assert "no STUDY given and ./sample_data does not exist" in capsys.readouterr().err
    assert not (tmp_path / "volumetry-out").exists()


def test_non_dicom_study_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "notes.txt").write_text("hello")
    assert main(["run", str(tmp_path / "study"), "--out", str(tmp_path / "out")]) == 2
    assert "no manifest.csv and no DICOM series found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_replaced_mask_recomputes_only_that_scan_and_subject(trial, tmp_path):
    from volumetry.io.nifti import write_nifti

    root, _ = trial
    study = tmp_path / "study"
    shutil.copytree(root, study)
    course, date, radii, shift = TRIAL["S02"]["w12"]
    img, lesion = make_image(radii, shift, seed=101)  # the same image as the trial's S02 w12
    write_nifti(img.with_array(lesion), study / "S02" / "w12_mask.nii.gz")
    lines = (study / "manifest.csv").read_text().splitlines()
    lines = [lines[0] + ",mask"] + [ln + (",S02/w12_mask.nii.gz" if ln.startswith("S02,w12,") else ",")
                                     for ln in lines[1:]]
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    first = run_study(study, tiny_config(), out, jobs=1, progress=False)
    v1 = voxel_rows(first.table)
    voxel_ml = np.prod(img.spacing) / 1000
    assert v1.loc[("S02", "w12"), "volume_ml"] == pytest.approx(lesion.sum() * voxel_ml)
    # a corrected mask: one slice less
    smaller = lesion.copy()
    k = np.nonzero(smaller.any(axis=(1, 2)))[0][0]
    smaller[k] = False
    write_nifti(img.with_array(smaller), study / "S02" / "w12_mask.nii.gz")
    second = run_study(study, tiny_config(), out, jobs=1, progress=False)
    assert second.computed == [("S02", "w12", "1")] and second.assessed == ["S02"]
    v2 = voxel_rows(second.table)
    assert v2.loc[("S02", "w12"), "volume_ml"] == pytest.approx(smaller.sum() * voxel_ml)
    pd.testing.assert_frame_equal(v1.loc[["S01"]].drop(columns="computed_at"),
                                  v2.loc[["S01"]].drop(columns="computed_at"))
    from volumetry.io.reader import read_image

    written = read_image(out / "sub-S02/ses-w12/anat/sub-S02_ses-w12_desc-lesion_mask.nii.gz")
    assert np.count_nonzero(written.array) == smaller.sum()


def _count(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            return con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_batch_then_rerun_gives_the_same_table(tmp_path):
    study = tmp_path / "study"
    make_tiny_trial(study, TRIAL9)
    pipe = tmp_path / "tiny.yaml"
    pipe.write_text(TINY_YAML)
    from volumetry.config import load_pipeline

    cfg = load_pipeline(pipe)  # the same pipeline file as the command line's (config_hash is its hash)
    reference = run_study(study, cfg, tmp_path / "reference", jobs=1, progress=False)
    assert reference.ok and reference.n_scans == 9

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "volumetry", "-q", "run", str(study), "--pipeline", str(pipe), "--out", str(out),
           "--jobs", "1", "--no-progress"]
    log = tmp_path / "killed.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.monotonic() + 600  # a loaded machine (e.g. parallel test workers) can be slow
    n = 0
    while time.monotonic() < deadline and proc.poll() is None:
        n = _count(out / "results.sqlite")
        if n >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {log.read_text()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = _count(out / "results.sqlite")
    assert 3 <= done < 9, done
    con = sqlite3.connect(out / "results.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()

    # killed again while it writes the outputs (as soon as volumes.csv appears; masks come after it)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.monotonic() + 600  # a loaded machine (e.g. parallel test workers) can be slow
    while time.monotonic() < deadline and proc.poll() is None and not (out / "volumes.csv").exists():
        time.sleep(0.002)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done = _count(out / "results.sqlite")

    again = run_study(study, cfg, out, jobs=1, progress=False)
    assert again.ok and again.n_cached == done and again.n_computed == 9 - done
    pd.testing.assert_frame_equal(comparable(again.table), comparable(reference.table))
    csv = pd.read_csv(out / "volumes.csv")
    assert not csv.duplicated(["subject_id", "lesion_id", "visit", "method"]).any()
    pd.testing.assert_frame_equal(csv.drop(columns="computed_at"),
                                  pd.read_csv(tmp_path / "reference" / "volumes.csv").drop(columns="computed_at"))
    con = sqlite3.connect(out / "results.sqlite")
    assert con.execute("SELECT COUNT(*) FROM scans").fetchone()[0] == 9
    assert con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 9
    assert con.execute("SELECT status FROM runs ORDER BY run_id").fetchall()[-1] == ("ok",)
    assert not list(out.rglob(".*.tmp*"))
    con.close()


def test_dask_local_cluster_equals_local_run(trial, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, _ = trial
    import dask

    local = run_study(root, tiny_config(), tmp_path / "local", jobs=1, progress=False)
    # a loaded 2-core CI machine can take longer than the default 30 s to start two worker processes
    with dask.config.set({"distributed.comm.timeouts.connect": "120s", "distributed.comm.timeouts.tcp": "120s"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        remote = run_study(root, tiny_config(), tmp_path / "dask", dask_address=cluster.scheduler_address,
                           progress=False)
        assert len(cluster.workers) == 2
    assert remote.ok and remote.n_computed == 5
    pd.testing.assert_frame_equal(comparable(remote.table), comparable(local.table))
