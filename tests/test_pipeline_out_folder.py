"""The library's run_study protects the output folder as the command line does: a folder of
other files, or one holding a link to outside it, is refused before anything is written."""
from __future__ import annotations

from pathlib import Path

import pytest

from volumetry.config import load_pipeline
from volumetry.errors import InputError
from volumetry.pipeline import run_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return load_pipeline(ROOT / "pipelines" / "vascular-anomalies-rapamycin.yaml")


def test_run_study_refuses_a_folder_of_other_files_and_leaves_it_untouched(cfg, tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "volumes.csv").write_text("my own table\n")
    with pytest.raises(InputError, match="already holds files volumetry did not write .*volumes.csv"):
        run_study(ROOT / "sample_data", cfg, out, jobs=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["volumes.csv"]
    assert (out / "volumes.csv").read_text() == "my own table\n"


def test_run_study_refuses_a_link_to_outside_the_output_folder(cfg, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"")  # looks like an earlier run's folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "dataset_description.json").symlink_to(elsewhere / "dataset_description.json")
    with pytest.raises(InputError, match="symbolic link dataset_description.json .* outside it"):
        run_study(ROOT / "sample_data", cfg, out, jobs=1, progress=False)
    assert list(elsewhere.iterdir()) == []
