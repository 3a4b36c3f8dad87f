"""Header-only index of a DICOM folder tree: which series and stacks exist.

:func:`index_dicom` walks a folder recursively, reads each file's header once
(``stop_before_pixels``), skips what is not a DICOM image (logged at debug
level), groups frames by SeriesInstanceUID and splits each series into
*stacks*: frames that share orientation, matrix and pixel spacing. A stack
holds one or more volumes (dynamics, echoes, time points, ASL label/control)
that share their slice positions; :mod:`volumetry.io.dicom_geometry` deals
the frames at each position to those volumes.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DicomReadError
from .dicom_frames import FileHeader, Frame, read_header

log = logging.getLogger(__name__)

#: Frames join a stack when their orientation cosines differ from its first
#: frame's by at most this (dimensionless; the loader's ORIENTATION_TOL) ...
STACK_ORIENTATION_TOL = 1e-4
#: ... and their PixelSpacing by at most this (mm; the loader's PIXEL_SPACING_TOL_MM).
STACK_PIXEL_SPACING_TOL_MM = 1e-4
#: Two frames whose positions along the slice normal differ by less than this
#: (mm) are at the same slice position (they belong to different volumes).
SAME_POSITION_TOL_MM = 0.01


@dataclasses.dataclass(frozen=True)
class SeriesStack:
    """One stack of a series: frames of one kind (classic, enhanced, mosaic) sharing
    orientation, matrix and pixel size.

    Attributes
    ----------
    series_uid : str
        SeriesInstanceUID.
    stack_id : str
        Unique within an index and stable across runs: the series UID, with
        ``#n`` appended when the series splits into several stacks.
    patient_id, study_date, study_uid : str
        PatientID, StudyDate (YYYYMMDD), StudyInstanceUID.
    series_number : int or None
        SeriesNumber.
    description, modality, manufacturer : str
        SeriesDescription, Modality, Manufacturer.
    orientation : tuple of float
        ImageOrientationPatient (row then column cosines, LPS).
    rows, cols : int
        Matrix of one slice.
    pixel_spacing : tuple of float
        PixelSpacing (between rows, between columns), mm.
    n_slices : int
        Distinct slice positions.
    n_volumes : int
        Volumes (frames per slice position).
    files : tuple of str
        Files of the stack, sorted.
    kind : str
        ``classic``, ``enhanced`` or ``mosaic``.
    slice_thickness_mm, spacing_between_slices_mm : float or None
        Header fields, for information only (never used for geometry, except
        for a mosaic's tile spacing).
    volume_labels : tuple of str
        Description of each volume ("temporal position 2, TE 30 ms").
    notes : tuple of str
        Facts recorded in the loaded volume's warnings (e.g. where a mosaic's
        slice spacing came from).
    frames : tuple of Frame
        Every frame, for the loader.
    broken : tuple of str
        Errors of files of this series that cannot be read (truncated pixel data):
        loading the stack raises the first (the volume would miss their slices).
    """

    series_uid: str
    stack_id: str
    patient_id: str
    study_date: str
    study_uid: str
    series_number: int | None
    description: str
    modality: str
    manufacturer: str
    orientation: tuple[float, ...]
    rows: int
    cols: int
    pixel_spacing: tuple[float, float]
    n_slices: int
    n_volumes: int
    files: tuple[str, ...]
    kind: str
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None
    volume_labels: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    frames: tuple[Frame, ...] = dataclasses.field(default=(), repr=False, compare=False)
    broken: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Short name for messages: description and stack id."""
        return f"series '{self.description}' ({self.stack_id})"

    def summary(self) -> str:
        """One line: stack id, description and size, for selection messages."""
        vols = f" x {self.n_volumes} volumes" if self.n_volumes > 1 else ""
        return (f"{self.stack_id}  '{self.description}'  {self.modality}  "
                f"{self.cols}x{self.rows}x{self.n_slices}{vols}  ({len(self.files)} files)")

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (no geometry check, no pixels)."""
        return {
            "stack_id": self.stack_id,
            "series_uid": self.series_uid,
            "study_uid": self.study_uid,
            "patient_id": self.patient_id,
            "study_date": self.study_date,
            "series_number": self.series_number,
            "description": self.description,
            "modality": self.modality,
            "manufacturer": self.manufacturer,
            "kind": self.kind,
            "orientation": [float(v) for v in self.orientation],
            "matrix": [self.cols, self.rows],
            "pixel_spacing": [float(v) for v in self.pixel_spacing],
            "n_slices": self.n_slices,
            "n_volumes": self.n_volumes,
            "volumes": list(self.volume_labels),
            "slice_thickness_mm": self.slice_thickness_mm,
            "files": list(self.files),
        }


def _iter_files(root: Path, recursive: bool = True):
    if root.is_file():
        yield str(root)
        return
    if not recursive:
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.is_file():
                yield entry.path
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)


def read_headers(root: str | Path, *, recursive: bool = True,
                 broken: list[tuple[str, DicomReadError]] | None = None) -> list[FileHeader]:
    """Read the header of every DICOM image file under ``root`` (or of the file ``root``).

    ``recursive=False`` reads only the files directly inside the folder ``root``.

    Parameters
    ----------
    broken : list, optional
        When given, a file whose header names its series but whose pixel data is truncated
        or invalid does not stop the reading: ``(series_uid, error)`` is appended here (see
        :func:`build_stacks`), so that one bad file of one series of a PACS export fails
        that series only. A file whose header itself cannot be read always raises (it
        could belong to any series).

    Raises
    ------
    DicomReadError
        If ``root`` does not exist, or a DICOM file is truncated or unreadable.
    """
    root = Path(root)
    if not root.exists():
        raise DicomReadError(f"{root} does not exist; give a DICOM folder or file")
    headers = []
    skipped = 0
    for path in _iter_files(root, recursive):
        try:
            h = read_header(path)
        except DicomReadError as exc:
            uid = getattr(exc, "series_uid", "")
            if broken is None or not uid:
                raise
            broken.append((uid, exc))
            continue
        if h is None:
            skipped += 1
        else:
            headers.append(h)
    log.debug("%s: %d DICOM image files, %d other files skipped", root, len(headers), skipped)
    return headers


class _Group:
    """Frames of one prospective stack."""

    __slots__ = ("kind", "rows", "cols", "orientation", "pixel_spacing", "headers", "frames")

    def __init__(self, h: FileHeader, f: Frame):
        self.kind, self.rows, self.cols = h.kind, f.rows, f.cols
        self.orientation, self.pixel_spacing = f.orientation, f.pixel_spacing
        self.headers: list[FileHeader] = []
        self.frames: list[Frame] = []

    def accepts(self, h: FileHeader, f: Frame) -> bool:
        return (
            h.kind == self.kind and f.rows == self.rows and f.cols == self.cols
            and all(abs(a - b) <= STACK_ORIENTATION_TOL for a, b in zip(f.orientation, self.orientation))
            and all(abs(a - b) <= STACK_PIXEL_SPACING_TOL_MM for a, b in zip(f.pixel_spacing, self.pixel_spacing))
        )

    def add(self, h: FileHeader, f: Frame) -> None:
        if not self.headers or self.headers[-1] is not h:
            self.headers.append(h)
        self.frames.append(f)

    def sort_key(self) -> tuple:
        return (-len(self.frames), self.kind, self.rows, self.cols,
                tuple(round(v, 4) + 0.0 for v in self.orientation), self.pixel_spacing)


def _group_frames(headers: list[FileHeader]) -> list[_Group]:
    """Split one series' frames by kind, matrix, orientation and pixel spacing (within tolerances)."""
    groups: list[_Group] = []
    last: _Group | None = None
    for h in headers:
        for f in h.frames:
            g = last if last is not None and last.accepts(h, f) else next((c for c in groups if c.accepts(h, f)), None)
            if g is None:
                g = _Group(h, f)
                groups.append(g)
            g.add(h, f)
            last = g
    return sorted(groups, key=_Group.sort_key)


