"""The one image type of volumetry: :class:`Volume`, a 3D array with its LPS geometry.

Conventions
-----------
* ``array`` is indexed ``[k, j, i]`` (slice, row, column), C-contiguous, exactly
  like ``SimpleITK.GetArrayFromImage``. ``i`` runs along a DICOM row (the
  direction of the first three numbers of ImageOrientationPatient), ``j`` down
  a column, ``k`` across slices.
* ``spacing`` is ``(si, sj, sk)`` in mm, ``origin`` is the LPS position in mm
  of the centre of voxel ``(i, j, k) = (0, 0, 0)``, and ``direction`` is a 3×3
  matrix whose *columns* are the unit LPS vectors of the ``i``, ``j`` and ``k``
  axes (SimpleITK's ``GetDirection()`` reshaped row-major to 3×3).
* The LPS affine maps ``(i, j, k, 1)`` to ``(x, y, z, 1)`` in mm:
  ``A[:3, :3] = direction @ diag(spacing)``, ``A[:3, 3] = origin``.
* RAS (NIfTI) is converted at the I/O edge only, with :data:`LPS_TO_RAS`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .errors import GeometryMismatchError, InputError

#: Diagonal flip between LPS and RAS (its own inverse): ``ras = LPS_TO_RAS @ lps``.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

#: Largest deviation (dimensionless) of ``direction.T @ direction`` from the
#: identity accepted for a direction matrix (DICOM stores cosines to ~6 digits).
ORTHONORMAL_TOL = 1e-3

#: Two grids are "the same" when origins differ by at most this many mm ...
GRID_ORIGIN_TOL_MM = 1e-3
#: ... spacings by at most this many mm ...
GRID_SPACING_TOL_MM = 1e-4
#: ... and direction cosines by at most this (dimensionless).
GRID_DIRECTION_TOL = 1e-4


@dataclasses.dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image or mask with its geometry in LPS.

    Parameters
    ----------
    array : numpy.ndarray
        Voxel values, shape ``(nk, nj, ni)``. Masks are boolean.
    spacing : tuple of float
        Voxel size ``(si, sj, sk)`` in mm, all > 0.
    origin : tuple of float
        LPS position (mm) of the centre of the first voxel.
    direction : numpy.ndarray
        3×3 matrix, columns are the LPS unit vectors of the i, j, k axes.
    meta : dict
        Provenance: ``series_uid``, ``description``, ``modality``, ``files``,
        ``warnings`` (list of str), ``source`` ... Never used for geometry.

    Raises
    ------
    InputError
        If the array is not 3D, a spacing is not positive and finite, or the
        direction matrix is not orthonormal within :data:`ORTHONORMAL_TOL`.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise InputError(f"a Volume needs a 3D array, got shape {arr.shape}")
        spacing = tuple(float(s) for s in self.spacing)
        origin = tuple(float(o) for o in self.origin)
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise InputError(f"voxel spacing must be three positive finite mm values, got {self.spacing}")
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise InputError(f"origin must be three finite LPS mm values, got {self.origin}")
        err = np.abs(direction.T @ direction - np.eye(3)).max()
        if not np.isfinite(err) or err > ORTHONORMAL_TOL:
            raise InputError(
                f"direction matrix is not orthonormal (max |D^T D - I| = {err:.2e} > {ORTHONORMAL_TOL}); "
                "check ImageOrientationPatient / the affine of the file"
            )
        direction.setflags(write=False)
        object.__setattr__(self, "array", np.ascontiguousarray(arr))
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ geometry
    @property
    def size(self) -> tuple[int, int, int]:
        """Number of voxels along ``(i, j, k)``."""
        nk, nj, ni = self.array.shape
        return (ni, nj, nk)

    @property
    def affine(self) -> np.ndarray:
        """4×4 LPS affine (mm) mapping ``(i, j, k, 1)`` to ``(x, y, z, 1)``."""
        a = np.eye(4)
        a[:3, :3] = self.direction @ np.diag(self.spacing)
        a[:3, 3] = self.origin
        return a

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³, ``|det(direction · diag(spacing))|``."""
        return float(abs(np.linalg.det(self.direction @ np.diag(self.spacing))))

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map continuous indices ``(..., 3)`` in ``(i, j, k)`` order to LPS mm."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction @ np.diag(self.spacing)).T + np.asarray(self.origin)

    def lps_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Map LPS points ``(..., 3)`` in mm to continuous ``(i, j, k)`` indices."""
        xyz = np.asarray(xyz, dtype=float)
        m = self.direction @ np.diag(self.spacing)
        return (xyz - np.asarray(self.origin)) @ np.linalg.inv(m).T

    def contains_index(self, ijk: np.ndarray) -> bool:
        """True when the continuous index ``(i, j, k)`` lies inside the voxel grid
        (within half a voxel of the outer voxel centres)."""
        ijk = np.asarray(ijk, dtype=float)
        return bool(np.all(ijk >= -0.5) and np.all(ijk <= np.asarray(self.size) - 0.5))

    def same_grid(self, other: "Volume") -> bool:
        """True when ``other`` has the same size and geometry within the ``GRID_*`` tolerances."""
        # spacing and origin are tuples of finite floats and the direction is finite (checked on
        # construction): exactly equal values are within any tolerance, without numpy's allclose
        return (
            self.size == other.size
            and (self.spacing == other.spacing
                 or np.allclose(self.spacing, other.spacing, rtol=0, atol=GRID_SPACING_TOL_MM))
            and (self.origin == other.origin
                 or np.allclose(self.origin, other.origin, rtol=0, atol=GRID_ORIGIN_TOL_MM))
            and (self.direction is other.direction or np.array_equal(self.direction, other.direction)
                 or np.allclose(self.direction, other.direction, rtol=0, atol=GRID_DIRECTION_TOL))
        )

    def require_same_grid(self, other: "Volume", what: str = "mask") -> None:
        """Raise :class:`GeometryMismatchError` unless ``other`` is on this grid.

        Parameters
        ----------
        other : Volume
            Typically a mask.
        what : str
            Name of ``other`` in the message.
        """
        if self.same_grid(other):
            return
        raise GeometryMismatchError(
            f"the {what} is not on the image's grid: "
            f"size {other.size} vs {self.size}, spacing {_fmt(other.spacing)} vs {_fmt(self.spacing)} mm, "
            f"origin {_fmt(other.origin)} vs {_fmt(self.origin)} mm (LPS), "
            f"max direction difference {np.abs(other.direction - self.direction).max():.2e}; "
            f"export the {what} on the image's grid, or resample it with nearest neighbour "
            "(volumetry flags a resampled mask)"
        )

    # ------------------------------------------------------------- constructors
    def with_array(self, array: np.ndarray, **meta: Any) -> "Volume":
        """A new Volume on the same grid with another array (same shape), meta updated."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise InputError(f"array shape {array.shape} differs from the grid's {self.array.shape}")
        return Volume(array, self.spacing, self.origin, self.direction, {**self.meta, **meta})

    @classmethod
    def from_affine(cls, array: np.ndarray, affine_lps: np.ndarray, meta: dict | None = None) -> "Volume":
        """Build from an ``[k, j, i]`` array and a 4×4 LPS affine (mm).

        Raises
        ------
        InputError
            If the affine is singular or its last row is not ``[0, 0, 0, 1]``.
        """
        a = np.asarray(affine_lps, dtype=float)
        if a.shape != (4, 4) or not np.allclose(a[3], [0, 0, 0, 1]):
            raise InputError(f"an affine must be 4x4 with last row [0 0 0 1], got\n{a}")
        m = a[:3, :3]
        spacing = np.linalg.norm(m, axis=0)
        if np.any(spacing == 0) or abs(np.linalg.det(m)) < 1e-12:
            raise InputError(f"the affine is singular:\n{a}")
        return cls(array, tuple(spacing), tuple(a[:3, 3]), m / spacing, meta or {})

    def to_sitk(self):
        """Copy into a ``SimpleITK.Image`` with the same LPS geometry."""
        import SimpleITK as sitk

        arr = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(tuple(self.direction.ravel()))
        return img

    @classmethod
    def from_sitk(cls, img, meta: dict | None = None) -> "Volume":
        """Build from a 3D scalar ``SimpleITK.Image`` (geometry is LPS in ITK)."""
        import SimpleITK as sitk

        if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                f"expected a 3D scalar image, got {img.GetDimension()}D with "
                f"{img.GetNumberOfComponentsPerPixel()} components"
            )
        return cls(
            sitk.GetArrayFromImage(img),
            img.GetSpacing(),
            img.GetOrigin(),
            np.array(img.GetDirection()).reshape(3, 3),
            meta or {},
        )

    def describe(self) -> dict[str, Any]:
        """JSON-ready geometry summary (size, spacing mm, origin LPS mm, direction row-major)."""
        return {
            "size": list(self.size),
            "spacing": [float(s) for s in self.spacing],
            "origin": [float(o) for o in self.origin],
            "direction": [float(d) for d in self.direction.ravel()],
            "voxel_volume_mm3": self.voxel_volume_mm3,
            "dtype": str(self.array.dtype),
        }


def _fmt(v) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"
