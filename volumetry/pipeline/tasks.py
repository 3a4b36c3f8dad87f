"""One scan = one task: load → (propagate) → segment → measure.

:func:`run_task` is a pure function of an explicit :class:`ScanTask` (paths,
prompt, method, parameters) that returns a :class:`TaskResult` value: it never
touches the results database or the output folder, so it runs the same in this
process, in a local worker process or on a Dask worker. Every exception is
caught and returned as a failure with its stage and message (failure
isolation); a bad scan never stops the batch.

The mask travels back packed (:func:`pack_mask`: cropped to its bounding box,
bit-packed, zlib-compressed) so that results stay small across processes.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
import threading
import time
import traceback
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..image import Volume

#: Images kept in memory per worker process (a follow-up task reloads its
#: subject's baseline image; consecutive tasks of one subject reuse it).
IMAGE_CACHE_SIZE = 2
_IMAGE_CACHE: "collections.OrderedDict[tuple, Volume]" = collections.OrderedDict()
#: Dask workers may run several tasks in threads of one process (guards both per-process caches).
_IMAGE_CACHE_LOCK = threading.Lock()

#: Baseline segmentations kept per worker process: a propagated follow-up needs its
#: baseline's (the lesion's centre is what is carried); the baseline's own task, or the
#: previous follow-up, made it. 0 segments the baseline again for every follow-up.
SEGMENTATION_CACHE_SIZE = 2
_SEGMENTATION_CACHE: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()

#: Flag of :func:`volumetry.segment.segment` when a propagated seed lands on tissue far darker
#: than the baseline lesion (the lesion has gone: complete response).
NO_LESION_FLAG = "no-lesion-at-propagated-seed"

#: The readers' words for a volume that must be chosen or is out of range (not just any
#: "volume" in a message: paths such as /data/volumetry_trial/ hold the word too).
_VOLUME_CHOICE = re.compile(r"volume_index|volume -?\d+ requested|holds \d+ volumes|volumes 0\.\.")

#: Read size for content hashes (bytes).
_CHUNK = 1 << 20


# ------------------------------------------------------------------------------ content hashes
def input_files(image: str | Path, files: tuple = ()) -> list[Path]:
    """The files an image input consists of: ``files`` when given (a DICOM
    series found in a tree), every file under a folder, or the file itself.

    Raises
    ------
    InputError
        The path does not exist, or a folder holds no file.
    """
    if files:
        return sorted(Path(f) for f in files)
    p = Path(image)
    if p.is_file():
        return [p]
    if p.is_dir():
        found = sorted(f for f in p.rglob("*") if f.is_file())
        if not found:
            raise InputError(f"{p}: the folder holds no file")
        return found
    raise InputError(f"{p}: no such file or folder")


def file_sha256(path: Path) -> str:
    """SHA-256 of an input file's bytes (:func:`sha256_of_file`): the one call through which the
    pipeline reads its inputs to hash them."""
    return sha256_of_file(path)


def sha256_of_file(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read by chunks of :data:`_CHUNK` bytes into a buffer
    kept per thread (no buffer made per file: the pipeline hashes hundreds of small files)."""
    buf = getattr(_BUFFERS, "view", None)
    if buf is None:
        buf = _BUFFERS.view = memoryview(bytearray(_CHUNK))
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(buf[:n])
    return h.hexdigest()


_BUFFERS = threading.local()


def content_hash(paths: list[Path], root: Path | None = None, digest=file_sha256) -> str:
    """SHA-256 over the relative names and the SHA-256 of the bytes of ``paths`` (sorted).

    Renaming or moving the whole input keeps the hash when ``root`` is the
    input's own folder; any change of a byte changes it. ``digest`` computes a
    file's SHA-256 (the runner passes a cache keyed by the file's status, see
    :class:`volumetry.store.FileHashCache`).
    """
    h = hashlib.sha256()
    prefix = None
    if root is not None:
        text = os.fspath(root)
        if type(text) is str and text and text[-1] != "/":
            prefix = text + "/"
    for p in sorted(paths):
        if root is None:
            name = p.name
        else:
            name = _name_under(os.fspath(p), prefix) if prefix is not None else None
            if name is None:
                name = os.path.relpath(p, root)
        h.update(name.encode("utf-8", "surrogateescape") + b"\0"
                 + digest(p if isinstance(p, Path) else Path(p)).encode() + b"\0")
    return h.hexdigest()


