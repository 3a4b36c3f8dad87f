"""The results database remembers input files' digests by a key of their path. In a
pseudonymised folder that key is keyed (HMAC), so the table cannot confirm a guessed path
(paths hold names and dates); an identified folder keeps the path's plain SHA-256."""
from __future__ import annotations

import hashlib
import sqlite3
import time

import pytest

from test_pipeline import make_tiny_trial, tiny_config
from volumetry.pipeline import run_study
from volumetry import store as store_module
from volumetry.pipeline import tasks
from volumetry.pseudonym import KEY_ENV, Pseudonymizer

KEY = "file-hash-key"


def _paths(root):
    return [str(p.resolve()) for p in root.rglob("*") if p.is_file()]


def _keys(out_dir):
    with sqlite3.connect(out_dir / "results.sqlite") as con:
        return {r[0] for r in con.execute("SELECT path_key FROM file_hashes")}


@pytest.mark.parametrize("pseudonymize", [False, True])
def test_file_hash_keys_and_no_rehash_on_rerun(tmp_path, monkeypatch, pseudonymize):
    root = tmp_path / "study"
    make_tiny_trial(root)
    monkeypatch.setattr(store_module, "RACY_NS", 20_000_000)  # 20 ms instead of 2 s: the test waits
    time.sleep(0.03)  # the files are older than RACY_NS: their digests are remembered
    monkeypatch.setenv(KEY_ENV, KEY)
    out = tmp_path / "out"
    run_study(root, tiny_config(), out, jobs=1, progress=False, pseudonymize=pseudonymize)
    keys = _keys(out)
    plain = {hashlib.sha256(p.encode()).hexdigest() for p in _paths(root)}
    keyed = {Pseudonymizer(KEY.encode()).path_key(p) for p in _paths(root)}
    assert keys  # the image files were remembered
    if pseudonymize:
        assert keys <= keyed and not keys & plain  # no plain digest of a real path
    else:
        assert keys <= plain
    # a re-run reads no input file again: the keys find the remembered digests
    reads = []
    real = tasks.file_sha256
    monkeypatch.setattr(tasks, "file_sha256", lambda p: reads.append(p) or real(p))
    again = run_study(root, tiny_config(), out, jobs=1, progress=False, pseudonymize=pseudonymize)
    assert again.n_cached == again.n_scans and reads == []
