"""Geometry of a DICOM stack: slice order, spacing and checks, in LPS.

Rules (DESIGN.md):

* slices are sorted by ImagePositionPatient projected on the slice normal,
  the cross product of the row and column cosines of ImageOrientationPatient;
* the slice spacing is the distance between those projections, never
  SliceThickness, SliceLocation, file names or InstanceNumber;
* a missing slice, uneven spacing, slices that do not lie along the normal
  (gantry tilt, sheared stack), mixed orientations or pixel sizes raise
  :class:`~volumetry.errors.SeriesGeometryError` naming the series, the
  positions and the gap. Tolerances are the named constants below.

The volume's axes: ``i`` along the row cosines, ``j`` along the column
cosines, ``k`` along the normal (so the direction matrix has determinant +1).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import SeriesGeometryError, SeriesSelectionError
from .dicom_frames import Frame
from .dicom_index import SeriesStack, position_clusters

#: Largest difference (dimensionless cosine) between the orientations of two
#: slices of one volume.
ORIENTATION_TOL = 1e-4
#: Largest difference between the pixel spacings of two slices (mm).
PIXEL_SPACING_TOL_MM = 1e-4
#: Largest deviation of one slice-to-slice distance from the mean spacing (mm).
SLICE_SPACING_TOL_MM = 0.02
#: Largest |cosine| between the row and column directions of ImageOrientationPatient
#: (dimensionless; the Volume's orthonormality tolerance).
ORTHOGONAL_COSINE_TOL = 1e-3
#: Largest offset of a slice from the line through the first slice along the
#: normal, measured within the image plane (mm); more is a tilted/sheared stack.
IN_PLANE_OFFSET_TOL_MM = 0.05


@dataclasses.dataclass(frozen=True)
class VolumeGrid:
    """Sorted frames of one volume with its LPS grid.

    Attributes
    ----------
    frames : tuple of Frame
        One per slice, ordered along the normal (``k``).
    spacing : tuple of float
        ``(si, sj, sk)`` in mm.
    origin : tuple of float
        LPS mm of voxel (0, 0, 0).
    direction : numpy.ndarray
        3×3, columns are the LPS unit vectors of i, j, k.
    warnings : tuple of str
        Conditions worth recording that are not errors.
    """

    frames: tuple[Frame, ...]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    warnings: tuple[str, ...]


def split_volumes(stack: SeriesStack) -> list[list[Frame]]:
    """Deal the frames of a stack to its volumes.

    The frames at each slice position are sorted by their volume key
    (temporal position, echo, label, instance number, frame); the ``v``-th
    frame at each position belongs to volume ``v``.

    Raises
    ------
    SeriesGeometryError
        If the slice positions do not all hold the same number of frames (a
        slice is missing from some volume, or a slice is duplicated), or a
        frame's ImagePositionPatient is not three finite numbers.
    """
    frames = stack.frames
    for f in frames:
        if not np.all(np.isfinite(f.position)):
            raise SeriesGeometryError(
                f"{stack.name}: ImagePositionPatient {list(f.position)} of {_where(f)} is not three finite numbers; "
                "the slice cannot be placed: export the series again")
    d, clusters = position_clusters(frames)
    counts = np.array([len(c) for c in clusters])
    n_vol = int(counts.max())
    if np.any(counts != n_vol):
        short = [f"{d[i]:.3f} mm ({counts[i]} frames)" for i in np.nonzero(counts != n_vol)[0][:8]]
        raise SeriesGeometryError(
            f"{stack.name}: the {len(clusters)} slice positions do not all hold the same number of frames "
            f"(most hold {n_vol}); positions along the normal: {', '.join(short)}. A volume is missing a slice "
            "or a slice is duplicated: export the series again, or remove the incomplete volume's files"
        )
    volumes: list[list[Frame]] = [[] for _ in range(n_vol)]
    for c in clusters:
        for v, i in enumerate(sorted(c, key=lambda i: frames[i].volume_key)):
            volumes[v].append(frames[i])
    return volumes


def select_volume(stack: SeriesStack, volume_index: int | None) -> tuple[int, list[Frame]]:
    """Frames of one volume of a stack.

    Raises
    ------
    SeriesSelectionError
        If the stack holds several volumes and none is selected, or the index
        is out of range; the message lists the volumes.
    SeriesGeometryError
        See :func:`split_volumes`.
    """
    volumes = split_volumes(stack)
    n = len(volumes)
    if volume_index is None and n == 1:
        return 0, volumes[0]
    if volume_index is not None and -n <= volume_index < n:
        return volume_index % n, volumes[volume_index]
    labels = list(stack.volume_labels) or [""] * n
    listing = "; ".join(f"{v}: {labels[v] if v < len(labels) else ''}".rstrip(": ") for v in range(n))
    what = "no volume was selected" if volume_index is None else f"volume index {volume_index} is out of range"
    raise SeriesSelectionError(
        f"{stack.name} holds {n} volumes (dynamics, echoes or time points) and {what}; "
        f"choose one with volume_index (0..{n - 1}): {listing}"
    )


def volume_grid(frames: list[Frame], series: str, *, single_slice_spacing_mm: float | None = None) -> VolumeGrid:
    """Sort one volume's frames along the normal and derive its LPS grid.

    Parameters
    ----------
    frames : list of Frame
        The frames of one volume, in any order.
    series : str
        Name of the series for messages.
    single_slice_spacing_mm : float, optional
        Slice spacing to use when there is one slice only (SpacingBetweenSlices
        or SliceThickness); recorded as a warning.

    Returns
    -------
    VolumeGrid

    Raises
    ------
    SeriesGeometryError
        Mixed orientations or pixel spacings, uneven spacing or a missing
        slice, slices not along the normal (gantry tilt).
    """
    warnings: list[str] = []
    ori = np.array([f.orientation for f in frames], dtype=float)
    dev = np.abs(ori - ori[0]).max()
    if dev > ORIENTATION_TOL:
        raise SeriesGeometryError(
            f"{series}: slices have different ImageOrientationPatient (max cosine difference {dev:.2e} > "
            f"{ORIENTATION_TOL}); the series mixes planes: select one stack"
        )
    ps = np.array([f.pixel_spacing for f in frames], dtype=float)
    dev = np.abs(ps - ps[0]).max()
    if dev > PIXEL_SPACING_TOL_MM:
        raise SeriesGeometryError(
            f"{series}: slices have different PixelSpacing (max difference {dev:.4g} mm > {PIXEL_SPACING_TOL_MM} mm)"
        )
    if not np.all(np.isfinite(ps[0])) or np.any(ps[0] <= 0):
        raise SeriesGeometryError(
            f"{series}: PixelSpacing {ps[0].tolist()} mm of {_where(frames[0])} is not positive; the in-plane "
            "voxel size is unknown: export the series again")
    row, col = ori[0, :3], ori[0, 3:]
    for name, v in (("row", row), ("column", col)):
        if abs(np.linalg.norm(v) - 1) > 1e-3:
            raise SeriesGeometryError(
                f"{series}: ImageOrientationPatient {name} cosines {v.tolist()} are not a unit vector")
    if abs(row @ col) > ORTHOGONAL_COSINE_TOL:
        raise SeriesGeometryError(
            f"{series}: the row and column cosines of ImageOrientationPatient {ori[0].tolist()} of "
            f"{_where(frames[0])} are not perpendicular (cosine {row @ col:.2e} > {ORTHOGONAL_COSINE_TOL}); "
            "the grid is not rectangular: export the series again")
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    pos = np.array([f.position for f in frames], dtype=float)
    d = pos @ normal
    order = np.argsort(d, kind="stable")
    pos, d = pos[order], d[order]
    frames = [frames[i] for i in order]
    n = len(frames)
    if n == 1:
        if not single_slice_spacing_mm or single_slice_spacing_mm <= 0:
            single_slice_spacing_mm = 1.0
            warnings.append("one slice only: no slice spacing in the header, 1 mm assumed")
        else:
            warnings.append(f"one slice only: slice spacing {single_slice_spacing_mm:g} mm taken from the header")
        sk = float(single_slice_spacing_mm)
    else:
        steps = np.diff(d)
        if np.any(steps <= SLICE_SPACING_TOL_MM):
            i = int(np.argmin(steps))
            raise SeriesGeometryError(
                f"{series}: two slices share the position {d[i]:.3f} mm along the normal; "
                "the stack holds duplicate slices or several volumes that cannot be told apart"
            )
        sk = float((d[-1] - d[0]) / (n - 1))
        bad = np.nonzero(np.abs(steps - sk) > SLICE_SPACING_TOL_MM)[0]
        if bad.size:
            typical = float(np.median(steps))
            # name the steps that differ from the typical one (the gaps), not every step that
            # differs from the mean (with one gap in a long stack, that is every step)
            odd = np.nonzero(np.abs(steps - typical) > SLICE_SPACING_TOL_MM)[0]
            bad = odd if odd.size else bad
            gaps = ", ".join(
                f"{steps[i]:.3f} mm between slices at {d[i]:.3f} and {d[i + 1]:.3f} mm" for i in bad[:5]
            )
            missing = np.any(np.abs(steps[bad] / typical - np.round(steps[bad] / typical)) < 0.05) and \
                np.any(np.round(steps[bad] / typical) >= 2)
            cause = ("a slice is missing" if missing else "the slice spacing is uneven")
            raise SeriesGeometryError(
                f"{series}: {cause}: positions along the normal run from {d[0]:.3f} to {d[-1]:.3f} mm over "
                f"{n} slices (typical spacing {typical:.3f} mm) but the gap is {gaps} "
                f"(tolerance {SLICE_SPACING_TOL_MM} mm); export the complete series, or resample it"
            )
        offsets = (pos - pos[0]) - np.outer(d - d[0], normal)
        off = np.linalg.norm(offsets, axis=1)
        if off.max() > IN_PLANE_OFFSET_TOL_MM:
            i = int(np.argmax(off))
            raise SeriesGeometryError(
                f"{series}: slices are not stacked along the normal of their plane: slice at {d[i]:.3f} mm is "
                f"shifted {off[i]:.3f} mm within the plane (tolerance {IN_PLANE_OFFSET_TOL_MM} mm); "
                "a gantry-tilted or sheared acquisition cannot be loaded as a regular grid: resample it first"
            )
    direction = np.column_stack([row, col, normal])
    spacing = (float(ps[0, 1]), float(ps[0, 0]), sk)
    return VolumeGrid(tuple(frames), spacing, tuple(float(v) for v in pos[0]), direction, tuple(warnings))


def _where(frame: Frame) -> str:
    """The file of a frame, with the frame number for a multi-frame file, for messages."""
    n = frame.source.n_frames
    return frame.source.path + (f" (frame {frame.frame_index + 1})" if n > 1 else "")
