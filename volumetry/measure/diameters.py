"""Maximum diameters of a lesion: three orthogonal extents and the longest in-plane one.

Definitions (all in mm, measured on the marching-cubes surface at level 0.5, i.e.
half-way between the centres of mask and background voxels, the same surface as
the mesh volume):

``L`` (longest diameter)
    the largest distance between two surface points (maximum Feret diameter).
``W`` (width)
    the largest distance between two surface points *measured perpendicular to
    L*: the maximum Feret diameter of the surface projected on the plane
    perpendicular to L.
``H`` (height)
    the extent of the surface along the axis perpendicular to both L and W.

For an ellipsoid with semi-axes ``a ≥ b ≥ c`` these are ``2a, 2b, 2c``, in
any orientation (within about one voxel, the surface's sampling). ``π/6·L·W·H``
is the ellipsoid volume ultrasound reports.

Longest in-plane diameter
    the largest distance between two points of the mask's outline within one
    slice of the image grid (the ``i, j`` plane, the acquisition plane of a 2D
    multi-slice series), over all slices: what a RECIST reader measures.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from ._kernels import farthest_pair, inplane_lengths, lattice_hull, line_extremes

#: Rows per block in the pairwise-distance search (bounds memory to ~block² floats).
_BLOCK = 2048


def _hull_points(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of ``points`` (all points if the hull is degenerate)."""
    pts = np.asarray(points, dtype=float)
    if len(pts) <= pts.shape[1] + 1:
        return pts
    try:
        return pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):  # flat or collinear set: every (distinct) point is a candidate
        return np.unique(pts, axis=0)


