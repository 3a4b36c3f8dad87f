"""FROZEN COPY (test oracle): volumetry/segment/kernels.py as of commit 8737b9c, before the speed-ups of
noise_sigma, grow_kernel, lesion_field and the fill/shell kernels; verbatim except for this docstring
and the imports made absolute (frozen module names). Do not edit: tests/test_segment_speed_v2.py asserts
that the current code gives exactly what this gives.
"""
from __future__ import annotations

import numpy as np

from volumetry._jit import kernel


def _read_only(a):
    a.flags.writeable = False
    return a


def _warm_grow():
    sm = np.zeros((3, 4, 5), np.float32)
    sm[1, 1, 1:3] = 1
    return (sm, np.float32(0.5), np.ones((1, 1, 1), np.bool_), False, _read_only(np.zeros((1, 3), np.int64)),
            np.array([[1, 0, 0], [-1, 0, 0]], np.int64), np.array([[1, 1, 1]], np.int64),
            np.zeros((0, 3), np.int64), np.zeros(2, np.int64), np.zeros(sm.shape, np.bool_), np.zeros(6, np.int64))


@kernel(warm=_warm_grow)
def grow_kernel(sm, thr, allowed, use_allowed, cl_off, conn_off, seeds, anchors, anchor_start, out, rbox):
    """Region of ``sm > thr`` (and ``allowed``) after a closing, connected to the seeds.

    Parameters
    ----------
    sm : numpy.ndarray
        (Smoothed) crop, 3D.
    thr : scalar of ``sm``'s dtype
        Threshold (compared as numpy compares ``sm > threshold``).
    allowed : numpy.ndarray of bool
        Crop-shaped mask of allowed voxels, used when ``use_allowed``.
    use_allowed : bool
    cl_off : numpy.ndarray of int64, (m, 3)
        Offsets of the closing's (symmetric) structuring element ((0, 0, 0) alone: no closing).
    conn_off : numpy.ndarray of int64, (c, 3)
        Neighbour offsets of the connectivity (no (0, 0, 0)).
    seeds : numpy.ndarray of int64, (n, 3)
        Seed voxels.
    anchors : numpy.ndarray of int64, (total, 3)
        Anchor voxels of all seeds, seed ``s``'s at rows ``anchor_start[s]:anchor_start[s + 1]``.
    anchor_start : numpy.ndarray of int64, (n + 1,)
        Negative ``anchor_start[0]``: no anchors.
    out : numpy.ndarray of bool
        Crop-shaped, all False: receives the region.
    rbox : numpy.ndarray of int64, (6,)
        Receives the region's bounding box (lo k, j, i, hi k, j, i).

    Returns
    -------
    int
        Number of voxels in the region.
    """
    nk, nj, ni = sm.shape
    lo0, lo1, lo2 = nk, nj, ni
    hi0, hi1, hi2 = -1, -1, -1
    for k in range(nk):
        for j in range(nj):
            hit = False  # any voxel of the row above the threshold (a branch-free pass), then its ends
            if use_allowed:
                for i in range(ni):
                    hit |= (sm[k, j, i] > thr) & allowed[k, j, i]
            else:
                for i in range(ni):
                    hit |= sm[k, j, i] > thr
            if not hit:
                continue
            lo0 = min(lo0, k)
            hi0 = max(hi0, k)
            lo1 = min(lo1, j)
            hi1 = max(hi1, j)
            i = 0
            while not (sm[k, j, i] > thr and (not use_allowed or allowed[k, j, i])):
                i += 1
            lo2 = min(lo2, i)
            i = ni - 1
            while not (sm[k, j, i] > thr and (not use_allowed or allowed[k, j, i])):
                i -= 1
            hi2 = max(hi2, i)
    if hi0 < 0:
        return 0
    bk, bj, bi = hi0 - lo0 + 1, hi1 - lo1 + 1, hi2 - lo2 + 1
    # the box inside a zero border of p voxels (at least the closing's reach, and 1 for the fill)
    p0, p1, p2 = 1, 1, 1
    for r in range(cl_off.shape[0]):
        p0 = max(p0, abs(cl_off[r, 0]))
        p1 = max(p1, abs(cl_off[r, 1]))
        p2 = max(p2, abs(cl_off[r, 2]))
    PJ, PI = bj + 2 * p1, bi + 2 * p2
    size = (bk + 2 * p0) * PJ * PI
    closes = cl_off.shape[0] > 1 or cl_off[0, 0] != 0 or cl_off[0, 1] != 0 or cl_off[0, 2] != 0
    cl = np.empty(cl_off.shape[0], np.int64)
    for r in range(cl_off.shape[0]):
        cl[r] = (cl_off[r, 0] * PJ + cl_off[r, 1]) * PI + cl_off[r, 2]
    # state: 0 background, 1 in the closed box, 2 in the region (filled), 3 queued for the fill
    state = np.zeros(size, np.uint8)
    dil = np.zeros(size if closes else 1, np.uint8)
    nclosed = 0
    for k in range(bk):
        for j in range(bj):
            f = ((k + p0) * PJ + j + p1) * PI + p2
            for i in range(bi):
                if sm[k + lo0, j + lo1, i + lo2] > thr and (not use_allowed or allowed[k + lo0, j + lo1, i + lo2]):
                    state[f + i] = 1
                    nclosed += 1
                    if closes:
                        for r in range(cl.size):
                            dil[f + i + cl[r]] = 1
    if closes:
        # closing: the erosion of the dilation, on the box; then `allowed` again
        for k in range(bk):
            for j in range(bj):
                f = ((k + p0) * PJ + j + p1) * PI + p2
                for i in range(bi):
                    if state[f + i]:
                        continue
                    v = True
                    for r in range(cl.size):
                        if not dil[f + i + cl[r]]:
                            v = False
                            break
                    if v and (not use_allowed or allowed[k + lo0, j + lo1, i + lo2]):
                        state[f + i] = 1
                        nclosed += 1
    # neighbour rows of the connectivity: (flat offset of the row, reach e along i)
    nrow = np.zeros(9, np.int64)
    ereach = np.full(9, -1, np.int64)
    for c in range(conn_off.shape[0]):
        dk, dj, di = conn_off[c, 0], conn_off[c, 1], conn_off[c, 2]
        if dk == 0 and dj == 0:
            continue
        m = (dk + 1) * 3 + dj + 1
        nrow[m] = (dk * PJ + dj) * PI
        ereach[m] = max(ereach[m], abs(di))
    # span flood fill from the seeds (a seed off the region: its anchors); the border stops it.
    # state 3: in the box, queued (each voxel of the closing is queued at most once: the stack never overflows)
    stack = np.empty(nclosed, np.int64)
    top = 0
    for s in range(seeds.shape[0]):
        k, j, i = seeds[s, 0] - lo0, seeds[s, 1] - lo1, seeds[s, 2] - lo2
        if 0 <= k < bk and 0 <= j < bj and 0 <= i < bi and state[((k + p0) * PJ + j + p1) * PI + i + p2]:
            f = ((k + p0) * PJ + j + p1) * PI + i + p2
            if state[f] == 1:
                state[f] = 3
                stack[top] = f
                top += 1
        elif anchor_start[0] >= 0:
            for a in range(anchor_start[s], anchor_start[s + 1]):
                k, j, i = anchors[a, 0] - lo0, anchors[a, 1] - lo1, anchors[a, 2] - lo2
                if 0 <= k < bk and 0 <= j < bj and 0 <= i < bi:
                    f = ((k + p0) * PJ + j + p1) * PI + i + p2
                    if state[f] == 1:
                        state[f] = 3
                        stack[top] = f
                        top += 1
    n = 0
    r0, r1, r2 = nk, nj, ni
    s0, s1, s2 = -1, -1, -1
    plane = PJ * PI
    while top > 0:
        top -= 1
        f = stack[top]
        if state[f] == 2:
            continue
        a = f
        while state[a - 1] & 1:
            a -= 1
        b = f
        while state[b + 1] & 1:
            b += 1
        for x in range(a, b + 1):
            state[x] = 2
        k = a // plane - p0 + lo0
        j = (a % plane) // PI - p1 + lo1
        i0 = a % PI - p2 + lo2
        for x in range(b - a + 1):
            out[k, j, i0 + x] = True
        n += b - a + 1
        r0 = min(r0, k)
        s0 = max(s0, k)
        r1 = min(r1, j)
        s1 = max(s1, j)
        r2 = min(r2, i0)
        s2 = max(s2, i0 + b - a)
        for m in range(9):
            e = ereach[m]
            if e < 0:
                continue
            d = nrow[m]
            prev = False
            for x in range(a - e + d, b + e + d + 1):
                cur = (state[x] & 1) == 1
                if cur and not prev and state[x] == 1:
                    state[x] = 3
                    stack[top] = x
                    top += 1
                prev = cur
    if n:
        rbox[0], rbox[1], rbox[2] = r0, r1, r2
        rbox[3], rbox[4], rbox[5] = s0 + 1, s1 + 1, s2 + 1
    return n


