"""A pseudonymised run's DICOM SEGs reference the files each computed scan was loaded from, kept in
memory by the runner (``source_files`` of :func:`volumetry.pipeline.outputs.write_outputs`), instead
of listing the source folder again: the store holds no file paths when pseudonymising (they often
hold names), so the write stage used to re-index every source folder.

The SEGs, NIfTI masks and tables are byte for byte those of a run that does not pass the files (the
former path, kept by dropping ``source_files`` below), with the pseudonym key, the SEG's UID
generator and clock, and the database's clock fixed; the paths reach no output and not the database.
"""
from __future__ import annotations

import pytest
from test_pipeline import tiny_config
from test_pipeline_dicom_tree import _write_tree
from test_seg_speed_equality import frozen  # noqa: F401 -- the fixture

from output_texts import output_texts
from volumetry import store as store_module
from volumetry.io import dicom, seg
from volumetry.pipeline import outputs, run_study
from volumetry.pseudonym import KEY_ENV

KEY = "seg-files-test-key"
OUTPUTS = ("*.nii.gz", "*.dcm", "*.csv", "*.parquet", "*.json")
WRITING = [0]  # 1 while write_outputs runs


@pytest.fixture
def tree(tmp_path):
    """A small DICOM study (two visits, two series each) in a folder whose path holds a name."""
    root = tmp_path / "DOE^JANE_private" / "tree"
    _write_tree(root, patient_id="SUBJ7")
    return root


@pytest.fixture
def counted(monkeypatch):
    """Calls, while the outputs are written, of the functions that list a source folder again
    (``series_files`` for the SEG's sources, ``stacks_for_path`` for a series UID the runner
    does not know; the loader's own calls are not counted)."""
    calls = {"series_files": 0, "stacks_for_path": 0}
    for module, name in ((seg, "series_files"), (dicom, "stacks_for_path")):
        real = getattr(module, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            calls[_name] += WRITING[0]
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)
    return calls


def _run(tree, out, monkeypatch, frozen, *, pass_files: bool):
    """A pseudonymised run with deterministic UIDs and clocks; ``pass_files=False``: the former path
    (``write_outputs`` gets no ``source_files``)."""
    real_write = outputs.write_outputs

    def write_outputs(*args, source_files=None, **kwargs):
        WRITING[0] = 1
        try:
            return real_write(*args, source_files=source_files if pass_files else None, **kwargs)
        finally:
            WRITING[0] = 0

    monkeypatch.setattr(outputs, "write_outputs", write_outputs)
    monkeypatch.setattr(store_module, "utc_now", lambda: "2026-01-02T03:04:05+00:00")
    monkeypatch.setenv(KEY_ENV, KEY)
    frozen()
    summary = run_study(tree, tiny_config(), out, jobs=1, progress=False, pseudonymize=True)
    assert summary.ok, [f.line() for f in summary.failures]
    return summary


def _files(out):
    return {str(f.relative_to(out)): f.read_bytes() for pattern in OUTPUTS for f in out.rglob(pattern)}


def test_seg_from_loaded_files_gives_the_same_bytes_and_no_path(tree, tmp_path, monkeypatch, frozen, counted):
    with_files = _run(tree, tmp_path / "with", monkeypatch, frozen, pass_files=True)
    listed = dict(counted)
    without = _run(tree, tmp_path / "without", monkeypatch, frozen, pass_files=False)
    assert with_files.n_computed == without.n_computed == 2

    new, old = _files(tmp_path / "with"), _files(tmp_path / "without")
    assert sorted(new) == sorted(old)
    assert sum(name.endswith(".dcm") for name in new) == 2
    assert sum(name.endswith(".nii.gz") for name in new) == 2
    assert sum(name.endswith(".csv") for name in new) >= 2
    for name in new:
        assert new[name] == old[name], name
    # the former path listed the folders again; the run with the loaded files did not
    assert listed == {"series_files": 0, "stacks_for_path": 0}
    assert counted["series_files"] == 2

    # no source path (folder, file, or the name in it) in any output, the database included
    files = sorted(str(f) for f in tree.rglob("*.dcm"))
    assert len(files) >= 32
    needles = (str(tree), "DOE^JANE", *files, *(f.rsplit("/", 1)[1] for f in files))
    for out in (tmp_path / "with", tmp_path / "without"):
        texts = list(output_texts(out))
        assert any(label.endswith("results.sqlite (dump)") for label, _ in texts)
        leaked = [(label, x) for label, text in texts for x in needles if x in text]
        assert leaked == []


def test_cached_scans_still_find_their_series(tree, tmp_path, monkeypatch, frozen, counted):
    """A re-run takes every scan from the cache: no files in memory, the SEGs are found again from
    the folder (the former path) and rewritten with the same bytes."""
    out = tmp_path / "out"
    _run(tree, out, monkeypatch, frozen, pass_files=True)
    first = _files(out)
    assert counted["series_files"] == 0
    segs = sorted(out.rglob("*.dcm"))
    for f in segs:
        f.unlink()
    again = _run(tree, out, monkeypatch, frozen, pass_files=True)
    assert again.n_computed == 0 and again.n_cached == 2
    assert counted["series_files"] == 2
    assert _files(out) == first