def position_clusters(frames: list[Frame] | tuple[Frame, ...]) -> tuple[np.ndarray, list[list[int]]]:
    """Group frames by slice position along the normal of the first frame.

    Returns
    -------
    distances : numpy.ndarray
        Position of each cluster along the normal (mm), ascending.
    clusters : list of list of int
        Frame indices in each cluster, in the order of ``distances``.
    """
    o = np.asarray(frames[0].orientation, dtype=float)
    normal = np.cross(o[:3], o[3:])
    normal /= np.linalg.norm(normal)
    pos = np.array([f.position for f in frames], dtype=float)
    d = pos @ normal
    order = np.argsort(d, kind="stable")
    ds = d[order]
    breaks = np.nonzero(np.diff(ds) > SAME_POSITION_TOL_MM)[0] + 1
    groups = np.split(order, breaks)
    return np.array([d[g].mean() for g in groups]), [g.tolist() for g in groups]


def _make_stack(headers: list[FileHeader], frames: list[Frame], stack_id: str) -> SeriesStack:
    h = headers[0]
    _, clusters = position_clusters(frames)
    n_volumes = max(len(c) for c in clusters)
    first = sorted(clusters[0], key=lambda i: frames[i].volume_key)
    labels = tuple(frames[i].volume_label for i in first) if n_volumes > 1 else ()
    if len(set(labels)) < len(labels):  # nothing tells the volumes apart but their order
        labels = tuple(", ".join(x for x in (lab, f"instance {frames[i].volume_key[4]}") if x)
                       for lab, i in zip(labels, first))
    if n_volumes > 1 and len(first) < n_volumes:
        labels = labels + ("?",) * (n_volumes - len(first))
    f0 = frames[0]
    return SeriesStack(
        series_uid=h.series_uid,
        stack_id=stack_id,
        patient_id=h.patient_id,
        study_date=h.study_date,
        study_uid=h.study_uid,
        series_number=h.series_number,
        description=h.description,
        modality=h.modality,
        manufacturer=h.manufacturer,
        orientation=f0.orientation,
        rows=f0.rows,
        cols=f0.cols,
        pixel_spacing=f0.pixel_spacing,
        n_slices=len(clusters),
        n_volumes=n_volumes,
        files=tuple(sorted({f.source.path for f in frames})),
        kind=h.kind,
        slice_thickness_mm=h.slice_thickness_mm,
        spacing_between_slices_mm=h.spacing_between_slices_mm,
        volume_labels=labels,
        notes=tuple(dict.fromkeys(n for h in headers for n in h.notes)),
        frames=tuple(frames),
    )