def _name_under(text: str, prefix: str) -> str | None:
    """``os.path.relpath(text, root)`` for a path written as ``root/`` (``prefix``) followed by plain
    names (none empty, ``.`` or ``..``: what ``relpath`` would give back unchanged); None otherwise."""
    if type(text) is not str or not text.startswith(prefix):
        return None
    name = text[len(prefix):]
    parts = name.split("/")
    if "" in parts or "." in parts or ".." in parts:
        return None
    return name


def hash_image_input(image: str | Path, files: tuple = (), digest=file_sha256) -> str:
    """Content hash of an image input (file, DICOM folder, or explicit files)."""
    paths = input_files(image, files)
    p = Path(image)
    root = p if p.is_dir() else p.parent
    return content_hash(paths, root, digest)


# ------------------------------------------------------------------------------ values
@dataclasses.dataclass(frozen=True)
class ImageRef:
    """Where an image is: ``path`` (file or DICOM folder), ``series_uid``, and the
    content hash of its files (``input_hash``; also the key of the worker cache).
    ``series_rule`` (the pipeline's ``series`` section as sorted items) chooses the
    series when a DICOM folder holds several and no ``series_uid`` is given.
    ``volume`` is the 0-based volume of a multi-volume DICOM series or a 4D NIfTI
    (None: the image's only volume)."""

    path: str
    series_uid: str | None
    input_hash: str
    series_rule: tuple | None = None
    volume: int | None = None


@dataclasses.dataclass(frozen=True)
class PromptSpec:
    """A prompt as the manifest states it: seed ``(x, y, z)`` and/or box
    ``(x0, y0, z0, x1, y1, z1)`` in ``space`` (``lps``, ``ras`` or ``voxel``)."""

    seed: tuple | None
    box: tuple | None
    space: str
    lesion_id: str


@dataclasses.dataclass(frozen=True)
class ScanTask:
    """Everything one scan's computation depends on.

    Attributes
    ----------
    task_key : str
        SHA-256 of all the fields below (plus package version): the cache key.
    image : ImageRef
    prompt : PromptSpec or None
        The scan's own prompt (None when propagated or when a mask is imported).
    mask : str or None
        Imported mask file (used instead of segmenting).
    mask_hash : str or None
    baseline : tuple of (ImageRef, PromptSpec) or None
        The image and prompt to propagate from by registration.
    baseline_visit, baseline_where : str
        The baseline's visit label and where it was declared, for the message
        when the baseline cannot be used (stage ``propagate``).
    method : str
    params : dict
    registration : str
        ``rigid`` or ``affine``.
    vanished_lesion : str
        ``empty``: a propagated follow-up where the method finds no lesion-like
        tissue (flag ``no-lesion-at-propagated-seed``) is a measured 0 mL flagged
        ``lesion-not-found``; ``failed``: it is a failure.
    where : str
        Where the scan was declared (manifest line) for messages.
    """

    task_key: str
    image: ImageRef
    prompt: PromptSpec | None
    mask: str | None
    mask_hash: str | None
    baseline: tuple | None
    method: str
    params: dict
    registration: str = "rigid"
    where: str = ""
    lesion_id: str = "1"
    vanished_lesion: str = "empty"
    baseline_visit: str = ""
    baseline_where: str = ""


