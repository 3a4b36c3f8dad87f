"""FROZEN COPY (test oracle): volumetry/segment/kernels.py as of commit e1bf193, before the third round of
region-growing speed-ups (grow_kernel's fill over runs, ...); verbatim except for this docstring and the
import made absolute. Do not edit: tests/test_segment_speed_v3.py asserts that the current code gives
exactly what this gives.
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
    # state: 0 background, 1 in the closed box, 2 in the region (filled), 3 queued for the fill;
    # each loop below runs along a row of the box without a branch
    state = np.zeros(size, np.uint8)
    nclosed = 0
    for k in range(bk):
        for j in range(bj):
            f = ((k + p0) * PJ + j + p1) * PI + p2
            row = sm[k + lo0, j + lo1, lo2:lo2 + bi]
            srow = state[f:f + bi]
            if use_allowed:
                arow = allowed[k + lo0, j + lo1, lo2:lo2 + bi]
                for i in range(bi):
                    srow[i] = (row[i] > thr) & arow[i]
            else:
                for i in range(bi):
                    srow[i] = row[i] > thr
            c = 0
            for i in range(bi):
                c += srow[i]
            nclosed += c
    if closes:
        # closing: the erosion of the dilation, on the box; then `allowed` again. The dilation
        # dil[x] = any(state[x - c]) over the element's flat offsets c is one shifted range per offset,
        # over the whole padded box (state is 0 outside the box); the erosion is all(dil[x + c])
        dil = np.zeros(size, np.uint8)
        for r in range(cl.size):
            c = cl[r]
            s0 = max(c, 0)
            s1 = min(size, size + c)
            dst = dil[s0:s1]
            src = state[s0 - c:s1 - c]
            for x in range(s1 - s0):
                dst[x] |= src[x]
        ero = np.empty(bi, np.uint8)
        for k in range(bk):
            for j in range(bj):
                f = ((k + p0) * PJ + j + p1) * PI + p2
                src = dil[f + cl[0]:f + cl[0] + bi]
                for i in range(bi):
                    ero[i] = src[i]
                for r in range(1, cl.size):
                    src = dil[f + cl[r]:f + cl[r] + bi]
                    for i in range(bi):
                        ero[i] &= src[i]
                srow = state[f:f + bi]
                c = 0
                if use_allowed:
                    arow = allowed[k + lo0, j + lo1, lo2:lo2 + bi]
                    for i in range(bi):
                        v = ero[i] & (srow[i] ^ 1) & arow[i]
                        srow[i] |= v
                        c += v
                else:
                    for i in range(bi):
                        v = ero[i] & (srow[i] ^ 1)
                        srow[i] |= v
                        c += v
                nclosed += c
    # neighbour rows of the connectivity: (flat offset of the row, reach e along i)
    nrow = np.zeros(9, np.int64)
    ereach = np.full(9, -1, np.int64)
    ndk = np.zeros(9, np.int64)
    ndj = np.zeros(9, np.int64)
    for c in range(conn_off.shape[0]):
        dk, dj, di = conn_off[c, 0], conn_off[c, 1], conn_off[c, 2]
        if dk == 0 and dj == 0:
            continue
        m = (dk + 1) * 3 + dj + 1
        nrow[m] = (dk * PJ + dj) * PI
        ndk[m] = dk
        ndj[m] = dj
        ereach[m] = max(ereach[m], abs(di))
    # span flood fill from the seeds (a seed off the region: its anchors); the border stops it.
    # state 3: in the box, queued (each voxel of the closing is queued at most once: the stack never overflows)
    stack = np.empty(nclosed, np.int64)
    sk = np.empty(nclosed, np.int64)  # the queued voxel's k and j in the crop
    sj = np.empty(nclosed, np.int64)
    top = 0
    for s in range(seeds.shape[0]):
        k, j, i = seeds[s, 0] - lo0, seeds[s, 1] - lo1, seeds[s, 2] - lo2
        if 0 <= k < bk and 0 <= j < bj and 0 <= i < bi and state[((k + p0) * PJ + j + p1) * PI + i + p2]:
            f = ((k + p0) * PJ + j + p1) * PI + i + p2
            if state[f] == 1:
                state[f] = 3
                stack[top] = f
                sk[top] = k + lo0
                sj[top] = j + lo1
                top += 1
        elif anchor_start[0] >= 0:
            for a in range(anchor_start[s], anchor_start[s + 1]):
                k, j, i = anchors[a, 0] - lo0, anchors[a, 1] - lo1, anchors[a, 2] - lo2
                if 0 <= k < bk and 0 <= j < bj and 0 <= i < bi:
                    f = ((k + p0) * PJ + j + p1) * PI + i + p2
                    if state[f] == 1:
                        state[f] = 3
                        stack[top] = f
                        sk[top] = k + lo0
                        sj[top] = j + lo1
                        top += 1
    n = 0
    r0, r1, r2 = nk, nj, ni
    s0, s1, s2 = -1, -1, -1
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
        k = sk[top]
        j = sj[top]
        i0 = a - ((k - lo0 + p0) * PJ + j - lo1 + p1) * PI - p2 + lo2
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
                    sk[top] = k + ndk[m]
                    sj[top] = j + ndj[m]
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

    ``inner`` is ORed one axis at a time, row by row. The balls' dilations are done run by run:
    a run ``a..b`` of a row (k, j) of ``inner`` covers ``a + di - w .. b + di + w`` of row
    ``(k + dk, j + dj)`` for each element row, counted in a difference array and summed along i.
    The sum over the rows of ``w + 1`` must stay below 2 ** 15 for ``outer_rows`` and for
    ``gap_rows`` (int16 counts). The box is grown by ``pad`` or, when less, by one voxel and the
    outer ball's reach along each axis (no shell voxel lies farther from the region).

    Returns
    -------
    numpy.ndarray
        The values of ``img`` (crop-shaped) in the shell, in C order (those of ``img[shell]``).
    """
    nk, nj, ni = region.shape
    # the box: no farther from the region than a shell voxel can be (one voxel, then the outer ball's
    # reach); the box grown by pad beyond that holds no shell voxel and no voxel of inner
    q0, q1, q2 = 0, 0, 0
    for r in range(outer_rows.shape[0]):
        q0 = max(q0, abs(outer_rows[r, 0]))
        q1 = max(q1, abs(outer_rows[r, 1]))
        q2 = max(q2, abs(outer_rows[r, 2]) + outer_rows[r, 3])
    p0, p1, p2 = min(pad[0], q0 + 1), min(pad[1], q1 + 1), min(pad[2], q2 + 1)
    l0, l1, l2 = max(rbox[0] - p0, 0), max(rbox[1] - p1, 0), max(rbox[2] - p2, 0)
    h0, h1, h2 = min(rbox[3] + p0, nk), min(rbox[4] + p1, nj), min(rbox[5] + p2, ni)
    bk, bj, bi = h0 - l0, h1 - l1, h2 - l2
    # inner: the region dilated by the 3x3x3 cube, inside the box: one axis at a time (i, then j, then k),
    # on the region's box (r..s) grown by one voxel (e..f), in box coordinates; each pass ORs whole rows
    # (1D views indexed from 0: the loops vectorise)
    r0, r1, r2 = rbox[0] - l0, rbox[1] - l1, rbox[2] - l2
    s0, s1, s2 = rbox[3] - l0, rbox[4] - l1, rbox[5] - l2
    e0, e1, e2 = max(r0 - 1, 0), max(r1 - 1, 0), max(r2 - 1, 0)
    f0, f1, f2 = min(s0 + 1, bk), min(s1 + 1, bj), min(s2 + 1, bi)
    L = f2 - e2
    c2 = e2 + l2  # crop i of box i e2
    along_i = np.zeros((bk, bj, bi), np.bool_)
    for k in range(r0, s0):
        for j in range(r1, s1):
            src = region[k + l0, j + l1]
            dst = along_i[k, j, e2:f2]
            mid = src[c2:c2 + L]
            for x in range(L):
                dst[x] = mid[x]
            if c2 >= 1:  # the left neighbour of every voxel is in the crop
                left = src[c2 - 1:c2 - 1 + L]
                for x in range(L):
                    dst[x] = dst[x] | left[x]
            else:
                d1, left = dst[1:], src[0:L - 1]
                for x in range(L - 1):
                    d1[x] = d1[x] | left[x]
            if c2 + L < ni:  # the right neighbour too
                right = src[c2 + 1:c2 + 1 + L]
                for x in range(L):
                    dst[x] = dst[x] | right[x]
            else:
                right = src[c2 + 1:c2 + L]
                for x in range(L - 1):
                    dst[x] = dst[x] | right[x]
    along_j = np.zeros((bk, bj, bi), np.bool_)
    for k in range(r0, s0):
        for j in range(e1, f1):
            dst = along_j[k, j, e2:f2]
            for sj in range(max(j - 1, r1), min(j + 2, s1)):
                src = along_i[k, sj, e2:f2]
                for x in range(L):
                    dst[x] = dst[x] | src[x]
    inner = np.zeros((bk, bj, bi), np.bool_)
    for k in range(e0, f0):
        for j in range(e1, f1):
            dst = inner[k, j, e2:f2]
            for sk in range(max(k - 1, r0), min(k + 2, s0)):
                src = along_j[sk, j, e2:f2]
                for x in range(L):
                    dst[x] = dst[x] | src[x]
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
        if not _row_gaps(region, k, l1, h1, l2, h2):
            continue  # a hole's voxel has region voxels on both sides along its row: none here
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


