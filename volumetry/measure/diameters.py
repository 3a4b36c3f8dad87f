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
    pts = _hull_points(points)
    centred = pts - pts.mean(axis=0)  # small coordinates: the Gram expansion stays exact enough
    sq = (centred ** 2).sum(axis=1)
    best, bp, bq = -1.0, pts[0], pts[0]
    for start in range(0, len(pts), _BLOCK):
        blk = centred[start:start + _BLOCK]
        d2 = sq[start:start + _BLOCK, None] + sq[None, :] - 2.0 * (blk @ centred.T)
        a, b = np.unravel_index(int(np.argmax(d2)), d2.shape)
        exact = float(((pts[start + a] - pts[b]) ** 2).sum())
        if exact > best:
            best, bp, bq = exact, pts[start + a], pts[b]
    return float(np.sqrt(max(best, 0.0))), bp, bq


def orthogonal_diameters(points: np.ndarray) -> tuple[tuple[float, float, float], np.ndarray]:
    """The three orthogonal diameters ``(L, W, H)`` of a 3D point set (see module doc).

    Parameters
    ----------
    points : numpy.ndarray
        ``(n, 3)`` surface points in LPS mm.

    Returns
    -------
    diameters : tuple of float
        ``(L, W, H)`` in mm, ``L ≥ W``; ``H`` may exceed ``W`` for odd shapes
        only by the definition's order (it is not sorted).
    axes : numpy.ndarray
        3×3, rows are the unit LPS directions of L, W and H.
    """
    pts = _hull_points(points)
    length, p, q = max_feret(pts)
    u = (q - p) / length if length > 0 else np.array([1.0, 0.0, 0.0])
    # orthonormal basis (e1, e2) of the plane perpendicular to u
    helper = np.eye(3)[int(np.argmin(np.abs(u)))]
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    plane = np.c_[pts @ e1, pts @ e2]
    width, p2, q2 = max_feret(plane)
    if width > 0:
        d = (q2 - p2) / width
        v = d[0] * e1 + d[1] * e2
    else:
        v = e1
    w = np.cross(u, v)
    proj = pts @ w
    height = float(proj.max() - proj.min())
    return (float(length), float(width), height), np.vstack([u, v, w])


def longest_inplane_diameter(crop: np.ndarray, matrix: np.ndarray) -> tuple[float, int]:
    """Longest diameter (mm) within one slice of a cropped mask, over all slices.

    The outline of a slice is its marching-squares contour at 0.5: the
    mid-points of the edges between a mask pixel and a background pixel
    (4-neighbours). Its longest chord joins two vertices of its convex hull,
    and every hull vertex is the first or last outline point of its row and of
    its column, so only those candidates are compared (all pairs, exact
    distances in mm; a convex hull first when a slice has many). Slices are
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
    c0, c1 = inplane[:, 0], inplane[:, 1]
    lengths = np.zeros(crop.shape[0])  # 0 for a slice not measured (it is not the longest)
    k, x, y = _outline_points(np.asarray(crop, dtype=bool))
    if len(k):
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], len(k)]
        # |dx c0 + dy c1| <= |dx| |c0| + |dy| |c1|: a bound of every slice's diameter (mm)
        span_x = np.maximum.reduceat(x, starts) - np.minimum.reduceat(x, starts)
        span_y = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
        bound = (span_x * float(np.linalg.norm(c0)) + span_y * float(np.linalg.norm(c1))) * (1.0 + _BOUND_MARGIN)
        longest = 0.0
        for s in np.argsort(-bound, kind="stable").tolist():
            if bound[s] < longest * (1.0 - _BOUND_MARGIN):
                break  # this slice and the rest are shorter than the longest by far more than _TIE
            a, b = int(starts[s]), int(ends[s])
            xs, ys = x[a:b], y[a:b]
            pts = np.outer(xs, c0) + np.outer(ys, c1)  # (i, j) index units -> mm
            if len(pts) > _PAIRWISE_MAX:
                pts = _hull_points_2d(np.c_[xs, ys], pts)
            lengths[k[a]] = _max_pair_distance(pts)
            longest = max(longest, lengths[k[a]])
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


def _outline_points(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(k, x, y)`` of the outline points (index units, ``x`` along i, ``y`` along j,
    half-integers at edge mid-points) that are the first or last of their row and of their
    column, ordered by slice ``k`` (stable)."""
    nk, nj, ni = crop.shape
    p = np.zeros((nk, nj + 2, ni + 2), dtype=bool)  # np.pad's zero border, without its overhead
    p[:, 1:-1, 1:-1] = crop
    # mid-points of horizontal edges (between columns c and c+1 of row r): x = c + 0.5, y = r
    h = p[:, :, 1:] != p[:, :, :-1]
    # mid-points of vertical edges (between rows r and r+1 of column c): x = c, y = r + 0.5
    v = p[:, 1:, :] != p[:, :-1, :]
    hk, hr, hc = np.nonzero(_ends(h, 2) & _ends(h, 1))
    vk, vr, vc = np.nonzero(_ends(v, 2) & _ends(v, 1))
    k = np.concatenate([hk, vk])
    x = np.concatenate([hc + 0.5, vc.astype(float)])
    y = np.concatenate([hr.astype(float), vr + 0.5])
    order = np.argsort(k, kind="stable")
    return k[order], x[order], y[order]


def _ends(a: np.ndarray, axis: int) -> np.ndarray:
    """True at the first and the last True of every line of ``a`` (3D) along ``axis`` (1 or 2)."""
    n = a.shape[axis]
    has = a.any(axis=axis)
    first = np.argmax(a, axis=axis)
    last = n - 1 - np.argmax(np.flip(a, axis=axis), axis=axis)
    out = np.zeros_like(a)
    outer, inner = np.ogrid[:has.shape[0], :has.shape[1]]
    if axis == 2:
        out[outer, inner, first] = has
        out[outer, inner, last] = has
    else:
        out[outer, first, inner] = has
        out[outer, last, inner] = has
    return out


def _hull_points_2d(xy: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Rows of ``pts`` at the convex-hull vertices of the 2D index points ``xy`` (exact half-integers)."""
    try:
        return pts[ConvexHull(xy).vertices]
    except (QhullError, ValueError):  # collinear: every point is a candidate
        return pts


def _max_pair_distance(pts: np.ndarray) -> float:
    """Largest distance (mm) between two rows of ``pts``, computed exactly from differences."""
    best = 0.0
    for start in range(0, len(pts), _BLOCK):
        d = pts[start:start + _BLOCK, None, :] - pts[None, :, :]
        best = max(best, float(np.einsum("abk,abk->ab", d, d).max()))
    return float(np.sqrt(best))
