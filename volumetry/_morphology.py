"""Compiled kernels for binary masks shared by segmentation QC and measurement.

26-connected component sizes (what ``ndimage.label(mask, structure=ones((3, 3, 3)))``
followed by ``np.bincount`` gives, in no particular order) and the opening by a box
element of 1 or 3 voxels along each axis (``ndimage.binary_opening`` with the default
``border_value=0``). Both are exact integer / boolean computations: the tests compare
them with the ``scipy.ndimage`` calls they replace, value for value.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel


def _warm_mask() -> tuple:
    m = np.zeros((4, 5, 6), dtype=bool)
    m[1:3, 1:4, 1:5] = True
    return (m,)


@kernel(warm=_warm_mask)
def component_sizes26(mask):
    """Voxel counts of the 26-connected components of a 3D boolean mask.

    The mask is read as runs of set voxels along ``i``; a run joins every run of the
    previous row of its slice and of the three neighbouring rows of the previous slice
    whose ``i`` range overlaps or touches its own diagonally (union-find on runs).

    Parameters
    ----------
    mask : numpy.ndarray of bool
        3D mask (C-contiguous).

    Returns
    -------
    numpy.ndarray of int64
        One count per component, in the order of each component's first voxel (C order).
    """
    nk, nj, ni = mask.shape
    nrows = nk * nj
    n_runs = 0
    for k in range(nk):
        for j in range(nj):
            prev = False
            for i in range(ni):
                v = mask[k, j, i]
                if v and not prev:
                    n_runs += 1
                prev = v
    row_first = np.empty(nrows + 1, dtype=np.int64)  # runs of row (k, j): row_first[r] .. row_first[r + 1] - 1
    starts = np.empty(n_runs, dtype=np.int64)
    ends = np.empty(n_runs, dtype=np.int64)  # exclusive
    n = 0
    for k in range(nk):
        for j in range(nj):
            row_first[k * nj + j] = n
            prev = False
            for i in range(ni):
                v = mask[k, j, i]
                if v and not prev:
                    starts[n] = i
                elif prev and not v:
                    ends[n] = i
                    n += 1
                prev = v
            if prev:
                ends[n] = ni
                n += 1
    row_first[nrows] = n_runs
    parent = np.arange(n_runs)
    for k in range(nk):
        for j in range(nj):
            r = k * nj + j
            for a in range(row_first[r], row_first[r + 1]):
                for dk, dj in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
                    kk = k + dk
                    jj = j + dj
                    if kk < 0 or jj < 0 or jj >= nj:
                        continue
                    q = kk * nj + jj
                    for b in range(row_first[q], row_first[q + 1]):
                        if starts[b] > ends[a]:
                            break
                        if ends[b] >= starts[a]:
                            _union(parent, a, b)
    sizes = np.zeros(n_runs, dtype=np.int64)
    for a in range(n_runs):
        sizes[_find(parent, a)] += ends[a] - starts[a]
    out = np.empty(n_runs, dtype=np.int64)
    n = 0
    for a in range(n_runs):
        if parent[a] == a:
            out[n] = sizes[a]
            n += 1
    return out[:n].copy()


@kernel()
def _find(parent, a):
    root = a
    while parent[root] != root:
        root = parent[root]
    while parent[a] != root:  # path compression
        nxt = parent[a]
        parent[a] = root
        a = nxt
    return root


@kernel()
def _union(parent, a, b):
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


def _warm_open() -> tuple:
    return _warm_mask()[0], 3, 3, 1


@kernel(warm=_warm_open)
def box_opening(mask, wk, wj, wi):
    """Binary opening of a 3D mask by a box ``wk × wj × wi`` (each 1 or 3), outside = background.

    Equals ``ndimage.binary_opening(mask, structure=np.ones((wk, wj, wi), bool))``: an
    erosion that treats voxels outside the array as background, then a dilation that
    adds nothing outside it. A box is separable, so both run one axis at a time.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        3D mask (C-contiguous).
    wk, wj, wi : int
        Width of the element along each axis: 1 or 3 voxels.

    Returns
    -------
    numpy.ndarray of bool
        The opened mask, same shape.
    """
    a = mask.copy()
    b = np.empty_like(a)
    for erode in (True, False):
        for axis in range(3):
            w = (wk, wj, wi)[axis]
            if w == 1:
                continue
            _shift_combine(a, b, axis, erode)
            a, b = b, a
    return a


@kernel()
def _shift_combine(src, dst, axis, erode):
    """``dst`` = AND (erode) or OR (dilate) of ``src`` with its two neighbours along ``axis``
    (a neighbour outside the array counts as background)."""
    nk, nj, ni = src.shape
    for k in range(nk):
        for j in range(nj):
            for i in range(ni):
                v = src[k, j, i]
                if axis == 0:
                    lo = src[k - 1, j, i] if k > 0 else False
                    hi = src[k + 1, j, i] if k < nk - 1 else False
                elif axis == 1:
                    lo = src[k, j - 1, i] if j > 0 else False
                    hi = src[k, j + 1, i] if j < nj - 1 else False
                else:
                    lo = src[k, j, i - 1] if i > 0 else False
                    hi = src[k, j, i + 1] if i < ni - 1 else False
                dst[k, j, i] = (v and lo and hi) if erode else (v or lo or hi)