@dataclasses.dataclass
class TaskResult:
    """What a task returns (plain values, cheap to pickle).

    Attributes
    ----------
    task_key : str
    ok : bool
        True when a mask was made and measured (the measurement itself may still
        have status ``empty`` or ``failed`` with a reason).
    stage : str or None
        Failed stage: ``load``, ``propagate`` (the baseline to propagate from could not
        be loaded, prompted or segmented), ``register``, ``segment``, ``mask``, ``measure``.
    error_type, message : str or None
    deterministic : bool
        True for bad input (an :class:`~volumetry.errors.InputError`), which the
        same inputs would reproduce: it is cached; other failures are retried.
    measurement : dict or None
        ``Measurement.to_dict()``.
    segmentation : dict or None
        ``status, reason, method, params, flags, qc`` (and ``source``: segmented,
        propagated or imported).
    registration : dict or None
    image : dict or None
        Geometry and series of the loaded image.
    mask_data : bytes or None
        :func:`pack_mask` of the mask; ``mask_grid`` its grid.
    timings : dict
        Seconds spent in ``load``, ``register``, ``segment``, ``measure``.
    """

    task_key: str
    ok: bool
    stage: str | None = None
    error_type: str | None = None
    message: str | None = None
    deterministic: bool = False
    measurement: dict | None = None
    segmentation: dict | None = None
    registration: dict | None = None
    image: dict | None = None
    mask_data: bytes | None = None
    mask_grid: dict | None = None
    n_voxels: int | None = None
    timings: dict = dataclasses.field(default_factory=dict)


# ------------------------------------------------------------------------------ masks across processes
def pack_mask(mask: Volume) -> tuple[bytes, dict, int]:
    """Pack a boolean mask: ``(bytes, grid, n_voxels)``.

    The grid holds the full shape, spacing (mm), origin (LPS mm), direction and
    the bounding box of the mask; the bytes are the zlib-compressed bit-packed
    crop. :func:`unpack_mask` restores the exact mask.
    """
    arr = np.asarray(mask.array)
    if arr.dtype != bool:
        arr = arr.astype(bool)
    # the bounding box from the axis profiles (one pass over the array, no index arrays): the
    # slices and rows from the (k, j) profile, then the columns and the voxel count from the
    # voxels of those only (every voxel set lies in them: the same as over the whole array)
    kj = arr.any(axis=2)
    rows = np.flatnonzero(kj.any(axis=0))
    if len(rows):
        nz = [np.flatnonzero(kj.any(axis=1)), rows]
        lo = [int(i[0]) for i in nz]
        hi = [int(i[-1]) + 1 for i in nz]
        box = arr[lo[0]:hi[0], lo[1]:hi[1]]
        cols = np.flatnonzero(box.any(axis=(0, 1)))
        lo.append(int(cols[0]))
        hi.append(int(cols[-1]) + 1)
        n = int(np.count_nonzero(box[:, :, lo[2]:hi[2]]))
    else:
        n = 0
        lo, hi = [0, 0, 0], [0, 0, 0]
    crop = arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    data = zlib.compress(np.packbits(crop.ravel()).tobytes(), 6)
    grid = {
        "shape": list(arr.shape), "lo": lo, "hi": hi,
        "spacing": list(mask.spacing), "origin": list(mask.origin),
        "direction": np.asarray(mask.direction).ravel().tolist(),
    }
    return data, grid, n


def unpack_crop(data: bytes, grid: dict) -> np.ndarray:
    """The boolean crop ``[lo:hi]`` (the mask's bounding box) of a :func:`pack_mask` result."""
    shape = tuple(h - l for l, h in zip(grid["lo"], grid["hi"]))
    count = int(np.prod(shape))
    if not count:
        return np.zeros(shape, dtype=bool)
    bits = np.unpackbits(np.frombuffer(zlib.decompress(data), dtype=np.uint8), count=count)
    return bits.reshape(shape).astype(bool)


def unpack_mask(data: bytes, grid: dict, meta: dict | None = None) -> Volume:
    """Inverse of :func:`pack_mask`: the boolean mask Volume."""
    lo, hi = grid["lo"], grid["hi"]
    arr = np.zeros(grid["shape"], dtype=bool)
    arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = unpack_crop(data, grid)
    return Volume(arr, tuple(grid["spacing"]), tuple(grid["origin"]),
                  np.asarray(grid["direction"]).reshape(3, 3), meta or {})


