"""DICOM Segmentation (SEG) export and import of lesion masks, with highdicom.

A mask made on a DICOM series is written as a BINARY SEG instance that
references every source image it was made on, so that a PACS viewer or
another tool shows it on the right slices. Reading a SEG back gives the same
mask on the same grid.

Geometry is never taken from file order: every source frame is placed on the
mask's grid through its ImagePositionPatient / ImageOrientationPatient /
PixelSpacing (LPS, mm), and the mapping must be exact (an axis permutation or
flip plus an integer shift) within :data:`SEG_GRID_TOL_MM`; otherwise the
mask is not on the series' grid and an error says how to fix it.

highdicom builds the instance (``engine="highdicom"``); by default the same
instance is written by :mod:`volumetry.io.seg_fast` without building it
(element for element equal, over ten times faster), which hands back to
highdicom whatever it does not cover.
"""
from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DicomReadError, GeometryMismatchError, InputError
from ..image import Volume

log = logging.getLogger(__name__)

#: Largest distance (mm) between a source pixel centre and the mask voxel
#: centre it is matched with; DICOM stores positions as decimal strings.
SEG_GRID_TOL_MM = 1e-3

#: Manufacturer written into the SEG's equipment module.
SEG_MANUFACTURER = "volumetry"

_ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")

#: Type-2 attributes (present, possibly empty) of the Patient and General Study modules that a
#: SEG takes from its first source image. Anonymised exports often drop them; the SEG then
#: carries them empty, as type 2 allows (both writers: see :func:`_with_empty_type2`).
SEG_TYPE2_FROM_SOURCE = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                         "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
#: Type-2 attribute of the Image Plane module of a single-frame source that the SEG's pixel
#: measures take from the first source image; absent, it is written empty there too.
SEG_TYPE2_IMAGE_FROM_SOURCE = ("SliceThickness",)

#: Type-1 attributes (present with a value) every source image must have: without them a SEG
#: cannot reference the image (UIDs), place it (frame of reference, matrix size) or say what it is.
SEG_TYPE1_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                      "FrameOfReferenceUID", "Modality", "Rows", "Columns")


@dataclass(frozen=True)
class _Frame:
    """Geometry of one source frame: ``affine`` maps ``(column, row, 0, 1)`` to LPS mm."""

    dataset_index: int
    frame_index: int
    affine: np.ndarray


