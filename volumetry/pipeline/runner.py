"""Run a study through the pipeline: plan the tasks, use the cache, execute, record, assess, write.

Only this module touches the results store. The tasks themselves
(:func:`volumetry.pipeline.tasks.run_task`) are pure and run

* in this process (``jobs=1``),
* in a local process pool (``jobs=N``, default all cores; workers stay alive
  across scans and import the heavy libraries once), or
* on an existing Dask distributed cluster (``dask_address``).

Caching: every scan's task key is the SHA-256 of everything its result depends
on (the content of its image and mask files, its prompt, its baseline's image
and prompt when propagated, the pipeline's segmentation section, the package
version, its identity). A key already in the store is not recomputed. A
subject's longitudinal assessment is recomputed only when one of its scans'
keys or statuses, or the course/response sections of the pipeline, changed.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .._version import __version__
from ..config import PipelineConfig
from ..errors import ConfigError, InputError, ManifestError
from ..manifest import ScanRow, Study, read_study
from ..paths import check_output_folder
from ..store import DB_NAME, FileHashCache, ResultStore
from .tasks import (ImageRef, PromptSpec, ScanTask, TaskResult, baseline_unusable, content_hash, hash_image_input,
                    run_task)

log = logging.getLogger(__name__)

#: Stages whose time is reported (s): the four task stages and writing outputs.
STAGES = ("load", "register", "segment", "measure", "write")


@dataclasses.dataclass
class Failure:
    """A failed scan: who, which stage, and why."""

    subject_id: str
    visit: str
    lesion_id: str
    stage: str
    error_type: str
    message: str

    def line(self) -> str:
        """One line for the run's summary."""
        return f"{self.subject_id} {self.visit} lesion {self.lesion_id}: {self.stage}: {self.message}"


@dataclasses.dataclass
class RunSummary:
    """What a run did.

    Attributes
    ----------
    out_dir : pathlib.Path
    run_id : int
    n_scans, n_computed, n_cached, n_failed : int
        Scans in the study; computed in this run; taken from the store; failed
        (computed or cached failures).
    computed : list of tuple
        ``(subject_id, visit, lesion_id)`` of the scans computed in this run.
    assessed : list of str
        The subjects (as in the table) whose assessment was recomputed.
    failures : list of Failure
    timings : dict
        Total seconds per stage over the computed scans (``load``, ``register``,
        ``segment``, ``measure``; summed over workers), for the longitudinal
        assessment (``assess``), for writing the outputs (``write``: tables,
        masks, SEGs, report), hashing the inputs and planning
        (``plan``) and recording results in the database (``record``).
    elapsed_s : float
    outputs : dict
        Name → path of every file written.
    table : pandas.DataFrame
        The volume table (one row per scan).
    """

    out_dir: Path
    run_id: int
    n_scans: int
    n_computed: int
    n_cached: int
    n_failed: int
    computed: list
    assessed: list
    failures: list
    timings: dict
    elapsed_s: float
    outputs: dict
    table: Any = None

    @property
    def ok(self) -> bool:
        """True when no scan failed."""
        return self.n_failed == 0


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass
class _Planned:
    row: ScanRow
    ident: tuple  # (subject_id as written, visit, lesion_id)
    task: ScanTask | None
    input_hash: str
    failure: dict | None = None  # failure found while planning (missing file ...)
    scan_date: dt.date | None = None  # as the outputs show it (moved with pseudonymised dates)


def _check_segmentation(cfg: PipelineConfig) -> dict:
    """Resolve the method and parameters now, so a bad pipeline fails before any scan."""
    from ..segment.registry import get_method, resolve_params

    where = cfg.path or "<pipeline>"
    try:
        method = get_method(cfg.segmentation["method"])
        params = resolve_params(method, cfg.segmentation["params"])
    except InputError as exc:
        raise ConfigError(f"{where}: key 'segmentation': {exc}") from None
    return {"method": method.name, "params": params}