# ------------------------------------------------------------------------------ the task
def load_image(ref: ImageRef) -> Volume:
    """Read an image (the volume ``ref.volume`` of it) through a small per-process cache
    keyed by its path, series, volume and content hash.

    Raises
    ------
    InputError
        The reader's error; one about the image's volumes (several and none
        chosen, or an index out of range; the message lists them) also says
        which manifest column chooses one.
    """
    key = _image_key(ref)
    hit = _cache_get(_IMAGE_CACHE, key)
    if hit is not None:
        return hit
    try:
        vol = _read(ref)
    except InputError as exc:
        text = str(exc)
        if _VOLUME_CHOICE.search(text) and "column 'volume'" not in text:
            # the reader speaks of volume_index / --volume: say what the manifest calls it
            raise type(exc)(f"{text}; in the manifest, column 'volume' gives the 0-based volume to measure "
                            "(for a DICOM tree without manifest, the pipeline key series.volume)") from exc
        raise
    _cache_put(_IMAGE_CACHE, key, vol, IMAGE_CACHE_SIZE)
    return vol


def _cache_get(cache: collections.OrderedDict, key: tuple):
    """The entry of ``key`` in a per-process LRU ``cache`` (now the most recent), or None."""
    with _IMAGE_CACHE_LOCK:
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
        return hit


def _cache_put(cache: collections.OrderedDict, key: tuple, value, size: int) -> None:
    """Keep ``value`` under ``key`` in a per-process LRU ``cache`` of at most ``size`` entries."""
    if size <= 0:
        return
    with _IMAGE_CACHE_LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)


def _image_key(ref: ImageRef) -> tuple:
    return (ref.path, ref.series_uid, ref.input_hash, ref.series_rule, ref.volume)


def _segmentation_key(ref: ImageRef, spec: PromptSpec, method: str, params: dict) -> tuple:
    import json

    return (_image_key(ref), spec, method, json.dumps(params, sort_keys=True, default=str))


def _remember_segmentation(key: tuple, result) -> None:
    _cache_put(_SEGMENTATION_CACHE, key, result, SEGMENTATION_CACHE_SIZE)


def segment_cached(image: Volume, spec: PromptSpec, ref: ImageRef, method: str, params: dict):
    """:func:`volumetry.segment.segment` of ``image`` from ``spec``, through a small per-process
    cache keyed by the image (``ref``), the prompt, the method and its parameters (the
    segmentation is a pure function of these: the result is the same object either way,
    never modified by its users).

    Raises
    ------
    PromptError
        The prompt does not fit the image (see :func:`volumetry.segment.Prompt.from_points`).
    """
    from ..segment import segment

    key = _segmentation_key(ref, spec, method, params)
    hit = _cache_get(_SEGMENTATION_CACHE, key)
    if hit is not None:
        return hit
    result = segment(image, _prompt(spec, image), method=method, params=params)
    _remember_segmentation(key, result)
    return result


def _read(ref: ImageRef) -> Volume:
    from ..errors import SeriesSelectionError
    from ..io.reader import read_image

    try:
        return read_image(ref.path, series_uid=ref.series_uid, volume_index=ref.volume)
    except SeriesSelectionError:
        if ref.series_uid is not None or not ref.series_rule:
            raise
        return read_image(ref.path, series_uid=_series_by_rule(ref.path, dict(ref.series_rule)),
                          volume_index=ref.volume)


def _series_by_rule(path: str, rule: dict) -> str:
    """The stack id of the series of a DICOM folder chosen by the pipeline's ``series`` rule.

    Raises
    ------
    SeriesSelectionError
        No series matches the rule (the message lists what the folder holds).
    """
    from ..errors import SeriesSelectionError
    from ..io.dicom import index_dicom
    from ..manifest import select_series

    stacks = index_dicom(path)
    chosen = select_series(stacks, rule)
    if chosen is None:
        found = "; ".join(f"{getattr(s, 'modality', '?')} '{getattr(s, 'description', '')}'" for s in stacks)
        raise SeriesSelectionError(
            f"{path} holds {len(stacks)} series and none matches the pipeline's series rule (modality "
            f"{rule.get('modality')}, description /{rule.get('description_regex')}/): {found}; give series_uid "
            "in the manifest or widen series.description_regex")
    return getattr(chosen, "stack_id", None) or chosen.series_uid