def _as_float_list(value: Any, n: int, what: str, where: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise DicomReadError(f"{where}: {what} is not numeric ({value!r})") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise DicomReadError(f"{where}: {what} must hold {n} finite numbers, got {value!r}")
    return arr


def _frame_affine(ipp: Any, iop: Any, spacing: Any, where: str) -> np.ndarray:
    """4×4 matrix mapping ``(column, row, 0, 1)`` of a frame to LPS mm."""
    pos = _as_float_list(ipp, 3, "ImagePositionPatient", where)
    ori = _as_float_list(iop, 6, "ImageOrientationPatient", where)
    ps = _as_float_list(spacing, 2, "PixelSpacing", where)
    if np.any(ps <= 0):
        raise DicomReadError(f"{where}: PixelSpacing must be positive, got {list(ps)}")
    row_cos, col_cos = ori[:3], ori[3:]
    (r0, r1, r2), (c0, c1, c2) = row_cos.tolist(), col_cos.tolist()
    # np.cross(row_cos, col_cos), term for term (the same products and differences), without its overhead
    normal = (r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0)
    a = np.eye(4)
    # PixelSpacing is (row spacing = between rows, column spacing = between columns)
    a[:3, 0] = row_cos * ps[1]
    a[:3, 1] = col_cos * ps[0]
    a[:3, 2] = normal
    a[:3, 3] = pos
    return a


def _frames_of(datasets: Sequence[Any], names: Sequence[str]) -> list[_Frame]:
    """Geometry of every frame of the source datasets (single- or multi-frame)."""
    frames = _single_frames_of(datasets)
    if frames is not None:
        return frames
    frames = []
    for d, (ds, name) in enumerate(zip(datasets, names)):
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        if "PerFrameFunctionalGroupsSequence" in ds:
            shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
            for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
                def grp(keyword: str, item=item):
                    if keyword in item:
                        return item[keyword].value[0]
                    if shared is not None and keyword in shared:
                        return shared[keyword].value[0]
                    raise DicomReadError(
                        f"{name}: frame {f + 1} has no {keyword} (per-frame or shared); "
                        "the enhanced image lacks the geometry a SEG needs"
                    )
                ipp = grp("PlanePositionSequence").ImagePositionPatient
                iop = grp("PlaneOrientationSequence").ImageOrientationPatient
                ps = grp("PixelMeasuresSequence").PixelSpacing
                frames.append(_Frame(d, f, _frame_affine(ipp, iop, ps, f"{name} frame {f + 1}")))
        else:
            if n_frames != 1:
                raise DicomReadError(f"{name}: {n_frames} frames but no per-frame functional groups")
            for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
                if kw not in ds:
                    raise DicomReadError(f"{name}: {kw} is missing; a SEG can only reference images with geometry")
            frames.append(_Frame(d, 0, _frame_affine(ds.ImagePositionPatient, ds.ImageOrientationPatient,
                                                      ds.PixelSpacing, name)))
    return frames


def _single_frames_of(datasets: Sequence[Any]) -> list[_Frame] | None:
    """:func:`_frames_of` of single-frame images, their matrices computed all at once with the
    same arithmetic as :func:`_frame_affine` (the same numbers); None when a dataset is not a
    single-frame image with valid geometry (:func:`_frames_of` then raises the error naming it)."""
    values = []
    for ds in datasets:
        if "PerFrameFunctionalGroupsSequence" in ds or int(ds.get("NumberOfFrames", 1) or 1) != 1:
            return None
        try:
            ipp = [float(v) for v in ds.get("ImagePositionPatient")]
            iop = [float(v) for v in ds.get("ImageOrientationPatient")]
            ps = [float(v) for v in ds.get("PixelSpacing")]
        except (TypeError, ValueError):
            return None
        if len(ipp) != 3 or len(iop) != 6 or len(ps) != 2:
            return None
        values.append(ipp + iop + ps)
    v = np.array(values, dtype=float).reshape(len(values), 11)
    if not np.all(np.isfinite(v)):
        return None
    pos, ori, ps = v[:, :3], v[:, 3:9], v[:, 9:]
    if np.any(ps <= 0):
        return None
    (r0, r1, r2), (c0, c1, c2) = ori[:, :3].T, ori[:, 3:].T
    a = np.zeros((len(values), 4, 4))
    a[:, 3, 3] = 1.0
    a[:, :3, 0] = ori[:, :3] * ps[:, 1:2]
    a[:, :3, 1] = ori[:, 3:] * ps[:, 0:1]
    a[:, 0, 2] = r1 * c2 - r2 * c1
    a[:, 1, 2] = r2 * c0 - r0 * c2
    a[:, 2, 2] = r0 * c1 - r1 * c0
    a[:, :3, 3] = pos
    return [_Frame(d, 0, a[d]) for d in range(len(values))]


def _map_frame(frame_affine: np.ndarray, grid: Volume, rows: int, cols: int, where: str) -> "_FrameMap":
    """Place a frame on ``grid``: which voxel each of its ``(rows, cols)`` pixels is.

    Raises
    ------
    GeometryMismatchError
        If the frame's pixels do not fall exactly on voxel centres of ``grid``.
    """
    inv = np.linalg.inv(grid.affine)
    m = inv @ frame_affine  # (column, row, 0, 1) -> continuous (i, j, k, 1)
    spacing = np.asarray(grid.spacing)
    idx_axes = []
    for col in (0, 1):
        v = m[:3, col]
        ax = int(np.argmax(np.abs(v)))
        sign = float(np.sign(v[ax]))
        exact = np.zeros(3)
        exact[ax] = sign
        if np.abs(v - exact).max() > 0.1:  # exactness is checked at the corners below
            raise GeometryMismatchError(
                f"{where}: the source frame's pixel grid does not match the mask's voxel grid "
                f"(a {'column' if col == 0 else 'row'} step lands at index offset {np.round(v, 4)} of the mask); "
                "make the mask on this series' grid (or resample it onto the series with nearest neighbour)"
            )
        idx_axes.append((ax, int(sign)))
    if idx_axes[0][0] == idx_axes[1][0]:
        raise GeometryMismatchError(f"{where}: rows and columns of the source frame map onto one mask axis")
    t = m[:3, 3]
    t_round = np.round(t)
    if np.abs((t - t_round) * spacing).max() > SEG_GRID_TOL_MM:
        raise GeometryMismatchError(
            f"{where}: the source frame's first pixel lies between mask voxels "
            f"(continuous index {np.round(t, 4)} in (i, j, k)); the mask is not on the series' grid; "
            "make the mask on this series (or resample it onto the series with nearest neighbour)"
        )
    # full check of the frame's corners (catches accumulated drift)
    for c, r in ((cols - 1, 0), (0, rows - 1), (cols - 1, rows - 1)):
        p = m @ np.array([c, r, 0.0, 1.0])
        expect = t_round.copy()
        expect[idx_axes[0][0]] += idx_axes[0][1] * c
        expect[idx_axes[1][0]] += idx_axes[1][1] * r
        if np.abs((p[:3] - expect) * spacing).max() > SEG_GRID_TOL_MM:
            raise GeometryMismatchError(
                f"{where}: pixel (row {r}, column {c}) of the source frame is off the mask's voxel centres "
                f"by {np.abs((p[:3] - expect) * spacing).max():.3g} mm; the mask is not on the series' grid"
            )
    return _FrameMap(tuple(int(v) for v in t_round), idx_axes[0], idx_axes[1], rows, cols)


@dataclass(frozen=True)
class _FrameMap:
    """Where a frame's pixels sit in a grid: first pixel at voxel ``start`` (i, j, k), a
    column step moves ``col_sign`` along mask axis ``col_axis`` (0 = i, 1 = j, 2 = k), a row
    step ``row_sign`` along ``row_axis``."""

    start: tuple[int, int, int]
    col: tuple[int, int]
    row: tuple[int, int]
    rows: int
    cols: int

    def inside(self, shape_kji: tuple[int, int, int]) -> bool:
        """True when every pixel of the frame falls inside an array of shape ``(nk, nj, ni)``."""
        size = shape_kji[::-1]  # (ni, nj, nk)
        lo, hi = list(self.start), list(self.start)
        for (ax, sign), n in ((self.col, self.cols), (self.row, self.rows)):
            end = self.start[ax] + sign * (n - 1)
            lo[ax], hi[ax] = min(self.start[ax], end), max(self.start[ax], end)
        return all(0 <= lo[a] and hi[a] < size[a] for a in range(3))

    def view(self, arr: np.ndarray) -> np.ndarray:
        """The frame's ``(rows, cols)`` plane of ``arr`` (indexed [k, j, i]) as a view (basic slicing)."""
        index: list[Any] = [None, None, None]
        fixed = ({0, 1, 2} - {self.col[0], self.row[0]}).pop()
        index[2 - fixed] = self.start[fixed]
        for (ax, sign), n in ((self.col, self.cols), (self.row, self.rows)):
            a0 = self.start[ax]
            stop = a0 + sign * n
            index[2 - ax] = slice(a0, stop if stop >= 0 else None, sign)
        plane = arr[tuple(index)]
        # the remaining array axes are in array order; rows must come first
        return plane if (2 - self.row[0]) < (2 - self.col[0]) else plane.T


def _hoist_frame_geometry(ds: Any) -> Any:
    """A copy of an enhanced header with per-frame pixel measures / orientation also in the
    shared functional groups (highdicom reads them there only). The frames' geometry has
    been checked to agree with the mask's grid, so the values are the same for every frame."""
    if "PerFrameFunctionalGroupsSequence" not in ds or "SharedFunctionalGroupsSequence" not in ds:
        return ds
    shared = ds.SharedFunctionalGroupsSequence[0]
    first = ds.PerFrameFunctionalGroupsSequence[0]
    missing = [kw for kw in ("PixelMeasuresSequence", "PlaneOrientationSequence")
               if kw not in shared and kw in first]
    if not missing:
        return ds
    import copy

    ds = copy.deepcopy(ds)
    shared = ds.SharedFunctionalGroupsSequence[0]
    for kw in missing:
        setattr(shared, kw, copy.deepcopy(ds.PerFrameFunctionalGroupsSequence[0][kw].value))
    return ds


def _require_type1(datasets: Sequence[Any], names: Sequence[str]) -> None:
    """Refuse a source image without one of :data:`SEG_TYPE1_REQUIRED` (or with it empty).

    Raises
    ------
    DicomReadError
        Naming the file and the attribute.
    """
    for ds, name in zip(datasets, names):
        for keyword in SEG_TYPE1_REQUIRED:
            value = ds.get(keyword) if keyword in ds else None
            if value is None or (isinstance(value, str) and not value.strip(" \0")):
                state = "missing" if keyword not in ds else "empty"
                raise DicomReadError(
                    f"{name}: {keyword} is {state}; it is a type 1 attribute (required, with a value) that a "
                    "DICOM SEG needs to reference and place this image. The file was probably stripped by an "
                    "anonymiser that removes required attributes: export the series again keeping its UIDs "
                    "and image attributes (the NIfTI mask does not need them)"
                )


#: Attributes every source image of one SEG must share (a SEG references one study, one frame
#: of reference and frames of one matrix size).
SEG_SHARED_BY_SOURCES = ("StudyInstanceUID", "FrameOfReferenceUID", "Rows", "Columns")


def _require_one_study_and_matrix(datasets: Sequence[Any], names: Sequence[str]) -> None:
    """Refuse source images that differ in one of :data:`SEG_SHARED_BY_SOURCES`.

    Raises
    ------
    InputError
        Naming the first file that differs from the first file, the attribute and both values.
    """
    first = datasets[0]
    for keyword in SEG_SHARED_BY_SOURCES:
        expected = str(first.get(keyword))
        for ds, name in zip(datasets[1:], names[1:]):
            value = str(ds.get(keyword))
            if value != expected:
                raise InputError(
                    f"{name}: {keyword} {value!r} differs from {expected!r} of {names[0]}; the source files of "
                    "one SEG must be one series of one study on one frame of reference with one matrix size: "
                    "pass only the files of the series the mask was made on (or export the series again)"
                )


def _with_empty_type2(ds: Any) -> Any:
    """``ds``, or a copy of it with the :data:`SEG_TYPE2_FROM_SOURCE` attributes it lacks (and,
    for a single-frame image, :data:`SEG_TYPE2_IMAGE_FROM_SOURCE`) added empty, what type 2
    allows, so that both writers copy them into the SEG empty instead of failing (highdicom
    reads them from the first source image). The source is never changed."""
    wanted = SEG_TYPE2_FROM_SOURCE
    if "PerFrameFunctionalGroupsSequence" not in ds:
        wanted += SEG_TYPE2_IMAGE_FROM_SOURCE
    missing = [kw for kw in wanted if kw not in ds]
    if not missing:
        return ds
    import copy

    patched = copy.deepcopy(ds)
    for keyword in missing:
        setattr(patched, keyword, "")
    log.debug("%s: type 2 attributes %s absent; written empty in the SEG",
              getattr(ds, "filename", None) or "source image", ", ".join(missing))
    return patched


def _refuse_mosaic(datasets: Sequence[Any], names: Sequence[str]) -> None:
    for ds, name in zip(datasets, names):
        if "MOSAIC" in [str(v).upper() for v in (ds.get("ImageType") or [])]:
            raise InputError(
                f"{name}: a Siemens mosaic tiles every slice into one image, which a DICOM SEG cannot reference "
                "slice by slice; keep the NIfTI mask for this series (or export the series unmosaicked)"
            )


def _load_sources(source_dicom_files: Sequence[Any], light: bool = False) -> tuple[list[Any], list[str]]:
    """Source headers and their names. With ``light``, files after the first are parsed by the raw
    header reader (:class:`volumetry.io.seg_fast.LightHeader`) when it can; the first is always a
    pydicom data set (its patient and study modules are copied into the SEG)."""
    import pydicom

    if isinstance(source_dicom_files, (str, Path)):
        raise InputError(
            f"source_dicom_files must be a list of DICOM files of the series, got one path {source_dicom_files!r}; "
            "pass the files of the series (e.g. Volume.meta['files'])"
        )
    datasets, names = [], []
    shared: dict = {}  # values decoded once for the light headers of the series (see read_light_header)
    for src in source_dicom_files:
        if isinstance(src, pydicom.Dataset):
            datasets.append(src)
            names.append(str(getattr(src, "filename", None) or f"dataset {src.get('SOPInstanceUID', '?')}"))
            continue
        light_file = light and bool(datasets)
        if light_file and type(src) is str and _is_path_name(src):
            path, name = None, src  # str(Path(src)) is src: no Path made for a file the light reader reads
        else:
            path = src if isinstance(src, Path) else Path(src)
            name = str(path)
        try:
            ds = None
            if light_file:
                from .seg_fast import read_light_header

                ds = read_light_header(name, shared)
            if ds is None:
                if path is None:
                    path = Path(name)
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except FileNotFoundError as exc:
            raise InputError(f"{name}: source DICOM file not found") from exc
        except Exception as exc:  # pydicom raises several types for non-DICOM input
            raise DicomReadError(f"{name}: not a readable DICOM file ({exc})") from exc
        datasets.append(ds)
        names.append(name)
    if not datasets:
        raise InputError("write_seg needs the source DICOM files of the series the mask was made on; got none")
    if _light_checks_pass(datasets):
        return datasets, names
    # the checks one by one: the first that fails raises the error naming the file
    _require_type1(datasets, names)
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(series) != 1:
        raise InputError(
            f"the source files belong to {len(series)} series ({', '.join(sorted(series))}); "
            "pass only the files of the series the mask was made on"
        )
    _require_one_study_and_matrix(datasets, names)
    if len(datasets) > 1 and any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in datasets):
        raise InputError("a SEG references either single-frame images or exactly one multi-frame image; "
                         "pass one enhanced file or the single-frame files")
    return datasets, names