def check_pipeline(cfg: PipelineConfig) -> dict:
    """Check what the schema alone cannot: the segmentation method and its
    parameters, the course schedule and the response criteria.

    Returns
    -------
    dict
        ``{"method": name, "params": parameters with defaults}``.

    Raises
    ------
    ConfigError
        Naming the pipeline file and the key.
    """
    from .outputs import check_criteria, course_schedule

    seg = _check_segmentation(cfg)
    course_schedule(cfg)
    check_criteria(cfg)
    return seg


def plan(study: Study, cfg: PipelineConfig, ident_of: Callable[[str], str], digest=None) -> list[_Planned]:
    """Build the task of every scan of the study (hashing its input files).

    ``ident_of`` maps a subject id to the one the outputs show; a
    :class:`volumetry.pipeline.deid.Shown` also gives the visit labels and scan
    dates shown (moved with pseudonymised dates). Scans whose files are missing
    get a planning failure instead of a task (the message names the manifest
    line and column).
    """
    from .tasks import file_sha256

    digest = digest or file_sha256
    seg = check_pipeline(cfg)
    hashes: dict[tuple, str | Exception | None] = {}

    def image_hash(n: int) -> str | InputError:
        # hashed once per image (the lesions of one scan share it; a baseline serves its
        # follow-ups); an error is worded for the row that asks
        row = study.rows[n]
        key = (str(row.image), row.files)
        if key not in hashes:
            try:
                hashes[key] = hash_image_input(row.image, row.files, digest) if row.image.exists() else None
            except (InputError, OSError) as exc:
                hashes[key] = exc
        h = hashes[key]
        if h is None:
            return InputError(f"{row.where}, column 'image': {row.image} does not exist; "
                              "fix the path (relative to the manifest's folder)")
        if isinstance(h, OSError):
            return InputError(f"{row.where}, column 'image': {row.image} cannot be read: {h}")
        if isinstance(h, InputError):  # e.g. an empty folder: named with the row's line and column
            return InputError(f"{row.where}, column 'image': {h}; give the image file or the DICOM folder")
        return h

    # keys set to None (series.volume absent) are left out: the cache keys stay as they were
    rule = tuple(sorted((k, v) for k, v in cfg.series.items() if v is not None))

    def rule_for(row: ScanRow) -> tuple | None:
        # the series rule decides only for a DICOM folder given without series_uid
        return rule if (row.series_uid is None and not row.files and row.image.is_dir()) else None

    visit_of = getattr(ident_of, "visit", lambda row: row.visit)
    date_of = getattr(ident_of, "date", lambda subject, day: day)
    out = []
    for n, row in enumerate(study.rows):
        ident = (ident_of(row.subject_id), visit_of(row), row.lesion_id)
        shown_date = date_of(row.subject_id, row.scan_date)
        h = image_hash(n)
        if isinstance(h, Exception):
            out.append(_Planned(row, ident, None, "missing", _fail("input", h), shown_date))
            continue
        mask_hash = None
        if row.mask is not None:
            if not row.mask.is_file():
                out.append(_Planned(row, ident, None, h, _fail("input", InputError(
                    f"{row.where}, column 'mask': {row.mask} does not exist; fix the path "
                    "(relative to the manifest's folder)")), shown_date))
                continue
            mask_hash = content_hash([row.mask], row.mask.parent, digest)
        prompt = None
        baseline = donor = None
        if row.mask is None and (row.seed is not None or row.box is not None):
            prompt = PromptSpec(row.seed, row.box, row.seed_space, row.lesion_id)
        elif row.mask is None:
            donor = study.rows[row.propagate_from]
            if not cfg.segmentation["propagate"]:
                out.append(_Planned(row, ident, None, h, _fail("input", InputError(
                    f"{row.where}: no seed, box or mask for this scan and the pipeline has "
                    "segmentation.propagate: false; give a seed on this row or enable propagation")), shown_date))
                continue
            dh = image_hash(row.propagate_from)
            if isinstance(dh, Exception):
                out.append(_Planned(row, ident, None, h, _fail("propagate", InputError(
                    f"{row.where}: {baseline_unusable(donor.visit, donor.where)}{dh}")), shown_date))
                continue
            baseline = (ImageRef(str(donor.image), donor.series_uid, dh, rule_for(donor), donor.volume),
                        PromptSpec(donor.seed, donor.box, donor.seed_space, donor.lesion_id))
        key_payload = {
            "version": __version__, "ident": ident, "image": h, "series_uid": row.series_uid,
            "prompt": dataclasses.asdict(prompt) if prompt else None, "mask": mask_hash,
            "baseline": [_key_part(b) for b in baseline] if baseline else None,
            # named in the message when the baseline cannot be used
            "baseline_visit": donor.visit if baseline else None,
            "series_rule": rule_for(row),
            "baseline_series_rule": rule_for(donor) if baseline else None,
            "segmentation": seg, "registration": cfg.segmentation["registration"] if baseline else None,
            "vanished_lesion": cfg.segmentation["vanished_lesion"] if baseline else None,
        }
        if row.volume is not None:  # absent when None: the keys of single-volume scans stay as they were
            key_payload["volume"] = row.volume
        task = ScanTask(
            task_key=_sha(key_payload),
            image=ImageRef(str(row.image), row.series_uid, h, rule_for(row), row.volume),
            prompt=prompt,
            mask=str(row.mask) if row.mask is not None else None, mask_hash=mask_hash, baseline=baseline,
            method=seg["method"], params=seg["params"], registration=cfg.segmentation["registration"],
            where=row.where, lesion_id=row.lesion_id, vanished_lesion=cfg.segmentation["vanished_lesion"],
            baseline_visit=donor.visit if baseline else "",
            baseline_where=donor.where if baseline else "",
        )
        out.append(_Planned(row, ident, task, h, scan_date=shown_date))
    return out


