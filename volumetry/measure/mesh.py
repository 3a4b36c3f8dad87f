"""Closed marching-cubes surface of a binary mask in LPS millimetres, and its volume.

The mask is cropped to its bounding box by the caller and padded here by one
voxel of background on every side, so the iso-surface at 0.5 closes even where
the mask touches the image border. Vertices are mapped through the full
geometry (spacing *and* direction), so the mesh lives in patient space.
"""
from __future__ import annotations

import numpy as np

from ._kernels import six_signed_volumes
from ._marching import EDGES, TRIANGLE_TABLE, lewiner_binary

#: Iso-level of the surface between background (0) and mask (1).
ISO_LEVEL = 0.5

#: Orientation of scikit-image's Lewiner faces in the ``[k, j, i]`` array frame
#: (a closed object with values above the level has a *negative* signed volume
#: there). Checked by ``tests/test_measure.py`` on anisotropic, mirrored and
#: rotated grids.
_SKIMAGE_ORIENTATION = -1.0


def surface_lps(crop: np.ndarray, offset_ijk, matrix: np.ndarray, origin) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes surface of a cropped binary mask, vertices in LPS mm.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        The mask inside its bounding box, indexed ``[k, j, i]``.
    offset_ijk : sequence of int
        Index ``(i, j, k)`` of ``crop[0, 0, 0]`` on the full grid.
    matrix : numpy.ndarray
        ``direction @ diag(spacing)`` of the grid (3×3, mm per index).
    origin : sequence of float
        LPS position (mm) of voxel ``(0, 0, 0)`` of the full grid.

    Returns
    -------
    vertices : numpy.ndarray
        ``(n, 3)`` LPS positions in mm.
    faces : numpy.ndarray
        ``(m, 3)`` vertex indices, consistently oriented.

    Raises
    ------
    ValueError
        If the crop holds no mask voxel (no surface).
    """
    lps, faces, _ = surface(crop, offset_ijk, matrix, origin)
    return lps, faces


def surface(crop: np.ndarray, offset_ijk, matrix: np.ndarray, origin) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`surface_lps`, with the vertices' exact lattice coordinates too.

    On a binary mask every marching-cubes vertex at level 0.5 is the mid-point of a
    voxel edge (or a cube's centre), so twice its ``[k, j, i]`` index in the padded crop
    is an integer triple; :func:`volumetry.measure.diameters.orthogonal_diameters` uses
    them to discard, exactly, vertices that cannot be on the convex hull.

    The surface is scikit-image's Lewiner marching cubes of the crop padded by one voxel
    of background, vertex for vertex and face for face, computed by
    :func:`._marching.lewiner_binary` (the same cube walk, tables and arithmetic for a
    binary mask).

    Returns
    -------
    vertices, faces : numpy.ndarray
        As :func:`surface_lps`.
    lattice : numpy.ndarray of int64
        ``(n, 3)``: twice each vertex's ``[k, j, i]`` index in the crop padded by one voxel.

    Raises
    ------
    ValueError
        If the crop is not a 3D binary mask or holds no mask voxel (no surface).
    """
    crop = _binary_crop(crop)
    # vertices in (i, j, k) of the crop padded by one voxel of background, at the level ISO_LEVEL = 0.5
    ijk_padded, faces, lattice = lewiner_binary(crop, TRIANGLE_TABLE, EDGES)
    ijk = ijk_padded + (np.asarray(offset_ijk, dtype=float) - 1.0)
    lps = ijk @ np.asarray(matrix, dtype=float).T + np.asarray(origin, dtype=float)
    return lps, faces, lattice


def _binary_crop(crop) -> np.ndarray:
    """``crop`` as a C-contiguous 3D bool array holding at least one voxel; ValueError otherwise."""
    crop = np.asarray(crop)
    if crop.ndim != 3:
        raise ValueError(f"the mask crop must be 3D, got {crop.ndim} dimensions")
    if crop.dtype != bool:
        if not np.all((crop == 0) | (crop == 1)):
            raise ValueError("the mask crop must be binary (0 and 1 only)")
        crop = crop == 1
    if not crop.any():
        raise ValueError("the mask crop holds no mask voxel: there is no surface")
    return np.ascontiguousarray(crop)


def signed_volume_mm3(vertices: np.ndarray, faces: np.ndarray, matrix: np.ndarray) -> float:
    """Volume (mm³) enclosed by a closed surface from :func:`surface_lps`.

    Sum of the signed tetrahedra (centroid, triangle); cavities subtract. The
    sign is normalised with the handedness of the grid (``det(matrix)``) and of
    the ``[k, j, i]`` → ``(i, j, k)`` axis swap, so a solid object is positive.

    Parameters
    ----------
    vertices, faces : numpy.ndarray
        The mesh: ``(n, 3)`` float64 vertices in mm, ``(m, 3)`` integer faces.
    matrix : numpy.ndarray
        ``direction @ diag(spacing)`` of the grid the mesh came from.

    Returns
    -------
    float
        Enclosed volume in mm³.
    """
    verts = np.asarray(vertices, dtype=np.float64)
    centre = verts.mean(axis=0)  # centred: no precision loss far from the origin
    six_v = six_signed_volumes(verts, faces, centre).sum()  # numpy's (pairwise) sum of the tetrahedra
    # [k,j,i] -> (i,j,k) swaps two axes (handedness -1); the grid matrix adds sign(det).
    sign = _SKIMAGE_ORIENTATION * -1.0 * np.sign(np.linalg.det(matrix))
    return float(sign * six_v / 6.0)
