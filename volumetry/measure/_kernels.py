"""Compiled kernels of the measurement (numba, see :mod:`volumetry._jit`).

Each computes the same numbers as the numpy code it replaced, operation for operation
(products and sums in the same order, no fused multiply-add); the tests compare every
output with frozen copies of that code.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel


def _warm_band() -> tuple:
    box = np.zeros((4, 5, 6), dtype=bool)
    box[1:3, 1:4, 2:5] = True
    return (box,)


@kernel(warm=_warm_band)
def band_counts(box):
    """Voxels of ``box`` eroded and dilated by the 6-connected element (counts).

    Erosion: a voxel stays when it and its six face neighbours are set, a neighbour
    off the box counting as background (so the box's faces are eroded); dilation: a
    voxel is set when it or a face neighbour inside the box is set.

    Parameters
    ----------
    box : numpy.ndarray of bool
        3D mask (C-contiguous).

    Returns
    -------
    n_eroded, n_dilated : int
        Voxel counts.
    """
    nk, nj, ni = box.shape
    n_er = 0
    n_di = 0
    for k in range(nk):
        for j in range(nj):
            for i in range(ni):
                v = box[k, j, i]
                km = box[k - 1, j, i] if k > 0 else False
                kp = box[k + 1, j, i] if k < nk - 1 else False
                jm = box[k, j - 1, i] if j > 0 else False
                jp = box[k, j + 1, i] if j < nj - 1 else False
                im = box[k, j, i - 1] if i > 0 else False
                ip = box[k, j, i + 1] if i < ni - 1 else False
                if v and km and kp and jm and jp and im and ip:
                    n_er += 1
                if v or km or kp or jm or jp or im or ip:
                    n_di += 1
    return n_er, n_di


def _warm_volume() -> tuple:
    verts = np.arange(12.0).reshape(4, 3)
    faces = np.array([[2, 1, 0], [3, 2, 0]], dtype=np.int32)  # mesh.surface's faces: C-contiguous int32
    return verts, faces, verts.mean(axis=0)


@kernel(warm=_warm_volume)
def six_signed_volumes(verts, faces, centre):
    """Six times the signed volume of each tetrahedron (centre, triangle).

    ``a · (b × c)`` of the triangle's corners relative to ``centre``, with the cross
    product's and the dot product's terms in the order of ``np.cross`` and of
    ``np.einsum("ij,ij->i")`` (which adds the first and third products, then the second).

    Returns
    -------
    numpy.ndarray of float64
        One value per face (mm³ × 6); their sum (numpy's) is six times the mesh volume.
    """
    m = faces.shape[0]
    out = np.empty(m)
    for f in range(m):
        a = faces[f, 0]
        b = faces[f, 1]
        c = faces[f, 2]
        a0, a1, a2 = verts[a, 0] - centre[0], verts[a, 1] - centre[1], verts[a, 2] - centre[2]
        b0, b1, b2 = verts[b, 0] - centre[0], verts[b, 1] - centre[1], verts[b, 2] - centre[2]
        c0, c1, c2 = verts[c, 0] - centre[0], verts[c, 1] - centre[1], verts[c, 2] - centre[2]
        x0 = b1 * c2 - b2 * c1
        x1 = b2 * c0 - b0 * c2
        x2 = b0 * c1 - b1 * c0
        out[f] = (a0 * x0 + a2 * x2) + a1 * x1
    return out


def _warm_inplane() -> tuple:
    crop = np.zeros((2, 4, 5), dtype=bool)
    crop[0, 1:3, 1:4] = True
    return crop, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), 1.0, 1.0, 1e-6, 64


@kernel(warm=_warm_inplane)
def inplane_lengths(crop, c0, c1, n0, n1, margin, pairwise_max):
    """Longest outline chord (mm) of each slice that can hold the longest one; 0 elsewhere.

    The candidates of a slice are the outline points (mid-points of edges between a
    mask and a background pixel, the slice padded by one background pixel, index
    units of the padded slice: ``x`` along i, ``y`` along j) that are the first or last
    of their edge row and of their edge column. Above ``pairwise_max`` candidates, only
    the vertices of their convex hull (exact integer arithmetic on twice the
    coordinates) are compared. Slices are measured from the largest bound
    ``(span_x n0 + span_y n1)(1 + margin)`` down, stopping at the first bound under
    ``longest (1 - margin)``.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        ``[k, j, i]`` mask (C-contiguous).
    c0, c1 : numpy.ndarray
        mm per index step along i and along j (3-vectors).
    n0, n1 : float
        Their norms (mm).
    margin : float
        Relative margin of the bound.
    pairwise_max : int
        Candidates above which the hull is taken first.

    Returns
    -------
    numpy.ndarray of float64
        Per slice of ``crop``.
    """
    nk, nj, ni = crop.shape
    lengths = np.zeros(nk)
    if nk == 0:
        return lengths
    cap = 4 * (nj + ni + 4)
    # candidates of every slice: doubled coordinates (integers), grouped by slice
    cx = np.empty(nk * cap, dtype=np.int64)
    cy = np.empty(nk * cap, dtype=np.int64)
    count = np.zeros(nk, dtype=np.int64)
    rows = np.empty((nj + 2, 2), dtype=np.int64)  # first and last edge of each row / column
    cols = np.empty((ni + 2, 2), dtype=np.int64)
    for k in range(nk):
        base = k * cap
        n = _edge_candidates(crop, k, False, rows, cols, cx, cy, base) - base
        n = _edge_candidates(crop, k, True, rows, cols, cx, cy, base + n) - base
        count[k] = n
    # bounds of the slices holding candidates, measured from the largest down
    slices = np.flatnonzero(count)
    bound = np.empty(len(slices))
    for s in range(len(slices)):
        base = slices[s] * cap
        n = count[slices[s]]
        xmin = xmax = cx[base]
        ymin = ymax = cy[base]
        for t in range(base + 1, base + n):
            xmin = min(xmin, cx[t])
            xmax = max(xmax, cx[t])
            ymin = min(ymin, cy[t])
            ymax = max(ymax, cy[t])
        span_x = (xmax - xmin) * 0.5
        span_y = (ymax - ymin) * 0.5
        bound[s] = (span_x * n0 + span_y * n1) * (1.0 + margin)
    order = np.argsort(-bound, kind="mergesort")
    longest = 0.0
    hx = np.empty(cap + 1, dtype=np.int64)
    hy = np.empty(cap + 1, dtype=np.int64)
    pts = np.empty((cap, 3))
    for s in order:
        if bound[s] < longest * (1.0 - margin):
            break
        k = slices[s]
        base = k * cap
        n = count[k]
        if n > pairwise_max:
            n = _hull(cx[base:base + n], cy[base:base + n], hx, hy)
        else:
            hx[:n] = cx[base:base + n]
            hy[:n] = cy[base:base + n]
        for t in range(n):
            x = hx[t] * 0.5
            y = hy[t] * 0.5
            for d in range(3):
                pts[t, d] = x * c0[d] + y * c1[d]
        best = 0.0
        for a in range(n):
            for b in range(n):
                d0 = pts[a, 0] - pts[b, 0]
                d1 = pts[a, 1] - pts[b, 1]
                d2 = pts[a, 2] - pts[b, 2]
                sq = (d0 * d0 + d2 * d2) + d1 * d1
                if sq > best:
                    best = sq
        lengths[k] = np.sqrt(best)
        longest = max(longest, lengths[k])
    return lengths


@kernel()
def _edge_candidates(crop, k, vertical, rows, cols, cx, cy, at):
    """Write the candidates of slice ``k`` among its horizontal or its vertical edges to
    ``cx, cy`` from ``at`` on (doubled coordinates); return the position after the last.

    Horizontal edges ``h[r, c]`` (padded rows r = 1..nj, c = 0..ni): ``p[r, c] != p[r, c + 1]``,
    mid-point ``(c + 1/2, r)``; vertical edges ``v[r, c]`` (r = 0..nj, padded columns
    c = 1..ni): ``p[r, c] != p[r + 1, c]``, mid-point ``(c, r + 1/2)``. A candidate is the
    first or last edge of its row and of its column.
    """
    nj, ni = crop.shape[1], crop.shape[2]
    r0 = 0 if vertical else 1
    c0 = 1 if vertical else 0
    for r in range(nj + 2):
        rows[r, 0] = -1
    for c in range(ni + 2):
        cols[c, 0] = -1
    for r in range(r0, nj + 1):
        for c in range(c0, ni + 1):
            if vertical:
                a = crop[k, r - 1, c - 1] if r >= 1 else False
                b = crop[k, r, c - 1] if r < nj else False
            else:
                a = crop[k, r - 1, c - 1] if c >= 1 else False
                b = crop[k, r - 1, c] if c < ni else False
            if a != b:
                if rows[r, 0] < 0:
                    rows[r, 0] = c
                rows[r, 1] = c
                if cols[c, 0] < 0:
                    cols[c, 0] = r
                cols[c, 1] = r
    for r in range(r0, nj + 1):
        if rows[r, 0] < 0:
            continue
        for e in range(2):
            c = rows[r, e]
            if e == 1 and c == rows[r, 0]:
                break
            if r == cols[c, 0] or r == cols[c, 1]:
                cx[at] = 2 * c if vertical else 2 * c + 1
                cy[at] = 2 * r + 1 if vertical else 2 * r
                at += 1
    return at


@kernel()
def _hull(x, y, hx, hy):
    """Strict convex-hull vertices of integer points (Andrew's monotone chain, exact).

    Writes them to ``hx, hy`` and returns their number (all points when fewer than 3
    distinct ones, which also covers collinear sets by their two ends).
    """
    n = len(x)
    key = np.empty(n, dtype=np.int64)
    ymin = y.min()
    span = y.max() - ymin + 1
    for t in range(n):
        key[t] = x[t] * span + (y[t] - ymin)
    order = np.argsort(key, kind="mergesort")
    sx = x[order]
    sy = y[order]
    h = 0
    for t in range(n):  # lower chain
        while h >= 2 and ((hx[h - 1] - hx[h - 2]) * (sy[t] - hy[h - 2])
                          - (hy[h - 1] - hy[h - 2]) * (sx[t] - hx[h - 2])) <= 0:
            h -= 1
        hx[h] = sx[t]
        hy[h] = sy[t]
        h += 1
    lower = h + 1
    for t in range(n - 2, -1, -1):  # upper chain
        while h >= lower and ((hx[h - 1] - hx[h - 2]) * (sy[t] - hy[h - 2])
                              - (hy[h - 1] - hy[h - 2]) * (sx[t] - hx[h - 2])) <= 0:
            h -= 1
        hx[h] = sx[t]
        hy[h] = sy[t]
        h += 1
    return h - 1 if h > 1 else h


def _warm_line_extremes() -> tuple:
    return (np.array([[1, 2, 2], [2, 1, 2], [2, 2, 1], [2, 2, 3], [3, 2, 2], [2, 3, 2]], dtype=np.int64),)


@kernel(warm=_warm_line_extremes)
def line_extremes(lattice):
    """Points that are first or last on each of their three axis-parallel lines.

    A point lying strictly between two other points of the set on a line is a convex
    combination of them, so it is not a vertex of the set's convex hull: every hull
    vertex is first or last, along each axis, among the points sharing its other two
    coordinates. Exact (integer coordinates).

    Parameters
    ----------
    lattice : numpy.ndarray of int64
        ``(n, 3)`` non-negative integer coordinates (e.g. twice the ``[k, j, i]`` index of a
        marching-cubes vertex at level 0.5 on a binary mask).

    Returns
    -------
    numpy.ndarray of bool
        ``(n,)``: the point is first or last on all three of its lines.
    """
    n = lattice.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    if n == 0:
        return keep
    size = np.zeros(3, dtype=np.int64)
    for p in range(n):
        for a in range(3):
            if lattice[p, a] + 1 > size[a]:
                size[a] = lattice[p, a] + 1
    # first and last position on each line, by the line's two other coordinates (one pair of maps,
    # int32: positions are far below 2^31, reused for the three axes)
    cells = max(size[0] * size[1], size[0] * size[2], size[1] * size[2])
    lo = np.empty(cells, dtype=np.int32)
    hi = np.empty(cells, dtype=np.int32)
    for a in range(3):
        b = 1 if a == 0 else 0
        c = 1 if a == 2 else 2
        nc = size[c]
        lo[:size[b] * nc] = size[a]
        hi[:size[b] * nc] = -1
        for p in range(n):
            line = lattice[p, b] * nc + lattice[p, c]
            w = lattice[p, a]
            if w < lo[line]:
                lo[line] = w
            if w > hi[line]:
                hi[line] = w
        for p in range(n):
            line = lattice[p, b] * nc + lattice[p, c]
            w = lattice[p, a]
            if w != lo[line] and w != hi[line]:
                keep[p] = False
    return keep


def _warm_lattice_hull() -> tuple:
    cube = np.array([[x, y, z] for x in (0, 2) for y in (0, 2) for z in (0, 2)] + [[1, 1, 1], [1, 1, 3]],
                    dtype=np.int64)
    return (cube,)


@kernel()
def _normal(L, a, b, c):
    """``(L[b] - L[a]) x (L[c] - L[a])`` (exact, integers): the normal of the triangle ``a, b, c``."""
    ux, uy, uz = L[b, 0] - L[a, 0], L[b, 1] - L[a, 1], L[b, 2] - L[a, 2]
    vx, vy, vz = L[c, 0] - L[a, 0], L[c, 1] - L[a, 1], L[c, 2] - L[a, 2]
    return uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx


@kernel()
def _orient(L, a, b, c, p):
    """``_normal(L, a, b, c) . (L[p] - L[a])``: positive when ``p`` is on the side the
    counter-clockwise triangle ``a, b, c`` faces (exact, integers)."""
    nx, ny, nz = _normal(L, a, b, c)
    return nx * (L[p, 0] - L[a, 0]) + ny * (L[p, 1] - L[a, 1]) + nz * (L[p, 2] - L[a, 2])


@kernel()
def _set_plane(L, pl, g, a, b, c):
    """Store the plane of the triangle ``a, b, c`` as face ``g``: its normal (:func:`_normal`) and the
    normal's product with ``L[a]`` (exact, integers)."""
    nx, ny, nz = _normal(L, a, b, c)
    pl[g, 0], pl[g, 1], pl[g, 2] = nx, ny, nz
    pl[g, 3] = nx * L[a, 0] + ny * L[a, 1] + nz * L[a, 2]


@kernel()
def _side(L, pl, g, p):
    """:func:`_orient` of ``p`` and face ``g`` from its stored plane: ``n . L[p] - n . L[a]`` is
    ``n . (L[p] - L[a])`` (exact, integers: |n| < 2^26 and coordinates < 2^12)."""
    return pl[g, 0] * L[p, 0] + pl[g, 1] * L[p, 1] + pl[g, 2] * L[p, 2] - pl[g, 3]


@kernel(warm=_warm_lattice_hull)
def lattice_hull(L):
    """The vertices of the convex hull of integer points, exactly (a quickhull in integers).

    Incremental: a tetrahedron, then the farthest outside point of a face at a time, the
    faces it sees (strictly) replaced by a fan from it to their horizon; points on a face
    are not outside it. The triangulated hull's vertices are then kept when their faces
    lie in at least three distinct planes: a vertex inside a flat facet or on an edge
    between two facets is not a vertex of the hull. This is the vertex set qhull reports
    for such points (every marching-cubes surface of the test corpus, and random integer
    clouds, tested), in a fraction of its time.

    Parameters
    ----------
    L : numpy.ndarray of int64
        ``(n, 3)`` distinct points, coordinates in ``[0, 4096)``.

    Returns
    -------
    ok : bool
        False when the points are fewer than 4, out of range or flat (no tetrahedron), or
        the construction met a case it does not handle; ``keep`` is then meaningless.
    keep : numpy.ndarray of bool
        ``(n,)``: the point is a vertex of the hull.
    """
    n = L.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    if n < 4:
        return False, keep
    for p in range(n):
        for a in range(3):
            if L[p, a] < 0 or L[p, a] >= (1 << 12):  # normals' cross products stay in int64
                return False, keep
    # initial simplex
    p0 = 0
    for p in range(n):
        if L[p, 0] < L[p0, 0]:
            p0 = p
    p1 = -1
    best = 0
    for p in range(n):
        d = (L[p, 0] - L[p0, 0]) ** 2 + (L[p, 1] - L[p0, 1]) ** 2 + (L[p, 2] - L[p0, 2]) ** 2
        if d > best:
            best, p1 = d, p
    if p1 < 0:
        return False, keep
    p2 = -1
    best = 0
    for p in range(n):
        cx, cy, cz = _normal(L, p0, p1, p)
        d = cx * cx + cy * cy + cz * cz
        if d > best:
            best, p2 = d, p
    if p2 < 0:
        return False, keep
    p3 = -1
    best = 0
    for p in range(n):
        d = abs(_orient(L, p0, p1, p2, p))
        if d > best:
            best, p3 = d, p
    if p3 < 0:
        return False, keep
    cap = 64 * n + 64
    fv = np.empty((cap, 3), dtype=np.int64)      # vertices, counter-clockwise seen from outside
    pl = np.empty((cap, 4), dtype=np.int64)      # plane: normal, and its product with the first vertex
    nb = np.empty((cap, 3), dtype=np.int64)      # neighbour across edge (v[i], v[i+1])
    alive = np.zeros(cap, dtype=np.bool_)
    first = np.full(cap, -1, dtype=np.int64)     # outside-point list head
    nxt = np.full(n, -1, dtype=np.int64)
    nf = 0
    # orient the tetrahedron so that faces point outwards
    if _orient(L, p0, p1, p2, p3) > 0:
        p1, p2 = p2, p1
    # faces: (p0,p1,p2), (p0,p3,p1), (p1,p3,p2), (p2,p3,p0)
    tris = ((p0, p1, p2), (p0, p3, p1), (p1, p3, p2), (p2, p3, p0))
    for t in tris:
        fv[nf, 0], fv[nf, 1], fv[nf, 2] = t[0], t[1], t[2]
        _set_plane(L, pl, nf, t[0], t[1], t[2])
        alive[nf] = True
        nf += 1
    # adjacency by brute force for the 4 faces
    for f in range(4):
        for e in range(3):
            a, b = fv[f, e], fv[f, (e + 1) % 3]
            for g in range(4):
                if g == f:
                    continue
                for h in range(3):
                    if fv[g, h] == b and fv[g, (h + 1) % 3] == a:
                        nb[f, e] = g
    # assign points
    for p in range(n):
        if p == p0 or p == p1 or p == p2 or p == p3:
            continue
        for f in range(4):
            if _side(L, pl, f, p) > 0:
                nxt[p] = first[f]
                first[f] = p
                break
    stack = np.empty(cap, dtype=np.int64)
    visible = np.zeros(cap, dtype=np.bool_)
    vis_list = np.empty(cap, dtype=np.int64)
    hz_a = np.empty(cap, dtype=np.int64)
    hz_b = np.empty(cap, dtype=np.int64)
    hz_f = np.empty(cap, dtype=np.int64)
    start_of = np.full(n, -1, dtype=np.int64)  # horizon: new face whose first vertex is this vertex
    f = -1
    while f + 1 < nf:  # the faces made meanwhile are appended, and visited in turn
        f += 1
        if not alive[f] or first[f] < 0:
            continue
        # farthest outside point
        p = first[f]
        best = -1
        q = first[f]
        while q >= 0:
            d = _side(L, pl, f, q)
            if d > best:
                best, p = d, q
            q = nxt[q]
        # visible faces by BFS
        nv = 0
        top = 0
        stack[top] = f
        top += 1
        visible[f] = True
        while top > 0:
            top -= 1
            g = stack[top]
            vis_list[nv] = g
            nv += 1
            for e in range(3):
                h = nb[g, e]
                if not visible[h] and _side(L, pl, h, p) > 0:
                    visible[h] = True
                    stack[top] = h
                    top += 1
        # horizon edges
        nh = 0
        for i in range(nv):
            g = vis_list[i]
            for e in range(3):
                h = nb[g, e]
                if not visible[h]:
                    hz_a[nh] = fv[g, e]
                    hz_b[nh] = fv[g, (e + 1) % 3]
                    hz_f[nh] = h
                    nh += 1
        if nf + nh > cap:
            return False, keep
        # new faces (a, b, p)
        base = nf
        for i in range(nh):
            g = nf
            fv[g, 0], fv[g, 1], fv[g, 2] = hz_a[i], hz_b[i], p
            _set_plane(L, pl, g, hz_a[i], hz_b[i], p)
            alive[g] = True
            first[g] = -1
            nb[g, 0] = hz_f[i]
            h = hz_f[i]
            for e in range(3):
                if fv[h, e] == hz_b[i] and fv[h, (e + 1) % 3] == hz_a[i]:
                    nb[h, e] = g
            if start_of[hz_a[i]] != -1:  # (reset after every step)
                return False, keep  # the horizon is not a simple cycle
            start_of[hz_a[i]] = g
            nf += 1
        for i in range(nh):
            g = base + i
            # edge (b, p): neighbour is the new face starting at b; edge (p, a): the new face ending at a
            nb[g, 1] = start_of[fv[g, 1]]
            if nb[g, 1] < base:
                return False, keep
        for i in range(nh):
            g = base + i
            h = nb[g, 1]
            nb[h, 2] = g
        for i in range(nh):
            start_of[hz_a[i]] = -1
        # redistribute outside points of the visible faces
        for i in range(nv):
            g = vis_list[i]
            alive[g] = False
            q = first[g]
            while q >= 0:
                nq = nxt[q]
                if q != p:
                    for j in range(base, nf):
                        if _side(L, pl, j, q) > 0:
                            nxt[q] = first[j]
                            first[j] = q
                            break
                q = nq
            first[g] = -1
        for i in range(nv):
            visible[vis_list[i]] = False
    # the hull's vertices: points whose faces lie in >= 3 distinct planes (normals not parallel)
    nrm = np.empty((nf, 3), dtype=np.int64)
    for g in range(nf):
        if alive[g]:
            nrm[g, 0], nrm[g, 1], nrm[g, 2] = _normal(L, fv[g, 0], fv[g, 1], fv[g, 2])
    # per vertex incident face list
    deg = np.zeros(n, dtype=np.int64)
    for g in range(nf):
        if alive[g]:
            for e in range(3):
                deg[fv[g, e]] += 1
    off = np.zeros(n + 1, dtype=np.int64)
    for v in range(n):
        off[v + 1] = off[v] + deg[v]
    inc = np.empty(off[n], dtype=np.int64)
    fill = off[:n].copy()
    for g in range(nf):
        if alive[g]:
            for e in range(3):
                v = fv[g, e]
                inc[fill[v]] = g
                fill[v] += 1
    dirs = np.empty((3, 3), dtype=np.int64)  # distinct plane normals met around a vertex (three suffice)
    for v in range(n):
        if deg[v] == 0:
            continue
        nd = 0
        for k in range(off[v], off[v + 1]):
            g = inc[k]
            x, y, z = nrm[g, 0], nrm[g, 1], nrm[g, 2]
            new = True
            for j in range(nd):
                cx = y * dirs[j, 2] - z * dirs[j, 1]
                cy = z * dirs[j, 0] - x * dirs[j, 2]
                cz = x * dirs[j, 1] - y * dirs[j, 0]
                if cx == 0 and cy == 0 and cz == 0 and x * dirs[j, 0] + y * dirs[j, 1] + z * dirs[j, 2] > 0:
                    new = False
                    break
            if new:
                dirs[nd, 0], dirs[nd, 1], dirs[nd, 2] = x, y, z
                nd += 1
                if nd >= 3:
                    break
        keep[v] = nd >= 3
    return True, keep


def _warm_farthest_pair() -> tuple:
    pts = np.arange(12.0).reshape(4, 3) ** 1.5  # (n, 3) hull vertices; their (n, 2) projections are the same type
    centred = pts - pts.mean(axis=0)
    return pts, centred, centred @ centred.T, 0


@kernel(warm=_warm_farthest_pair)
def farthest_pair(pts, centred, gram, start):
    """The pair of a block of rows that ``diameters._max_feret_of`` picks, and its exact squared distance.

    numpy's expressions, operation for operation: ``sq = (centred ** 2).sum(axis=1)`` (left to
    right along a row), ``d2 = sq[start + a] + sq[b] - 2.0 * gram[a, b]`` with ``gram`` the block's
    Gram rows (``centred[start:start + m] @ centred.T``, numpy's product), the first largest
    ``d2`` in C order (``np.argmax``: a NaN, if any, is the largest), and
    ``((pts[start + a] - pts[b]) ** 2).sum()`` (left to right).

    Parameters
    ----------
    pts, centred : numpy.ndarray of float64
        ``(n, d)`` points and the same points minus their mean.
    gram : numpy.ndarray of float64
        ``(m, n)``: rows ``start .. start + m`` of ``centred @ centred.T``.
    start : int
        First row of the block.

    Returns
    -------
    a, b : int
        Row of the block (relative to ``start``) and column of the pair.
    exact : float
        Squared distance between ``pts[start + a]`` and ``pts[b]``.
    """
    n, d = centred.shape
    m = gram.shape[0]
    sq = np.empty(n)
    for i in range(n):
        s = centred[i, 0] * centred[i, 0]
        for k in range(1, d):
            s += centred[i, k] * centred[i, k]
        sq[i] = s
    best = sq[start] + sq[0] - 2.0 * gram[0, 0]
    ba = bb = 0
    if not np.isnan(best):
        stop = False
        for a in range(m):
            sa = sq[start + a]
            for b in range(n):
                v = sa + sq[b] - 2.0 * gram[a, b]
                if np.isnan(v):  # np.argmax's answer is the first NaN
                    ba, bb, stop = a, b, True
                    break
                if v > best:
                    best, ba, bb = v, a, b
            if stop:
                break
    diff = pts[start + ba, 0] - pts[bb, 0]
    exact = diff * diff
    for k in range(1, d):
        diff = pts[start + ba, k] - pts[bb, k]
        exact += diff * diff
    return ba, bb, exact