def _key_part(value) -> dict:
    """A value of the task as part of its cache key: its fields, without the ``path`` of an
    image (its content hash stands for it: a study moved to another folder is the same
    study) and without a ``volume`` of None (the keys of single-volume images did not change
    when volumes were added)."""
    out = dataclasses.asdict(value)
    if isinstance(value, ImageRef):
        del out["path"]
    if out.get("volume", 0) is None:
        del out["volume"]
    return out


def _uid(value: str | None, uid_of) -> str | None:
    """``value`` (a DICOM UID or None) as the outputs show it: its pseudo UID when ``uid_of`` is given."""
    return uid_of(value) if (uid_of is not None and value) else value


#: A DICOM UID written in a message (at least four numeric components: not a version or a number).
_UID_IN_TEXT = re.compile(r"(?<![\w.])[012](?:\.(?:0|[1-9]\d*)){3,}(?![\w.])")


def _scrub(text: str, p: "_Planned", study: Study, shown: "Shown | None", *, uid_of=None) -> str:
    """A failure message fit for the outputs: with pseudonymisation (``shown``), the study's
    folder becomes ``<study>``, an image or mask of the scan (or of the baseline it is
    propagated from) outside that folder ``<image>`` or ``<mask>`` (an absolute path, or
    one leaving the folder by ``..``: paths often hold names), the real subject
    identifier its pseudonym, and with moved dates the scan's (and its baseline's)
    dates and visit labels the moved ones, and any other date written in it
    (:meth:`Shown.shift_text`) moved too. With ``uid_of``, every DICOM UID written in it
    (a series UID in a selection error) becomes its pseudo UID (real UIDs embed dates)."""
    if shown is None:
        return text
    root = os.path.normpath(str(study.root))
    rows = [p.row] + ([study.rows[p.row.propagate_from]] if p.row.propagate_from is not None else [])
    outside: dict[str, str] = {}
    for row in rows:
        for path, label in ((row.image, "<image>"), (row.mask, "<mask>")):
            if path is None:
                continue
            norm = os.path.normpath(str(path))
            if norm == root or norm.startswith(root + os.sep):
                continue
            forms = {str(path), norm}
            try:
                forms.add(str(Path(path).resolve()))
            except (OSError, RuntimeError):
                pass
            outside.update((form, label) for form in forms)
    for form in sorted(outside, key=len, reverse=True):  # the longest first: a folder's files, then it
        text = text.replace(form, outside[form])
    for name in sorted({str(study.root), str(study.source)}, key=len):  # the folder first: <study>/manifest.csv
        text = text.replace(name, "<study>")
    pairs = [pair for row in rows for pair in shown.replacements(row)]
    # the known texts become placeholders first, so that the dates they show are not moved again
    # when every other date written in the message (an image folder named 2024.01.08) is moved
    held: list[str] = []
    if uid_of is not None:
        def hold_uid(match: "re.Match") -> str:
            held.append(uid_of(match.group(0)))
            return f"\x00{len(held) - 1}\x00"

        text = _UID_IN_TEXT.sub(hold_uid, text)
    for real, moved in sorted(set(pairs), key=lambda pair: len(pair[0]), reverse=True):
        if real in text:
            text = text.replace(real, f"\x00{len(held)}\x00")
            held.append(moved)
    text = shown.shift_text(p.row.subject_id, text, hint=p.row.scan_date)
    for n, moved in enumerate(held):
        text = text.replace(f"\x00{n}\x00", moved)
    return text


