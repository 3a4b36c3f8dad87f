"""Results store: schema, provenance on every row, idempotent upserts, cache semantics,
transactions, WAL, refusal to mix identifiers and pseudonyms."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from volumetry import __version__
from volumetry.errors import InputError
from volumetry.image import Volume
from volumetry.pipeline.tasks import pack_mask, unpack_mask
from volumetry.store import ResultStore

SCAN = {"subject_id": "S1", "visit": "baseline", "lesion_id": "1", "course": 0, "scan_date": "2024-01-15",
        "image": "S1/base.nii.gz", "task_key": "k1", "status": "ok"}
PROV = {"input_hash": "h" * 64, "series_uid": "1.2.3", "pipeline_hash": "p" * 64}


@pytest.fixture()
def store(tmp_path):
    with ResultStore(tmp_path / "results.sqlite") as s:
        yield s


def _run(store, pseudo=False):
    return store.begin_run(study="study", pipeline_path="p.yaml", pipeline_hash="p" * 64, pseudonymized=pseudo)


def test_wal_and_tables(store):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "scans", "masks", "measurements", "failures", "assessments"} <= names


def test_upserts_are_idempotent_and_carry_provenance(store):
    run = _run(store)
    data, grid, n = pack_mask(Volume(np.ones((2, 3, 4), bool), (1, 1, 1), (0, 0, 0), np.eye(3)))
    for _ in range(3):
        store.record_scan(run, SCAN, PROV, measurement={"status": "ok", "reason": None, "volume_ml": 2.5,
                                                        "mesh_volume_ml": 2.4, "data": {"x": np.float32(1.5)}},
                          mask={"source": "segmented", "method": "region_growing", "n_voxels": n, "grid": grid,
                                "data": data})
    for table in ("scans", "measurements", "masks"):
        assert store.count(table) == 1
        row = dict(store.conn.execute(f"SELECT * FROM {table}").fetchone())
        assert row["input_hash"] == PROV["input_hash"] and row["series_uid"] == "1.2.3"
        assert row["pipeline_hash"] == PROV["pipeline_hash"] and row["package_version"] == __version__
        assert row["run_id"] == run and row["created_at"].endswith("+00:00")
    assert store.measurement("k1")["data"] == {"x": 1.5}
    assert store.cached("k1")["kind"] == "measurement"
    m = store.mask("k1")
    assert unpack_mask(m["data"], m["grid"]).array.sum() == 24


def test_failures_cache_only_when_deterministic(store):
    run = _run(store)
    scan = {**SCAN, "task_key": "bad", "status": "failed"}
    store.record_scan(run, scan, PROV, failure={"stage": "load", "error_type": "DicomReadError",
                                                "message": "not DICOM", "deterministic": True})
    assert store.cached("bad")["message"] == "not DICOM"
    store.record_scan(run, {**scan, "task_key": "flaky"}, PROV, failure={
        "stage": "worker", "error_type": "BrokenProcessPool", "message": "died", "deterministic": False})
    assert store.cached("flaky") is None
    assert store.count("scans") == 1 and store.scans()[0]["task_key"] == "flaky"
    # a later success replaces the failure of the same key
    store.record_scan(run, {**scan, "task_key": "flaky", "status": "ok"}, PROV,
                      measurement={"status": "ok", "volume_ml": 1.0, "data": {}})
    assert store.failure("flaky") is None and store.cached("flaky")["kind"] == "measurement"
    # an older failure of the same scan (other inputs) is gone once the scan has a new result
    assert store.failure("bad") is None and store.count("failures") == 0


def test_transaction_rolls_back_everything(store, monkeypatch):
    run = _run(store)
    with pytest.raises(TypeError):
        # the measurement's data cannot be serialised: the mask written before it must not stay
        store.record_scan(run, SCAN, PROV, mask={"source": "s", "grid": {}, "data": b"x"},
                          measurement={"status": "ok", "data": {"bad": object()}})
    assert store.count("masks") == 0 and store.count("scans") == 0


def test_runs_and_pseudonym_mixing_refused(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as s:
        run = _run(s)
        s.finish_run(run, status="ok", counts={"n_scans": 3, "n_computed": 2, "n_cached": 1, "n_failed": 0,
                                               "n_assessed": 1})
        assert s.runs()[0]["n_cached"] == 1 and s.runs()[0]["finished_at"]
    with ResultStore(tmp_path / "r.sqlite") as s:
        with pytest.raises(InputError, match="made without --pseudonymize; use another --out"):
            _run(s, pseudo=True)


def test_not_a_database(tmp_path):
    p = tmp_path / "results.sqlite"
    p.write_bytes(b"garbage" * 100)
    with pytest.raises(InputError, match="not a usable results database"):
        ResultStore(p)


def test_pack_mask_round_trip_exact():
    rng = np.random.default_rng(7)
    arr = np.zeros((9, 11, 13), bool)
    arr[2:7, 3:9, 1:12] = rng.random((5, 6, 11)) > 0.5
    d = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    vol = Volume(arr, (0.5, 0.7, 3.0), (1.0, -2.0, 30.0), d)
    data, grid, n = pack_mask(vol)
    back = unpack_mask(data, grid)
    assert n == arr.sum() and np.array_equal(back.array, arr) and back.same_grid(vol)
    empty = Volume(np.zeros((3, 3, 3), bool), (1, 1, 1), (0, 0, 0), np.eye(3))
    assert unpack_mask(*pack_mask(empty)[:2]).array.sum() == 0
    assert len(data) < arr.size // 8 + 64


def test_concurrent_reader_sees_only_committed(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as s:
        run = _run(s)
        reader = sqlite3.connect(tmp_path / "r.sqlite")
        with s.transaction():
            s.conn.execute("INSERT INTO runs (started_at, status, pipeline_hash, package_version, pseudonymized)"
                           " VALUES ('t', 'x', 'p', 'v', 0)")
            assert reader.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        assert reader.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
        reader.close()
        assert run == 1


def test_file_hash_cache_reads_only_changed_files(tmp_path, monkeypatch):
    import hashlib
    import os
    import time

    import volumetry.store as store_module
    from volumetry.store import FileHashCache

    monkeypatch.setattr(store_module, "RACY_NS", 20_000_000)  # 20 ms instead of 2 s: the test waits
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"alpha")
    b.write_bytes(b"beta")
    time.sleep(0.03)  # older than RACY_NS: their digests are stored
    with ResultStore(tmp_path / "r.sqlite") as s:
        c = FileHashCache(s)
        assert c(a) == hashlib.sha256(b"alpha").hexdigest() and c(b) and c.n_read == 2
        c.save()
        c2 = FileHashCache(s)
        assert c2(a) == hashlib.sha256(b"alpha").hexdigest() and c2.n_read == 0
        st = os.stat(a)
        time.sleep(0.05)  # ctime has the kernel clock's granularity (a few ms)
        a.write_bytes(b"alphA")                      # same size, mtime set back: ctime still moves
        os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert c2(a) == hashlib.sha256(b"alphA").hexdigest() and c2.n_read == 1
        c2.save()
        assert str(tmp_path).encode() not in (tmp_path / "r.sqlite").read_bytes()


def test_file_rewritten_in_the_same_clock_tick_is_hashed_again(tmp_path, monkeypatch):
    """A same-size rewrite within one tick of the file system's clock after the status was read
    leaves size, mtime, ctime and inode unchanged (simulated here by handing back the status
    read before the rewrite): the digest of a file changed just before it was hashed is not
    stored, so the next run reads the new bytes instead of keeping the old digest."""
    import hashlib
    import os

    import volumetry.store as store_module
    from volumetry.store import FileHashCache

    a = tmp_path / "a.bin"
    a.write_bytes(b"alpha")
    with ResultStore(tmp_path / "r.sqlite") as s:
        c = FileHashCache(s)
        assert c(a) == hashlib.sha256(b"alpha").hexdigest()
        c.save()
        before = os.lstat(a)
        a.write_bytes(b"alphA")  # same size
        real_lstat = os.lstat
        monkeypatch.setattr(store_module.os, "lstat",
                            lambda p, *args, **kw: before if os.fspath(p) == str(a) else real_lstat(p, *args, **kw))
        c2 = FileHashCache(s)
        assert c2(a) == hashlib.sha256(b"alphA").hexdigest() and c2.n_read == 1
        # within one run the digest is remembered (one file read once per run)
        assert c2(a) == hashlib.sha256(b"alphA").hexdigest() and c2.n_read == 1