@kernel()
def _row_gaps(region, k, l1, h1, l2, h2):
    """Whether a row ``j`` (``l1 <= j < h1``) of slice ``k`` of ``region`` has a background voxel between
    two of its region voxels (columns ``l2 .. h2 - 1``)."""
    for j in range(l1, h1):
        row = region[k, j, l2:h2]
        n = 0
        for i in range(row.size):
            n += row[i]
        if n == 0:
            continue
        a = 0
        while not row[a]:
            a += 1
        b = row.size - 1
        while not row[b]:
            b -= 1
        if b - a + 1 > n:
            return True
    return False


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
    # the rows holding a region voxel (a branch-free pass); the scans below skip the others
    rows = np.zeros((nk, nj), np.bool_)
    for k in range(nk):
        for j in range(nj):
            row = region[k, j]
            hit = False
            for i in range(ni):
                hit |= row[i]
            rows[k, j] = hit
    n = 0
    m = 0
    for k in range(nk):
        for j in range(nj):
            if not rows[k, j]:
                continue
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
            if not rows[k, j]:
                continue
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


def _warm_noise():
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    return a, np.zeros(a.shape, np.bool_), False, 2, np.empty(a.size, np.float32), np.float32(1.5 * 2.0 ** 23)


#: :func:`counted_mad`'s values: integers of at most this magnitude (exact in float32 with room for
#: the doubled deviations and their sums) ...
COUNT_MAX_ABS = 2.0 ** 20
#: ... spanning fewer than this many integers (the histogram's bins).
COUNT_MAX_BINS = 1 << 16
#: ``(v + ROUNDER) - ROUNDER`` is ``v`` rounded to an integer (for ``|v| <= COUNT_MAX_ABS``), by dtype.
ROUNDER = {np.dtype(np.float32): np.float32(1.5 * 2.0 ** 23), np.dtype(np.float64): np.float64(1.5 * 2.0 ** 52)}