def _fail(stage: str, exc: Exception, deterministic: bool = True) -> dict:
    return {"stage": stage, "error_type": type(exc).__name__, "message": str(exc), "deterministic": deterministic}


# ------------------------------------------------------------------------------ executors
def _execute_inline(tasks: list[ScanTask]) -> Iterator[TaskResult]:
    for t in tasks:
        yield run_task(t)


def _crashed(task: ScanTask) -> TaskResult:
    return TaskResult(task.task_key, False, stage="worker", error_type="WorkerCrashed",
                      message=f"{task.where}: the worker process died while processing this scan (a crash in a "
                              "native library, or out of memory); the other scans were not affected. Re-run to retry")


def _execute_pool(tasks: list[ScanTask], jobs: int, func: Callable = run_task) -> Iterator[TaskResult]:
    """Run the tasks on ``jobs`` worker processes that stay alive across scans.

    A worker that dies (a segfault in a native library, the OOM killer) breaks a
    process pool and every scan in flight with it. The scans not finished are
    then run one at a time in a fresh one-worker pool, so that only the scan
    that kills its worker is recorded as failed and the batch goes on.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from .tasks import warm_up

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)

    def new_pool(n: int) -> ProcessPoolExecutor:
        threads = max(1, (os.cpu_count() or 1) // n)
        return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=warm_up, initargs=(threads,))

    def failed(task: ScanTask, exc: Exception) -> TaskResult:  # e.g. a result that cannot be unpickled
        return TaskResult(task.task_key, False, stage="worker", error_type=type(exc).__name__,
                          message=f"{task.where}: {exc}")

    done: set[str] = set()
    broken = False
    pool = new_pool(jobs)
    try:
        futures = {pool.submit(func, t): t for t in tasks}
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                res = fut.result()
            except BrokenProcessPool:
                broken = True
                continue
            except Exception as exc:  # noqa: BLE001
                res = failed(task, exc)
            done.add(task.task_key)
            yield res
    except BaseException:  # Ctrl-C, or the caller stopped: do not wait for the queued scans
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    if not broken:
        return
    remaining = [t for t in tasks if t.task_key not in done]
    log.warning("a worker process died; running the %d unfinished scan(s) one at a time to isolate it",
                len(remaining))
    pool = new_pool(1)
    try:
        for task in remaining:
            try:
                res = pool.submit(func, task).result()
            except BrokenProcessPool:
                pool.shutdown(wait=True)
                pool = new_pool(1)
                res = _crashed(task)
            except Exception as exc:  # noqa: BLE001
                res = failed(task, exc)
            yield res
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool) -> None:
    """Cancel the queued scans of a pool and end its worker processes (ours, by pid)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)