def _read_mask(path: str, image: Volume, lesion_id: str):
    """An imported mask on the image's grid: binary, or the label ``lesion_id`` of a label map."""
    from ..io.masks import read_mask

    try:
        return read_mask(path, image)
    except InputError:
        if not lesion_id.isdigit():
            raise
        return read_mask(path, image, label=int(lesion_id))


def _prompt(spec: PromptSpec, image: Volume):
    from ..segment import Prompt

    box = None if spec.box is None else np.asarray(spec.box, dtype=float).reshape(2, 3)
    if spec.seed is None:
        # a box alone: its centre is the seed
        centre = box.mean(axis=0)
        return Prompt.from_points([centre], spec.space, image, box=box, lesion_id=spec.lesion_id)
    return Prompt.from_points([spec.seed], spec.space, image, box=box, lesion_id=spec.lesion_id)


class _StageError(Exception):
    """An error of a stage; ``note`` says what it means for this scan (put before the message)."""

    def __init__(self, stage: str, exc: BaseException, note: str = "") -> None:
        super().__init__(str(exc))
        self.stage = stage
        self.exc = exc
        self.note = note


def _stage(name: str, timings: dict, func, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        return func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- isolated and reported with its stage
        raise _StageError(name, exc) from exc
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def baseline_unusable(visit: str, where: str = "") -> str:
    """Start of the message of a follow-up whose baseline could not be used (it is followed by
    the baseline's reason): ``baseline 'v0' (manifest.csv line 2) could not be used for
    propagation: ``."""
    return f"baseline {visit!r}{f' ({where})' if where else ''} could not be used for propagation: "


def _image_info(img: Volume, volume: int | None = None) -> dict:
    """Geometry and series of a loaded image; ``volume_index`` is the volume asked for
    (None: the image's only one), ``files`` the files it was read from (for a DICOM
    series, those of that volume, in slice order: a DICOM SEG of the mask references
    them; the runner keeps them in memory only when pseudonymising, as paths often hold names)."""
    meta = img.meta or {}
    return {
        **img.describe(),
        "series_uid": meta.get("series_uid"), "description": meta.get("description"),
        "modality": meta.get("modality"), "warnings": list(meta.get("warnings") or []),
        "volume_index": volume, "files": [str(f) for f in meta.get("files") or []],
    }


def plain(obj: Any) -> Any:
    """JSON-ready copy of a result value (dataclasses, numpy, paths, tuples)."""
    kind = type(obj)  # the plain leaves first (most values): exactly these types, not subclasses
    if kind is str or kind is int or kind is bool or obj is None:
        return obj
    if kind is float:
        return None if obj != obj else obj
    # then the plain containers (exactly these types: they have no to_dict and are no dataclass)
    if kind is dict:
        return {str(k): plain(v) for k, v in obj.items() if not isinstance(v, Volume)}
    if kind is list or kind is tuple:
        return [plain(v) for v in obj]
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return plain(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not isinstance(getattr(obj, f.name), Volume)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items() if not isinstance(v, Volume)}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def run_task(task: ScanTask) -> TaskResult:
    """Process one scan: load → (propagate) → segment (or import the mask) → measure.

    Never raises: any error becomes a failed :class:`TaskResult` naming the
    stage, the scan (manifest line) and the problem.
    """
    timings: dict[str, float] = {}
    try:
        image = _stage("load", timings, load_image, task.image)
        registration = None
        if task.mask is not None:
            imported = _stage("mask", timings, _read_mask, task.mask, image, task.lesion_id)
            mask = imported.mask
            seg = {"status": "ok", "reason": "", "method": "imported", "source": "imported",
                   "flags": list(imported.flags), "params": {}, "qc": {"label": imported.label,
                                                                     "geometry_note": imported.geometry_note}}
        else:
            from ..segment import propagate, segment

            if task.prompt is not None:
                prompt = _stage("segment", timings, _prompt, task.prompt, image)
                source = "segmented"
            else:
                base_ref, base_spec = task.baseline
                try:
                    base_img = _stage("load", timings, load_image, base_ref)
                    base_prompt = _stage("register", timings, _prompt, base_spec, base_img)
                    # the baseline lesion as this pipeline segments it: its centre is what gets carried
                    base_seg = _stage("register", timings, segment_cached, base_img, base_spec, base_ref,
                                      task.method, task.params)
                except _StageError as err:
                    # the baseline's own problem (its row fails with it): not this scan's
                    raise _StageError("propagate", err.exc, baseline_unusable(task.baseline_visit,
                                                                              task.baseline_where)) from err.exc
                prompt, reg = _stage("register", timings, propagate, base_img, image, base_prompt,
                                     transform=task.registration,
                                     baseline_mask=base_seg.mask if base_seg.status == "ok" else None)
                registration = plain(reg)
                source = "propagated"
            result = _stage("segment", timings, segment, image, prompt, method=task.method, params=task.params)
            if source == "segmented":  # the follow-ups propagated from this scan need it again
                _remember_segmentation(_segmentation_key(task.image, task.prompt, task.method, task.params), result)
            seg = {"status": result.status, "reason": result.reason, "method": result.method,
                   "source": source, "flags": list(result.flags), "params": plain(result.params),
                   "qc": plain(result.qc)}
            vanished = (source == "propagated" and task.vanished_lesion == "empty" and result.status == "failed"
                        and NO_LESION_FLAG in (result.flags or []))
            if result.status == "empty" or vanished:
                # the method found no lesion at the (propagated) seed: a measured 0 mL, never a failure
                seg["flags"].append("lesion-not-found")
                mask = result.mask if result.mask is not None else image.with_array(
                    np.zeros(image.array.shape, dtype=bool))
            elif result.status != "ok" or result.mask is None:
                return TaskResult(task.task_key, False, stage="segment", error_type="SegmentationFailed",
                                  message=f"{task.where}: segmentation failed: {result.reason}",
                                  deterministic=True, segmentation=seg, registration=registration,
                                  image=_image_info(image, task.image.volume), timings=timings)
            else:
                mask = result.mask
        from ..measure import measure

        m = _stage("measure", timings, measure, mask, image)
        data, grid, n = pack_mask(mask)
        return TaskResult(task.task_key, True, measurement=plain(m), segmentation=seg, registration=registration,
                          image=_image_info(image, task.image.volume), mask_data=data, mask_grid=grid, n_voxels=n,
                          timings=timings)
    except _StageError as err:
        exc = err.exc
        deterministic = isinstance(exc, InputError)
        message = f"{task.where}: {err.note}{exc}" if task.where else f"{err.note}{exc}"
        if not deterministic:
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            message += " | " + "".join(tb[-3:]).strip().replace("\n", " ")
        return TaskResult(task.task_key, False, stage=err.stage, error_type=type(exc).__name__,
                          message=message, deterministic=deterministic, timings=timings)


def warm_up(itk_threads: int | None = None) -> None:
    """Import the heavy modules once per worker process (pool initializer).

    Parameters
    ----------
    itk_threads : int, optional
        Threads of SimpleITK filters and registration in this process (N
        workers on C cores get C // N each, so that they do not oversubscribe
        the cores); None leaves SimpleITK's default (all cores).
    """
    import SimpleITK
    import scipy.ndimage  # noqa: F401

    if itk_threads is not None:
        SimpleITK.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(itk_threads)))

    from .. import measure, segment  # noqa: F401
    from .._jit import warm_all
    from ..io import reader  # noqa: F401

    warm_all()  # compiled kernels: loaded (or compiled, first run on a machine) here, not in the first scan
