"""Acquisition grids of the phantoms: axial, coronal, sagittal and double-oblique
slice stacks with anisotropic pixels, slice thickness and slice gaps.

A :class:`Grid` is the geometry of a :class:`volumetry.image.Volume` (LPS mm,
``direction`` columns = unit vectors of i, j, k) plus the acquired slice
thickness, which may be smaller than the slice spacing (a gap) or larger
(overlapping slices). The k axis is always ``cross(i, j)``, the slice normal a
DICOM reader derives from ImageOrientationPatient, so a series written on a
grid loads back on exactly that grid.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import InputError
from ..image import Volume

#: Row (i) and column (j) directions in LPS of the standard planes, as a
#: scanner writes them in ImageOrientationPatient (patient head-first supine).
PLANE_ORIENTATION = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}

#: Planes accepted by :func:`make_grid` ("oblique" = axial tilted about two axes).
PLANES = ("axial", "coronal", "sagittal", "oblique")


@dataclasses.dataclass(frozen=True)
class Grid:
    """Geometry of one acquired slice stack.

    Attributes
    ----------
    size : tuple of int
        Voxels along ``(i, j, k)``.
    spacing : tuple of float
        ``(si, sj, sk)`` in mm; ``sk`` is the slice spacing (centre to centre).
    origin : tuple of float
        LPS position (mm) of the centre of voxel ``(0, 0, 0)``.
    direction : numpy.ndarray
        3×3, columns are the LPS unit vectors of i, j, k (right-handed).
    slice_thickness : float
        Acquired slice thickness in mm (DICOM SliceThickness); the slice
        profile used for partial volume spans this, not ``sk``.
    plane : str
        Name of the plane (``axial``, ``coronal``, ``sagittal``, ``oblique``).
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    slice_thickness: float
    plane: str = "axial"

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(nk, nj, ni)``."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def matrix(self) -> np.ndarray:
        """3×3 ``direction @ diag(spacing)`` (mm per index step)."""
        return np.asarray(self.direction) @ np.diag(self.spacing)

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel cell in mm³ (slice spacing, not thickness)."""
        return float(abs(np.linalg.det(self.matrix)))

    def volume(self, array: np.ndarray, **meta) -> Volume:
        """Wrap ``array`` (shape :attr:`shape`) as a :class:`Volume` on this grid."""
        meta.setdefault("slice_thickness_mm", self.slice_thickness)
        return Volume(array, self.spacing, self.origin, self.direction, meta)

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Continuous ``(i, j, k)`` indices ``(..., 3)`` to LPS mm."""
        return np.asarray(ijk, float) @ self.matrix.T + np.asarray(self.origin)

    def lps_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """LPS points ``(..., 3)`` in mm to continuous ``(i, j, k)`` indices."""
        return (np.asarray(xyz, float) - np.asarray(self.origin)) @ np.linalg.inv(self.matrix).T

    def describe(self) -> dict:
        """JSON-ready summary."""
        return {
            "plane": self.plane,
            "size": [int(n) for n in self.size],
            "spacing_mm": [float(s) for s in self.spacing],
            "origin_lps_mm": [float(o) for o in self.origin],
            "direction": [float(d) for d in np.asarray(self.direction).ravel()],
            "slice_thickness_mm": float(self.slice_thickness),
        }


def rotation_matrix(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotation by ``angle_deg`` degrees about ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, float)
    axis = axis / np.linalg.norm(axis)
    a = math.radians(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * (k @ k)


def plane_direction(plane: str, tilt_deg: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Direction matrix (columns i, j, k in LPS) of a plane, optionally tilted.

    Parameters
    ----------
    plane : str
        One of :data:`PLANES`. ``oblique`` starts from axial.
    tilt_deg : tuple of float
        Rotations in degrees about the plane's own row (i) axis, then about its
        column (j) axis; two non-zero angles make a double-oblique plane.

    Raises
    ------
    InputError
        If ``plane`` is unknown.
    """
    base = "axial" if plane == "oblique" else plane
    if base not in PLANE_ORIENTATION:
        raise InputError(f"unknown plane {plane!r}; choose one of {', '.join(PLANES)}")
    row, col = (np.array(v) for v in PLANE_ORIENTATION[base])
    d = np.column_stack([row, col, np.cross(row, col)])
    a, b = tilt_deg
    if a:
        d = rotation_matrix(d[:, 0], a) @ d
    if b:
        d = rotation_matrix(d[:, 1], b) @ d
    # re-orthonormalise (keeps 1e-12 exactness of the cosines written to DICOM)
    u, _, vt = np.linalg.svd(d)
    d = u @ vt
    d[:, 2] = np.cross(d[:, 0], d[:, 1])
    return d


def make_grid(
    center_lps: tuple[float, float, float],
    *,
    plane: str = "axial",
    matrix: tuple[int, int] = (128, 128),
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    n_slices: int = 30,
    slice_spacing: float = 4.0,
    slice_thickness: float | None = None,
    tilt_deg: tuple[float, float] = (0.0, 0.0),
) -> Grid:
    """A slice stack centred on ``center_lps``.

    Parameters
    ----------
    center_lps : tuple of float
        LPS point (mm) at the centre of the stack.
    plane : str
        ``axial``, ``coronal``, ``sagittal`` or ``oblique``.
    matrix : tuple of int
        Columns (i) and rows (j) per slice.
    pixel_spacing : tuple of float
        ``(si, sj)`` in mm: along a row (i) and down a column (j); may differ.
    n_slices : int
        Number of slices.
    slice_spacing : float
        Centre-to-centre slice distance in mm.
    slice_thickness : float, optional
        Acquired thickness in mm; defaults to ``slice_spacing`` (contiguous).
        Smaller than the spacing makes a gap.
    tilt_deg : tuple of float
        Tilts in degrees (see :func:`plane_direction`).

    Raises
    ------
    InputError
        If a size or spacing is not positive, or the plane is unknown.
    """
    ni, nj = (int(m) for m in matrix)
    si, sj = (float(p) for p in pixel_spacing)
    thk = float(slice_spacing if slice_thickness is None else slice_thickness)
    if min(ni, nj, int(n_slices)) < 1 or min(si, sj, float(slice_spacing), thk) <= 0:
        raise InputError(
            f"grid needs positive sizes and spacings, got matrix {matrix}, {n_slices} slices, "
            f"pixels {pixel_spacing} mm, spacing {slice_spacing} mm, thickness {thk} mm"
        )
    d = plane_direction(plane, tilt_deg)
    spacing = (si, sj, float(slice_spacing))
    size = (ni, nj, int(n_slices))
    half = (np.asarray(size) - 1) / 2.0 * np.asarray(spacing)
    origin = np.asarray(center_lps, float) - d @ half
    return Grid(size, spacing, tuple(float(o) for o in origin), d, thk, plane)