def _execute_dask(tasks: list[ScanTask], address: Any) -> Iterator[TaskResult]:
    from distributed import Client, as_completed

    client = Client(address, set_as_default=False)
    try:
        futures = client.map(run_task, tasks, key=[f"volumetry-scan-{t.task_key}" for t in tasks])
        by_key = {f.key: t for f, t in zip(futures, tasks)}
        for fut in as_completed(futures, loop=client.loop):
            task = by_key[fut.key]
            try:
                yield fut.result()
            except Exception as exc:  # noqa: BLE001 -- a worker lost, a pickling error ...
                yield TaskResult(task.task_key, False, stage="worker", error_type=type(exc).__name__,
                                 message=f"{task.where}: the Dask task failed: {exc}")
            fut.release()
    finally:
        client.close()


class _Progress:
    """A tqdm bar on a terminal, plain log lines otherwise."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        self.total = total
        self.done = 0
        tty = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        self._redirect = None
        if tty and total:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.bar = tqdm(total=total, unit="scan", desc="volumetry run", file=sys.stderr)
            # log records (warnings of the stages) print above the bar instead of through it
            self._redirect = logging_redirect_tqdm(loggers=[logging.getLogger("volumetry")])
            self._redirect.__enter__()

    def update(self, text: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(text[:40], refresh=False)
            self.bar.update(1)
        else:
            log.info("[%d/%d] %s", self.done, self.total, text)

    def close(self) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------ the run
def run_study(
    study: str | Path,
    cfg: PipelineConfig,
    out_dir: str | Path,
    *,
    jobs: int | None = None,
    dask_address: Any = None,
    pseudonymize: bool = False,
    keep_dates: bool = False,
    progress: bool | None = None,
    argv: list[str] | None = None,
) -> RunSummary:
    """Run every scan of a study and write the outputs.

    Parameters
    ----------
    study : str or pathlib.Path
        Manifest CSV, folder with ``manifest.csv``, or DICOM tree (see :mod:`volumetry.manifest`).
    cfg : PipelineConfig
    out_dir : str or pathlib.Path
        The output folder (created); nothing is written outside it.
    jobs : int, optional
        Local worker processes (default: all cores; 1 runs in this process).
    dask_address : str or object, optional
        Address of a running Dask scheduler (or a ``distributed`` cluster
        object); the tasks run there instead of the local pool.
    pseudonymize : bool
        Replace subject identifiers by keyed pseudonyms everywhere, and move each
        subject's dates back by a keyed number of days (see :mod:`volumetry.pseudonym`
        and :mod:`volumetry.pipeline.deid`).
    keep_dates : bool
        With ``pseudonymize``: show the real dates.
    progress : bool, optional
        Force the progress bar on or off (default: on when stderr is a terminal).
    argv : list of str, optional
        Command line, recorded in the ``runs`` table.

    Returns
    -------
    RunSummary

    Raises
    ------
    InputError
        Bad study, manifest or pipeline, or an output folder holding files of something else or a
        link to outside it (:func:`volumetry.paths.check_output_folder`), before any scan is processed.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    study_obj = read_study(study, cfg.series)
    check_pipeline(cfg)  # a bad pipeline fails before anything is written
    _check_courses(study_obj, cfg)
    check_output_folder(out_dir)  # a folder of other files, or a link to outside it: refused before writing
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # FileExistsError (a file there), NotADirectoryError, PermissionError ...
        why = ("it, or a folder above it, is a file" if isinstance(exc, (FileExistsError, NotADirectoryError))
               else exc.strerror or str(exc))
        raise InputError(f"output folder {out_dir} cannot be made: {why}; give --out a new or existing "
                         "folder") from None
    lock = _lock_out_dir(out_dir)
    try:
        return _run_locked(study_obj, cfg, out_dir, t_start, jobs=jobs, dask_address=dask_address,
                           pseudonymize=pseudonymize, keep_dates=keep_dates, progress=progress, argv=argv)
    finally:
        lock.close()  # releases the lock


#: Lock file in the output folder, held for the whole of a run.
LOCK_NAME = ".volumetry-run.lock"


