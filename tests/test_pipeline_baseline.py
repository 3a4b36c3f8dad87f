"""A follow-up whose baseline cannot be used (unreadable, missing, seed outside it) fails at
stage ``propagate`` with a message that says so and gives the baseline's reason; the
baseline's own row carries the baseline's error."""
from __future__ import annotations

import re

import pytest

from test_pipeline import TRIAL, make_tiny_trial, tiny_config
from volumetry.pipeline import run_study

SUBJECTS = {**TRIAL, "S03": TRIAL["S02"]}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline") / "study"
    make_tiny_trial(root, SUBJECTS)
    (root / "S01" / "baseline.nii.gz").write_bytes(b"\x1f\x8b corrupt")      # unreadable baseline
    text = (root / "manifest.csv").read_text()
    text = text.replace("S02/baseline.nii.gz,1,33,30,24", "S02/baseline.nii.gz,1,330,30,24")  # seed outside
    text = text.replace("S03/baseline.nii.gz", "S03/gone.nii.gz")              # missing baseline file
    (root / "manifest.csv").write_text(text)
    out = tmp_path_factory.mktemp("baseline-out") / "out"
    return root, run_study(root, tiny_config(masks=False, seg=False, summary=False), out, jobs=1, progress=False)


def test_follow_ups_name_their_baseline(broken):
    _, s = broken
    failed = {(f.subject_id, f.visit): f for f in s.failures}
    assert set(failed) == {(sub, v) for sub, visits in SUBJECTS.items() for v in visits}
    # the baselines fail with their own errors ...
    assert failed[("S01", "baseline")].stage == "load"
    assert "baseline.nii.gz: not a readable NIfTI" in failed[("S01", "baseline")].message
    assert failed[("S02", "baseline")].stage == "segment" and "outside" in failed[("S02", "baseline")].message
    assert failed[("S03", "baseline")].stage == "input"
    assert "gone.nii.gz does not exist" in failed[("S03", "baseline")].message
    # ... and their follow-ups say that their baseline could not be used, and why
    for subject, why in (("S01", "baseline.nii.gz: not a readable NIfTI"), ("S02", "outside"),
                         ("S03", "gone.nii.gz does not exist")):
        for visit in [v for v in SUBJECTS[subject] if v != "baseline"]:
            f = failed[(subject, visit)]
            assert f.stage == "propagate", f.line()
            assert re.match(r".*manifest\.csv line \d+: baseline 'baseline' \(.*manifest\.csv line \d+\) could not "
                            r"be used for propagation: ", f.message), f.message
            assert why in f.message.split("could not be used for propagation: ", 1)[1]


def test_a_rerun_reports_the_same_failures_without_recomputing(broken):
    root, s = broken
    again = run_study(root, tiny_config(masks=False, seg=False, summary=False), s.out_dir, jobs=1, progress=False)
    assert again.n_computed == 0
    assert sorted((f.subject_id, f.visit, f.stage, f.message) for f in again.failures) == sorted(
        (f.subject_id, f.visit, f.stage, f.message) for f in s.failures)


def test_missing_image_shared_by_two_lesions_names_each_row(tmp_path):
    (tmp_path / "manifest.csv").write_text("subject_id,visit,image,lesion_id,seed_x,seed_y,seed_z\n"
                                           "S1,b,gone.nii.gz,1,1,2,3\nS1,b,gone.nii.gz,2,4,5,6\n")
    s = run_study(tmp_path, tiny_config(masks=False, seg=False, summary=False), tmp_path / "out", jobs=1,
                  progress=False)
    lines = {f.lesion_id: f.message for f in s.failures if f.stage == "input"}
    assert "manifest.csv line 2, column 'image'" in lines["1"] and "manifest.csv line 3, column 'image'" in lines["2"]
