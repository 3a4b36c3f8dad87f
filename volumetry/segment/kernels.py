"""Compiled kernels of region growing (numba, see :mod:`volumetry._jit`).

Each kernel computes exactly what the numpy code it stands in for computes
(tests/test_segment_kernels.py and tests/test_segment_speed_v2.py hold frozen copies of that
code and assert equality voxel for voxel and bit for bit):

* :func:`grow_kernel`: threshold, bounding box, closing (:func:`common.closing`) and the
  components holding the seeds or their anchors (:func:`common.connected_to_seeds_in_box`)
  in one call; the box is held as rows of bits (the closing shifts whole words) and a fill over
  its runs along i visits only those components instead of labelling the box.
* :func:`shell_kernel`: the values of the image in the background shell of
  :func:`common.shell` (26-neighbour dilation, then the outer and gap balls row by row, on the
  box's rows held as bits). Like ``common.shell`` it dilates
  only inside the shell's box: the dilation outside a clipped face adds nothing,
  because the balls hold every offset that is no longer along any axis than one of theirs.
* :func:`core_values`, :func:`core_indices`: the values (and indices) of a region and of
  its one-voxel erosion (:func:`common.core`), in C order as boolean indexing gives them.
* :func:`fill_slices_kernel`: slice-by-slice hole filling (:func:`common.fill_holes`); a slice
  none of whose rows has a gap between region voxels has no hole and is skipped.
* :func:`median_of_partition`: the end of :func:`common.median` after ``np.partition``
  (the same two middle values, averaged as ``np.mean`` does).
* :func:`noise_diffs`, :func:`counted_mad`: the first differences of :func:`common.noise_sigma`
  and, for integer differences, their median absolute deviation counted from a histogram.
* :func:`design_kernel`, :func:`rows_kept`, :func:`field_exponent`: the design matrices of the
  bias field's fit (``region_growing.lesion_field``) and the exponent of the field over the crop.

The loops that run over whole rows of a box (the threshold of :func:`grow_kernel`) are written
without a branch per voxel; the flood fills and scans that follow runs keep theirs (measured: a
branch that follows a run is cheaper than a branch-free pass there). Hot loops index arrays
directly rather than through a view per row or run (each view costs a reference count).

Array indices are ``(k, j, i)``; every box is given as ``lo`` (inclusive) and ``hi``
(exclusive) corners.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel


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
        Neighbour offsets of the connectivity (no (0, 0, 0)); those of each neighbour row (dk, dj)
        span a range of di, -e..e (as 6-, 18- and 26-connectivity's do).
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

    Notes
    -----
    The thresholded box is held as rows of bits (uint64 words), so that the closing shifts and
    combines whole words; its result is cut into runs along i, and the region is the runs reached
    from the seeds' runs through runs of neighbour rows that overlap them (grown by the reach ``e``).
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
            # the row's ends matter only outside the columns lo2..hi2 found so far: look no further
            i = 0
            while i < lo2 and not (sm[k, j, i] > thr and (not use_allowed or allowed[k, j, i])):
                i += 1
            lo2 = i
            i = ni - 1
            while i > hi2 and not (sm[k, j, i] > thr and (not use_allowed or allowed[k, j, i])):
                i -= 1
            hi2 = i
    if hi0 < 0:
        return 0
    bk, bj, bi = hi0 - lo0 + 1, hi1 - lo1 + 1, hi2 - lo2 + 1
    # the box inside a zero border of p voxels (at least the closing's reach, and 1 for the runs' ends),
    # as bits: row (k, j) of the padded box is bits[(k + p0) * PJ + j + p1], box column i its bit i + p2
    p0, p1, p2 = 1, 1, 1
    for r in range(cl_off.shape[0]):
        p0 = max(p0, abs(cl_off[r, 0]))
        p1 = max(p1, abs(cl_off[r, 1]))
        p2 = max(p2, abs(cl_off[r, 2]))
    PJ = bj + 2 * p1
    W = (bi + 2 * p2 + 63) >> 6  # words per row
    closes = cl_off.shape[0] > 1 or cl_off[0, 0] != 0 or cl_off[0, 1] != 0 or cl_off[0, 2] != 0
    bits = np.zeros(((bk + 2 * p0) * PJ, W), np.uint64)
    # where the closing may add voxels: the allowed ones (row by row, below), or the box's columns (row 0)
    addable = np.zeros(((bk + 2 * p0) * PJ if use_allowed else 1, W), np.uint64)
    if not use_allowed:
        for w in range(W):
            for i in range(max(w * 64 - p2, 0), min(w * 64 + 64 - p2, bi)):
                addable[0, w] |= _U1 << np.uint64(i + p2 - w * 64)
    for k in range(bk):
        for j in range(bj):
            t = (k + p0) * PJ + j + p1
            for w in range(W):
                i0, i1 = max(w * 64 - p2, 0), min(w * 64 + 64 - p2, bi)
                if i0 >= i1:
                    continue
                sh = i0 + p2 - w * 64
                acc = _U0
                if use_allowed:
                    al = _U0
                    for i in range(i0, i1):
                        al_i = allowed[k + lo0, j + lo1, lo2 + i]
                        acc |= np.uint64((sm[k + lo0, j + lo1, lo2 + i] > thr) & al_i) << np.uint64(sh + i - i0)
                        al |= np.uint64(al_i) << np.uint64(sh + i - i0)
                    addable[t, w] = al
                else:
                    for i in range(i0, i1):
                        acc |= np.uint64(sm[k + lo0, j + lo1, lo2 + i] > thr) << np.uint64(sh + i - i0)
                bits[t, w] = acc
    if closes:
        # closing: the erosion of the dilation; only allowed voxels are added. dil(x) = any(bits(x - c)):
        # each box row's bits shifted into the rows at c; ero(x) = all(dil(x + c))
        m = cl_off.shape[0]
        dt = np.empty(m, np.int64)  # the offset's row step, and its shift along i as a left then a right shift
        up = np.empty(m, np.uint64)
        down = np.empty(m, np.uint64)
        for r in range(m):
            dt[r] = cl_off[r, 0] * PJ + cl_off[r, 1]
            up[r] = np.uint64(max(cl_off[r, 2], 0))
            down[r] = np.uint64(max(-cl_off[r, 2], 0))
        dil = np.zeros(bits.shape, np.uint64)
        for k in range(bk):
            for j in range(bj):
                t = (k + p0) * PJ + j + p1
                if W == 1:  # one word a row (most boxes): shifts of the word
                    x = bits[t, 0]
                    if x != _U0:
                        for r in range(m):
                            dil[t + dt[r], 0] |= (x << up[r]) >> down[r]
                else:
                    for r in range(m):
                        _or_shifted(dil, t + dt[r], bits, t, cl_off[r, 2])
        one = np.empty((1, W), np.uint64)
        ero = np.empty(W, np.uint64)
        for k in range(bk):
            for j in range(bj):
                t = (k + p0) * PJ + j + p1
                a = t if use_allowed else 0
                if W == 1:
                    e = _ALL
                    for r in range(m):
                        e &= (dil[t + dt[r], 0] << down[r]) >> up[r]
                    bits[t, 0] |= e & addable[a, 0]
                    continue
                for w in range(W):
                    ero[w] = _ALL
                for r in range(m):
                    for w in range(W):
                        one[0, w] = _U0
                    _or_shifted(one, 0, dil, t + dt[r], -cl_off[r, 2])
                    for w in range(W):
                        ero[w] &= one[0, w]
                for w in range(W):
                    bits[t, w] |= ero[w] & addable[a, w]
    # the closed box's runs along i, row by row (the rows of the box in C order): run q spans the box's
    # columns ra[q]..rb[q] of row (rk[q], rj[q]); row (k, j) holds runs rptr[k * bj + j] .. rptr[k * bj + j + 1] - 1.
    # A run starts at a set bit whose lower neighbour is clear and ends at one whose upper neighbour is
    nrows = bk * bj
    rptr = np.empty(nrows + 1, np.int64)
    nruns = 0
    for k in range(bk):
        for j in range(bj):
            rptr[k * bj + j] = nruns
            t = (k + p0) * PJ + j + p1
            carry = _U0
            for w in range(W):
                x = bits[t, w]
                nruns += _popcount(x & ~((x << _U1) | carry))
                carry = x >> _U63
    rptr[nrows] = nruns
    ra = np.empty(nruns, np.int64)
    rb = np.empty(nruns, np.int64)
    rk = np.empty(nruns, np.int64)  # the run's row (k, j) in the box
    rj = np.empty(nruns, np.int64)
    for k in range(bk):
        for j in range(bj):
            q0 = rptr[k * bj + j]
            if q0 == rptr[k * bj + j + 1]:
                continue
            t = (k + p0) * PJ + j + p1
            qa, qb = q0, q0
            carry = _U0
            for w in range(W):
                x = bits[t, w]
                nxt = bits[t, w + 1] & _U1 if w + 1 < W else _U0
                starts = x & ~((x << _U1) | carry)
                ends = x & ~((x >> _U1) | (nxt << _U63))
                carry = x >> _U63
                while starts != _U0:
                    low = starts & (~starts + _U1)
                    ra[qa] = w * 64 + _bit_index(low) - p2
                    qa += 1
                    starts ^= low
                while ends != _U0:
                    low = ends & (~ends + _U1)
                    rb[qb] = w * 64 + _bit_index(low) - p2
                    qb += 1
                    ends ^= low
            for q in range(q0, qa):
                rk[q] = k
                rj[q] = j
    # the connectivity's neighbour rows (dk, dj) other than the run's own, and their reach e along i
    ereach = np.full(9, -1, np.int64)
    for c in range(conn_off.shape[0]):
        dk, dj, di = conn_off[c, 0], conn_off[c, 1], conn_off[c, 2]
        if dk != 0 or dj != 0:
            m = (dk + 1) * 3 + dj + 1
            ereach[m] = max(ereach[m], abs(di))
    nb = 0
    nbk = np.empty(8, np.int64)
    nbj = np.empty(8, np.int64)
    nbe = np.empty(8, np.int64)
    for m in range(9):
        if ereach[m] >= 0:
            nbk[nb], nbj[nb], nbe[nb] = m // 3 - 1, m % 3 - 1, ereach[m]
            nb += 1
    # fill over the runs from the seeds' runs (a seed off the closed box: its anchors'); the runs of a
    # neighbour row that meet a run's columns grown by e are connected to it; each run is queued once
    seen = np.zeros(nruns, np.uint8)
    stack = np.empty(nruns, np.int64)
    top = 0
    for s in range(seeds.shape[0]):
        k, j, i = seeds[s, 0] - lo0, seeds[s, 1] - lo1, seeds[s, 2] - lo2
        if 0 <= k < bk and 0 <= j < bj and 0 <= i < bi and _bit(bits, (k + p0) * PJ + j + p1, i + p2):
            q = _run_at(rb, rptr[k * bj + j], i)
            if not seen[q]:
                seen[q] = 1
                stack[top] = q
                top += 1
        elif anchor_start[0] >= 0:
            for a in range(anchor_start[s], anchor_start[s + 1]):
                k, j, i = anchors[a, 0] - lo0, anchors[a, 1] - lo1, anchors[a, 2] - lo2
                if (0 <= k < bk and 0 <= j < bj and 0 <= i < bi
                        and _bit(bits, (k + p0) * PJ + j + p1, i + p2)):
                    q = _run_at(rb, rptr[k * bj + j], i)
                    if not seen[q]:
                        seen[q] = 1
                        stack[top] = q
                        top += 1
    n = 0
    r0, r1, r2 = nk, nj, ni
    s0, s1, s2 = -1, -1, -1
    while top > 0:
        top -= 1
        q = stack[top]
        a, b, k, j = ra[q], rb[q], rk[q], rj[q]
        for x in range(lo2 + a, lo2 + b + 1):
            out[k + lo0, j + lo1, x] = True
        n += b - a + 1
        r0 = min(r0, k)
        s0 = max(s0, k)
        r1 = min(r1, j)
        s1 = max(s1, j)
        r2 = min(r2, a)
        s2 = max(s2, b)
        for m in range(nb):
            k2, j2, e = k + nbk[m], j + nbj[m], nbe[m]
            if 0 <= k2 < bk and 0 <= j2 < bj:
                rn = k2 * bj + j2
                for q2 in range(rptr[rn], rptr[rn + 1]):
                    if ra[q2] > b + e:
                        break
                    if rb[q2] >= a - e and not seen[q2]:
                        seen[q2] = 1
                        stack[top] = q2
                        top += 1
    if n:
        rbox[0], rbox[1], rbox[2] = r0 + lo0, r1 + lo1, r2 + lo2
        rbox[3], rbox[4], rbox[5] = s0 + lo0 + 1, s1 + lo1 + 1, s2 + lo2 + 1
    return n


_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U63 = np.uint64(63)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
#: A de Bruijn sequence and its table: the index of a uint64 word's one set bit (:func:`_bit_index`).
_DEBRUIJN = np.uint64(0x03F79D71B4CA8B09)
_DEBRUIJN_INDEX = np.zeros(64, np.int64)
for _b in range(64):
    _DEBRUIJN_INDEX[((0x03F79D71B4CA8B09 << _b) & 0xFFFFFFFFFFFFFFFF) >> 58] = _b
del _b


@kernel(inline="always")
def _bit_index(low):
    """The index of the one set bit of the uint64 ``low``."""
    return _DEBRUIJN_INDEX[np.int64((low * _DEBRUIJN) >> np.uint64(58))]


@kernel(inline="always")
def _popcount(x):
    """Number of set bits of the uint64 ``x``."""
    x = x - ((x >> _U1) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@kernel(inline="always")
def _bit(rows, t, x):
    """Bit ``x`` of row ``t`` of uint64 words."""
    return (rows[t, x >> 6] >> np.uint64(x & 63)) & _U1 != _U0


@kernel(inline="always")
def _or_shifted(dst, t, src, s, d):
    """``dst[t] |= src[s]`` shifted by ``d`` bits: bit x of ``src[s]`` to bit x + d (rows of uint64
    words; bits shifted beyond the row are dropped)."""
    W = src.shape[1]
    q = abs(d) >> 6
    r = np.uint64(abs(d) & 63)
    if d >= 0:
        for w in range(q, W):
            v = src[s, w - q] << r
            if r != _U0 and w - q - 1 >= 0:
                v |= src[s, w - q - 1] >> (np.uint64(64) - r)
            dst[t, w] |= v
    else:
        for w in range(0, W - q):
            v = src[s, w + q] >> r
            if r != _U0 and w + q + 1 < W:
                v |= src[s, w + q + 1] << (np.uint64(64) - r)
            dst[t, w] |= v


@kernel(inline="always")
def _shifts(rows):
    """Each element row's shift ``di`` along i as a left and a right shift of a word (one of them 0)."""
    up = np.empty(rows.shape[0], np.uint64)
    down = np.empty(rows.shape[0], np.uint64)
    for r in range(rows.shape[0]):
        up[r] = np.uint64(max(rows[r, 2], 0))
        down[r] = np.uint64(max(-rows[r, 2], 0))
    return up, down


