"""Batch pipeline on a tiny generated trial: numbers against the phantom's truth, caching,
recomputation of exactly what changed, failure isolation, safe outputs, pool == inline,
pseudonymisation.

The tiny trial: NIfTI images 40×40×16 voxels of 1.5×1.5×3 mm, a body with a bright
ellipsoidal lesion (no partial volume: the true voxel volume is known exactly), a seed on
the baseline row only, follow-ups shifted by a few mm (the seed must be propagated by
registration).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from volumetry.config import validate_pipeline
from volumetry.errors import ConfigError
from volumetry.image import Volume
from volumetry.pipeline import run_study
from volumetry.store import ResultStore

SPACING = (1.5, 1.5, 3.0)
SHAPE = (16, 40, 40)
LESION_CENTRE = (33.0, 30.0, 24.0)
#: subject -> visit -> (course, date, lesion radii (mm), shift of the patient (mm))
TRIAL = {
    "S01": {"baseline": (0, "2024-01-15", (9, 7, 7), (0, 0, 0)),
            "w12": (1, "2024-04-08", (7.5, 6, 6), (3, -2, 0)),
            "w24": (2, "2024-07-01", (6, 5, 5), (-2, 1.5, 0))},
    "S02": {"baseline": (0, "2024-02-01", (8, 8, 6), (0, 0, 0)),
            "w12": (1, "2024-04-25", (8.5, 8, 6.5), (2, 2, 0))},
}


def make_image(radii_mm, shift_mm, seed: int) -> tuple[Volume, np.ndarray]:
    """A noisy body with an ellipsoidal lesion; returns the image and the true lesion mask."""
    rng = np.random.default_rng(seed)
    nk, nj, ni = SHAPE
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    x = i * SPACING[0] - shift_mm[0]
    y = j * SPACING[1] - shift_mm[1]
    z = k * SPACING[2] - shift_mm[2]
    c = (ni * SPACING[0] / 2, nj * SPACING[1] / 2, nk * SPACING[2] / 2)
    body = ((x - c[0]) / 25) ** 2 + ((y - c[1]) / 22) ** 2 + ((z - c[2]) / 40) ** 2 <= 1
    arr = np.where(body, 300.0, 20.0) + 80 * np.sin(x / 7.0) * body
    lesion = sum(((v - m) / r) ** 2 for v, m, r in zip((x, y, z), LESION_CENTRE, radii_mm)) <= 1
    arr[lesion] = 1000.0
    arr += rng.normal(0, 20, arr.shape)
    return Volume(arr.astype(np.float32), SPACING, (0, 0, 0), np.eye(3)), lesion


def make_tiny_trial(root: Path, trial: dict = TRIAL) -> pd.DataFrame:
    """Write the images and manifest.csv of a tiny trial into ``root``; return the truth
    (subject, visit, true volume in mL)."""
    from volumetry.io.nifti import write_nifti

    root.mkdir(parents=True, exist_ok=True)
    lines = ["subject_id,visit,course,scan_date,image,lesion_id,seed_x,seed_y,seed_z,seed_space"]
    truth = []
    for n, (subject, visits) in enumerate(trial.items()):
        for m, (visit, (course, date, radii, shift)) in enumerate(visits.items()):
            img, lesion = make_image(radii, shift, seed=100 * n + m)
            rel = f"{subject}/{visit}.nii.gz"
            (root / subject).mkdir(exist_ok=True)
            write_nifti(img, root / rel)
            seed = ",".join(f"{v:g}" for v in LESION_CENTRE) + ",lps" if course == 0 else ",,,"
            lines.append(f"{subject},{visit},{course},{date},{rel},1,{seed}")
            truth.append({"subject_id": subject, "visit": visit,
                          "true_ml": float(lesion.sum() * np.prod(SPACING) / 1000)})
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return pd.DataFrame(truth)


def tiny_config(**outputs):
    return validate_pipeline({
        "name": "tiny", "series": {"modality": "MR"},
        "segmentation": {"method": "region_growing"},
        "courses": {"length_weeks": 12, "max_courses": 4, "visit_window_days": 21},
        "response": {"criteria": "vascular-anomaly"},
        "outputs": {"report": False, **outputs},
    }, source="tiny.yaml")


def voxel_rows(table: pd.DataFrame) -> pd.DataFrame:
    t = table[(table["method"] == "voxel") & (table["lesion_id"] != "total")]
    return t.set_index(["subject_id", "visit"]).sort_index()


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The table without the columns that legitimately differ between runs (time)."""
    return table.drop(columns=["computed_at"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "study"
    truth = make_tiny_trial(root)
    return root, truth


@pytest.fixture(scope="module")
def first_run(trial, tmp_path_factory):
    root, _ = trial
    out = tmp_path_factory.mktemp("out") / "run"
    return run_study(root, tiny_config(), out, jobs=1, progress=False)


def test_volumes_and_percent_change_match_truth(trial, first_run):
    root, truth = trial
    s = first_run
    assert s.ok and s.n_scans == 5 and s.n_computed == 5 and s.n_cached == 0
    v = voxel_rows(s.table)
    t = truth.set_index(["subject_id", "visit"]).sort_index()
    assert list(v.index) == list(t.index)
    # binary phantom, no partial volume: the segmentation recovers the voxels within 3 %
    np.testing.assert_allclose(v["volume_ml"], t["true_ml"], rtol=0.03)
    for subject in ("S01", "S02"):
        base = t.loc[(subject, "baseline"), "true_ml"]
        for visit in ("w12", "w24"):
            if (subject, visit) in t.index:
                true_pct = 100 * (t.loc[(subject, visit), "true_ml"] - base) / base
                assert abs(v.loc[(subject, visit), "percent_change"] - true_pct) < 3.0
    assert set(v.loc[("S01", "w12"), "flags"].split(";")) >= {"propagated"}
    assert v.loc[("S01", "w24"), "course"] == 2
    assert v.loc[("S01", "w24"), "response"] in ("PR", "SD")


def test_outputs_layout_and_provenance(first_run):
    out = first_run.out_dir
    for name in ("volumes.csv", "volumes.parquet", "summary.csv", "results.sqlite", "dataset_description.json"):
        assert (out / name).is_file(), name
    masks = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_mask.nii.gz"))
    assert masks == [f"sub-{s}/ses-{v}/anat/sub-{s}_ses-{v}_desc-lesion_mask.nii.gz"
                     for s in ("S01", "S02") for v in sorted(TRIAL[s])]
    from volumetry.io.reader import read_image

    m = read_image(out / masks[0])
    v = voxel_rows(first_run.table).loc[("S01", "baseline"), "volume_ml"]
    assert np.isclose(np.count_nonzero(m.array) * m.voxel_volume_mm3 / 1000, v)
    with ResultStore(out / "results.sqlite") as st:
        for table in ("scans", "masks", "measurements"):
            rows = [dict(r) for r in st.conn.execute(f"SELECT * FROM {table}")]
            assert len(rows) == 5
            for r in rows:
                assert len(r["input_hash"]) == 64 and len(r["pipeline_hash"]) == 64
                assert r["package_version"] and r["created_at"]
    csv = pd.read_csv(out / "volumes.csv")
    assert (csv["input_hash"].str.len() == 64).all()


def test_rerun_recomputes_nothing(trial, first_run):
    root, _ = trial
    again = run_study(root, tiny_config(), first_run.out_dir, jobs=1, progress=False)
    assert again.n_computed == 0 and again.n_cached == 5 and again.assessed == []
    pd.testing.assert_frame_equal(comparable(again.table), comparable(first_run.table))


def test_changed_input_recomputes_only_that_scan_and_subject(trial, tmp_path):
    root, _ = trial
    study = tmp_path / "study"
    shutil.copytree(root, study)
    out = tmp_path / "out"
    first = run_study(study, tiny_config(), out, jobs=1, progress=False)
    from volumetry.io.nifti import write_nifti

    img, _ = make_image(TRIAL["S02"]["w12"][2], TRIAL["S02"]["w12"][3], seed=999)  # new noise
    write_nifti(img, study / "S02" / "w12.nii.gz")
    second = run_study(study, tiny_config(), out, jobs=1, progress=False)
    assert second.computed == [("S02", "w12", "1")]
    assert second.assessed == ["S02"] and second.n_cached == 4
    before, after = voxel_rows(first.table), voxel_rows(second.table)
    pd.testing.assert_frame_equal(before.loc[["S01"]].drop(columns="computed_at"),
                                  after.loc[["S01"]].drop(columns="computed_at"))
    assert after.loc[("S02", "w12"), "input_hash"] != before.loc[("S02", "w12"), "input_hash"]
    # changing the baseline recomputes the follow-ups propagated from it, too
    img, _ = make_image(TRIAL["S02"]["baseline"][2], (0, 0, 0), seed=1234)
    write_nifti(img, study / "S02" / "baseline.nii.gz")
    third = run_study(study, tiny_config(), out, jobs=1, progress=False)
    assert sorted(third.computed) == [("S02", "baseline", "1"), ("S02", "w12", "1")]


def test_failures_are_isolated_and_recorded(trial, tmp_path):
    root, _ = trial
    study = tmp_path / "study"
    shutil.copytree(root, study)
    (study / "S01" / "w24.nii.gz").write_bytes(b"\x1f\x8b corrupt")          # corrupt file
    (study / "notdicom").mkdir()
    (study / "notdicom" / "readme.txt").write_text("not an image")
    text = (study / "manifest.csv").read_text().replace("S02/w12.nii.gz", "S02/missing.nii.gz")
    text += "S03,baseline,0,2024-03-01,notdicom,1,33,30,24,lps\n"
    (study / "manifest.csv").write_text(text)
    out = tmp_path / "out"
    before = set(tmp_path.rglob("*"))
    s = run_study(study, tiny_config(), out, jobs=1, progress=False)
    assert all(p == out or out in p.parents for p in set(tmp_path.rglob("*")) - before)
    assert s.n_failed == 3 and not s.ok
    failed = {(f.subject_id, f.visit): f for f in s.failures}
    assert set(failed) == {("S01", "w24"), ("S02", "w12"), ("S03", "baseline")}
    assert failed[("S01", "w24")].stage == "load" and "w24.nii.gz" in failed[("S01", "w24")].message
    assert "manifest.csv line" in failed[("S02", "w12")].message
    assert "column 'image'" in failed[("S02", "w12")].message and "missing.nii.gz does not exist" in failed[("S02", "w12")].message
    assert failed[("S03", "baseline")].stage == "load" and "notdicom" in failed[("S03", "baseline")].message
    v = voxel_rows(s.table)
    for key in failed:
        assert v.loc[key, "status"] == "failed" and pd.isna(v.loc[key, "volume_ml"])
        assert v.loc[key, "reason"]
    assert (v.loc[[("S01", "baseline"), ("S01", "w12"), ("S02", "baseline")], "status"] == "ok").all()
    csv = pd.read_csv(out / "volumes.csv")
    assert (csv.loc[csv["status"] == "failed", "volume_ml"].isna()).all()
    with ResultStore(out / "results.sqlite") as st:
        assert st.count("failures") == 3
    # the failed scans are not written as masks; a re-run re-reports them without recomputing
    assert not (out / "sub-S01" / "ses-w24").exists()
    again = run_study(study, tiny_config(), out, jobs=1, progress=False)
    assert again.n_computed == 0 and again.n_failed == 3


def test_hostile_subject_id_stays_inside_output(trial, tmp_path):
    root, _ = trial
    study = tmp_path / "a" / "b" / "study"
    shutil.copytree(root, study)
    text = (study / "manifest.csv").read_text().replace("S02,", "../../x,")
    (study / "manifest.csv").write_text(text)
    out = tmp_path / "a" / "b" / "out"
    before = {p for p in tmp_path.rglob("*")}
    s = run_study(study, tiny_config(), out, jobs=1, progress=False)
    assert s.ok
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(out in p.parents or p == out for p in new)
    assert "../../x" in set(s.table["subject_id"])
    subs = sorted(p.name for p in out.glob("sub-*"))
    assert len(subs) == 2 and all(n[4:].isalnum() for n in subs)


def test_pool_equals_inline(trial, first_run, tmp_path):
    root, _ = trial
    s = run_study(root, tiny_config(), tmp_path / "out", jobs=2, progress=False)
    assert s.ok and s.n_computed == 5
    pd.testing.assert_frame_equal(comparable(s.table), comparable(first_run.table))


def test_pseudonymize_replaces_identifiers_everywhere(trial, tmp_path, monkeypatch):
    from volumetry.pseudonym import KEY_ENV, Pseudonymizer

    monkeypatch.setenv(KEY_ENV, "test-key")
    root, _ = trial
    out = tmp_path / "out"
    study = tmp_path / "study"
    shutil.copytree(root, study)
    (study / "S02" / "w12.nii.gz").write_bytes(b"corrupt")  # a failure message names the file
    root = study
    s = run_study(root, tiny_config(), out, jobs=1, progress=False, pseudonymize=True,
                  argv=["run", str(root), "--pseudonymize"])
    assert [f.subject_id for f in s.failures] == [Pseudonymizer(b"test-key")("S02")]
    assert "<study>/" in s.failures[0].message
    p = Pseudonymizer(b"test-key")
    assert set(s.table["subject_id"]) == {p("S01"), p("S02")}
    for f in out.rglob("*"):
        assert "S01" not in f.name and "S02" not in f.name
        if f.is_file():
            data = f.read_bytes()
            assert b"S01" not in data and b"S02" not in data, f
            assert str(root).encode() not in data, f  # no input path (it may hold names)
    assert (out / f"sub-{p('S01')}").is_dir()


def test_pseudonymized_report_has_overlays_without_paths(trial, tmp_path, monkeypatch):
    """A pseudonymised run stores no image path; the runner hands the paths to the report
    in-process, so every measured scan still gets its overlay, and no path or real id
    reaches the page."""
    import re

    from volumetry.pseudonym import KEY_ENV

    monkeypatch.setenv(KEY_ENV, "test-key")
    root, _ = trial
    out = tmp_path / "out"
    s = run_study(root, tiny_config(report=True), out, jobs=1, progress=False, pseudonymize=True)
    assert s.ok
    text = (out / "report" / "index.html").read_text(encoding="utf-8")
    n_scans = int((voxel_rows(s.table)["status"] == "ok").sum())
    assert n_scans > 0
    assert len(re.findall(r'<img src="img/ov-', text)) == n_scans
    assert "not available" not in text
    assert str(root) not in text and "S01" not in text and "S02" not in text


@pytest.mark.parametrize("policy", ["empty", "failed"])
def test_vanished_lesion_policy(tmp_path, policy):
    """A lesion gone at follow-up (complete response): the propagated seed lands on normal
    tissue. The trial's policy records a measured empty lesion (-100 %, CR) flagged
    lesion-not-found; 'failed' records a failure instead."""
    trial = {"S04": {"baseline": (0, "2024-01-15", (9, 7, 7), (0, 0, 0)),
                     "w12": (1, "2024-04-08", (0.01, 0.01, 0.01), (2, -1, 0))}}
    make_tiny_trial(tmp_path / "study", trial)
    cfg = tiny_config()
    cfg = validate_pipeline({**cfg.to_dict(), "segmentation": {**cfg.segmentation, "vanished_lesion": policy}})
    s = run_study(tmp_path / "study", cfg, tmp_path / "out", jobs=1, progress=False)
    row = voxel_rows(s.table).loc[("S04", "w12")]
    if policy == "empty":
        assert s.ok
        assert row["status"] == "empty" and row["percent_change"] == -100.0 and row["response"] == "CR"
        assert "lesion-not-found" in row["flags"].split(";")
    else:
        assert [(f.subject_id, f.visit, f.stage) for f in s.failures] == [("S04", "w12", "segment")]
        assert row["status"] == "failed" and "complete response?" in row["reason"]


def test_progress_bar_on_terminal_log_lines_otherwise(capsys, caplog):
    import logging

    from volumetry.pipeline.runner import _Progress

    bar = _Progress(3, True)
    for n in range(3):
        bar.update(f"S0{n} baseline lesion 1: 1.00 mL")
    bar.close()
    err = capsys.readouterr().err
    assert "volumetry run" in err and "3/3" in err
    with caplog.at_level(logging.INFO, logger="volumetry.pipeline.runner"):
        lines = _Progress(2, False)
        lines.update("S01 baseline lesion 1: 1.00 mL")
        lines.update("S01 w12 lesion 1: FAILED (load)")
        lines.close()
    assert [r.getMessage() for r in caplog.records] == ["[1/2] S01 baseline lesion 1: 1.00 mL",
                                                         "[2/2] S01 w12 lesion 1: FAILED (load)"]
    assert "3/3" not in capsys.readouterr().err


def crash_on_w12(task):
    """A task function that kills its worker process on every w12 scan (a stand-in for a
    segfault in a native library); runs the real task otherwise."""
    import os

    from volumetry.pipeline.tasks import run_task

    if task.image.path.endswith("w12.nii.gz"):
        os._exit(139)
    return run_task(task)


def test_worker_crash_fails_only_its_scan(trial, tmp_path):
    from volumetry.pipeline.runner import _execute_pool, plan
    from volumetry.manifest import read_study

    root, _ = trial
    study = read_study(root)
    tasks = [p.task for p in plan(study, tiny_config(), str)]
    results = {r.task_key: r for r in _execute_pool(tasks, 2, func=crash_on_w12)}
    assert len(results) == len(tasks) == 5
    for t in tasks:
        r = results[t.task_key]
        if t.image.path.endswith("w12.nii.gz"):
            assert not r.ok and r.error_type == "WorkerCrashed" and "worker process died" in r.message
            assert not r.deterministic
        else:
            assert r.ok and r.measurement["volume_ml"] > 0, r.message


def hang_unless_s01_baseline(task):
    """A task function that works on S01's baseline and hangs on every other scan."""
    import time

    from volumetry.pipeline.tasks import run_task

    if task.image.path.endswith("S01/baseline.nii.gz"):
        return run_task(task)
    time.sleep(120)
    return run_task(task)


def test_stopping_a_pool_run_ends_its_workers(trial):
    """Ctrl-C (or any error in the caller) does not wait for the queued scans: the
    pool's workers are ended at once."""
    import multiprocessing
    import time

    from volumetry.manifest import read_study
    from volumetry.pipeline.runner import _execute_pool, plan

    root, _ = trial
    tasks = [p.task for p in plan(read_study(root), tiny_config(), str)]
    gen = _execute_pool(tasks, 2, func=hang_unless_s01_baseline)
    assert next(gen).ok
    children = multiprocessing.active_children()
    t0 = time.perf_counter()
    gen.close()  # what an exception in the consumer (or Ctrl-C) does
    assert time.perf_counter() - t0 < 30  # the hanging scans were not waited for
    assert not [c for c in children if c.is_alive()]


def test_two_lesions_per_scan_read_each_image_once(trial, first_run, tmp_path, monkeypatch):
    """The lesions of one scan run one after the other, so that a worker (keeping the last 2
    images: the follow-up and its baseline) reads every image once; the results do not depend
    on the order of the scans."""
    import volumetry.pipeline.tasks as tasks

    root, _ = trial
    study = tmp_path / "study"
    shutil.copytree(root, study)
    lines = (study / "manifest.csv").read_text().splitlines()
    # a second lesion row on every scan (the same seed: its result must equal lesion 1's)
    assert lines[0].split(",")[5] == "lesion_id"
    lines += [",".join(c[:5] + ["2"] + c[6:]) for c in (line.split(",") for line in lines[1:])]
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    reads = []
    read = tasks._read
    monkeypatch.setattr(tasks, "_IMAGE_CACHE", tasks.collections.OrderedDict())
    monkeypatch.setattr(tasks, "_read", lambda ref: reads.append(ref.path) or read(ref))
    s = run_study(study, tiny_config(masks=False, seg=False), tmp_path / "out", jobs=1, progress=False)
    assert s.ok and s.n_computed == 10
    assert sorted(reads) == sorted({str(study / line.split(",")[4]) for line in lines[1:]})
    t = s.table[s.table["lesion_id"] != "total"]
    one = voxel_rows(t[t["lesion_id"] == "1"])["volume_ml"]
    two = voxel_rows(t[t["lesion_id"] == "2"])["volume_ml"]
    pd.testing.assert_series_equal(one, two)
    pd.testing.assert_series_equal(one, voxel_rows(first_run.table)["volume_ml"])


def test_a_baseline_is_segmented_once_per_worker(trial, tmp_path, monkeypatch):
    """A propagated follow-up needs its baseline's segmentation (the lesion's centre is what is
    carried): the worker reuses the one its baseline task made instead of segmenting again,
    and the numbers are those of a run that segments the baseline for every follow-up."""
    import volumetry.pipeline.tasks as tasks
    import volumetry.segment as segment_module

    root, _ = trial
    segment = segment_module.segment
    tables, calls = [], []
    monkeypatch.setattr(segment_module, "segment", lambda image, prompt, **kw: calls.append(prompt.lesion_id)
                        or segment(image, prompt, **kw))
    for size in (0, tasks.SEGMENTATION_CACHE_SIZE):  # 0: the behaviour before the cache
        monkeypatch.setattr(tasks, "SEGMENTATION_CACHE_SIZE", size)
        monkeypatch.setattr(tasks, "_IMAGE_CACHE", tasks.collections.OrderedDict())
        monkeypatch.setattr(tasks, "_SEGMENTATION_CACHE", tasks.collections.OrderedDict())
        calls.clear()
        s = run_study(root, tiny_config(), tmp_path / f"out{size}", jobs=1, progress=False)
        assert s.ok and s.n_computed == 5
        # 5 scans, 3 of them follow-ups: each segments its baseline again, or reuses it
        assert len(calls) == (8 if size == 0 else 5)
        tables.append(comparable(s.table))
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_rerun_rewrites_identical_tables(trial, tmp_path):
    """A re-run that recomputes nothing writes the same volumes.csv and summary.csv, digit for
    digit: the stored assessment keeps every float exactly (JSON's 10-decimal default would
    round the volumes of the cached subjects, ~1e-11 mL, and the files would differ)."""
    root, _ = trial
    out = tmp_path / "out"
    first = run_study(root, tiny_config(), out, jobs=1, progress=False)
    csv1 = (out / "volumes.csv").read_bytes()
    summary1 = (out / "summary.csv").read_bytes()
    again = run_study(root, tiny_config(), out, jobs=1, progress=False)
    assert again.n_computed == 0 and not again.assessed
    assert (out / "volumes.csv").read_bytes() == csv1
    assert (out / "summary.csv").read_bytes() == summary1
    pd.testing.assert_frame_equal(again.table, first.table, check_exact=True)


def test_response_confirmation_is_a_pipeline_option(tmp_path):
    root = tmp_path / "study"
    make_tiny_trial(root)
    cfg = tiny_config()
    assert cfg.response["confirm"] is False  # the default: as before
    plain = run_study(root, cfg, tmp_path / "plain", jobs=1, progress=False)
    confirmed_cfg = validate_pipeline({**cfg.to_dict(), "response": {"criteria": "vascular-anomaly", "confirm": True}},
                                      source="confirm.yaml")
    confirmed = run_study(root, confirmed_cfg, tmp_path / "confirm", jobs=1, progress=False)
    a, b = voxel_rows(plain.table), voxel_rows(confirmed.table)
    # S01 is PR at w12 (-39 %) and w24 (-66 %): the w24 scan confirms w12; w24 awaits a later scan
    assert a.loc[("S01", "w12"), "response"] == b.loc[("S01", "w12"), "response"] == "PR"
    assert a["response_confirmed"].isna().all()  # no confirmation rule: empty
    assert b.loc[("S01", "w12"), "response_confirmed"] == True  # noqa: E712 (pandas boolean)
    assert pd.isna(b.loc[("S01", "w24"), "response_confirmed"])
    # volumes and percent changes do not depend on it
    pd.testing.assert_series_equal(a["percent_change"], b["percent_change"])
    with pytest.raises(ConfigError, match="response.confirm"):
        validate_pipeline({**cfg.to_dict(), "response": {"criteria": "vascular-anomaly", "confirm": "yes"}},
                          source="bad.yaml")