def _is_path_name(text: str) -> bool:
    """True when ``str(Path(text)) == text`` surely holds (a POSIX path without empty or ``.``
    components, a trailing slash or a doubled one; False also for some that hold, which then go
    through ``Path``)."""
    return (os.sep == "/" and text != "" and text != "." and "//" not in text and "/./" not in text
            and not text.endswith(("/", "/.")) and not text.startswith("./") and "\0" not in text)


def _light_values_of(ds: Any) -> dict | None:
    """The decoded values of a light header read with every :data:`~volumetry.io.seg_fast._LIGHT_KEYWORDS`
    value decoded at read time (the common case), or None for any other header."""
    from .seg_fast import LightHeader

    if type(ds) is not LightHeader or ds._raw is not None:
        return None
    return ds._cache


def _light_checks_pass(datasets: Sequence[Any]) -> bool:
    """True when the checks of :func:`_load_sources` (type 1 attributes, one series, one study /
    frame of reference / matrix size, no multi-frame image among several) all pass, decided from
    the values the light headers decoded when they were read (every header but the first); False
    when a header is not such a light header or a check fails (the checks then run one by one
    and raise the error naming the file). The first header is checked as before."""
    from .seg_fast import _MISSING

    first = datasets[0]
    rest = [_light_values_of(ds) for ds in datasets[1:]]
    if any(v is None for v in rest):
        return False
    try:
        _require_type1([first], ["first"])
    except DicomReadError:
        return False
    for values in rest:
        for keyword in SEG_TYPE1_REQUIRED:
            value = values.get(keyword, _MISSING)
            if value is _MISSING or value is None or (isinstance(value, str) and not value.strip(" \0")):
                return False
    series = str(first.get("SeriesInstanceUID", ""))
    shared = [(keyword, str(first.get(keyword))) for keyword in SEG_SHARED_BY_SOURCES]
    for values in rest:
        if str(values["SeriesInstanceUID"]) != series:
            return False
        for keyword, expected in shared:
            if str(values[keyword]) != expected:
                return False
    if rest:
        frames = [first.get("NumberOfFrames", 1)] + [v["NumberOfFrames"] for v in rest]
        for n in frames:
            if n is _MISSING:
                n = 1
            if int(n or 1) > 1:
                return False
    return True


