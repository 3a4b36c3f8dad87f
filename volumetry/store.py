"""The results database: SQLite in the output folder (``results.sqlite``).

Tables (schema in :data:`SCHEMA`, documented in ``docs/pipeline.md``):

``runs``
    one row per ``volumetry run``: when, what study, which pipeline (path and
    SHA-256), package version, counts of computed / cached / failed scans.
``scans``
    one row per scan identity ``(subject_id, visit, lesion_id)``: where its
    image is, its input content hash, and ``task_key``, the key of the result
    that is current for it.
``masks``, ``measurements``, ``failures``
    results keyed by ``task_key``, the SHA-256 of everything the result
    depends on (input file contents, prompt, series UID, the pipeline's
    segmentation section, package version). A key already present is a cache
    hit: nothing is recomputed. ``failures`` keeps only each scan's current
    failure (a scan that later succeeds, or fails otherwise, loses its old row).
``assessments``
    the longitudinal assessment of one subject's lesion, keyed by the hash of
    its measurements and the pipeline's course/response sections.
``file_hashes``
    a cache of the SHA-256 of input files by the SHA-256 of their path (paths
    may hold names) and file status (size, mtime, ctime, inode), so that
    unchanged files are not read again.

Every result row carries its provenance: ``input_hash`` (content hash of the
input files), ``series_uid``, ``pipeline_hash`` (SHA-256 of the pipeline
file), ``package_version``, ``run_id`` and ``created_at`` (UTC ISO time).

Writes are transactional (one transaction per scan result), the journal is
WAL, and every write is an idempotent upsert: a run killed at any moment
leaves complete rows only, and re-running never duplicates a row. Only the
pipeline runner writes here (worker processes never touch the database).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ._version import __version__
from .errors import InputError

log = logging.getLogger(__name__)

#: Database file name inside the output folder.
DB_NAME = "results.sqlite"
#: Schema version stored in ``PRAGMA user_version``.
SCHEMA_VERSION = 1
#: A file whose status changed less than this before it was hashed (ns) is hashed again by the
#: next run: a rewrite within the same tick of the file system's clock (a few ms on ext4, 1-2 s
#: on some network and FAT file systems) leaves size, mtime, ctime and inode as they were.
RACY_NS = 2_000_000_000

_PROV = """
    input_hash TEXT NOT NULL,
    series_uid TEXT,
    pipeline_hash TEXT NOT NULL,
    package_version TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    created_at TEXT NOT NULL"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    study TEXT,
    pipeline_path TEXT,
    pipeline_hash TEXT NOT NULL,
    package_version TEXT NOT NULL,
    pseudonymized INTEGER NOT NULL,
    dates_moved INTEGER,
    n_scans INTEGER,
    n_computed INTEGER,
    n_cached INTEGER,
    n_failed INTEGER,
    n_assessed INTEGER,
    argv TEXT
);
CREATE TABLE IF NOT EXISTS scans (
    subject_id TEXT NOT NULL,
    visit TEXT NOT NULL,
    lesion_id TEXT NOT NULL,
    course INTEGER,
    scan_date TEXT,
    image TEXT,
    task_key TEXT NOT NULL,
    status TEXT NOT NULL,
    {_PROV},
    PRIMARY KEY (subject_id, visit, lesion_id)
);
CREATE TABLE IF NOT EXISTS masks (
    task_key TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    visit TEXT NOT NULL,
    lesion_id TEXT NOT NULL,
    source TEXT NOT NULL,
    method TEXT,
    n_voxels INTEGER,
    grid TEXT NOT NULL,
    data BLOB NOT NULL,
    path TEXT,
    file_sha256 TEXT,
    {_PROV}
);
CREATE TABLE IF NOT EXISTS measurements (
    task_key TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    visit TEXT NOT NULL,
    lesion_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    volume_ml REAL,
    mesh_volume_ml REAL,
    data TEXT NOT NULL,
    {_PROV}
);
CREATE TABLE IF NOT EXISTS failures (
    task_key TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    visit TEXT NOT NULL,
    lesion_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    deterministic INTEGER NOT NULL,
    {_PROV}
);
CREATE TABLE IF NOT EXISTS file_hashes (
    path_key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assessments (
    subject_id TEXT NOT NULL,
    lesion_id TEXT NOT NULL,
    assess_key TEXT NOT NULL,
    data TEXT NOT NULL,
    pipeline_hash TEXT NOT NULL,
    package_version TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (subject_id, lesion_id)
);
"""


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ResultStore:
    """The SQLite results database of one output folder.

    Parameters
    ----------
    path : str or pathlib.Path
        The database file (created with its schema when absent).
    timeout_s : float
        How long to wait for a lock held by another connection, in s.

    Raises
    ------
    InputError
        The file is not a volumetry results database or is corrupt.
    """

    def __init__(self, path: str | Path, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            new = not self.path.exists() or self.path.stat().st_size == 0
        except OSError:
            new = False
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            if new:
                # a database made now holds nothing yet: it is made (WAL journal, tables) without
                # waiting for the disk after each step (fsyncs: 10-25 ms a run); every row is then
                # written with synchronous=NORMAL, as before. A process killed at any moment loses
                # nothing either way (the operating system still writes what it was handed).
                self.conn.execute("PRAGMA synchronous=OFF")
            self.conn.execute("PRAGMA journal_mode=WAL")
            if not new:
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise InputError(f"{self.path}: results database schema {version}, this volumetry reads "
                                 f"{SCHEMA_VERSION}; use another --out folder")
            with self.transaction():
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        self.conn.execute(stmt)
                columns = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
                if "dates_moved" not in columns:  # a folder made before 0.3.0: its runs showed real dates
                    self.conn.execute("ALTER TABLE runs ADD COLUMN dates_moved INTEGER")
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if new:
                self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable results database ({exc}); "
                             "move it away or choose another --out folder") from None

    # ------------------------------------------------------------ plumbing
    def transaction(self):
        """Context manager: one ``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on error)."""
        return _Transaction(self.conn)

    def close(self) -> None:
        """Close the connection (checkpoints the WAL)."""
        self.conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ runs
    def begin_run(self, *, study: str, pipeline_path: str | None, pipeline_hash: str,
                  pseudonymized: bool, argv: list[str] | None = None, dates_moved: bool = False) -> int:
        """Insert a ``runs`` row with status ``running``; return its ``run_id``.

        ``dates_moved``: the run shows moved dates (``--pseudonymize`` without ``--keep-dates``).

        Raises
        ------
        InputError
            The folder was made with the other pseudonymisation setting, or a pseudonymised
            folder with the other dates setting (mixing real identifiers and pseudonyms, or
            real and moved dates, in one database is refused). A pseudonymised folder made
            before dates were moved (0.2.0) counts as made with ``--keep-dates``.
        """
        prev = self.conn.execute(
            "SELECT pseudonymized, dates_moved FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
        if prev is not None and bool(prev[0]) != bool(pseudonymized):
            made = "with" if prev[0] else "without"
            raise InputError(
                f"{self.path.parent}: this output folder was made {made} --pseudonymize; "
                "use another --out folder (identifiers and pseudonyms are never mixed)")
        if prev is not None and pseudonymized and bool(prev[1]) != bool(dates_moved):
            made, now = (("with moved dates", "--keep-dates") if prev[1] else
                         ("with real dates (--keep-dates)", "moved dates"))
            raise InputError(
                f"{self.path.parent}: this pseudonymised output folder was made {made}; a run with {now} "
                f"would mix real and moved dates in it: use another --out folder, or "
                f"{'drop' if prev[1] else 'add'} --keep-dates")
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO runs (started_at, status, study, pipeline_path, pipeline_hash, package_version,"
                " pseudonymized, dates_moved, argv) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (utc_now(), study, pipeline_path, pipeline_hash, __version__, int(bool(pseudonymized)),
                 int(bool(dates_moved)), json.dumps(argv) if argv is not None else None))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, *, status: str, counts: dict[str, int]) -> None:
        """Set the end time, status and counts (``n_scans``, ``n_computed``,
        ``n_cached``, ``n_failed``, ``n_assessed``) of a run."""
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET finished_at=?, status=?, n_scans=?, n_computed=?, n_cached=?, n_failed=?,"
                " n_assessed=? WHERE run_id=?",
                (utc_now(), status, counts.get("n_scans"), counts.get("n_computed"), counts.get("n_cached"),
                 counts.get("n_failed"), counts.get("n_assessed"), run_id))

    def runs(self) -> list[dict]:
        """Every run, oldest first."""
        return [dict(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY run_id")]

    # ------------------------------------------------------------ cache
    def cached(self, task_key: str) -> dict | None:
        """The stored result of ``task_key``, or None when it must be computed.

        Returns ``{"kind": "measurement", ...row}`` for a stored measurement,
        ``{"kind": "failure", ...row}`` for a *deterministic* failure (bad
        input, which the same inputs would reproduce). Failures that may be
        transient (an internal error, a lost worker) are not cache hits.
        """
        row = self.conn.execute("SELECT * FROM measurements WHERE task_key=?", (task_key,)).fetchone()
        if row is not None:
            return {"kind": "measurement", **dict(row)}
        row = self.conn.execute("SELECT * FROM failures WHERE task_key=? AND deterministic=1",
                                (task_key,)).fetchone()
        if row is not None:
            return {"kind": "failure", **dict(row)}
        return None

    # ------------------------------------------------------------ writes
    def record_scan(self, run_id: int, scan: dict, prov: dict, *, measurement: dict | None = None,
                    mask: dict | None = None, failure: dict | None = None) -> None:
        """Record the result of one scan in one transaction (idempotent upserts).

        Parameters
        ----------
        run_id : int
        scan : dict
            ``subject_id, visit, lesion_id, course, scan_date, image, task_key, status``.
        prov : dict
            ``input_hash, series_uid, pipeline_hash``.
        measurement : dict, optional
            ``status, reason, volume_ml, mesh_volume_ml, data`` (data: JSON-ready dict).
        mask : dict, optional
            ``source, method, n_voxels, grid`` (JSON-ready), ``data`` (bytes).
        failure : dict, optional
            ``stage, error_type, message, deterministic``.
        """
        now = utc_now()
        ident = (scan["subject_id"], scan["visit"], scan["lesion_id"])
        p = (prov["input_hash"], prov.get("series_uid"), prov["pipeline_hash"], __version__, run_id, now)
        key = scan["task_key"]
        with self.transaction():
            if mask is not None:
                self.conn.execute(
                    "INSERT INTO masks (task_key, subject_id, visit, lesion_id, source, method, n_voxels, grid, data,"
                    " input_hash, series_uid, pipeline_hash, package_version, run_id, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(task_key) DO UPDATE SET source=excluded.source, method=excluded.method,"
                    " n_voxels=excluded.n_voxels, grid=excluded.grid, data=excluded.data,"
                    " path=NULL, file_sha256=NULL, run_id=excluded.run_id, created_at=excluded.created_at",
                    (key, *ident, mask["source"], mask.get("method"), mask.get("n_voxels"),
                     json.dumps(mask["grid"]), sqlite3.Binary(mask["data"]), *p))
            if measurement is not None:
                self.conn.execute(
                    "INSERT INTO measurements (task_key, subject_id, visit, lesion_id, status, reason, volume_ml,"
                    " mesh_volume_ml, data, input_hash, series_uid, pipeline_hash, package_version, run_id,"
                    " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(task_key) DO UPDATE SET status=excluded.status, reason=excluded.reason,"
                    " volume_ml=excluded.volume_ml, mesh_volume_ml=excluded.mesh_volume_ml, data=excluded.data,"
                    " run_id=excluded.run_id, created_at=excluded.created_at",
                    (key, *ident, measurement["status"], measurement.get("reason"), measurement.get("volume_ml"),
                     measurement.get("mesh_volume_ml"), json.dumps(measurement["data"], default=_json_default),
                     *p))
                self.conn.execute("DELETE FROM failures WHERE task_key=?", (key,))
            if failure is not None:
                self.conn.execute(
                    "INSERT INTO failures (task_key, subject_id, visit, lesion_id, stage, error_type, message,"
                    " deterministic, input_hash, series_uid, pipeline_hash, package_version, run_id, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(task_key) DO UPDATE SET stage=excluded.stage, error_type=excluded.error_type,"
                    " message=excluded.message, deterministic=excluded.deterministic, run_id=excluded.run_id,"
                    " created_at=excluded.created_at",
                    (key, *ident, failure["stage"], failure["error_type"], failure["message"],
                     int(bool(failure.get("deterministic"))), *p))
            # the failures table holds the current failure of a scan only (an earlier failure of this
            # scan with other inputs is history: readers such as the report list every row)
            self.conn.execute("DELETE FROM failures WHERE subject_id=? AND visit=? AND lesion_id=? AND task_key!=?",
                              (*ident, key))
            self.conn.execute(
                "INSERT INTO scans (subject_id, visit, lesion_id, course, scan_date, image, task_key, status,"
                " input_hash, series_uid, pipeline_hash, package_version, run_id, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(subject_id, visit, lesion_id) DO UPDATE SET course=excluded.course,"
                " scan_date=excluded.scan_date, image=excluded.image, task_key=excluded.task_key,"
                " status=excluded.status, input_hash=excluded.input_hash, series_uid=excluded.series_uid,"
                " pipeline_hash=excluded.pipeline_hash, package_version=excluded.package_version,"
                " run_id=excluded.run_id, created_at=excluded.created_at",
                (*ident, scan.get("course"), scan.get("scan_date"), scan.get("image"), key, scan["status"], *p))

    def set_mask_file(self, task_key: str, path: str, file_sha256: str) -> None:
        """Remember where the mask of ``task_key`` was written (relative path) and its file hash."""
        self.set_mask_files([(task_key, path, file_sha256)])

    def set_mask_files(self, written: Iterable[tuple[str, str, str]]) -> None:
        """:meth:`set_mask_file` of every ``(task_key, path, file_sha256)`` in one transaction.

        A run killed before it commits leaves the masks' earlier ``path``/``file_sha256``: the
        next run finds those files not recorded as written and writes them again.
        """
        rows = [(path, sha, key) for key, path, sha in written]
        if not rows:
            return
        with self.transaction():
            self.conn.executemany("UPDATE masks SET path=?, file_sha256=? WHERE task_key=?", rows)

    def mask(self, task_key: str) -> dict | None:
        """The stored mask row of ``task_key`` (``grid`` parsed), or None."""
        row = self.conn.execute("SELECT * FROM masks WHERE task_key=?", (task_key,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["grid"] = json.loads(out["grid"])
        return out

    def failure(self, task_key: str) -> dict | None:
        """The stored failure row of ``task_key``, or None."""
        row = self.conn.execute("SELECT * FROM failures WHERE task_key=?", (task_key,)).fetchone()
        return dict(row) if row is not None else None

    def measurement(self, task_key: str) -> dict | None:
        """The stored measurement row of ``task_key`` (``data`` parsed), or None."""
        row = self.conn.execute("SELECT * FROM measurements WHERE task_key=?", (task_key,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["data"] = json.loads(out["data"])
        return out

    def scans(self, identities: Iterable[tuple[str, str, str]] | None = None) -> list[dict]:
        """The ``scans`` rows (all, or of the given ``(subject_id, visit, lesion_id)``), in that order."""
        if identities is None:
            return [dict(r) for r in self.conn.execute("SELECT * FROM scans ORDER BY subject_id, visit, lesion_id")]
        identities = [tuple(ident) for ident in identities]
        if len(identities) > _FEW and all(len(ident) == 3 and all(type(x) is str for x in ident)
                                          for ident in identities):
            # one query for the whole table instead of one per scan; text keys compare as SQLite's
            # '=' does (BINARY collation: byte for byte), so the same rows come back, in that order
            rows = {(r["subject_id"], r["visit"], r["lesion_id"]): r for r in self.conn.execute("SELECT * FROM scans")}
            return [dict(rows[ident]) for ident in identities if ident in rows]
        out = []
        for ident in identities:
            row = self.conn.execute("SELECT * FROM scans WHERE subject_id=? AND visit=? AND lesion_id=?",
                                    tuple(ident)).fetchone()
            if row is not None:
                out.append(dict(row))
        return out

    # ------------------------------------------------------------ assessments
    def assessment(self, subject_id: str, lesion_id: str) -> dict | None:
        """The stored assessment of one subject's lesion (``data`` parsed), or None."""
        row = self.conn.execute("SELECT * FROM assessments WHERE subject_id=? AND lesion_id=?",
                                (subject_id, lesion_id)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["data"] = json.loads(out["data"])
        return out

    def record_assessment(self, run_id: int, subject_id: str, lesion_id: str, assess_key: str, data: Any,
                          pipeline_hash: str) -> None:
        """Upsert the assessment of one subject's lesion (one transaction)."""
        self.record_assessments(run_id, [(subject_id, lesion_id, assess_key, data)], pipeline_hash)

    def record_assessments(self, run_id: int, assessments: Iterable[tuple[str, str, str, Any]],
                           pipeline_hash: str) -> None:
        """:meth:`record_assessment` of every ``(subject_id, lesion_id, assess_key, data)`` in one
        transaction (a run killed before it commits recorded none of them: the next run assesses
        those subjects again)."""
        now = utc_now()
        rows = [(subject_id, lesion_id, assess_key, json.dumps(data, default=_json_default), pipeline_hash,
                 __version__, run_id, now) for subject_id, lesion_id, assess_key, data in assessments]
        if not rows:
            return
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO assessments (subject_id, lesion_id, assess_key, data, pipeline_hash, package_version,"
                " run_id, created_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(subject_id, lesion_id) DO UPDATE SET"
                " assess_key=excluded.assess_key, data=excluded.data, pipeline_hash=excluded.pipeline_hash,"
                " package_version=excluded.package_version, run_id=excluded.run_id, created_at=excluded.created_at",
                rows)

    def count(self, table: str) -> int:
        """Number of rows of one table."""
        if table not in ("runs", "scans", "masks", "measurements", "failures", "assessments", "file_hashes"):
            raise ValueError(f"no table {table!r}")
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


#: Up to this many identities, :meth:`ResultStore.scans` asks for each row (a table of many scans is
#: not read for one or two); more are read in one query.
_FEW = 4


class FileHashCache:
    """SHA-256 of input files, remembered in the ``file_hashes`` table by path and
    status (size, mtime, ctime, inode): an unchanged file is not read again.

    Any write to a file changes its ctime (which no copy tool can set back), so a
    modified file is always re-read, except when the write falls in the same tick of
    the file system's clock as the status read before hashing: the digest of a file
    whose ctime is within :data:`RACY_NS` of that read is used in this run only, not
    stored (the next run reads the file again). Call it as ``cache(path) -> hex digest``;
    :meth:`save` stores the new digests in one transaction.

    Parameters
    ----------
    store : ResultStore
    path_key : callable, optional
        Maps a resolved path to its key in the table (default: its SHA-256; pseudonymised runs
        pass :meth:`volumetry.pseudonym.Pseudonymizer.path_key`). The path itself is never stored.
    """

    def __init__(self, store: "ResultStore", path_key: Callable[[str], str] | None = None) -> None:
        self.store = store
        # the key of a path in the table: its SHA-256, or (pseudonymised runs) a keyed digest, so
        # that the table cannot confirm a guessed path (paths often hold names and dates)
        self.path_key = path_key or (lambda real: hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest())
        self.known = {r["path_key"]: dict(r) for r in store.conn.execute("SELECT * FROM file_hashes")}
        self.new: dict[str, tuple] = {}
        self.n_read = 0
        self._folders: dict[str, str] = {}  # folder as given -> resolved (this run only)

    def __call__(self, path: Path) -> str:
        from .pipeline import tasks

        real, st = self._real_path(path)
        p = self.path_key(real)  # the path itself is not stored (it may hold names)
        sig = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        row = self.known.get(p)
        if row is not None and (row["size"], row["mtime_ns"], row["ctime_ns"], row["inode"]) == sig:
            return row["sha256"]
        now = time.time_ns()
        digest = tasks.file_sha256(real)
        self.n_read += 1
        if st.st_ctime_ns < now - RACY_NS:
            self.new[p] = (*sig, digest)
        else:  # changed just now: a rewrite in the same clock tick would not show in its status
            self.new.pop(p, None)
        self.known[p] = {"size": sig[0], "mtime_ns": sig[1], "ctime_ns": sig[2], "inode": sig[3], "sha256": digest}
        return digest

    def _real_path(self, path: Path) -> tuple[str, os.stat_result]:
        """``str(Path(path).resolve())`` and the file's status, resolving each folder once.

        The files of a series share a folder: its resolved path is remembered (absolute
        paths only), and a file that is not a symbolic link resolves to it joined with
        the file's name (what ``resolve`` gives). A link, a relative path, a name like
        ``..``, or a file that cannot be examined takes the plain way (``resolve`` then
        ``os.stat``, same errors). A plain absolute path (no empty or ``.`` component, no
        trailing slash: what the pipeline passes) is split as text, which gives the same
        folder and name as :class:`pathlib.Path` without making one.
        """
        text = os.fspath(path)
        if (type(text) is str and text[:1] == "/" and "//" not in text and "/./" not in text
                and not text.endswith(("/", "/.", "/.."))):
            parent, name = os.path.split(text)
            return self._in_folder(parent, name, text) or self._resolved(text)
        path = Path(path)
        name = path.name
        if name not in ("", ".", "..") and path.is_absolute():
            found = self._in_folder(os.fspath(path.parent), name, path)
            if found is not None:
                return found
        return self._resolved(path)

    def _in_folder(self, parent: str, name: str, path) -> tuple[str, os.stat_result] | None:
        """The real path of ``path`` (``name`` in the folder ``parent``) and its status when it
        is not a symbolic link, the folder resolved once per run; None otherwise."""
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return None
        folder = self._folders.get(parent)
        if folder is None:
            folder = self._folders[parent] = str(Path(parent).resolve())
        return os.path.join(folder, name), st

    @staticmethod
    def _resolved(path) -> tuple[str, os.stat_result]:
        real = str(Path(path).resolve())
        return real, os.stat(real)

    def save(self) -> None:
        """Store the digests computed since the last save (one transaction)."""
        if not self.new:
            return
        with self.store.transaction():
            self.store.conn.executemany(
                "INSERT INTO file_hashes (path_key, size, mtime_ns, ctime_ns, inode, sha256) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT(path_key) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,"
                " ctime_ns=excluded.ctime_ns, inode=excluded.inode, sha256=excluded.sha256",
                [(p, *v) for p, v in self.new.items()])
        self.new.clear()


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self):
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:  # locked beyond the connection timeout
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