@kernel()
def _run_at(rb, q, i):
    """The first run from ``q`` on (of a row's runs, in order) that ends at or after column ``i``: the
    run holding ``i`` when one does."""
    while rb[q] < i:
        q += 1
    return q


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
    ``(dk, dj, di - w .. di + w)``. The box is grown by ``pad`` or, when less, by one voxel and
    the outer ball's reach along each axis (no shell voxel lies farther from the region).

    The rows of the box are held as bits (uint64 words, with a margin as wide as the balls'
    reach along i on either side, so that no shift loses a bit that a later one would bring
    back): ``inner`` is the region's rows dilated along i by one and ORed into the 9 rows
    around them; each element row ORs an ``inner`` row dilated along i by ``w`` (once per
    width) and shifted by ``di`` into the row at ``(dk, dj)``; the shell's bits are then read
    row by row in C order.

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
    # bits: box row (k, j) is row k * bj + j, box column i its bit i + P
    wmax = 0
    P = 1
    for r in range(outer_rows.shape[0]):
        wmax = max(wmax, outer_rows[r, 3])
        P = max(P, abs(outer_rows[r, 2]) + outer_rows[r, 3])
    for r in range(gap_rows.shape[0]):
        wmax = max(wmax, gap_rows[r, 3])
        P = max(P, abs(gap_rows[r, 2]) + gap_rows[r, 3])
    W = (bi + 2 * P + 63) >> 6
    # the region's box (r..s) and that grown by one voxel (e..f), in box coordinates
    r0, r1, r2 = rbox[0] - l0, rbox[1] - l1, rbox[2] - l2
    s0, s1, s2 = rbox[3] - l0, rbox[4] - l1, rbox[5] - l2
    e0, e1 = max(r0 - 1, 0), max(r1 - 1, 0)
    f0, f1 = min(s0 + 1, bk), min(s1 + 1, bj)
    inner = np.zeros((bk * bj, W), np.uint64)
    x = np.empty((1, W), np.uint64)
    d = np.empty((1, W), np.uint64)
    for k in range(r0, s0):
        for j in range(r1, s1):
            nonzero = False
            for w in range(W):
                acc = _U0
                for i in range(max(w * 64 - P, r2), min(w * 64 + 64 - P, s2)):
                    acc |= np.uint64(region[k + l0, j + l1, i + l2]) << np.uint64(i + P - w * 64)
                x[0, w] = acc
                nonzero |= acc != _U0
            if not nonzero:
                continue
            for w in range(W):
                d[0, w] = x[0, w]
            _or_shifted(d, 0, x, 0, 1)
            _or_shifted(d, 0, x, 0, -1)
            for kk in range(max(k - 1, 0), min(k + 2, bk)):
                for jj in range(max(j - 1, 0), min(j + 2, bj)):
                    t = kk * bj + jj
                    for w in range(W):
                        inner[t, w] |= d[0, w]
    # the box's columns: inner's bits beyond them (a region on the crop's face) are dropped
    cols = np.zeros((1, W), np.uint64)
    for w in range(W):
        for i in range(max(w * 64 - P, 0), min(w * 64 + 64 - P, bi)):
            cols[0, w] |= _U1 << np.uint64(i + P - w * 64)
    for t in range(bk * bj):
        for w in range(W):
            inner[t, w] &= cols[0, w]
    # the balls' dilations of inner: dil[v] is an inner row dilated along i by v
    o_up, o_down = _shifts(outer_rows)
    g_up, g_down = _shifts(gap_rows)
    cover = np.zeros((bk * bj, W), np.uint64)
    gap = np.zeros((bk * bj, W), np.uint64)
    dil = np.empty((wmax + 1, W), np.uint64)
    for k in range(e0, f0):
        for j in range(e1, f1):
            t = k * bj + j
            nonzero = False
            for w in range(W):
                dil[0, w] = inner[t, w]
                nonzero |= inner[t, w] != _U0
            if not nonzero:
                continue
            for v in range(1, wmax + 1):
                if W == 1:
                    u = dil[v - 1, 0]
                    dil[v, 0] = u | (u << _U1) | (u >> _U1)
                    continue
                for w in range(W):
                    dil[v, w] = dil[v - 1, w]
                _or_shifted(dil, v, dil, v - 1, 1)
                _or_shifted(dil, v, dil, v - 1, -1)
            for r in range(outer_rows.shape[0]):
                kk, jj = k + outer_rows[r, 0], j + outer_rows[r, 1]
                if 0 <= kk < bk and 0 <= jj < bj:
                    if W == 1:  # one word a row (most boxes): a shift of the word
                        cover[kk * bj + jj, 0] |= (dil[outer_rows[r, 3], 0] << o_up[r]) >> o_down[r]
                    else:
                        _or_shifted(cover, kk * bj + jj, dil, outer_rows[r, 3], outer_rows[r, 2])
            for r in range(gap_rows.shape[0]):
                kk, jj = k + gap_rows[r, 0], j + gap_rows[r, 1]
                if 0 <= kk < bk and 0 <= jj < bj:
                    if W == 1:
                        gap[kk * bj + jj, 0] |= (dil[gap_rows[r, 3], 0] << g_up[r]) >> g_down[r]
                    else:
                        _or_shifted(gap, kk * bj + jj, dil, gap_rows[r, 3], gap_rows[r, 2])
    mask = out.shape == region.shape
    vals = np.empty(bk * bj * bi, img.dtype)
    n = 0
    for k in range(bk):
        for j in range(bj):
            t = k * bj + j
            for w in range(W):
                sh = cover[t, w] & ~gap[t, w] & ~inner[t, w] & cols[0, w]
                while sh != _U0:
                    low = sh & (~sh + _U1)
                    sh ^= low
                    i = w * 64 + _bit_index(low) - P
                    if allowed[k + l0, j + l1, i + l2]:
                        vals[n] = img[k + l0, j + l1, i + l2]
                        n += 1
                        if mask:
                            out[k + l0, j + l1, i + l2] = True
    return vals[:n]