@kernel(warm=_warm_noise)
def noise_diffs(a, pad, any_pad, axis, out, rounder):
    """First differences of ``a`` along ``axis``, as :func:`volumetry.segment.common.noise_sigma` takes them.

    The differences are ``a[upper] - a[lower]`` (``upper``/``lower``: the slices ``1:`` and ``:-1``
    along ``axis``, 1 or 2), the pairs touching a ``pad`` voxel left out when ``any_pad``, in C order
    (those of ``np.diff`` indexed by the pairs kept), written to ``out[:n]``.

    Returns
    -------
    (int, bool, bool)
        ``n``; whether every pair's difference (kept or not: numpy subtracts them all) is finite;
        whether every kept one is an integer of magnitude at most :data:`COUNT_MAX_ABS`
        (``rounder``: :data:`ROUNDER` of the dtype).
    """
    nk, nj, ni = a.shape
    dj = 1 if axis == 1 else 0
    di = 1 if axis == 2 else 0
    n = 0
    finite = True
    for k in range(nk):
        for j in range(nj - dj):
            for i in range(ni - di):
                v = a[k, j + dj, i + di] - a[k, j, i]
                finite &= abs(v) < np.inf  # False for NaN too
                out[n] = v
                n += not (any_pad and (pad[k, j + dj, i + di] or pad[k, j, i]))
    if not finite:
        return n, False, False
    odd = False
    for x in range(n):
        v = out[x]
        odd |= ((v + rounder) - rounder != v) | (abs(v) > COUNT_MAX_ABS)
    return n, True, not odd


def _warm_counted():
    return np.arange(12, dtype=np.float32), -3, 20