def _lattice_hull_points(points: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """:func:`_hull_points` of a marching-cubes surface, its vertices first reduced exactly.

    A vertex lying strictly between two others on an axis-parallel line of the lattice
    (:func:`._kernels.line_extremes`) is not a hull vertex, so it is left out; the hull of
    the others is then found exactly on their integer coordinates
    (:func:`._kernels.lattice_hull`): the points qhull finds on every vertex, in the same
    (input) order. Where that declines (flat or out-of-range input) and in degenerate cases,
    :func:`_hull_points` of every point, as before.
    """
    pts = np.asarray(points, dtype=float)
    if len(pts) <= pts.shape[1] + 1:
        return _hull_points(pts)
    lattice = np.ascontiguousarray(lattice, dtype=np.int64)
    candidates = np.flatnonzero(line_extremes(lattice))
    ok, vertex = lattice_hull(np.ascontiguousarray(lattice[candidates]))
    return pts[candidates[vertex]] if ok else _hull_points(pts)


def max_feret(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Largest distance between two of ``points`` (2D or 3D).

    Parameters
    ----------
    points : numpy.ndarray
        ``(n, d)`` coordinates in mm, ``n ≥ 1``.

    Returns
    -------
    length : float
        The maximum distance in mm (0 for a single point).
    p, q : numpy.ndarray
        The two end points.
    """
    return _max_feret_of(_hull_points(points))


def _max_feret_of(pts: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`max_feret` of points that are already its candidates (hull vertices), in their order."""
    centred = pts - pts.mean(axis=0)  # small coordinates: the Gram expansion stays exact enough
    best, bp, bq = -1.0, pts[0], pts[0]
    for start in range(0, len(pts), _BLOCK):
        # squared distances sq_a + sq_b - 2 <a, b> of the block's rows to all, their first largest
        # and its exact value (farthest_pair: numpy's operations; the Gram product stays numpy's)
        a, b, exact = farthest_pair(pts, centred, centred[start:start + _BLOCK] @ centred.T, start)
        if exact > best:
            best, bp, bq = exact, pts[start + a], pts[b]
    return float(np.sqrt(max(best, 0.0))), bp, bq


def orthogonal_diameters(points: np.ndarray, lattice: np.ndarray | None = None
                         ) -> tuple[tuple[float, float, float], np.ndarray]:
    """The three orthogonal diameters ``(L, W, H)`` of a 3D point set (see module doc).

    Parameters
    ----------
    points : numpy.ndarray
        ``(n, 3)`` surface points in LPS mm.
    lattice : numpy.ndarray, optional
        The points' exact lattice coordinates when they are the vertices of
        :func:`volumetry.measure.mesh.surface` (its third output): the hull is then found
        on the vertices that can be on it (:func:`_lattice_hull_points`), and, being the
        hull's own vertices, they are not hulled again for ``L``. Same result, faster.

    Returns
    -------
    diameters : tuple of float
        ``(L, W, H)`` in mm, ``L ≥ W``; ``H`` may exceed ``W`` for odd shapes
        only by the definition's order (it is not sorted).
    axes : numpy.ndarray
        3×3, rows are the unit LPS directions of L, W and H.
    """
    if lattice is None:
        pts = _hull_points(points)
        length, p, q = max_feret(pts)
    else:
        pts = _lattice_hull_points(points, lattice)
        length, p, q = _max_feret_of(pts)  # the vertices of a lattice hull are their own hull's
    u = (q - p) / length if length > 0 else np.array([1.0, 0.0, 0.0])
    # orthonormal basis (e1, e2) of the plane perpendicular to u
    helper = np.eye(3)[int(np.argmin(np.abs(u)))]
    e1 = _cross3(u, helper)
    e1 /= np.linalg.norm(e1)
    e2 = _cross3(u, e1)
    plane = np.c_[pts @ e1, pts @ e2]
    width, p2, q2 = max_feret(plane)
    if width > 0:
        d = (q2 - p2) / width
        v = d[0] * e1 + d[1] * e2
    else:
        v = e1
    w = _cross3(u, v)
    proj = pts @ w
    height = float(proj.max() - proj.min())
    return (float(length), float(width), height), np.vstack([u, v, w])


def _cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.cross`` of two 3-vectors: the same products and differences (float64), without
    its per-call axis handling."""
    a0, a1, a2 = float(a[0]), float(a[1]), float(a[2])
    b0, b1, b2 = float(b[0]), float(b[1]), float(b[2])
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def longest_inplane_diameter(crop: np.ndarray, matrix: np.ndarray) -> tuple[float, int]:
    """Longest diameter (mm) within one slice of a cropped mask, over all slices.

    The outline of a slice is its marching-squares contour at 0.5: the
    mid-points of the edges between a mask pixel and a background pixel
    (4-neighbours). Its longest chord joins two vertices of its convex hull,
    and every hull vertex is the first or last outline point of its row and of
    its column, so only those candidates are compared (all pairs, exact
    distances in mm; their convex hull's vertices first when a slice has many: the
    longest chord joins two of them, and any other pair is shorter by far more than
    rounding). Computed by :func:`._kernels.inplane_lengths`. Slices are
    measured from the widest candidate box down; a slice whose box (an upper
    bound of its diameter, with a margin far above rounding) is shorter than
    the longest found so far cannot be the longest nor tie with it, and is not
    measured.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        The mask inside its bounding box, indexed ``[k, j, i]``.
    matrix : numpy.ndarray
        ``direction @ diag(spacing)`` of the grid; its first two columns map
        in-plane index steps to mm.

    Returns
    -------
    length : float
        Longest in-plane diameter in mm (0 when no slice holds a voxel).
    k : int
        Slice of ``crop`` (0-based, relative to the crop) where it was found:
        the first slice whose length is within 1e-12 (relative) of the longest.
    """
    inplane = np.asarray(matrix, dtype=float)[:, :2]
    c0, c1 = np.ascontiguousarray(inplane[:, 0]), np.ascontiguousarray(inplane[:, 1])
    # |dx c0 + dy c1| <= |dx| |c0| + |dy| |c1|: a bound of every slice's diameter (mm)
    lengths = inplane_lengths(np.ascontiguousarray(crop, dtype=bool), c0, c1, float(np.linalg.norm(c0)),
                              float(np.linalg.norm(c1)), _BOUND_MARGIN, _PAIRWISE_MAX)
    best = float(lengths.max()) if len(lengths) else 0.0
    if best <= 0.0:
        return 0.0, 0
    k_best = int(np.flatnonzero(lengths >= best * (1.0 - _TIE))[0])
    return best, k_best


#: Relative tolerance under which two slices' in-plane diameters are the same length (first slice wins).
_TIE = 1e-12

#: Above this many candidates in a slice, reduce them to their convex hull before comparing all pairs.
_PAIRWISE_MAX = 64

#: Relative margin of the slice bound in :func:`longest_inplane_diameter` (rounding is ~1e-15).
_BOUND_MARGIN = 1e-6
