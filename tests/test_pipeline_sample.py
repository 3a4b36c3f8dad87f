"""The README's main command on the sample trial, from a fresh clone with a non-editable
install: ``pip install . && volumetry run`` → the trial's table, checked against
``sample_data/truth.csv``. The trial runs once per session (module-scoped fixture)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Largest accepted difference between measured and true percent change (percentage points).
MAX_PCT_ERROR_PP = 3.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    if not (ROOT / "sample_data" / "manifest.csv").is_file():
        pytest.skip("sample_data/ is absent; make it with 'volumetry phantom --trial sample_data'")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to make a fresh clone")
    tmp = tmp_path_factory.mktemp("fresh")
    clone, site = tmp / "clone", tmp / "site"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    if not (clone / "sample_data" / "manifest.csv").is_file():  # not committed yet: same files as a clone will have
        shutil.copytree(ROOT / "sample_data", clone / "sample_data")
    # `pip install .` (not editable), into its own folder so that the editable copy is not used
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), "."],
                   cwd=clone, check=True)
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import volumetry; "
            f"assert volumetry.__file__.startswith({str(site)!r}), volumetry.__file__; "
            "from volumetry.cli import main; sys.exit(main(['run']))")
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=clone, capture_output=True, text=True)
    return clone, proc


def test_readme_command_produces_the_table(sample_run):
    clone, proc = sample_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Results in {clone / 'volumetry-out'}" in proc.stdout
    out = clone / "volumetry-out"
    for name in ("volumes.csv", "volumes.parquet", "summary.csv", "results.sqlite"):
        assert (out / name).is_file()
    manifest = pd.read_csv(clone / "sample_data" / "manifest.csv", dtype=str)
    table = pd.read_csv(out / "volumes.csv", dtype={"subject_id": str, "lesion_id": str, "visit": str})
    lesions = table[(table["lesion_id"] != "total") & (table["method"] == "voxel")]
    assert len(lesions) == len(manifest)
    assert not lesions.duplicated(["subject_id", "lesion_id", "visit"]).any()
    # the sample trial is synthetic: no path of the clone leaks into the table
    assert str(clone) not in (out / "volumes.csv").read_text()


def test_percent_change_within_3_points_of_truth(sample_run):
    clone, proc = sample_run
    truth = pd.read_csv(clone / "sample_data" / "truth.csv", dtype={"subject_id": str, "lesion_id": str})
    table = pd.read_csv(clone / "volumetry-out" / "volumes.csv", dtype={"subject_id": str, "lesion_id": str})
    voxel = table[table["method"] == "voxel"].drop(columns=["course"])
    m = truth.merge(voxel, on=["subject_id", "lesion_id", "visit"], how="left", validate="one_to_one")
    follow = m[m["course"].fillna(0).astype(int) > 0]
    err = (follow["percent_change"] - follow["true_percent_change"]).abs()
    bad = follow[~(err <= MAX_PCT_ERROR_PP)]
    assert bad.empty, "percent change more than 3 points from the truth:\n" + bad[
        ["subject_id", "lesion_id", "visit", "true_percent_change", "percent_change", "volume_ml", "status",
         "flags"]].to_string()
