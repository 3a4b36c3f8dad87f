"""The faster longest in-plane diameter gives exactly the numbers of the code it replaced
(kept below as ``_ref_*``, verbatim but renamed): the length (mm) and the slice, bit for bit,
on the crops ``measure`` makes of random masks (anisotropic, oblique, left-handed grids), on
large slices (the convex-hull path), sheared in-plane axes, slices that tie or nearly tie
(the first one must win), thin, empty and one-voxel crops.

What changed: slices are measured from the widest candidate box down and a slice whose box
bound is shorter than the longest found so far is not measured (it can be neither the longest
nor within ``_TIE`` of it); the outline's first/last points of each line are marked by direct
indexing instead of ``np.put_along_axis``; the zero border without ``np.pad``.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull, QhullError
from test_measure_equivalence import blobs, random_case, rotation

from volumetry.measure import core as _core
from volumetry.measure.diameters import longest_inplane_diameter

# ---------------------------------------------------------------- reference (old code) ----

_BLOCK = 2048
_TIE = 1e-12
_PAIRWISE_MAX = 64


def _ref_longest_inplane_diameter(crop, matrix):
    inplane = np.asarray(matrix, dtype=float)[:, :2]
    lengths = np.zeros(crop.shape[0])
    for k, x, y in _ref_outline_candidates(np.asarray(crop, dtype=bool)):
        pts = np.outer(x, inplane[:, 0]) + np.outer(y, inplane[:, 1])
        if len(pts) > _PAIRWISE_MAX:
            pts = _ref_hull_points_2d(np.c_[x, y], pts)
        lengths[k] = _ref_max_pair_distance(pts)
    best = float(lengths.max()) if len(lengths) else 0.0
    if best <= 0.0:
        return 0.0, 0
    k_best = int(np.flatnonzero(lengths >= best * (1.0 - _TIE))[0])
    return best, k_best


def _ref_outline_candidates(crop):
    p = np.pad(crop, ((0, 0), (1, 1), (1, 1)))
    h = p[:, :, 1:] != p[:, :, :-1]
    v = p[:, 1:, :] != p[:, :-1, :]
    hk, hr, hc = np.nonzero(_ref_ends(h, 2) & _ref_ends(h, 1))
    vk, vr, vc = np.nonzero(_ref_ends(v, 2) & _ref_ends(v, 1))
    k = np.concatenate([hk, vk])
    x = np.concatenate([hc + 0.5, vc.astype(float)])
    y = np.concatenate([hr.astype(float), vr + 0.5])
    order = np.argsort(k, kind="stable")
    k, x, y = k[order], x[order], y[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else np.array([], int)
    ends = np.r_[starts[1:], len(k)]
    for a, b in zip(starts, ends):
        yield int(k[a]), x[a:b], y[a:b]


def _ref_ends(a, axis):
    has = a.any(axis=axis, keepdims=True)
    first = np.argmax(a, axis=axis, keepdims=True)
    last = a.shape[axis] - 1 - np.argmax(np.flip(a, axis=axis), axis=axis, keepdims=True)
    out = np.zeros_like(a)
    np.put_along_axis(out, first, has, axis=axis)
    np.put_along_axis(out, last, has, axis=axis)
    return out


def _ref_hull_points_2d(xy, pts):
    try:
        return pts[ConvexHull(xy).vertices]
    except (QhullError, ValueError):
        return pts


def _ref_max_pair_distance(pts):
    best = 0.0
    for start in range(0, len(pts), _BLOCK):
        d = pts[start:start + _BLOCK, None, :] - pts[None, :, :]
        best = max(best, float(np.einsum("abk,abk->ab", d, d).max()))
    return float(np.sqrt(best))


# ---------------------------------------------------------------- inputs ----


def _measured_crop(seed):
    """The crop and matrix ``measure`` passes for a random mask of test_measure_equivalence."""
    mv, _, label = random_case(seed)
    sel = (mv.array == label) if label is not None else mv.array.astype(bool)
    matrix = mv.direction @ np.diag(mv.spacing)
    if not sel.any():
        return sel[:0], matrix
    lo, hi = _core._bounding_box(sel)
    return sel[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], matrix


def _matrix(rng):
    m = rotation(rng) @ np.diag(rng.choice([0.01, 0.3, 0.45, 0.9375, 1.0, 2.5, 5.0, 10.0], size=3))
    if rng.random() < 0.25:  # sheared in-plane axes (not orthogonal)
        m[:, 1] += rng.uniform(-0.5, 0.5) * m[:, 0]
    return m


def _special_crop(seed):
    """Large slices (hull path), ties and near-ties between slices, thin and degenerate crops."""
    rng = np.random.default_rng(40_000 + seed)
    kind = seed % 8
    if kind == 0:  # large 2D blobs: many candidates per slice
        shape = (int(rng.integers(1, 5)), int(rng.integers(40, 140)), int(rng.integers(40, 140)))
        crop = np.stack([blobs(rng, shape[1:], int(rng.integers(1, 4))) for _ in range(shape[0])])
    elif kind == 1:  # the same slice repeated: exact ties, the first slice must win
        one = blobs(rng, (int(rng.integers(3, 60)), int(rng.integers(3, 60))), 2)
        crop = np.stack([one if rng.random() < 0.7 else np.zeros_like(one) for _ in range(int(rng.integers(2, 8)))])
    elif kind == 2:  # mirrored slices: the same length from other points
        one = blobs(rng, (int(rng.integers(3, 50)), int(rng.integers(3, 50))), 3)
        crop = np.stack([one, one[::-1], one[:, ::-1], one[::-1, ::-1]][: int(rng.integers(2, 5))])
    elif kind == 3:  # near ties: one pixel more or less
        one = blobs(rng, (int(rng.integers(5, 50)), int(rng.integers(5, 50))), 2)
        two = one.copy()
        idx = np.argwhere(~two)
        if len(idx):
            two[tuple(idx[int(rng.integers(0, len(idx)))])] = True
        crop = np.stack([one, two, one])
    elif kind == 4:  # one voxel, one row, one column
        crop = np.zeros((int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9))), bool)
        choice = int(rng.integers(0, 3))
        if choice == 0:
            crop[tuple(int(rng.integers(0, s)) for s in crop.shape)] = True
        elif choice == 1:
            crop[0, int(rng.integers(0, crop.shape[1])), :] = True
        else:
            crop[-1, :, int(rng.integers(0, crop.shape[2]))] = True
    elif kind == 5:  # empty, and empty slices between full ones
        crop = np.zeros((int(rng.integers(1, 6)), int(rng.integers(1, 20)), int(rng.integers(1, 20))), bool)
        if rng.random() < 0.7:
            crop[:: 2] = blobs(rng, crop.shape[1:], 2)
    elif kind == 6:  # noise: many small components per slice
        crop = rng.random((int(rng.integers(1, 12)), int(rng.integers(2, 70)), int(rng.integers(2, 70)))) < 0.3
    else:  # a thick 3D blob: many slices of slowly changing size
        shape = (int(rng.integers(5, 40)), int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        crop = blobs(rng, shape, 1)
    return crop, _matrix(rng)


CASES = [("measured", s) for s in range(240)] + [("special", s) for s in range(320)]


@pytest.mark.parametrize("kind, seed", CASES)
def test_longest_inplane_diameter_equals_reference(kind, seed):
    crop, matrix = _measured_crop(seed) if kind == "measured" else _special_crop(seed)
    new = longest_inplane_diameter(crop, matrix)
    ref = _ref_longest_inplane_diameter(crop, matrix)
    assert new == ref
    assert type(new[0]) is float and type(new[1]) is int


def test_a_crop_without_slices_equals_reference():
    crop = np.zeros((0, 4, 5), bool)
    assert longest_inplane_diameter(crop, np.eye(3)) == _ref_longest_inplane_diameter(crop, np.eye(3)) == (0.0, 0)