@kernel(warm=_warm_counted)
def counted_mad(d, lo, hi):
    """Median absolute deviation ``median(|d - median(d)|)`` of integer values ``lo <= d <= hi``, counted.

    ``d``: at least one value, each an integer of magnitude at most :data:`COUNT_MAX_ABS`, the span
    ``hi - lo`` below :data:`COUNT_MAX_BINS`. Every number here is exact (integers and halves; a median
    is the mean of at most two of them), so it is the value numpy's median gives in ``d``'s dtype.

    Returns
    -------
    float
        The MAD (a multiple of 0.25).
    """
    n = d.size
    size = hi - lo + 1
    hist = np.zeros(size, np.int64)
    for x in range(n):
        hist[np.int64(d[x]) - lo] += 1
    h = n // 2
    even = n % 2 == 0
    # twice the median: d_(h-1) + d_(h) for an even count, 2 d_(h) otherwise (ranks from 0)
    m2 = 2 * (_rank_value(hist, h) + lo)
    if even:
        m2 = _rank_value(hist, h - 1) + _rank_value(hist, h) + 2 * lo
    # twice the absolute deviations, |2 d - 2 m|, counted from the histogram of d
    dev = np.zeros(2 * size + 2, np.int64)
    for b in range(size):
        if hist[b]:
            dev[abs(2 * (b + lo) - m2)] += hist[b]
    mad2 = np.float64(_rank_value(dev, h))
    if even:
        return (np.float64(_rank_value(dev, h - 1)) + mad2) / 4.0
    return mad2 / 2.0


@kernel()
def _rank_value(hist, r):
    """The bin holding the value of rank ``r`` (0: the smallest) of the values counted in ``hist``."""
    c = 0
    for b in range(hist.size):
        c += hist[b]
        if c > r:
            return b
    return hist.size - 1


def _warm_design():
    idx3 = np.zeros((3, 2), np.int64)
    return idx3, np.ones(3), np.zeros(3), np.empty((4, 2)).T


@kernel(warm=_warm_design)
def design_kernel(idx3, sp, x0, design):
    """Fill ``design`` ``(n, 4)`` with ``np.column_stack([np.ones(n), idx * sp - x0])`` (``idx``: the
    ``(n, 3)`` transpose of ``idx3``), the same products and differences as numpy's."""
    for r in range(idx3.shape[1]):
        design[r, 0] = 1.0
        for c in range(3):
            design[r, c + 1] = np.float64(idx3[c, r]) * sp[c] - x0[c]


def _warm_rows_kept():
    design = np.empty((4, 3)).T  # Fortran-ordered, as lesion_field builds it
    design[...] = 1.0
    return design, np.ones(3), np.ones(3, np.bool_), np.empty((3, 4)), np.empty(3)


@kernel(warm=_warm_rows_kept)
def rows_kept(design, y, keep, design_kept, y_kept):
    """``design[keep]`` and ``y[keep]`` into ``design_kept`` and ``y_kept`` (``keep.sum()`` rows)."""
    m = 0
    for r in range(keep.size):
        if keep[r]:
            for c in range(design.shape[1]):
                design_kept[m, c] = design[r, c]
            y_kept[m] = y[r]
            m += 1


def _warm_field():
    return np.zeros(3), np.ones(3), np.zeros(3), np.empty((2, 3, 4))


@kernel(warm=_warm_field)
def field_exponent(g, sp, x0, out):
    """``out[k, j, i] = ((0 + g0 u_k) + g1 v_j) + g2 w_i`` with ``u_k = k sp0 - x0_0`` (and so on): the
    broadcast sum ``sum(g_c * (np.arange(n_c) * sp_c - x0_c))`` (Python's ``sum``, from 0) of the
    lesion's bias field, term by term as numpy computes it."""
    nk, nj, ni = out.shape
    u = np.empty(nk)
    v = np.empty(nj)
    w = np.empty(ni)
    for k in range(nk):
        u[k] = 0.0 + g[0] * (np.float64(k) * sp[0] - x0[0])
    for j in range(nj):
        v[j] = g[1] * (np.float64(j) * sp[1] - x0[1])
    for i in range(ni):
        w[i] = g[2] * (np.float64(i) * sp[2] - x0[2])
    for k in range(nk):
        for j in range(nj):
            s = u[k] + v[j]
            for i in range(ni):
                out[k, j, i] = s + w[i]