def _warm_shell():
    region = np.zeros((5, 6, 7), np.bool_)
    region[2, 3, 3] = True
    return (region, np.array([2, 3, 3, 3, 4, 4], np.int64), np.array([2, 2, 2], np.int64),
            _read_only(np.zeros((1, 4), np.int64)), _read_only(np.zeros((0, 4), np.int64)),
            np.ones(region.shape, np.bool_), np.zeros(region.shape, np.float32), np.zeros((1, 1, 1), np.bool_))


@kernel(warm=_warm_shell)
def shell_kernel(region, rbox, pad, outer_rows, gap_rows, allowed, img, out):
    """Background shell of ``region`` (see :func:`volumetry.segment.common.shell`).

    Voxels of the region's bounding box ``rbox`` grown by ``pad`` (clipped to the crop) that
    are not in the 26-neighbour dilation of the region (``inner``), are within an offset of
    ``outer_rows`` from an ``inner`` voxel but within none of ``gap_rows``, and are ``allowed``;
    written into ``out`` when it is crop-shaped (all False), not when it is not. Rows
    ``(dk, dj, di, w)`` are the runs of :func:`volumetry.segment.common._rows`: offsets
    ``(dk, dj, di - w .. di + w)``.

    Each dilation is done run by run: a run ``a..b`` of a row (k, j) of the set covers
    ``a + di - w .. b + di + w`` of row ``(k + dk, j + dj)`` for each element row, counted
    in a difference array and summed along i. The sum over the rows of ``w + 1`` must stay
    below 2 ** 15 for ``outer_rows`` and for ``gap_rows`` (int16 counts).

    Returns
    -------
    numpy.ndarray
        The values of ``img`` (crop-shaped) in the shell, in C order (those of ``img[shell]``).
    """
    nk, nj, ni = region.shape
    l0, l1, l2 = max(rbox[0] - pad[0], 0), max(rbox[1] - pad[1], 0), max(rbox[2] - pad[2], 0)
    h0, h1, h2 = min(rbox[3] + pad[0], nk), min(rbox[4] + pad[1], nj), min(rbox[5] + pad[2], ni)
    bk, bj, bi = h0 - l0, h1 - l1, h2 - l2
    # inner: the region dilated by the 3x3x3 cube, inside the box
    # a voxel is covered by at most 2 grown runs of each of the 9 rows around it: int8 holds the count
    cnt = np.zeros((bk, bj, bi + 1), np.int8)
    for k in range(rbox[0], rbox[3]):
        for j in range(rbox[1], rbox[4]):
            i = rbox[2]
            while i < rbox[5]:
                if not region[k, j, i]:
                    i += 1
                    continue
                a = i
                while i < rbox[5] and region[k, j, i]:
                    i += 1
                s, e = max(a - 1 - l2, 0), min(i - l2, bi - 1)  # run a..i-1 grown by one voxel
                for kk in range(max(k - 1, l0) - l0, min(k + 2, h0) - l0):
                    for jj in range(max(j - 1, l1) - l1, min(j + 2, h1) - l1):
                        cnt[kk, jj, s] += 1
                        cnt[kk, jj, e + 1] -= 1
    # inner lies in the region's box grown by one voxel (box coordinates e..f)
    e0, e1, e2 = max(rbox[0] - 1, l0) - l0, max(rbox[1] - 1, l1) - l1, max(rbox[2] - 1, l2) - l2
    f0, f1, f2 = min(rbox[3] + 1, h0) - l0, min(rbox[4] + 1, h1) - l1, min(rbox[5] + 1, h2) - l2
    inner = np.zeros((bk, bj, bi), np.bool_)
    for k in range(e0, f0):
        for j in range(e1, f1):
            c = 0
            for i in range(e2, f2):
                c += cnt[k, j, i]
                inner[k, j, i] = c > 0
    # at most w + 1 runs of a row meet a window of 2 w + 1 voxels: a count is at most the sum over the
    # element's rows of w + 1, below 2 ** 15 (the caller checks)
    cout = np.zeros((bk, bj, bi + 1), np.int16)
    cgap = np.zeros((bk, bj, bi + 1), np.int16)
    for k in range(e0, f0):
        for j in range(e1, f1):
            i = e2
            while i < f2:
                if not inner[k, j, i]:
                    i += 1
                    continue
                a = i
                while i < f2 and inner[k, j, i]:
                    i += 1
                b = i - 1
                for r in range(outer_rows.shape[0]):
                    kk, jj = k + outer_rows[r, 0], j + outer_rows[r, 1]
                    s = max(a + outer_rows[r, 2] - outer_rows[r, 3], 0)
                    e = min(b + outer_rows[r, 2] + outer_rows[r, 3], bi - 1)
                    if 0 <= kk < bk and 0 <= jj < bj and s <= e:
                        cout[kk, jj, s] += 1
                        cout[kk, jj, e + 1] -= 1
                for r in range(gap_rows.shape[0]):
                    kk, jj = k + gap_rows[r, 0], j + gap_rows[r, 1]
                    s = max(a + gap_rows[r, 2] - gap_rows[r, 3], 0)
                    e = min(b + gap_rows[r, 2] + gap_rows[r, 3], bi - 1)
                    if 0 <= kk < bk and 0 <= jj < bj and s <= e:
                        cgap[kk, jj, s] += 1
                        cgap[kk, jj, e + 1] -= 1
    mask = out.shape == region.shape
    vals = np.empty(bk * bj * bi, img.dtype)
    n = 0
    for k in range(bk):
        for j in range(bj):
            co = 0
            cg = 0
            for i in range(bi):
                co += cout[k, j, i]
                cg += cgap[k, j, i]
                if co > 0 and cg == 0 and not inner[k, j, i] and allowed[k + l0, j + l1, i + l2]:
                    vals[n] = img[k + l0, j + l1, i + l2]
                    n += 1
                    if mask:
                        out[k + l0, j + l1, i + l2] = True
    return vals[:n]


