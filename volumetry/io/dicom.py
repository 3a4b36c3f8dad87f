"""DICOM series: index a folder tree and load one stack as a :class:`~volumetry.image.Volume`.

Public API
----------
* :func:`index_dicom` — header-only scan of a folder tree into
  :class:`SeriesStack` objects (see :mod:`volumetry.io.dicom_index`).
* :func:`load_stack` — one volume of one stack, geometry in LPS.
* :func:`load_dicom` — a folder or file to one volume, with a clear error
  listing the choices when the input holds several stacks or volumes.

How the geometry is derived and checked is in :mod:`volumetry.io.dicom_geometry`;
how pixels are read and scaled in :mod:`volumetry.io.dicom_pixels`; the
choices (Philips scale factors, mosaics, tolerances) are in ``docs/loading.md``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DicomReadError, SeriesGeometryError, SeriesSelectionError
from ..image import Volume
from .dicom_geometry import (
    IN_PLANE_OFFSET_TOL_MM,
    ORIENTATION_TOL,
    PIXEL_SPACING_TOL_MM,
    SLICE_SPACING_TOL_MM,
    VolumeGrid,
    select_volume,
    volume_grid,
)
from .dicom_index import SAME_POSITION_TOL_MM, SeriesStack, build_stacks, index_dicom, read_headers
from .dicom_pixels import PHILIPS_SCALINGS, apply_rescale, read_frames, scale_factors

__all__ = [
    "SeriesStack",
    "index_dicom",
    "load_stack",
    "load_dicom",
    "stack_grid",
    "select_stack",
    "stacks_for_path",
    "describe_stack",
    "PHILIPS_SCALINGS",
    "DEFAULT_PHILIPS_SCALING",
    "ORIENTATION_TOL",
    "PIXEL_SPACING_TOL_MM",
    "SLICE_SPACING_TOL_MM",
    "IN_PLANE_OFFSET_TOL_MM",
    "SAME_POSITION_TOL_MM",
]

log = logging.getLogger(__name__)

#: A plane of another stack of the same series is parallel to a stack's when ``1 - |cos|`` of the
#: angle between their normals is at most this (dimensionless): see :func:`check_split_off_slices`.
SPLIT_PARALLEL_TOL = 1e-3

#: Default treatment of Philips scale factors: the DICOM-standard
#: RescaleSlope/RescaleIntercept only ("display" values). See docs/loading.md.
DEFAULT_PHILIPS_SCALING = "display"


def stack_grid(stack: SeriesStack, *, volume_index: int | None = None) -> tuple[int, VolumeGrid]:
    """Geometry of one volume of a stack from the headers alone (no pixels).

    Returns
    -------
    volume_index : int
        The selected volume (0 when the stack holds one).
    grid : VolumeGrid
        Sorted frames, spacing (mm), origin (LPS mm), direction, warnings.

    Raises
    ------
    SeriesSelectionError
        Several volumes and none selected, or an index out of range.
    SeriesGeometryError
        Missing slice, uneven spacing, gantry tilt, mixed planes.
    """
    v, frames = select_volume(stack, volume_index)
    single = stack.spacing_between_slices_mm or stack.slice_thickness_mm
    grid = volume_grid(frames, stack.name, single_slice_spacing_mm=single)
    warnings = list(grid.warnings)
    warnings.extend(stack.notes)
    if any(f.philips_scale_slope for f in grid.frames):
        warnings.append("Philips private scale slope (2005,100E) present: see docs/loading.md for the scaling used")
    if grid.warnings != tuple(warnings):
        grid = VolumeGrid(grid.frames, grid.spacing, grid.origin, grid.direction, tuple(warnings))
    return v, grid


def load_stack(stack: SeriesStack, *, volume_index: int | None = None,
               philips_scaling: str = DEFAULT_PHILIPS_SCALING) -> Volume:
    """Load one volume of a stack with its geometry in LPS.

    Parameters
    ----------
    stack : SeriesStack
        From :func:`index_dicom`.
    volume_index : int, optional
        Which volume (0-based) of a stack holding several (dynamics, echoes,
        time points); required when it holds more than one.
    philips_scaling : {"display", "precise"}
        How Philips scale factors are applied (see docs/loading.md):
        ``display`` applies RescaleSlope/RescaleIntercept only; ``precise``
        gives Philips' floating-point values (what dcm2niix stores).

    Returns
    -------
    Volume
        Array ``[k, j, i]``; rescaled values (float32 when a slope or
        intercept is not an integer, else an integer type wide enough); the
        provenance in ``meta``.

    Raises
    ------
    SeriesSelectionError
        Several volumes and none (or an invalid one) selected.
    SeriesGeometryError
        The slices do not form one regular grid.
    DicomReadError
        A file is truncated or its pixels cannot be decoded (also a file of the series that
        the index could not read: ``stack.broken``).
    """
    if stack.broken:
        more = f" (and {len(stack.broken) - 1} more file(s) of this series)" if len(stack.broken) > 1 else ""
        raise DicomReadError(f"{stack.broken[0]}{more}; series {stack.series_uid} cannot be loaded without it")
    v, grid = stack_grid(stack, volume_index=volume_index)
    raw = read_frames(grid.frames)
    slope, intercept = scale_factors(grid.frames, philips_scaling)
    array = apply_rescale(raw, slope, intercept)
    warnings = list(grid.warnings)
    if len(set(slope.tolist())) > 1 or len(set(intercept.tolist())) > 1:
        warnings.append("rescale slope/intercept differ between slices; applied per slice")
    files = []
    seen = set()
    for f in grid.frames:
        if f.source.path not in seen:
            seen.add(f.source.path)
            files.append(f.source.path)
    meta = {
        "series_uid": stack.series_uid,
        "stack_id": stack.stack_id,
        "study_uid": stack.study_uid,
        "description": stack.description,
        "modality": stack.modality,
        "manufacturer": stack.manufacturer,
        "patient_id": stack.patient_id,
        "study_date": stack.study_date,
        "series_number": stack.series_number,
        "kind": stack.kind,
        "files": files,
        "warnings": warnings,
        "source": str(Path(files[0]).parent) if len(files) > 1 or stack.kind == "classic" else files[0],
        "volume_index": v,
        "n_volumes": stack.n_volumes,
        "volume_label": stack.volume_labels[v] if v < len(stack.volume_labels) else "",
        "slice_thickness_mm": stack.slice_thickness_mm,
        "rescale_slope": float(slope[0]),
        "rescale_intercept": float(intercept[0]),
        "philips_scaling": philips_scaling,
        "transfer_syntax": grid.frames[0].source.transfer_syntax,
        "stored_dtype": str(raw.dtype),
    }
    return Volume(array, grid.spacing, grid.origin, grid.direction, meta)


def select_stack(stacks: list[SeriesStack], series_uid: str | None, where: str) -> SeriesStack:
    """The stack chosen by ``series_uid`` (a SeriesInstanceUID or a stack id).

    Raises
    ------
    SeriesSelectionError
        No stack, no match, or several matches; the message lists the stacks.
    """
    if not stacks:
        raise DicomReadError(f"no DICOM image found in {where}; give a folder or file holding a DICOM series")
    if series_uid is None:
        chosen = stacks
    else:
        chosen = [s for s in stacks if s.stack_id == series_uid] or [s for s in stacks if s.series_uid == series_uid]
    if len(chosen) == 1:
        return chosen[0]
    listing = "; ".join(s.summary() for s in (chosen or stacks))
    if series_uid is None:
        msg = f"{where} holds {len(stacks)} image stacks; choose one by series UID (or stack id): {listing}"
    elif not chosen:
        msg = f"no stack of {where} matches series UID {series_uid!r}; available: {listing}"
    else:
        msg = (f"series {series_uid} of {where} splits into {len(chosen)} stacks (different orientation or "
               f"matrix); choose one by stack id: {listing}")
    raise SeriesSelectionError(msg)


def stacks_for_path(path: str | Path) -> list[SeriesStack]:
    """Stacks of a folder tree, or of one file.

    A single classic (one-slice) file stands for its series: the files of the
    same series directly in its folder are indexed with it.

    Raises
    ------
    DicomReadError
        Missing path; an unreadable DICOM header (a file whose pixel data alone is truncated
        fails only its series: see :func:`volumetry.io.dicom_index.read_headers`).
    """
    path = Path(path)
    broken: list = []
    headers = read_headers(path, broken=broken if path.is_dir() else None)
    if path.is_file() and len(headers) == 1 and headers[0].kind == "classic":
        uid = headers[0].series_uid
        log.info("%s is one slice: indexing its series %s in %s", path, uid, path.parent)
        headers = [h for h in read_headers(path.parent, recursive=False, broken=broken) if h.series_uid == uid]
        broken = [(u, e) for u, e in broken if u == uid]
    return build_stacks(headers, broken)


def describe_stack(stack: SeriesStack, *, volume_index: int | None = None) -> dict:
    """Description and geometry of a stack from its headers (no pixels read).

    The geometry (``size`` [i, j, k], ``spacing`` mm, ``origin`` LPS mm,
    ``direction`` row-major LPS) is that of ``volume_index`` (default 0; all
    volumes of a stack share their slice positions). A geometry problem is
    reported in ``error`` with the geometry fields set to None.
    """
    from ..errors import SeriesGeometryError

    d = stack.describe()
    out = {"size": None, "spacing": None, "origin": None, "direction": None, "voxel_volume_mm3": None, **d}
    out["warnings"] = []
    if stack.broken:
        out["error"] = stack.broken[0]
        return out
    try:
        v, grid = stack_grid(stack, volume_index=0 if volume_index is None and stack.n_volumes > 1 else volume_index)
    except SeriesGeometryError as exc:
        out["error"] = str(exc)
        return out
    vol_geom = Volume(np.zeros((1, 1, 1), np.uint8), grid.spacing, grid.origin, grid.direction)
    out.update(
        size=[stack.cols, stack.rows, len(grid.frames)],
        spacing=list(grid.spacing),
        origin=list(grid.origin),
        direction=[float(x) for x in grid.direction.ravel()],
        voxel_volume_mm3=vol_geom.voxel_volume_mm3,
        volume_index=v,
        warnings=list(grid.warnings),
    )
    return out


def load_dicom(path: str | Path, *, series_uid: str | None = None, volume_index: int | None = None,
               philips_scaling: str = DEFAULT_PHILIPS_SCALING) -> Volume:
    """Load one DICOM volume from a folder tree or a file.

    Parameters
    ----------
    path : str or Path
        A folder (searched recursively) or one file. A single classic
        (one-slice) file stands for its series: the files of the same series
        in its folder are loaded with it.
    series_uid : str, optional
        SeriesInstanceUID or stack id to load; required when ``path`` holds
        several stacks.
    volume_index : int, optional
        Volume (0-based) of a series holding several.
    philips_scaling : {"display", "precise"}
        See :func:`load_stack`.

    Returns
    -------
    Volume

    Raises
    ------
    DicomReadError
        No DICOM image under ``path``; a truncated or unreadable file.
    SeriesSelectionError
        Several stacks or volumes and no selection (the message lists them).
    SeriesGeometryError
        The slices do not form one regular grid.
    """
    path = Path(path)
    stacks = stacks_for_path(path)
    stack = select_stack(stacks, series_uid, str(path))
    vol = load_stack(stack, volume_index=volume_index, philips_scaling=philips_scaling)
    check_split_off_slices(vol, stack, stacks)
    vol.meta["source"] = str(path)
    return vol


def check_split_off_slices(vol: Volume, stack: SeriesStack, stacks: list[SeriesStack]) -> None:
    """Refuse a volume whose series continues, beyond one of its end slices, in another stack.

    A slice of the same series whose PixelSpacing, orientation or matrix differs (beyond the
    stacking tolerances) is indexed as another stack; when it lies where the next slice of
    ``vol`` would (first pixel within half a voxel of the grid's line, one slice step beyond
    an end within :data:`SLICE_SPACING_TOL_MM`, plane parallel within :data:`SPLIT_PARALLEL_TOL`),
    the volume alone would silently miss a slice of the series.

    Raises
    ------
    SeriesGeometryError
        Naming the split-off slice's file and what differs.
    """
    normal = vol.direction[:, 2]
    nk = vol.size[2]
    for other in stacks:
        if other.series_uid != stack.series_uid or other.stack_id == stack.stack_id or not other.frames:
            continue
        o = np.asarray(other.orientation, dtype=float)
        n = np.cross(o[:3], o[3:])
        if not np.linalg.norm(n) or 1 - abs(n @ normal) / np.linalg.norm(n) > SPLIT_PARALLEL_TOL:
            continue
        ijk = vol.lps_to_index(np.array([f.position for f in other.frames], dtype=float))
        beyond = np.minimum(np.abs(ijk[:, 2] + 1), np.abs(ijk[:, 2] - nk)) * vol.spacing[2]
        hit = np.nonzero((np.abs(ijk[:, 0]) <= 0.5) & (np.abs(ijk[:, 1]) <= 0.5) & (beyond <= SLICE_SPACING_TOL_MM))[0]
        if hit.size:
            f = other.frames[int(hit[0])]
            differs = "; ".join(f"{name} {list(a)} vs {list(b)}" for name, a, b in (
                ("PixelSpacing", f.pixel_spacing, stack.pixel_spacing),
                ("ImageOrientationPatient", f.orientation, stack.orientation),
                ("Rows/Columns", (f.rows, f.cols), (stack.rows, stack.cols))) if tuple(a) != tuple(b))
            end = "first" if ijk[hit[0], 2] < 0 else "last"
            raise SeriesGeometryError(
                f"{stack.name}: the slice in {f.source.path} lies one slice step beyond this stack's {end} slice "
                f"but was split off into stack {other.stack_id} ({differs or 'another header'}); the series is "
                "not one regular grid and this stack alone misses that slice: remove the file if it does not "
                "belong to the series, or export the series again"
            )
