"""Audit of the command line's edges: the output folder. A run never overwrites files it did not
write, and never writes through a symbolic link to outside the output folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_audit_edges import TINY_YAML, _run, tiny  # noqa: F401 (tiny is a fixture)
from volumetry.cli import main


# ------------------------------------------------------------------ the output folder
def _snapshot(root: Path) -> dict:
    return {p.relative_to(root): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def test_out_on_a_folder_of_other_files_is_refused_and_nothing_is_touched(tiny, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "report").mkdir(parents=True)
    (out / "volumes.csv").write_text("my own table\n")
    (out / "report" / "index.html").write_text("<p>my page</p>")
    (out / "notes.txt").write_text("keep me")
    before = _snapshot(out)
    rc, err = _run(capsys, "run", str(tiny), "--out", str(out), "--jobs", "1", "--no-progress")
    assert rc == 2 and len(err) == 1, err
    assert err[0] == (f"volumetry run: error: output folder {out} already holds files volumetry did not write "
                      "(notes.txt, report, volumes.csv); give --out a new or empty folder, or the folder of an "
                      "earlier 'volumetry run', so that none of them is overwritten")
    assert _snapshot(out) == before


def test_out_may_hold_a_pseudonym_key_or_an_earlier_run(tiny, tmp_path, capsys, monkeypatch):
    from volumetry.pseudonym import KEY_ENV

    monkeypatch.delenv(KEY_ENV, raising=False)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(TINY_YAML)
    out = tmp_path / "out"
    out.mkdir()
    (out / "pseudonym.key").write_text("a-key-given-by-the-trial\n")
    (out / ".DS_Store").write_bytes(b"\0")
    argv = ("run", str(tiny), "--pipeline", str(pipeline), "--out", str(out), "--jobs", "1", "--no-progress",
            "--pseudonymize")
    assert _run(capsys, *argv)[0] == 0
    assert (out / "pseudonym.key").read_text() == "a-key-given-by-the-trial\n"
    (out / "notes.txt").write_text("mine, written after the first run")
    assert _run(capsys, *argv)[0] == 0  # a volumetry folder: re-run as usual
    assert (out / "notes.txt").read_text() == "mine, written after the first run"


@pytest.mark.parametrize("name, is_dir", [("volumes.csv", False), ("results.sqlite", False), ("report", True),
                                          ("summary.csv", False)])
def test_a_link_in_out_to_outside_is_refused_before_writing_through_it(tiny, tmp_path, capsys, name, is_dir):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(TINY_YAML.replace("report: false", "report: true"))
    out = tmp_path / "out"
    argv = ("run", str(tiny), "--pipeline", str(pipeline), "--out", str(out), "--jobs", "1", "--no-progress")
    assert _run(capsys, *argv)[0] == 0
    victim = tmp_path / "elsewhere"
    if is_dir:
        victim.mkdir()
        (victim / "ov-1.png").write_bytes(b"not yours")
    else:
        victim.write_bytes(b"not yours")
    target = out / name
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    target.symlink_to(victim)
    before = _snapshot(tmp_path / "elsewhere") if is_dir else victim.read_bytes()
    rc, err = _run(capsys, *argv)
    assert rc == 2 and len(err) == 1, err
    assert err[0] == (f"volumetry run: error: output folder {out} holds the symbolic link {name} to {victim}, "
                      "outside it: volumetry would write through it; remove the link (outputs stay inside the "
                      "output folder)")
    assert (_snapshot(victim) if is_dir else victim.read_bytes()) == before


def test_tables_and_report_refuse_to_write_through_a_link_to_outside(tiny, tmp_path):
    """The same for the library's writers (used by the runner and 'volumetry report')."""
    from volumetry.errors import InputError
    from volumetry.report.build import build_report
    from volumetry.tables import read_tables, write_tables

    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(TINY_YAML)
    out = tmp_path / "out"
    assert main(["-q", "run", str(tiny), "--pipeline", str(pipeline), "--out", str(out), "--jobs", "1",
                 "--no-progress"]) == 0
    table = read_tables(out / "volumes.parquet")
    victim = tmp_path / "victim.csv"
    victim.write_text("not yours\n")
    (out / "summary.csv").unlink()
    (out / "summary.csv").symlink_to(victim)
    with pytest.raises(InputError, match="refusing to write 'summary.csv': it resolves to .*victim.csv, outside"):
        write_tables(table, out)
    assert victim.read_text() == "not yours\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "report").symlink_to(elsewhere)
    with pytest.raises(InputError, match="refusing to write 'report': it resolves to .*elsewhere, outside"):
        build_report(out)
    assert not any(elsewhere.iterdir())