@kernel()
def _median_tail(part, h, lower):
    """(median, ok) of the partitioned ``part`` (see :func:`median_of_partition`)."""
    n = part.size
    nan = False
    for v in range(h, n):  # no early exit: the loop vectorises
        nan |= part[v] != part[v]
    upper = part[h]
    if nan:
        return upper, False
    if n % 2 == 0:
        # np.mean of the two: their sum in the dtype, divided by the count in float64, cast back
        buf = np.empty(1, part.dtype)
        buf[0] = lower + upper
        buf[0] = buf[0] / 2.0
        upper = buf[0]
    return upper, upper != 0


@kernel(warm=lambda: (np.arange(5, dtype=np.float32), 2, np.float32(1)))
def _median_tail_f32(part, h, lower):
    return _median_tail(part, h, lower)


@kernel(warm=lambda: (np.arange(5, dtype=np.float64), 2, np.float64(1)))
def _median_tail_f64(part, h, lower):
    return _median_tail(part, h, lower)


def median_of_partition(part: np.ndarray, h: int):
    """The median of the float32 / float64 values ``part``, partitioned at ``h = part.size // 2``
    (``np.partition(x, h)``, at least 3 values), as ``np.median`` gives it: the value at ``h``,
    or for an even count the mean of it and the largest value below it (their sum in the
    dtype, halved in float64 and cast back, as ``np.mean`` does); None when numpy must decide
    (a NaN, or a median of 0: its sign).

    The largest value below ``h`` is numpy's ``max`` (a NaN sorts above ``h``; which zero it
    returns of -0 and +0 does not matter: the sum is then the other value, or a zero median).
    """
    lower = part[:h].max() if part.size % 2 == 0 else part[h]
    value, ok = (_median_tail_f32 if part.dtype == np.float32 else _median_tail_f64)(part, h, lower)
    return part.dtype.type(value) if ok else None