def _lock_out_dir(out_dir: Path):
    """Hold an exclusive lock on the output folder (released when the file is closed or
    the process dies, even by SIGKILL): a second run into the same folder is refused rather
    than rewriting the tables and masks under the first.

    Raises
    ------
    InputError
        Another run holds the folder.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return open(os.devnull)
    fh = open(out_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise InputError(f"output folder {out_dir} is in use by another 'volumetry run' (it holds {LOCK_NAME}); "
                         "wait for that run to finish, or give another --out") from None
    return fh


def _run_locked(study_obj: Study, cfg: PipelineConfig, out_dir: Path, t_start: float, *, jobs, dask_address,
                pseudonymize, keep_dates, progress, argv) -> RunSummary:
    from .deid import Shown

    if pseudonymize:
        from ..pseudonym import Pseudonymizer, load_key

        pz = Pseudonymizer(load_key(out_dir))
        shown: Shown | None = Shown(pz, shift_dates=not keep_dates)
        uid_of = pz.uid
    else:
        shown = None
        uid_of = None
    ident_of = shown or Shown()
    store = ResultStore(out_dir / DB_NAME)
    try:
        t_plan = time.perf_counter()
        file_hashes = FileHashCache(store, path_key=pz.path_key if pseudonymize else None)
        planned = plan(study_obj, cfg, ident_of, file_hashes)
        file_hashes.save()
        t_plan = time.perf_counter() - t_plan
        log.debug("hashed the inputs: %d file(s) read, the others unchanged since they were last read",
                  file_hashes.n_read)
        run_id = store.begin_run(study=None if pseudonymize else str(study_obj.source),
                                 pipeline_path=str(cfg.path) if cfg.path else None, pipeline_hash=cfg.sha256,
                                 pseudonymized=pseudonymize, argv=None if pseudonymize else argv,
                                 dates_moved=shown is not None and shown.shifts_dates)
        summary = _run(store, run_id, study_obj, planned, cfg, out_dir, jobs=jobs, dask_address=dask_address,
                       shown=shown, progress=progress, uid_of=uid_of)
        summary.elapsed_s = time.perf_counter() - t_start
        summary.timings["plan"] = t_plan
        store.finish_run(run_id, status="failed" if summary.n_failed else "ok", counts={
            "n_scans": summary.n_scans, "n_computed": summary.n_computed, "n_cached": summary.n_cached,
            "n_failed": summary.n_failed, "n_assessed": len(summary.assessed)})
        return summary
    finally:
        store.close()


def _check_courses(study: Study, cfg: PipelineConfig) -> None:
    """An explicit ``course`` beyond the pipeline's ``courses.max_courses`` is a manifest
    error found before any scan runs (not by the assessment, after every scan was computed).

    Raises
    ------
    ManifestError
        Naming the manifest line, the column and the pipeline's limit.
    """
    limit = cfg.courses["max_courses"]
    for row in study.rows:
        if row.course is not None and row.course > limit:
            raise ManifestError(f"{row.where}, column 'course': course {row.course} is more than the pipeline's "
                                f"courses.max_courses ({limit}{', ' + str(cfg.path) if cfg.path else ''}); "
                                "fix the course number or raise max_courses")


def _scan_row(p: _Planned, status: str, pseudonymize: bool) -> dict:
    row = p.row
    # the image's absolute path (for the report's overlays); withheld when pseudonymising,
    # as paths often hold names
    image = None if pseudonymize else str(row.image)
    return {"subject_id": p.ident[0], "visit": p.ident[1], "lesion_id": p.ident[2], "course": row.course,
            "scan_date": p.scan_date.isoformat() if p.scan_date else None, "image": image,
            "task_key": p.task.task_key if p.task else _sha({"failed-input": p.ident, "h": p.input_hash,
                                                              "f": p.failure}),
            "status": status}


def _run(store: ResultStore, run_id: int, study: Study, planned: list[_Planned], cfg: PipelineConfig,
         out_dir: Path, *, jobs, dask_address, shown, progress, uid_of=None) -> RunSummary:
    """Compute, record and write. ``uid_of`` (pseudonymised runs): maps a real DICOM UID to its
    pseudo UID (:meth:`volumetry.pseudonym.Pseudonymizer.uid`); the database and every output
    then hold only pseudo UIDs, while the real ones stay in memory (``loaded``) for re-reading
    the source series (SEG, report), as do the files each computed scan was read from
    (``loaded_files``: its SEG references them without listing the source folder again)."""
    from . import outputs

    pseudonymize = shown is not None
    timings = {s: 0.0 for s in STAGES}
    computed: list[tuple] = []
    todo: list[_Planned] = []
    n_cached = 0
    for p in planned:
        if p.failure is not None:
            p.failure["message"] = _scrub(p.failure["message"], p, study, shown, uid_of=uid_of)
            scan = _scan_row(p, "failed", pseudonymize)
            store.record_scan(run_id, scan, {"input_hash": p.input_hash, "series_uid": _uid(p.row.series_uid, uid_of),
                                             "pipeline_hash": cfg.sha256}, failure=p.failure)
            continue
        hit = store.cached(p.task.task_key)
        if hit is not None:
            n_cached += 1
            scan = _scan_row(p, "ok" if hit["kind"] == "measurement" else "failed", pseudonymize)
            # the scan may point to another key from an earlier run, or the manifest may now say
            # something else about it (course, scan date, image path): make this row current
            if _points_elsewhere(store, scan):
                # the series the result was measured on (chosen by the rule when the row names none)
                store.record_scan(run_id, scan, {"input_hash": p.input_hash,
                                                 "series_uid": hit.get("series_uid") or _uid(p.row.series_uid, uid_of),
                                                 "pipeline_hash": cfg.sha256})
            continue
        todo.append(p)

    if todo:
        log.info("%d scan(s) to compute, %d unchanged (cached)", len(todo), n_cached)
    else:
        log.info("nothing to recompute: all %d scan(s) unchanged since the last run", n_cached)
    # one subject's scans together, in visit order, and the lesions of one scan one after the
    # other: a worker (keeping the last 2 images) reuses the follow-up and the baseline it just
    # loaded, and reads every image once
    todo.sort(key=lambda p: (p.ident[0], p.row.course if p.row.course is not None else -1,
                             p.row.scan_date.isoformat() if p.row.scan_date else "", p.ident[1], p.ident[2]))
    by_key = {p.task.task_key: p for p in todo}
    tasks = [p.task for p in todo]
    n_jobs = max(1, min(int(jobs or os.cpu_count() or 1), len(tasks) or 1))
    if tasks and dask_address is None:
        # the compiled kernels, here and not in each worker: on a machine's first run they are compiled
        # once (saying so) and the pool's workers then load them from numba's cache
        from .._jit import warm_all

        warm_all()
    if dask_address is not None:
        results: Iterable[TaskResult] = _execute_dask(tasks, dask_address)
    elif n_jobs == 1:
        results = _execute_inline(tasks)
    else:
        results = _execute_pool(tasks, n_jobs)
    bar = _Progress(len(tasks), progress)
    loaded: dict[tuple, str] = {}  # the real series (or stack) UID each computed scan was loaded from
    # the files each computed scan was read from, in memory only (a pseudonymised run stores no path:
    # paths often hold names): its DICOM SEG references them without listing the source folder again
    loaded_files: dict[tuple, list[str]] = {}
    try:
        for res in results:
            p = by_key[res.task_key]
            for k, v in res.timings.items():
                if k in timings:
                    timings[k] += v
            t_rec = time.perf_counter()
            _record(store, run_id, p, res, cfg, study, shown, uid_of=uid_of)
            if (res.image or {}).get("series_uid"):
                loaded[p.ident] = str(res.image["series_uid"])
            if (res.image or {}).get("files"):  # as the worker returned them (_record strips a copy)
                loaded_files[p.ident] = list(res.image["files"])
            timings["record"] = timings.get("record", 0.0) + time.perf_counter() - t_rec
            computed.append(p.ident)
            what = (f"{res.measurement.get('volume_ml'):.2f} mL" if res.ok and res.measurement
                    and res.measurement.get("volume_ml") is not None else
                    (res.measurement or {}).get("status", "") if res.ok else f"FAILED ({res.stage})")
            bar.update(f"{p.ident[0]} {p.ident[1]} lesion {p.ident[2]}: {what}")
    finally:
        bar.close()

    t0 = time.perf_counter()
    idents = [p.ident for p in planned]
    table, assessed = outputs.assess(store, run_id, idents, cfg)
    timings["assess"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the real series UIDs (the store holds pseudo UIDs when pseudonymising): the one loaded in
    # this run, or the manifest's; a cached scan whose series the rule chose is found again by
    # the outputs from its pseudo UID
    sources = {p.ident: (str(p.row.image), loaded.get(p.ident) or p.row.series_uid) for p in planned}
    date_shifts = ({p.ident: shown.shift_days(p.row.subject_id) for p in planned}
                   if shown is not None and shown.shifts_dates else None)
    written = outputs.write_outputs(store, table, idents, cfg, out_dir, sources=sources,
                                    pseudonymized=pseudonymize, date_shifts=date_shifts, uid_map=uid_of,
                                    source_files=loaded_files)
    timings["write"] += time.perf_counter() - t0

    failures = []
    for scan in store.scans(idents):
        if scan["status"] == "failed":
            f = store.failure(scan["task_key"])
            if f is not None:
                failures.append(Failure(scan["subject_id"], scan["visit"], scan["lesion_id"], f["stage"],
                                        f["error_type"], f["message"]))
    return RunSummary(out_dir=out_dir, run_id=run_id, n_scans=len(planned), n_computed=len(computed),
                      n_cached=n_cached, n_failed=len(failures), computed=computed, assessed=assessed,
                      failures=failures, timings=timings, elapsed_s=0.0, outputs=written, table=table)


#: Columns of a ``scans`` row that the manifest decides without changing the task's key: a
#: cached scan whose stored row differs in one of them is recorded again (a corrected scan date
#: or course must reach the assessment; a moved study's image path, the report).
_SCAN_FIELDS = ("task_key", "status", "course", "scan_date", "image")


def _points_elsewhere(store: ResultStore, scan: dict) -> bool:
    """True when the stored ``scans`` row of a cached scan is not what this run says of it."""
    cur = store.scans([(scan["subject_id"], scan["visit"], scan["lesion_id"])])
    return not cur or any(cur[0][f] != scan[f] for f in _SCAN_FIELDS)


def _record(store: ResultStore, run_id: int, p: _Planned, res: TaskResult, cfg: PipelineConfig,
            study: Study, shown: "Shown | None", *, uid_of=None) -> None:
    pseudonymize = shown is not None
    prov = {"input_hash": p.input_hash,
            "series_uid": _uid((res.image or {}).get("series_uid") or p.row.series_uid, uid_of),
            "pipeline_hash": cfg.sha256}
    scan = _scan_row(p, "ok" if res.ok else "failed", pseudonymize)
    if not res.ok:
        store.record_scan(run_id, scan, prov, failure={
            "stage": res.stage or "unknown", "error_type": res.error_type or "Error",
            "message": _scrub(res.message or "", p, study, shown, uid_of=uid_of),
            "deterministic": res.deterministic})
        return
    m = res.measurement or {}
    image = dict(res.image or {})
    if pseudonymize:  # the image's paths are withheld (they often hold names), as in scans.image
        image.pop("files", None)
    if image.get("series_uid"):  # real scanner UIDs embed the acquisition date
        image["series_uid"] = _uid(image["series_uid"], uid_of)
    data = {"measurement": m, "segmentation": res.segmentation, "registration": res.registration,
            "image": image, "timings": res.timings}
    store.record_scan(
        run_id, scan, prov,
        measurement={"status": m.get("status", "ok"), "reason": m.get("reason"), "volume_ml": m.get("volume_ml"),
                     "mesh_volume_ml": m.get("mesh_volume_ml"), "data": data},
        mask={"source": (res.segmentation or {}).get("source", "segmented"),
              "method": (res.segmentation or {}).get("method"), "n_voxels": res.n_voxels,
              "grid": res.mask_grid, "data": res.mask_data})
