"""FileHashCache keys files by their resolved path: the per-folder shortcut must give
exactly ``str(Path(path).resolve())`` (the key of the rows earlier runs stored)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from volumetry.store import FileHashCache, ResultStore


def _reference_key(path) -> str:
    """The key as the cache computed it before the shortcut (obviously correct, slow)."""
    real = str(Path(path).resolve())
    return hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()


@pytest.fixture
def tree(tmp_path):
    real = tmp_path / "real" / "series"
    real.mkdir(parents=True)
    for n in range(3):
        (real / f"IM{n}").write_bytes(bytes([n]) * (n + 5))
    other = tmp_path / "other"
    other.mkdir()
    (other / "target").write_bytes(b"target bytes")
    os.symlink(real, tmp_path / "linked_folder")  # a folder reached through a link
    os.symlink(other / "target", real / "link_file")  # a file that is a link
    return tmp_path


def test_resolved_key_equals_path_resolve(tree, monkeypatch):
    monkeypatch.chdir(tree)
    paths = [tree / "real" / "series" / "IM0", tree / "linked_folder" / "IM1",
             tree / "real" / "series" / ".." / "series" / "IM2", tree / "real" / "series" / "link_file",
             Path("linked_folder") / "IM2", Path("real/series/IM0")]
    with ResultStore(tree / "db.sqlite") as store:
        cache = FileHashCache(store)
        for p in paths * 2:  # the second pass uses the remembered folders
            real, st = cache._real_path(p)
            assert real == str(Path(p).resolve()), p
            assert (st.st_size, st.st_ino) == (os.stat(p).st_size, os.stat(p).st_ino)
            digest = cache(p)
            assert digest == hashlib.sha256(Path(p).read_bytes()).hexdigest()
            assert _reference_key(p) in cache.known
        # the link and its target are one file: one key, one digest
        assert cache(tree / "real" / "series" / "link_file") == cache(tree / "other" / "target")


def test_missing_file_raises_like_before(tree):
    with ResultStore(tree / "db.sqlite") as store:
        cache = FileHashCache(store)
        with pytest.raises(FileNotFoundError):
            cache(tree / "real" / "series" / "absent")