def _warm_core():
    region = np.zeros((3, 4, 5), np.bool_)
    region[1, 1, 1] = True
    return (np.zeros((3, 4, 5), np.float32), region, np.array([1, 1, 1, 2, 2, 2], np.int64), 1, 20)


@kernel(warm=_warm_core)
def core_values(a, region, rbox, n, min_voxels):
    """Values of ``a`` in ``region`` and in its core (:func:`volumetry.segment.common.core`), in C order.

    ``rbox``: a box (lo k, j, i, hi k, j, i) holding the region; ``n``: its number of voxels.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The region's values (those of ``a[region]``) and the core's (the region's again when
        the core has fewer than ``min_voxels`` voxels).
    """
    nk, nj, ni = region.shape
    vals = np.empty(n, a.dtype)
    cvals = np.empty(n, a.dtype)
    c = 0
    m = 0
    for k in range(rbox[0], rbox[3]):
        for j in range(rbox[1], rbox[4]):
            for i in range(rbox[2], rbox[5]):
                if region[k, j, i]:
                    vals[c] = a[k, j, i]
                    c += 1
                    if (0 < k < nk - 1 and 0 < j < nj - 1 and 0 < i < ni - 1 and region[k - 1, j, i]
                            and region[k + 1, j, i] and region[k, j - 1, i] and region[k, j + 1, i]
                            and region[k, j, i - 1] and region[k, j, i + 1]):
                        cvals[m] = a[k, j, i]
                        m += 1
    if c != n:
        raise ValueError("core_values: n is not the region's number of voxels")
    if m >= min_voxels:
        return vals, cvals[:m]
    return vals, vals