@kernel()
def _median_tail(part, h):
    """(median, ok) of the partitioned ``part`` (see :func:`median_of_partition`)."""
    n = part.size
    nan = False
    for v in range(h, n):  # no early exit: the loop vectorises
        nan |= part[v] != part[v]
    upper = part[h]
    if nan:
        return upper, False
    if n % 2 == 0:
        # the largest value below h (no NaN there: a NaN sorts above h); np.mean of the two:
        # their sum in the dtype, divided by the count in float64, cast back
        lower = part[0]
        for v in range(1, h):
            lower = max(lower, part[v])
        buf = np.empty(1, part.dtype)
        buf[0] = lower + upper
        buf[0] = buf[0] / 2.0
        upper = buf[0]
    return upper, upper != 0


@kernel(warm=lambda: (np.arange(6, dtype=np.float32), 3))
def _median_tail_f32(part, h):
    return _median_tail(part, h)


@kernel(warm=lambda: (np.arange(6, dtype=np.float64), 3))
def _median_tail_f64(part, h):
    return _median_tail(part, h)


def median_of_partition(part: np.ndarray, h: int):
    """The median of the float32 / float64 values ``part``, partitioned at ``h = part.size // 2``
    (``np.partition(x, h)``, at least 3 values), as ``np.median`` gives it: the value at ``h``,
    or for an even count the mean of it and the largest value below it (their sum in the
    dtype, halved in float64 and cast back, as ``np.mean`` does); None when numpy must decide
    (a NaN, or a median of 0: its sign).

    The largest value below ``h`` is numpy's ``part[:h].max()``, taken in the kernel: when no value
    at or above ``h`` is NaN none below is (a NaN sorts above ``h``), and which zero it is of -0 and
    +0 does not matter (the sum is then the other value, or a zero median).
    """
    value, ok = (_median_tail_f32 if part.dtype == np.float32 else _median_tail_f64)(part, h)
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
