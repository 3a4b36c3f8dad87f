"""The orthogonal diameters found on the lattice-reduced hull (``orthogonal_diameters(points,
lattice=...)``, as ``measure`` calls it) are exactly those of the plain path (every surface vertex
hulled, the hull's vertices hulled again for ``L``), on every kind of surface a mask gives.

Why they must be: a marching-cubes vertex of a binary mask is the mid-point of a voxel edge
(twice its index is an integer triple), so a vertex strictly between two others on an
axis-parallel line is not a hull vertex and can be left out before qhull runs; and the hull's
vertices of a lattice set are extreme by far more than qhull's rounding, so hulling them again
returns them all, in order. These tests check both claims, and the resulting numbers, bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

from volumetry.measure import diameters as dm
from volumetry.measure._kernels import lattice_hull, line_extremes
from volumetry.measure.mesh import surface, surface_lps


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _shapes(rng, n):
    """Masks of the kinds lesions give: smooth blobs, ellipsoids, boxes (many equal diameters),
    thin sheets and rods, one voxel, several components, L-shapes."""
    out = []
    for i in range(n):
        kind = i % 7
        shape = tuple(int(v) for v in rng.integers(4, 22, size=3))
        if kind == 0:
            noise = ndimage.gaussian_filter(rng.normal(size=shape), rng.uniform(1.0, 3.0))
            m = noise > np.quantile(noise, rng.uniform(0.5, 0.9))
        elif kind == 1:
            k, j, i_ = np.ogrid[:shape[0], :shape[1], :shape[2]]
            c = [(s - 1) / 2 for s in shape]
            r = [max(1.0, rng.uniform(0.3, 0.5) * s) for s in shape]
            m = ((k - c[0]) / r[0]) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((i_ - c[2]) / r[2]) ** 2 <= 1.0
        elif kind == 2:
            m = np.zeros(shape, bool)
            lo = [int(rng.integers(0, s // 2)) for s in shape]
            hi = [int(rng.integers(lo_ + 1, s + 1)) for lo_, s in zip(lo, shape)]
            m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
        elif kind == 3:
            m = np.zeros(shape, bool)
            m[shape[0] // 2] = rng.random(shape[1:]) > 0.3  # one slice thick
        elif kind == 4:
            m = np.zeros(shape, bool)
            m[:, shape[1] // 2, rng.integers(0, shape[2])] = True  # a rod one voxel wide
        elif kind == 5:
            m = np.zeros(shape, bool)
            m[tuple(int(rng.integers(0, s)) for s in shape)] = True
            m[tuple(int(rng.integers(0, s)) for s in shape)] = True  # one or two single voxels
        else:
            m = np.zeros(shape, bool)
            m[: shape[0] // 2 + 1, :, : 2] = True
            m[:, : 2, :] = True  # an L
        if m.any():
            out.append(m)
    return out


def _grids(rng):
    yield np.diag([0.7, 0.7, 3.0]), np.array([-90.0, -120.0, 40.0])
    yield np.diag([1.0, 1.0, 1.0]), np.zeros(3)
    yield _rotation(rng) @ np.diag([0.4688, 0.4688, 4.4]), np.array([12.3, -250.7, 1003.1])
    yield np.diag([-0.9, 0.9, 1.2]), np.array([300.0, 5.0, -80.0])


def _crop(mask):
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    return np.ascontiguousarray(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]), lo


def _plain(points):
    """The diameters as computed before the lattice path (every vertex hulled, then hulled again)."""
    pts = dm._hull_points(points)
    length, p, q = dm.max_feret(pts)
    return pts, length, p, q


@pytest.mark.parametrize("seed", range(6))
def test_lattice_diameters_equal_plain_diameters(seed):
    rng = np.random.default_rng(seed)
    compared = 0
    for mask in _shapes(rng, 35):
        crop, lo = _crop(mask)
        for matrix, origin in _grids(rng):
            verts, faces, lattice = surface(crop, lo[::-1], matrix, origin)
            old_v, old_f = surface_lps(crop, lo[::-1], matrix, origin)
            assert np.array_equal(verts, old_v) and np.array_equal(faces, old_f)
            plain, plain_axes = dm.orthogonal_diameters(verts)
            fast, fast_axes = dm.orthogonal_diameters(verts, lattice=lattice)
            assert fast == plain  # floats compared exactly
            assert np.array_equal(fast_axes, plain_axes)
            compared += 1
    assert compared >= 100


@pytest.mark.parametrize("seed", range(4))
def test_the_lattice_hull_has_the_same_vertices_in_the_same_order(seed):
    rng = np.random.default_rng(100 + seed)
    reduced = exact = 0
    for mask in _shapes(rng, 35):
        crop, lo = _crop(mask)
        matrix, origin = next(_grids(rng))
        verts, _, lattice = surface(crop, lo[::-1], matrix, origin)
        ijk = lattice[:, ::-1] / 2.0 + (lo[::-1] - 1.0)  # the lattice is the vertices' exact index
        assert np.array_equal(ijk @ matrix.T + origin, verts) and lattice.min() >= 1
        pts = dm._hull_points(verts)
        assert np.array_equal(dm._lattice_hull_points(verts, lattice), pts)
        # the hull's vertices are their own hull's: hulling them again (what L used to do) changes nothing
        again = dm._hull_points(pts)
        assert np.array_equal(again, pts)
        reduced += int(line_extremes(lattice).sum() < len(verts))
        exact += int(len(verts) > 4 and lattice_hull(lattice[line_extremes(lattice)])[0])
    assert reduced > 0  # the reduction does leave points out
    assert exact >= 30  # ... and the exact hull, not qhull's fallback, found the vertices


def test_line_extremes_keeps_hull_vertices_and_drops_points_between_others():
    # a 3 x 3 x 3 cube of lattice points: only its 8 corners are first or last on all three lines
    g = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(np.int64) * 2
    keep = line_extremes(g)
    corners = np.all((g == 0) | (g == 4), axis=1)
    assert np.array_equal(keep, corners)
    # a point alone on its lines is kept; an empty set gives an empty result
    assert line_extremes(np.array([[5, 7, 9]], dtype=np.int64)).tolist() == [True]
    assert line_extremes(np.zeros((0, 3), dtype=np.int64)).shape == (0,)


def test_every_hull_vertex_survives_the_reduction():
    rng = np.random.default_rng(7)
    for mask in _shapes(rng, 70):
        crop, lo = _crop(mask)
        verts, _, lattice = surface(crop, lo[::-1], np.eye(3), np.zeros(3))
        if len(verts) <= 4:
            continue
        hull = ConvexHull(verts).vertices
        assert line_extremes(lattice)[hull].all()


@pytest.mark.parametrize("seed", range(3))
def test_the_exact_hull_has_qhulls_vertices_on_integer_clouds(seed):
    """Random integer points, from a 3-wide to a 1000-wide cube: many coplanar and collinear."""
    rng = np.random.default_rng(200 + seed)
    compared = 0
    for _ in range(400):
        span = int(rng.choice([3, 4, 6, 10, 50, 1000]))
        pts = np.unique(rng.integers(0, span, (int(rng.integers(5, 250)), 3)), axis=0).astype(np.int64)
        if len(pts) < 5 or np.linalg.matrix_rank(pts[1:] - pts[0]) < 3:
            continue
        ok, keep = lattice_hull(pts)
        assert ok
        assert np.array_equal(np.flatnonzero(keep), ConvexHull(pts.astype(float)).vertices)
        compared += 1
    assert compared > 300


def test_the_exact_hull_declines_what_it_does_not_handle():
    flat = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0], [4, 4, 0], [2, 2, 0]], dtype=np.int64)
    assert not lattice_hull(flat)[0]  # no tetrahedron
    assert not lattice_hull(flat[:3])[0]  # too few points
    far = np.array([[0, 0, 0], [5000, 0, 0], [0, 4, 0], [0, 0, 4], [1, 1, 1]], dtype=np.int64)
    assert not lattice_hull(far)[0]  # out of the exact range: qhull's way
    cube = np.array([[x, y, z] for x in (0, 2) for y in (0, 2) for z in (0, 2)] + [[1, 1, 1], [1, 1, 3]],
                    dtype=np.int64)
    ok, keep = lattice_hull(cube)
    assert ok and keep.tolist() == [True] * 8 + [False, True]  # the centre is inside; the apex is a vertex


def _line_extremes_oracle(lattice):
    """Plain Python: a point is kept when, on each axis, it is the first or the last of the points
    sharing its two other coordinates."""
    keep = np.ones(len(lattice), dtype=bool)
    for a in range(3):
        others = [b for b in range(3) if b != a]
        ends = {}
        for p in lattice.tolist():
            key = (p[others[0]], p[others[1]])
            lo, hi = ends.get(key, (p[a], p[a]))
            ends[key] = (min(lo, p[a]), max(hi, p[a]))
        for n, p in enumerate(lattice.tolist()):
            if p[a] not in ends[(p[others[0]], p[others[1]])]:
                keep[n] = False
    return keep


@pytest.mark.parametrize("seed", range(3))
def test_line_extremes_equals_a_plain_python_oracle(seed):
    """Surface lattices of every kind of mask, and dense or sparse random clouds with repeated points
    (several points at one position are all first and last there)."""
    rng = np.random.default_rng(300 + seed)
    for mask in _shapes(rng, 14):
        crop, lo = _crop(mask)
        lattice = surface(crop, lo[::-1], np.eye(3), np.zeros(3))[2]
        assert np.array_equal(line_extremes(lattice), _line_extremes_oracle(lattice))
    for _ in range(40):
        span = rng.integers(1, 12, size=3)
        pts = (rng.integers(0, 1 << 20, (int(rng.integers(1, 400)), 3)) % span).astype(np.int64)
        assert np.array_equal(line_extremes(pts), _line_extremes_oracle(pts))
