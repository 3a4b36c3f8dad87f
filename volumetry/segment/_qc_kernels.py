"""Compiled kernels of the segmentation QC (numba, see :mod:`volumetry._jit`).

The waist search of :func:`volumetry.segment.qc.waist_fraction` works on voxel counts:
every value it adds, compares or divides is an integer held exactly in float64, so the
kernel's numbers are the numpy code's whatever the order of its sums (tested against a
frozen copy of that code).
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel


def _warm_waist() -> tuple:
    m = np.zeros((5, 6), dtype=bool)
    m[0, :4] = m[2, :1] = m[4, :4] = True
    return m, 0.5


@kernel(warm=_warm_waist)
def waist_share(rows, ratio):
    """Share of the mask beyond its deepest waist; ``rows[s]`` holds the voxels of slice ``s``.

    Parameters
    ----------
    rows : numpy.ndarray of bool
        ``(n_slices, voxels per slice)``, C-contiguous.
    ratio : float
        A slice is a waist when its area is below ``ratio`` × the largest area on each side.

    Returns
    -------
    float
        The largest share (of all mask voxels) on the smaller side of a waist; 0 without one.
    """
    n = rows.shape[0]
    area = np.zeros(n)
    for s in range(n):
        c = 0
        for v in rows[s]:
            c += v
        area[s] = c
    first = -1
    last = -1
    for s in range(n):
        if area[s] > 0:
            if first < 0:
                first = s
            last = s
    if first < 0 or last - first < 2:
        return 0.0
    total = 0.0
    for s in range(first, last + 1):
        total += area[s]
    peak_after = np.zeros(n)  # largest area after each slice
    for s in range(last - 1, first - 1, -1):
        peak_after[s] = max(peak_after[s + 1], area[s + 1])
    best = -1.0
    before = 0.0  # mask voxels on the slices before s
    peak_before = 0.0
    for s in range(first, last + 1):
        after = total - before - area[s]
        if area[s] < ratio * min(peak_before, peak_after[s]):
            best = max(best, min(before, after))
        before += area[s]
        peak_before = max(peak_before, area[s])
    if best < 0.0:
        return 0.0
    return best / total