def series_files(path: str | Path, *, series_uid: str | None = None,
                 volume_index: int | None = None) -> list[Path]:
    """The DICOM files of the series (and volume) an image was loaded from, headers only.

    The same selection as :func:`volumetry.io.dicom.load_dicom` makes, for a
    caller that has the mask but not the loaded image (``image.meta["files"]``
    holds the same list when it has).

    Parameters
    ----------
    path : str or Path
        DICOM folder or file, as given to ``read_image``.
    series_uid : str, optional
        SeriesInstanceUID (or stack id) selecting the series.
    volume_index : int, optional
        Volume of a multi-volume series.

    Returns
    -------
    list of Path
        The files holding the selected volume's frames, in slice order.

    Raises
    ------
    DicomReadError
        Missing path or unreadable file.
    SeriesSelectionError
        No or several series match.
    """
    from .dicom import select_stack, stack_grid, stacks_for_path

    stacks = stacks_for_path(path)
    stack = select_stack(stacks, series_uid, str(path))
    _, grid = stack_grid(stack, volume_index=volume_index)
    files: list[Path] = []
    for f in grid.frames:
        p = Path(f.source.path)
        if p not in files:
            files.append(p)
    return files


def _write_atomically(out_path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` to a hidden temporary file beside ``out_path`` (``.<name>.tmp``; parent folders
    created when missing), then rename it to ``out_path``: a reader (or a run killed meanwhile) never
    sees half a file. The temporary file is removed when the write or the rename fails."""
    if not os.path.isdir(out_path.parent):
        out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name("." + out_path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_seg(
    mask: Volume,
    source_dicom_files: Sequence[Any],
    out_path: str | Path,
    *,
    label: str = "lesion",
    algorithm_name: str = "volumetry",
    algorithm_type: str = "SEMIAUTOMATIC",
    series_number: int = 9901,
    series_description: str | None = "volumetry lesion mask",
    overrides: Mapping[str, Any] | None = None,
    omit_empty_frames: bool = False,
    engine: str = "fast",
    uid_map: Callable[[str], str] | None = None,
) -> Path:
    """Write a binary mask as a DICOM SEG instance referencing its source images.

    Parameters
    ----------
    mask : Volume
        Boolean (or 0/1) mask on the grid of the source series (LPS, mm).
    source_dicom_files : sequence of path or pydicom.Dataset, or SegSources
        The DICOM files (single-frame images, or one enhanced multi-frame
        image) of the series the mask was made on. Only headers are read.
        Their order does not matter: each frame is placed by its geometry.
        A :class:`SegSources` from :func:`prepare_sources` holds them already
        read (several masks of one series).
    out_path : str or Path
        File to write (parent folders are created); written to ``.<name>.tmp`` beside it and
        renamed, so it is never seen half-written.
    label : str
        Segment label (e.g. ``"lesion"`` or ``"lesion 2"``).
    algorithm_name : str
        Name of the algorithm recorded in the segment description.
    algorithm_type : {"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"}
        How the mask was made.
    series_number : int
        SeriesNumber of the new SEG series.
    series_description : str or None
        SeriesDescription of the SEG.
    overrides : mapping, optional
        Attributes (DICOM keywords) set on the SEG after it is built, e.g.
        ``{"PatientID": "<pseudonym>", "PatientName": "<pseudonym>"}`` for
        pseudonymised outputs. The SEG otherwise copies the patient and study
        modules of the source images.
    omit_empty_frames : bool
        Leave out frames without any mask voxel. The default (False) keeps
        every frame so that :func:`read_seg` can rebuild the full grid
        without the source images.
    engine : {"fast", "highdicom"}
        ``"highdicom"`` builds the instance with ``highdicom.seg.Segmentation``
        (the reference). ``"fast"`` (default) writes the same data set
        (:mod:`volumetry.io.seg_fast`; equal element for element except UIDs
        and creation date/time) in about a millisecond, and falls back to
        highdicom for the cases it does not cover (enhanced multi-frame
        sources, omitted empty frames, ...).
    uid_map : callable, optional
        Pseudonymised outputs: every UI element of the SEG (nested sequences included)
        whose value is an instance UID of a source header (its StudyInstanceUID,
        SeriesInstanceUID, SOPInstanceUID or FrameOfReferenceUID; :data:`SEG_SOURCE_UIDS`)
        is replaced by ``uid_map(value)``, e.g.
        :meth:`volumetry.pseudonym.Pseudonymizer.uid`. Standard UIDs (SOP classes,
        transfer syntax, codes) and the SEG's own new UIDs are left as they are. The frames
        keep their positions, so :func:`read_seg` still places the SEG on the image's grid.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    InputError
        If no source files are given, they mix series, studies, frames of reference or
        matrix sizes (:data:`SEG_SHARED_BY_SOURCES`; the message names the file), or
        ``algorithm_type`` is unknown.
    DicomReadError
        If a source file is unreadable, lacks geometry, or lacks (or has empty) a type 1
        attribute of :data:`SEG_TYPE1_REQUIRED` (the message names the file and the
        attribute). Type 2 attributes the SEG copies but the source lacks
        (:data:`SEG_TYPE2_FROM_SOURCE`, an anonymised export) are written empty instead.
    GeometryMismatchError
        If the mask is not on the source series' grid (a pixel of a source
        frame is off the mask's voxel centres by more than
        :data:`SEG_GRID_TOL_MM`, or falls outside the mask), or the mask has
        foreground voxels on slices the source files do not cover.
    """
    import highdicom as hd

    from .._version import __version__

    out_path = Path(out_path)
    if engine not in ("fast", "highdicom"):
        raise InputError(f"engine must be 'fast' or 'highdicom', got {engine!r}")
    algorithm_type = str(algorithm_type).upper()
    if algorithm_type not in _ALGORITHM_TYPES:
        raise InputError(f"algorithm_type must be one of {_ALGORITHM_TYPES}, got {algorithm_type!r}")
    arr = np.asarray(mask.array)
    if arr.dtype != bool:
        values = np.unique(arr)
        if not np.all(np.isin(values, (0, 1))):
            raise InputError(f"a SEG mask must be binary (0/1), got values {values[:10]}")
        arr = arr.astype(bool)

    fast = engine == "fast" and not omit_empty_frames
    sources = source_dicom_files if isinstance(source_dicom_files, SegSources) else \
        prepare_sources(source_dicom_files, light=fast)
    datasets, names, frames = sources.datasets, sources.names, sources.frames
    datasets = [sources.first_for_seg(), *datasets[1:]]  # type 2 attributes it lacks, empty
    plane_maps, positions, uncovered = _planes_of(sources, mask)
    if uncovered is not None and np.any(arr & uncovered):
        raise GeometryMismatchError(
            f"the mask has {int(np.count_nonzero(arr & uncovered))} foreground voxels on slices that none of the "
            f"{len(datasets)} source files covers; pass every file of the series"
        )
    pixel_array = np.stack([fmap.view(arr) for fmap in plane_maps]).view(np.uint8)  # 0/1 (arr is bool)
    a0 = frames[0].affine
    spacing_rc = (float(np.linalg.norm(a0[:3, 1])), float(np.linalg.norm(a0[:3, 0])))  # (between rows, columns)
    orientation = np.r_[a0[:3, 0] / spacing_rc[1], a0[:3, 1] / spacing_rc[0]]
    description = _segment_description(str(label)[:64], algorithm_type, algorithm_name)
    if fast:
        from . import seg_fast

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*unlikely to represent the intended person name",
                                    category=UserWarning)
            built = seg_fast.plan(
                datasets, pixel_array, positions, orientation=orientation, pixel_spacing=spacing_rc,
                description=description, series_uid=hd.UID(), sop_uid=hd.UID(), series_number=int(series_number),
                series_description=series_description, manufacturer=SEG_MANUFACTURER, model_name="volumetry",
                software_versions=__version__, device_serial_number="0", overrides=overrides,
                refs=sources.fast_refs(), memo=sources.fast_memo)
        if built is not None:
            if uid_map is None:
                _write_atomically(out_path, lambda tmp: tmp.write_bytes(seg_fast.encode(built)))
            else:
                mapping = _source_uid_map(sources.datasets, uid_map)
                data = seg_fast.encode(built, uid_mapping=mapping)  # the UIDs mapped while encoding
                if data is not None:
                    _write_atomically(out_path, lambda tmp: tmp.write_bytes(data))
                else:  # a source UID the encoder does not reach: map the data set read back
                    import io

                    import pydicom

                    ds = pydicom.dcmread(io.BytesIO(seg_fast.encode(built)))
                    map_source_uids(ds, mapping)
                    _write_atomically(out_path, ds.save_as)
            if log.isEnabledFor(logging.INFO):
                log.info("wrote DICOM SEG %s (%d frames, %d mask voxels; fast path)", out_path, pixel_array.shape[0],
                         int(np.count_nonzero(arr)))
            return out_path
        log.debug("%s: SEG written by highdicom (outside the fast path's cases)", out_path)
    datasets = sources.full_datasets()  # highdicom needs pydicom data sets (light headers are re-read)
    datasets = [sources.first_for_seg(), *datasets[1:]]  # type 2 attributes it lacks, empty
    geometry = (
        hd.PixelMeasuresSequence(pixel_spacing=spacing_rc, slice_thickness=float(mask.spacing[2])),
        hd.PlaneOrientationSequence(coordinate_system="PATIENT", image_orientation=[float(v) for v in orientation]),
        [hd.PlanePositionSequence(coordinate_system="PATIENT", image_position=[float(v) for v in p])
         for p in positions],
    )
    datasets = [_hoist_frame_geometry(ds) for ds in datasets]
    with warnings.catch_warnings():
        # the source's PatientName is copied as it is; highdicom's advice on its format is noise here
        warnings.filterwarnings("ignore", message=r".*unlikely to represent the intended person name",
                                category=UserWarning)
        seg = _build_seg(hd, datasets, pixel_array, geometry, description,
                         series_number, omit_empty_frames, series_description)
    for keyword, value in (overrides or {}).items():
        setattr(seg, keyword, value)
    if uid_map is not None:
        map_source_uids(seg, _source_uid_map(datasets, uid_map))
    _write_atomically(out_path, seg.save_as)
    log.info("wrote DICOM SEG %s (%d frames, %d mask voxels)", out_path, pixel_array.shape[0],
             int(np.count_nonzero(arr)))
    return out_path


#: Instance UIDs of a source header that a SEG copies or references (``uid_map`` of :func:`write_seg`).
SEG_SOURCE_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def _source_uid_map(datasets: Sequence[Any], uid_map: Callable[[str], str]) -> dict[str, str]:
    """Real → pseudo of every :data:`SEG_SOURCE_UIDS` value of the source headers."""
    out: dict[str, str] = {}
    for ds in datasets:
        for keyword in SEG_SOURCE_UIDS:
            value = str(ds.get(keyword, "") or "").strip()
            if value and value not in out:
                out[value] = uid_map(value)
    return out


def map_source_uids(ds: Any, mapping: Mapping[str, str]) -> int:
    """Replace, in place, every UI element of ``ds`` (nested sequences included) whose value
    (or one of whose values) is a key of ``mapping`` by the mapped UID; return how many
    elements changed. The file meta (the instance's own UIDs and transfer syntax) is left."""
    n = 0
    for elem in ds.iterall():
        if elem.VR != "UI" or elem.value is None:
            continue
        if isinstance(elem.value, str):
            if elem.value in mapping:
                elem.value = mapping[elem.value]
                n += 1
        elif any(str(v) in mapping for v in elem.value):
            elem.value = [mapping.get(str(v), str(v)) for v in elem.value]
            n += 1
    return n


@functools.lru_cache(maxsize=64)
def _segment_description(label: str, algorithm_type: str, algorithm_name: str):
    """highdicom's SegmentDescription of a volumetry lesion segment (built once per label;
    treated as read-only by both writers)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .._version import __version__

    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=algorithm_type,
        algorithm_identification=None if algorithm_type == "MANUAL" else hd.AlgorithmIdentificationSequence(
            name=algorithm_name, family=codes.cid7162.NeighborhoodAnalysis, version=__version__,
        ),
    )


class SegSources:
    """The headers of a series' source images, read once for any number of SEGs.

    Built by :func:`prepare_sources`; pass it to :func:`write_seg` in place of
    the file list to write several masks (lesions) of one series without
    reading the headers again. Holds the headers (the first as a pydicom data
    set, the others possibly as light raw headers), their names and the
    geometry of every frame.
    """

    def __init__(self, files: Sequence[Any], datasets: list[Any], names: list[str], frames: list[_Frame]) -> None:
        self.files = list(files)
        self.datasets = datasets
        self.names = names
        self.frames = frames
        self._refs: list | None = None
        self._maps: dict = {}
        self._first: tuple[Any, Any] | None = None  # (first header, its copy for the SEG)
        #: what :func:`volumetry.io.seg_fast.plan` derives from the first header, kept between SEGs
        self.fast_memo: dict = {}

    def fast_refs(self) -> list:
        """:func:`volumetry.io.seg_fast.source_ref` of every header (computed once)."""
        if self._refs is None:
            from .seg_fast import source_ref

            self._refs = [source_ref(ds) for ds in self.datasets]
        return self._refs

    def first_for_seg(self) -> Any:
        """The first header as the SEG copies it: with the type 2 attributes it lacks
        (:data:`SEG_TYPE2_FROM_SOURCE`) added empty, in a copy made once (the header itself
        is left as read)."""
        first = self.datasets[0]
        if self._first is None or self._first[0] is not first:
            self._first = (first, _with_empty_type2(first))
        return self._first[1]

    def full_datasets(self) -> list[Any]:
        """Every header as a pydicom data set (re-reads the files parsed by the light reader)."""
        import pydicom

        if any(not isinstance(ds, pydicom.Dataset) for ds in self.datasets):
            self.datasets, self.names = _load_sources(self.files)
            self._refs = None
        return self.datasets


def prepare_sources(source_dicom_files: Sequence[Any], *, light: bool = True) -> SegSources:
    """Read (headers only) and check the source images of a SEG once.

    Parameters
    ----------
    source_dicom_files : sequence of path or pydicom.Dataset
        As for :func:`write_seg`.
    light : bool
        Parse the files after the first with the raw header reader (fast);
        :func:`write_seg` re-reads them with pydicom if highdicom has to write.

    Returns
    -------
    SegSources

    Raises
    ------
    InputError, DicomReadError
        As :func:`write_seg` for its ``source_dicom_files`` (a source image without one of
        :data:`SEG_TYPE1_REQUIRED` is refused here, naming the file).
    """
    datasets, names = _load_sources(source_dicom_files, light=light)
    frames = _frames_of(datasets, names)
    _refuse_mosaic(datasets, names)
    return SegSources(source_dicom_files, datasets, names, frames)


def _map_frames(sources: SegSources, grid: Volume) -> list[_FrameMap]:
    """:func:`_map_frame` of every source frame onto ``grid`` (each frame inside the grid).

    The common case (every frame exactly on the grid) is checked on all frames at
    once with the same arithmetic and tolerances; any failure re-runs the frame by
    frame check, which raises the error naming the first bad frame.
    """
    key = (grid.array.shape, tuple(np.asarray(grid.affine).ravel()))
    cached = sources._maps.get(key)
    if cached is not None:
        return cached
    datasets, names, frames = sources.datasets, sources.names, sources.frames
    shape = grid.array.shape
    used = sorted({fr.dataset_index for fr in frames})
    dims = {(int(datasets[d].Rows), int(datasets[d].Columns)) for d in used}
    maps = _map_frames_batched(frames, grid, dims.pop()) if len(dims) == 1 else None
    if maps is None:
        maps = []
        for fr in frames:
            ds = datasets[fr.dataset_index]
            rows, cols = int(ds.Rows), int(ds.Columns)
            where = names[fr.dataset_index] + (f" frame {fr.frame_index + 1}" if len(frames) > len(datasets) else "")
            fmap = _map_frame(fr.affine, grid, rows, cols, where)
            if not fmap.inside(shape):
                raise GeometryMismatchError(
                    f"{where}: the source frame reaches outside the mask's grid (mask size {grid.size} in (i, j, k)); "
                    "make the mask on the whole series"
                )
            maps.append(fmap)
    sources._maps[key] = maps
    return maps


def _planes_of(sources: SegSources, grid: Volume) -> tuple[list[_FrameMap], list[np.ndarray], np.ndarray | None]:
    """The planes of ``grid`` a SEG of these sources holds, worked out once per grid: the frame maps
    (:func:`_map_frames`) in source order, each place once (the first of several volumes, dynamics or
    echoes, at one place), the position (LPS mm) of each, and the voxels of ``grid`` that no frame
    covers (None when the frames cover every voxel)."""
    key = ("planes", grid.array.shape, tuple(np.asarray(grid.affine).ravel()))
    cached = sources._maps.get(key)
    if cached is not None:
        return cached
    plane_maps, positions, seen = [], [], set()
    for fr, fmap in zip(sources.frames, _map_frames(sources, grid)):
        if fmap in seen:  # another volume (dynamic, echo) of a multi-frame source at the same place
            continue
        seen.add(fmap)
        plane_maps.append(fmap)
        positions.append(fr.affine[:3, 3])
    uncovered = None
    if not _cover_every_slice(plane_maps, grid.array.shape):
        covered = np.zeros(grid.array.shape, dtype=bool)
        for fmap in plane_maps:
            fmap.view(covered)[...] = True
        uncovered = None if covered.all() else ~covered
    cached = (plane_maps, positions, uncovered)
    sources._maps[key] = cached
    return cached


def _cover_every_slice(plane_maps: Sequence[_FrameMap], shape_kji: tuple[int, int, int]) -> bool:
    """True when the frames (each inside the grid) are whole slices of the grid along one axis, one
    at every index of it: then they cover every voxel (False: look voxel by voxel)."""
    size = shape_kji[::-1]  # (ni, nj, nk)
    fixed_axes, indices = set(), set()
    for fmap in plane_maps:
        if fmap.cols != size[fmap.col[0]] or fmap.rows != size[fmap.row[0]]:
            return False
        fixed = 3 - fmap.col[0] - fmap.row[0]
        fixed_axes.add(fixed)
        indices.add(fmap.start[fixed])
    return len(fixed_axes) == 1 and len(indices) == size[fixed_axes.pop()]


def _map_frames_batched(frames: list[_Frame], grid: Volume, rows_cols: tuple[int, int]) -> list[_FrameMap] | None:
    """The frame maps of :func:`_map_frame` for all frames at once, or None if any frame fails a check
    or reaches outside the grid (:meth:`_FrameMap.inside`, decided from the corners' indices)."""
    rows, cols = rows_cols
    inv = np.linalg.inv(grid.affine)
    m = np.einsum("ij,njk->nik", inv, np.stack([fr.affine for fr in frames]))
    spacing = np.asarray(grid.spacing)
    axes = []
    for col in (0, 1):
        v = m[:, :3, col]
        ax = np.argmax(np.abs(v), axis=1)
        sign = np.sign(v[np.arange(len(v)), ax])
        exact = np.zeros_like(v)
        exact[np.arange(len(v)), ax] = sign
        if np.abs(v - exact).max() > 0.1:
            return None
        axes.append((ax, sign))
    if np.any(axes[0][0] == axes[1][0]):
        return None
    t = m[:, :3, 3]
    t_round = np.round(t)
    if np.abs((t - t_round) * spacing).max() > SEG_GRID_TOL_MM:
        return None
    n = np.arange(len(frames))
    size = np.array(grid.array.shape[::-1], dtype=float)  # (ni, nj, nk)
    if np.any(t_round < 0) or np.any(t_round >= size):
        return None
    for c, r in ((cols - 1, 0), (0, rows - 1), (cols - 1, rows - 1)):
        p = m @ np.array([c, r, 0.0, 1.0])
        expect = t_round.copy()
        expect[n, axes[0][0]] += axes[0][1] * c
        expect[n, axes[1][0]] += axes[1][1] * r
        if np.abs((p[:, :3] - expect) * spacing).max() > SEG_GRID_TOL_MM:
            return None
        if np.any(expect < 0) or np.any(expect >= size):  # the frame's corners bound its pixels
            return None
    starts = t_round.astype(np.int64).tolist()
    col_axes, col_signs = axes[0][0].tolist(), axes[0][1].astype(np.int64).tolist()
    row_axes, row_signs = axes[1][0].tolist(), axes[1][1].astype(np.int64).tolist()
    return [_FrameMap(tuple(starts[i]), (col_axes[i], col_signs[i]), (row_axes[i], row_signs[i]), rows, cols)
            for i in range(len(frames))]


def _build_seg(hd, datasets, pixel_array, geometry, description, series_number, omit_empty_frames,
               series_description):
    from .._version import __version__

    pixel_measures, plane_orientation, plane_positions = geometry
    return hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=pixel_array,
        pixel_measures=pixel_measures,
        plane_orientation=plane_orientation,
        plane_positions=plane_positions,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=int(series_number),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=SEG_MANUFACTURER,
        manufacturer_model_name="volumetry",
        software_versions=__version__,
        device_serial_number="0",
        omit_empty_frames=omit_empty_frames,
        series_description=series_description,
    )


def read_seg(path: str | Path, image: Volume | None = None, *, segment_number: int = 1) -> Volume:
    """Read a binary DICOM SEG back into a boolean mask :class:`Volume`.

    Parameters
    ----------
    path : str or Path
        The SEG file.
    image : Volume, optional
        The image the SEG was made on. When given, the mask is placed on this
        image's grid (frames the SEG leaves out are background). When absent,
        the grid is rebuilt from the SEG's own frames, which must be evenly
        spaced (true for SEGs written by :func:`write_seg` with its defaults);
        slices are ordered along ``row × column`` cosines, like the series
        loader.
    segment_number : int
        Which segment to read (1 for volumetry's SEGs).

    Returns
    -------
    Volume
        Boolean mask, ``meta`` with ``source`` (the path), ``series_uid`` (the
        SEG's), ``referenced_series_uid`` and ``segment_label``.

    Raises
    ------
    InputError
        If the file is missing or not a SEG, or has no such segment.
    GeometryMismatchError
        If ``image`` is given and a SEG frame is not on its grid.
    SeriesGeometryError
        If ``image`` is absent and the frames are not evenly spaced.
    """
    import highdicom as hd
    import pydicom

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: SEG file not found")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise DicomReadError(f"{path}: not a readable DICOM file ({exc})") from exc
    if str(ds.get("Modality", "")) != "SEG" or "PerFrameFunctionalGroupsSequence" not in ds:
        raise InputError(f"{path}: not a DICOM Segmentation (Modality {ds.get('Modality', '?')!r})")
    seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    if segment_number not in seg.segment_numbers:
        raise InputError(f"{path}: no segment {segment_number}; the SEG has segments {list(seg.segment_numbers)}")
    label = seg.get_segment_description(segment_number).segment_label
    rows, cols = int(ds.Rows), int(ds.Columns)
    pixels = ds.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[None]
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    frames: list[tuple[np.ndarray, np.ndarray]] = []
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):

        def grp(keyword: str, item=item, f=f):
            if keyword in item:
                return item[keyword].value[0]
            if shared is not None and keyword in shared:
                return shared[keyword].value[0]
            raise DicomReadError(f"{path}: frame {f + 1} has no {keyword}")

        if int(grp("SegmentIdentificationSequence").ReferencedSegmentNumber) != segment_number:
            continue

        aff = _frame_affine(grp("PlanePositionSequence").ImagePositionPatient,
                            grp("PlaneOrientationSequence").ImageOrientationPatient,
                            grp("PixelMeasuresSequence").PixelSpacing, f"{path} frame {f + 1}")
        frames.append((aff, pixels[f] > 0))
    if not frames:
        raise InputError(f"{path}: segment {segment_number} has no frames")

    if image is None:
        image = _grid_from_frames([a for a, _ in frames], rows, cols, path)
    out = np.zeros(image.array.shape, dtype=bool)
    for n, (aff, plane) in enumerate(frames):
        fmap = _map_frame(aff, image, rows, cols, f"{path} frame {n + 1}")
        if not fmap.inside(out.shape):
            raise GeometryMismatchError(f"{path}: frame {n + 1} reaches outside the image's grid "
                                        f"(size {image.size} in (i, j, k)); is this the SEG of that image?")
        fmap.view(out)[...] |= plane
    ref_series = ""
    if "ReferencedSeriesSequence" in ds:
        ref_series = str(ds.ReferencedSeriesSequence[0].get("SeriesInstanceUID", ""))
    meta = {"source": str(path), "series_uid": str(ds.SeriesInstanceUID),
            "referenced_series_uid": ref_series, "segment_label": str(label)}
    return Volume(out, image.spacing, image.origin, image.direction, meta)


def _grid_from_frames(affines: list[np.ndarray], rows: int, cols: int, path: Path) -> Volume:
    """Regular grid spanned by SEG frames (one per position), k along row×column cosines."""
    from ..errors import SeriesGeometryError

    a0 = affines[0]
    normal = a0[:3, 2]
    positions = np.array([a[:3, 3] for a in affines])
    proj = positions @ normal
    order = np.argsort(proj, kind="stable")
    uniq = [order[0]]
    for o in order[1:]:
        if abs(proj[o] - proj[uniq[-1]]) > SEG_GRID_TOL_MM:
            uniq.append(o)
    pos = positions[uniq]
    si = float(np.linalg.norm(a0[:3, 0]))
    sj = float(np.linalg.norm(a0[:3, 1]))
    direction = np.column_stack([a0[:3, 0] / si, a0[:3, 1] / sj, normal])
    if len(uniq) == 1:
        sk = 1.0
        log.warning("%s: one-frame SEG; slice spacing set to 1 mm (pass image= to read it on its grid)", path)
    else:
        steps = np.diff(pos, axis=0)
        step_len = steps @ normal
        sk = float(np.median(step_len))
        if np.abs(step_len - sk).max() > max(SEG_GRID_TOL_MM * 10, 1e-3 * sk) or \
                np.abs(steps - np.outer(step_len, normal)).max() > 1e-2:
            raise SeriesGeometryError(
                f"{path}: the SEG's frames are not evenly spaced along the slice normal "
                f"(steps {np.round(step_len, 4).tolist()} mm; frames may have been left out); "
                "pass image= (the image the SEG was made on) to read it on that grid"
            )
    return Volume(np.zeros((len(uniq), rows, cols), dtype=bool), (si, sj, sk), tuple(pos[0]), direction)