def build_stacks(headers: list[FileHeader], broken: list[tuple[str, DicomReadError]] = ()) -> list[SeriesStack]:
    """Group file headers into stacks (see module docstring).

    A file whose SOPInstanceUID was already seen is skipped when it is the
    same image exported twice (same series, frame positions and orientations),
    keeping the first copy in path order. A file sharing the UID but holding
    another slice (a broken export) is kept, with a note in its stack.
    ``broken`` (from :func:`read_headers`): the errors of unreadable files, by series;
    every stack of such a series carries them in ``broken`` and fails when loaded.

    Raises
    ------
    DicomReadError
        Every image file is such a file (truncated, or float pixel data, which is not
        read): the first one's error, instead of no stack ("no DICOM image").
    """
    if broken and not headers:
        exc = broken[0][1]
        more = f" (and {len(broken) - 1} more file(s) that cannot be read either)" if len(broken) > 1 else ""
        raise DicomReadError(f"{exc}{more}") from exc
    errors: dict[str, list[str]] = defaultdict(list)
    for uid, exc in broken:
        errors[uid].append(str(exc))
        log.warning("%s (series %s: that series cannot be loaded; the others can)", exc, uid)
    by_series: dict[str, list[FileHeader]] = defaultdict(list)
    seen: dict[str, FileHeader] = {}
    for h in headers:
        if h.sop_uid:
            first = seen.setdefault(h.sop_uid, h)
            if first.path != h.path:
                if _same_image(first, h):  # the same image exported twice: keep the first copy
                    log.info("skipping %s: a copy of %s (same SOPInstanceUID)", h.path, first.path)
                    continue
                note = (f"SOPInstanceUID {h.sop_uid} is shared by files holding different slices ({first.path}, "
                        f"{h.path}): both kept; the export rewrote its UIDs wrongly")
                log.warning("%s", note)
                h = dataclasses.replace(h, notes=h.notes + (note,))
        by_series[h.series_uid].append(h)
    stacks = []
    for uid, hs in by_series.items():
        groups = _group_frames(hs)  # stable order: most frames first, then kind, matrix, orientation
        for n, g in enumerate(groups, start=1):
            stack_id = uid if len(groups) == 1 else f"{uid}#{n}"
            stack = _make_stack(g.headers, g.frames, stack_id)
            if errors.get(uid):
                stack = dataclasses.replace(stack, broken=tuple(errors[uid]))
            stacks.append(stack)
    stacks.sort(key=lambda s: (s.study_date, s.study_uid, s.series_number if s.series_number is not None else -1,
                               s.series_uid, s.stack_id))
    return stacks


def _same_image(a: FileHeader, b: FileHeader) -> bool:
    """True when two headers describe the same image: same series, frame positions and orientations."""
    return a.series_uid == b.series_uid and len(a.frames) == len(b.frames) and all(
        fa.position == fb.position and fa.orientation == fb.orientation for fa, fb in zip(a.frames, b.frames))


def index_dicom(root: str | Path) -> list[SeriesStack]:
    """Index the DICOM images under ``root`` into stacks, reading headers only.

    Parameters
    ----------
    root : str or Path
        A folder (searched recursively) or a single file.

    Returns
    -------
    list of SeriesStack
        Sorted by study date, study, series number, series UID. Empty when
        there is no DICOM image.

    Raises
    ------
    DicomReadError
        If ``root`` does not exist, or a DICOM file's header is unreadable (the
        message names the file). A file whose header is read but whose pixel data
        is truncated fails only its series: its stacks carry the error in ``broken``; when no
        file can be read so, the first one's error is raised (see :func:`build_stacks`).
    """
    broken: list = []
    return build_stacks(read_headers(root, broken=broken), broken)
