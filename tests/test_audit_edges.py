"""Audit of the command line's edges: hostile-but-plausible input gives exit 2 and ONE line
naming the file, the problem and the fix; nothing is written outside (or over unrelated
files in) the output folder.

Each test runs ``volumetry.cli.main`` in-process on a tiny NIfTI trial (tests/test_pipeline.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from test_pipeline import make_tiny_trial
from volumetry.cli import main

TINY_YAML = """\
name: tiny
segmentation: {method: region_growing}
courses: {length_weeks: 12, max_courses: 4, visit_window_days: 21}
outputs: {report: false}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audit") / "study"
    make_tiny_trial(root)
    return root


def _run(capsys, *argv: str) -> tuple[int, list[str]]:
    """Exit status and the stderr lines of ``volumetry -q ARGV``."""
    rc = main(["-q", *argv])
    return rc, capsys.readouterr().err.strip().splitlines()


# ------------------------------------------------------------------ pipeline file (YAML)
@pytest.mark.parametrize("text, problem", [
    ("name: x\nsegmentation:\n\tmethod: region_growing\n",
     r"line 3, column 1: not valid YAML: found character '\\t' that cannot start any token; indent with spaces"),
    ("name: x\nsegmentation: {method: threshold}\nname: y\n",
     r"line 3, column 1: not valid YAML: key 'name' is given twice \(first on line 1\); keep one"),
    ("name: x\nsegmentation:\n  method: threshold\n  method: levelset\n",
     r"line 4, column 3: not valid YAML: key 'method' is given twice \(first on line 3\); keep one"),
    ("!!python/object/apply:os.system ['true']\n",
     r"line 1, column 1: not valid YAML: could not determine a constructor for the tag "
     r"'tag:yaml.org,2002:python/object/apply:os.system'"),
    ("name: [x\n", r"not valid YAML: .*"),
])
def test_invalid_yaml_is_one_line_naming_the_file_and_line(tiny, tmp_path, capsys, text, problem):
    bad = tmp_path / "p.yaml"
    bad.write_text(text)
    rc, err = _run(capsys, "run", str(tiny), "--pipeline", str(bad), "--out", str(tmp_path / "out"))
    assert rc == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"volumetry run: error: {bad} ")
    import re

    assert re.search(problem, err[0]), err[0]
    assert "<byte string>" not in err[0]
    assert not (tmp_path / "out").exists()