def _warm_fill():
    region = np.zeros((3, 5, 5), np.bool_)
    region[1, 1:4, 1:4] = True
    region[1, 2, 2] = False
    return region, np.array([1, 1, 1, 2, 4, 4], np.int64)


@kernel(warm=_warm_fill)
def fill_slices_kernel(region, rbox):
    """Fill, in place, the holes of each k-slice of ``region`` (:func:`volumetry.segment.common.fill_holes`).

    A hole is a 4-connected background component of a slice of the box ``rbox`` (the
    region's bounding box) grown by one voxel (clipped to the crop) that does not reach
    the box's j or i faces. (The 3D holes are among them: see ``common.fill_holes``.)

    Returns
    -------
    int
        Number of voxels filled.
    """
    nk, nj, ni = region.shape
    l0, l1, l2 = max(rbox[0] - 1, 0), max(rbox[1] - 1, 0), max(rbox[2] - 1, 0)
    h0, h1, h2 = min(rbox[3] + 1, nk), min(rbox[4] + 1, nj), min(rbox[5] + 1, ni)
    bj, bi = h1 - l1, h2 - l2
    PI = bi + 2
    # one slice inside a border of blocked voxels: 0 region or border, 1 background, 2 reached from a face
    state = np.zeros((bj + 2) * PI, np.uint8)
    stack = np.empty(bj * bi, np.int64)
    filled = 0
    for k in range(l0, h0):
        for j in range(bj):
            for i in range(bi):
                state[(j + 1) * PI + i + 1] = 0 if region[k, j + l1, i + l2] else 1
        top = 0
        for j in range(bj):
            for i in range(bi):
                if j == 0 or j == bj - 1 or i == 0 or i == bi - 1:
                    f = (j + 1) * PI + i + 1
                    if state[f] == 1:
                        state[f] = 2
                        stack[top] = f
                        top += 1
        while top > 0:
            top -= 1
            f = stack[top]
            for g in (f - 1, f + 1, f - PI, f + PI):
                if state[g] == 1:
                    state[g] = 2
                    stack[top] = g
                    top += 1
        for j in range(bj):
            for i in range(bi):
                if state[(j + 1) * PI + i + 1] == 1:
                    region[k, j + l1, i + l2] = True
                    filled += 1
    return filled


def _warm_core_indices():
    region = np.zeros((3, 4, 5), np.bool_)
    region[1, 1, 1] = True
    return np.zeros((3, 4, 5), np.float32), region, 20


@kernel(warm=_warm_core_indices)
def core_indices(a, region, min_voxels):
    """Indices and values of the core of ``region`` (:func:`volumetry.segment.common.core`), in C order.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The ``(3, m)`` int64 indices (those of ``np.nonzero``) and the ``(m,)`` values of ``a``
        there, of the core, or of the region itself when its core has fewer than
        ``min_voxels`` voxels.
    """
    nk, nj, ni = region.shape
    n = 0
    m = 0
    for k in range(nk):
        for j in range(nj):
            for i in range(ni):
                if region[k, j, i]:
                    n += 1
                    if (0 < k < nk - 1 and 0 < j < nj - 1 and 0 < i < ni - 1 and region[k - 1, j, i]
                            and region[k + 1, j, i] and region[k, j - 1, i] and region[k, j + 1, i]
                            and region[k, j, i - 1] and region[k, j, i + 1]):
                        m += 1
    whole = m < min_voxels
    size = n if whole else m
    idx = np.empty((3, size), np.int64)
    vals = np.empty(size, a.dtype)
    c = 0
    for k in range(nk):
        for j in range(nj):
            for i in range(ni):
                if region[k, j, i] and (whole or (
                        0 < k < nk - 1 and 0 < j < nj - 1 and 0 < i < ni - 1 and region[k - 1, j, i]
                        and region[k + 1, j, i] and region[k, j - 1, i] and region[k, j + 1, i]
                        and region[k, j, i - 1] and region[k, j, i + 1])):
                    idx[0, c] = k
                    idx[1, c] = j
                    idx[2, c] = i
                    vals[c] = a[k, j, i]
                    c += 1
    return idx, vals
