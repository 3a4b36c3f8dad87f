"""Building blocks shared by the segmentation methods (all work inside a crop)."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage

from .kernels import COUNT_MAX_BINS, ROUNDER, counted_mad, median_of_partition, noise_diffs

#: 6-connectivity (faces only): noise specks at a threshold percolate far less
#: than with 26-connectivity.
CONN6 = ndimage.generate_binary_structure(3, 1)
#: 26-connectivity, used for the one-voxel gap between a region and its shell.
CONN26 = ndimage.generate_binary_structure(3, 3)


@dataclasses.dataclass
class MethodOutput:
    """What a method returns on its crop.

    Attributes
    ----------
    mask : numpy.ndarray or None
        Boolean crop mask, or None when the method failed.
    reason : str
        Why it failed ('' on success).
    qc : dict
        Numbers for quality control (threshold, lesion/background medians, noise ...).
    flags : list of str
        Method-specific flags.
    needs_larger_crop : bool
        The method ran out of room (e.g. no background left around the region):
        the caller should retry on a larger crop, or fail with ``reason``.
    """

    mask: np.ndarray | None
    reason: str = ""
    qc: dict = dataclasses.field(default_factory=dict)
    flags: list = dataclasses.field(default_factory=list)
    needs_larger_crop: bool = False


def median(x: np.ndarray):
    """``np.median(x)`` (same value and type), faster on a few thousand values.

    numpy selects the two middle values with a two-index partition, several
    times slower than a one-index partition: here the upper middle value is
    selected and the lower one is the largest value below it; the median is
    then the mean of the same two values, as ``np.median`` computes it. For
    float32 and float64 values a compiled kernel reads the partition
    (:func:`volumetry.segment.kernels.median_of_partition`).

    Parameters
    ----------
    x : numpy.ndarray
        Values (any shape; the median of all of them). Integer arrays, fewer
        than 3 values and arrays holding NaN go to ``np.median`` itself.

    Returns
    -------
    numpy scalar
        Exactly ``np.median(x)``, in the same dtype (e.g. ``float32`` for a float32 crop).
    """
    x = np.ravel(x)
    n = x.size
    if n < 3 or x.dtype.kind != "f":  # not np.issubdtype(x.dtype, np.floating)
        return np.median(x)
    part = x.copy()  # np.partition(x, n // 2), without its wrapper
    part.partition(n // 2)
    return _median_of_partitioned(part, x)


def _median_of_partitioned(part: np.ndarray, x: np.ndarray):
    """:func:`median` of ``x`` (floating, at least 3 values) given ``part``, ``x``'s values partitioned
    at ``part.size // 2`` (``np.partition``; ``part`` may be ``x`` itself, partitioned in place)."""
    n = part.size
    h = n // 2
    if part.dtype == np.float32 or part.dtype == np.float64:
        value = median_of_partition(part, h)  # compiled; None: a NaN, or a median of 0 (its sign), below
        if value is not None:
            return value
    if np.isnan(part[h]) or np.isnan(part[h + 1:]).any():  # NaN: numpy's own result
        return np.median(x)
    if n % 2:
        return np.mean(part[h:h + 1])
    mid = np.empty(2, dtype=part.dtype)
    mid[0] = part[:h].max()
    mid[1] = part[h]
    return np.mean(mid)


def smooth(a: np.ndarray, spacing_kji, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing with ``sigma_mm`` (mm) per axis; axes whose voxels are
    coarser than 2 × sigma are left alone (no blur across thick slices)."""
    if sigma_mm <= 0:
        return a
    sig = [sigma_mm / s if s <= 2 * sigma_mm else 0.0 for s in spacing_kji]
    if not any(sig):
        return a
    return ndimage.gaussian_filter(a, sig, mode="nearest", truncate=3.0)


def noise_sigma(a: np.ndarray, pad: np.ndarray | None = None) -> float:
    """Robust noise standard deviation from first differences along the finest
    axes (median absolute difference / (0.6745·√2)); edges barely move it.

    ``pad`` is ``padding_mask(a)`` when the caller has it already (it is computed otherwise).
    The differences are ``np.diff``'s (the same subtraction of the same slices), and the
    estimates' median is ``np.median``'s (one value, or the mean of two: ``(x + y) / 2``).

    For float32 and float64 crops a compiled kernel takes the differences
    (:func:`volumetry.segment.kernels.noise_diffs`) and, when they are small integers (a
    scanner's stored values), counts their median absolute deviation exactly
    (:func:`volumetry.segment.kernels.counted_mad`); other
    differences have their medians taken by :func:`median`'s partition, in place. Crops of
    other types, or whose differences are not all finite, take numpy's way
    (:func:`_noise_sigma_numpy`): the same numbers either way."""
    if pad is None:
        pad = padding_mask(a)
    if a.ndim != 3 or a.dtype not in ROUNDER or pad.shape != a.shape or pad.dtype != np.bool_:
        return _noise_sigma_numpy(a, pad)
    any_pad = bool(pad.any())
    buf = np.empty(a.size, dtype=a.dtype)
    rounder = ROUNDER[a.dtype]
    ests = []
    for ax in (1, 2):
        if a.shape[ax] > 1:
            n, finite, integers = noise_diffs(a, pad, any_pad, ax, buf, rounder)
            if not finite:  # NaN or infinite differences (numpy's warnings and NaN rules): numpy's way
                return _noise_sigma_numpy(a, pad)
            if n < 10:
                continue
            d = buf[:n]
            lo, hi = (int(d.min()), int(d.max())) if integers else (0, COUNT_MAX_BINS)
            if hi - lo < COUNT_MAX_BINS:
                value = a.dtype.type(counted_mad(d, lo, hi))
            else:
                d.partition(n // 2)
                dev = np.abs(d - _median_of_partitioned(d, d))
                dev.partition(n // 2)
                value = _median_of_partitioned(dev, dev)
            ests.append(value / _MAD_TO_SD)
    return _combine_estimates(a, ests)


def _noise_sigma_numpy(a: np.ndarray, pad: np.ndarray) -> float:
    """:func:`noise_sigma` with numpy's diff, indexing and :func:`median` (any dtype, NaN, infinities)."""
    ests = []
    any_pad = bool(pad.any())
    diff = np.not_equal if a.dtype == np.bool_ else np.subtract  # what np.diff applies
    for ax in (1, 2):
        if a.shape[ax] > 1:
            upper = (slice(None),) * ax + (slice(1, None),)
            lower = (slice(None),) * ax + (slice(None, -1),)
            d = diff(a[upper], a[lower])
            if any_pad:
                d = d[~(pad[upper] | pad[lower])]
            if d.size < 10:
                continue
            ests.append(median(np.abs(d - median(d))) / _MAD_TO_SD)
    return _combine_estimates(a, ests)


def _combine_estimates(a: np.ndarray, ests: list) -> float:
    """The mean of the axes' estimates (``np.median`` of one or two), the crop's SD without one,
    and at least a millionth of the crop's range."""
    if len(ests) == 2:
        s = float((ests[0] + ests[1]) / 2)
    elif ests:
        s = float(ests[0])
    else:
        s = float(np.std(a))
    return max(s, 1e-6 * (float(np.ptp(a)) or 1.0))


#: Median absolute deviation of a normal difference of two samples, per noise SD (0.6745·√2).
_MAD_TO_SD = 0.6745 * np.sqrt(2)


#: A crop value shared by more than this fraction of voxels at the crop's minimum is
#: padding (skull-stripped or masked background), left out of intensity statistics.
PADDING_FRACTION = 0.01


def padding_mask(a: np.ndarray) -> np.ndarray:
    """Voxels at the crop's minimum when that exact value is frequent (padding / masked background)."""
    lo = a.min()
    pad = a == lo
    if np.count_nonzero(pad) > PADDING_FRACTION * a.size:
        return pad
    return np.zeros(a.shape, dtype=bool)


def seed_value(a: np.ndarray, seeds: np.ndarray, spacing_kji, radius_mm: float) -> float:
    """Median intensity in small balls around the seeds (see :func:`seed_balls`)."""
    balls = seed_balls(a.shape, seeds, spacing_kji, radius_mm)
    return float(median(np.concatenate([a[tuple(b.T)] for b in balls])))


def connected_to_seeds(binary: np.ndarray, seeds: np.ndarray, structure=CONN6,
                       anchors: list[np.ndarray] | None = None) -> np.ndarray:
    """The components of ``binary`` that hold a seed voxel.

    ``anchors`` (one index array ``(m, 3)`` per seed, e.g. a small ball): when a
    seed voxel itself is not in ``binary``, the components meeting its anchor
    voxels count instead (a seed dropped on a dark speck of a bright lesion).
    """
    return _components_with_seeds(binary, seeds, structure, anchors)


def connected_to_seeds_in_box(box: np.ndarray, corner, seeds: np.ndarray, structure=CONN6,
                              anchors: list[np.ndarray] | None = None) -> np.ndarray:
    """:func:`connected_to_seeds` of an array that is False outside a box, given the box alone.

    Parameters
    ----------
    box : numpy.ndarray
        Boolean contents of the box (the array is False everywhere else).
    corner : sequence of int
        Index (k, j, i) of the box's first voxel in the array.
    seeds, structure, anchors
        As for :func:`connected_to_seeds`, in the array's indices (seeds and anchor
        voxels outside the box meet no component).

    Returns
    -------
    numpy.ndarray
        The box's part of ``connected_to_seeds`` of the whole array (the same
        components: none of them leaves the box); labelling only the box is faster.
    """
    return _components_with_seeds(box, seeds, structure, anchors, tuple(int(c) for c in corner))


def _components_with_seeds(binary, seeds, structure, anchors, corner=None) -> np.ndarray:
    """Body of :func:`connected_to_seeds`; with ``corner``, ``binary`` is a box of a larger array
    whose first voxel is at ``corner`` (seeds and anchors in the larger array's indices; those
    outside the box meet no component)."""
    lab, n = ndimage.label(binary, structure=structure)
    if n == 0:
        return np.zeros_like(binary, dtype=bool)
    shape = binary.shape
    ids = []
    for s_i, s in enumerate(seeds):
        if corner is None:
            v = lab[tuple(s)]
        else:
            local = tuple(int(x) - c for x, c in zip(s, corner))
            v = lab[local] if all(0 <= x < m for x, m in zip(local, shape)) else 0
        if v > 0:
            ids.append(v)
        elif anchors is not None:
            a = anchors[s_i]
            if corner is not None:
                a = np.asarray(a, dtype=np.intp).reshape(-1, 3) - np.asarray(corner, dtype=np.intp)
                a = a[np.all((a >= 0) & (a < np.asarray(shape, dtype=np.intp)), axis=1)]
            ids.extend(lab[tuple(a.T)].tolist())
    ids = np.asarray(ids, dtype=np.intp)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return np.zeros_like(binary, dtype=bool)
    if np.all(ids == ids[0]):
        return lab == ids[0]
    keep = np.zeros(n + 1, dtype=bool)
    keep[ids] = True
    return keep[lab]


def seed_balls(shape, seeds: np.ndarray, spacing_kji, radius_mm: float) -> list[np.ndarray]:
    """For each seed, the ``(m, 3)`` voxel indices of a small ball around it, inside ``shape``.

    The ball has ``radius_mm`` (mm) but always spans at least one voxel on each side
    along the two finest axes (a 3 × 3 patch in-plane), so that one noisy voxel
    never decides the seed intensity.
    """
    offs = _seed_ball_offsets(tuple(float(x) for x in spacing_kji), float(radius_mm))
    out = []
    for s in seeds:
        pts = s + offs
        ok = np.all((pts >= 0) & (pts < np.asarray(shape)), axis=1)
        out.append(pts[ok])
    return out


@functools.lru_cache(maxsize=64)
def _seed_ball_offsets(spacing_kji: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """The ``(m, 3)`` index offsets of :func:`seed_balls`' ball (read-only; cached: a grid's spacing
    recurs scan after scan)."""
    sp = np.asarray(spacing_kji, float)
    r = np.floor(radius_mm / sp).astype(int)
    fine = np.argsort(sp)[:2]
    r[fine] = np.maximum(r[fine], 1)
    r = np.maximum(r, 0)
    offs = np.stack(np.meshgrid(*(np.arange(-x, x + 1) for x in r), indexing="ij"), -1).reshape(-1, 3)
    norm = np.where(r > 0, np.maximum(r * sp, radius_mm), 1.0)
    offs = offs[(((offs * sp) / norm) ** 2).sum(axis=1) <= 1 + 1e-9]
    offs.flags.writeable = False
    return offs


def ball(radius_mm: float, spacing_kji, min_voxels: int = 0) -> np.ndarray:
    """Boolean ellipsoidal structuring element of radius ``radius_mm`` (mm) on the voxel grid;
    axes with voxels coarser than the radius get ``min_voxels`` half-width."""
    sp = np.asarray(spacing_kji, float)
    r = np.maximum(np.floor(radius_mm / sp).astype(int), min_voxels)
    grid = np.meshgrid(*(np.arange(-x, x + 1) * d for x, d in zip(r, sp)), indexing="ij")
    el = sum(g ** 2 for g in grid) <= radius_mm ** 2 + 1e-9
    el[tuple(r)] = True
    return el


def closing(binary: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Binary closing with a ball of ``radius_mm`` (mm), on a padded copy (no border artefact).
    Bridges thin dark septa (about 2 × radius thick) inside a lesion.

    Same voxels as ``scipy.ndimage.binary_closing`` of the padded bounding box
    (tests/test_segment_fast.py), computed with shifted slices."""
    if radius_mm <= 0:
        return binary
    el_rows = _ball_rows(float(radius_mm), tuple(float(x) for x in spacing_kji))
    if el_rows is None:
        return binary
    half, rows = el_rows
    sl = bbox(binary)
    if sl is None:
        return binary
    box = binary[sl]
    # dilation exact within `half` of the box, erosion exact on the box (see _flat_morph)
    pad = tuple(2 * h for h in half)
    closed = _flat_morph(_flat_morph(_padded(box, pad), rows), rows, dilate=False)[_inside(box.shape, pad)]
    out = binary.copy()
    out[sl] |= closed
    return out


@functools.lru_cache(maxsize=64)
def _ball_rows(radius_mm: float, spacing_kji: tuple[float, float, float]):
    """Half-sizes and runs (:func:`_rows`) of :func:`ball`; None when the ball is a single voxel."""
    el = ball(radius_mm, spacing_kji)
    if el.sum() <= 1:
        return None
    half = [s // 2 for s in el.shape]
    return half, tuple(_rows(np.argwhere(el) - np.asarray(half)))


def _rows(offsets: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Group integer ``(k, j, i)`` offsets into runs along i: ``(dk, dj, di_centre, half_width)``.

    A structuring element is the union of its runs; a run is handled with
    one shift of the array dilated (or eroded) along i by its half-width."""
    groups: dict[tuple[int, int], list[int]] = {}
    for dk, dj, di in np.asarray(offsets, int).tolist():
        groups.setdefault((dk, dj), []).append(di)
    rows = []
    for (dk, dj), dis in sorted(groups.items()):
        dis = sorted(set(dis))
        lo, hi = dis[0], dis[-1]
        if hi - lo + 1 == len(dis) and (lo + hi) % 2 == 0:
            rows.append((dk, dj, (lo + hi) // 2, (hi - lo) // 2))
        else:
            rows.extend((dk, dj, di, 0) for di in dis)
    return rows


def _reach(rows) -> tuple[int, int, int]:
    """How far (voxels) an element given as runs (:func:`_rows`) reaches along k, j and i."""
    r = [0, 0, 0]
    for dk, dj, di, w in rows:
        r = [max(r[0], abs(dk)), max(r[1], abs(dj)), max(r[2], abs(di) + w)]
    return tuple(r)


def _padded(mask: np.ndarray, pad) -> np.ndarray:
    """``mask`` inside a C-ordered zero border of ``pad`` voxels per axis."""
    out = np.zeros(tuple(n + 2 * p for n, p in zip(mask.shape, pad)), dtype=bool)
    out[_inside(mask.shape, pad)] = mask
    return out


def _inside(shape, pad) -> tuple[slice, ...]:
    return tuple(slice(p, p + n) for n, p in zip(shape, pad))


def _flat_morph(a: np.ndarray, rows, dilate: bool = True) -> np.ndarray:
    """Dilation (``any(a[p + o])``) or erosion (``all(a[p + o])``) of a C-ordered array by
    the symmetric element given as runs (:func:`_rows`).

    Every shift is one slice of the flattened array, so the result is exact only at
    voxels ``p`` whose every ``p + o`` lies inside the array: callers pad by the
    element's reach (:func:`_reach`) and read the inside."""
    nk, nj, ni = a.shape
    f = np.ascontiguousarray(a).ravel()
    n = f.size
    runs = {0: f}
    cur = f
    for w in range(1, max((r[3] for r in rows), default=0) + 1):
        nxt = cur.copy()
        if dilate:
            nxt[1:] |= cur[:-1]
            nxt[:-1] |= cur[1:]
        else:
            nxt[1:] &= cur[:-1]
            nxt[:-1] &= cur[1:]
        runs[w] = cur = nxt
    out = np.zeros(n, dtype=bool) if dilate else np.ones(n, dtype=bool)
    for dk, dj, di, w in rows:
        sh = (dk * nj + dj) * ni + di
        if abs(sh) >= n:
            continue
        dst, src = (out[:n - sh], runs[w][sh:]) if sh >= 0 else (out[-sh:], runs[w][:n + sh])
        if dilate:
            dst |= src
        else:
            dst &= src
    return out.reshape(a.shape)


def _flat_box1(a: np.ndarray) -> np.ndarray:
    """Dilation by the 3 × 3 × 3 cube (26-connectivity) of a C-ordered array, exact one voxel
    away from its faces (see :func:`_flat_morph`)."""
    nk, nj, ni = a.shape
    cur = np.ascontiguousarray(a).ravel()
    for step in (nj * ni, ni, 1):
        if step >= cur.size:
            continue
        nxt = cur.copy()
        nxt[step:] |= cur[:-step]
        nxt[:-step] |= cur[step:]
        cur = nxt
    return cur.reshape(a.shape)


def bbox(mask: np.ndarray, pad: np.ndarray | int = 0) -> tuple[slice, ...] | None:
    """Slices of the bounding box of ``mask`` grown by ``pad`` voxels (clipped)."""
    plane = mask.any(axis=0)
    idx = np.flatnonzero(mask.any(axis=(1, 2))), np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    if any(len(i) == 0 for i in idx):
        return None
    return grown_box(tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx), pad, mask.shape)


def grown_box(sl: tuple[slice, ...], pad: np.ndarray | int, shape) -> tuple[slice, ...]:
    """The box ``sl`` (slices with start and stop) grown by ``pad`` voxels at both ends, clipped to ``shape``:
    ``bbox(mask, pad)`` from ``bbox(mask)``."""
    pad = (int(pad),) * 3 if np.ndim(pad) == 0 else tuple(int(p) for p in pad)
    return tuple(slice(max(s.start - p, 0), min(s.stop + p, n)) for s, p, n in zip(sl, pad, shape))


#: 4-connectivity inside each k-slice, nothing across slices.
_CONN4_IN_SLICE = np.zeros((3, 3, 3), dtype=bool)
_CONN4_IN_SLICE[1] = ndimage.generate_binary_structure(2, 1)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill 3D holes, then 2D holes slice by slice along k (cystic cores open to a thick slice).

    A hole is a background component (6-connected in 3D, 4-connected in a
    slice) that does not reach the edge of the mask's bounding box (+1 voxel):
    the same voxels as ``scipy.ndimage.binary_fill_holes`` in 3D then per slice.
    The 3D step needs no work of its own: a 3D hole touches no face of the box,
    and each in-slice background component meeting it lies inside it, so the
    per-slice step fills it too (and fills nothing else because of it)."""
    sl = bbox(mask, 1)
    if sl is None:
        return mask
    out = mask.copy()
    out[sl] = _fill(mask[sl], _CONN4_IN_SLICE, (1, 2))
    return out


def _fill(sub: np.ndarray, structure: np.ndarray, axes) -> np.ndarray:
    """``sub`` with the background components not touching the faces along ``axes`` filled."""
    lab, n = ndimage.label(~sub, structure=structure)
    if n == 0:
        return sub
    outside = np.zeros(n + 1, dtype=bool)
    for ax in axes:
        outside[lab.take(0, axis=ax)] = True
        outside[lab.take(-1, axis=ax)] = True
    outside[0] = True  # label 0: the mask itself
    return ~outside[lab] | sub


def shell(region: np.ndarray, spacing_kji, width_mm: float, allowed: np.ndarray | None = None,
          gap_mm: float = 0.0) -> np.ndarray:
    """Background shell: voxels within ``gap_mm + width_mm`` of the region but farther
    than ``gap_mm``, after a one-voxel gap (partial-volume voxels), optionally limited
    to ``allowed``.

    Distances are those of ``scipy.ndimage.distance_transform_edt`` (sampling =
    spacing) from the region dilated by one voxel (26-connectivity); the two
    distance tests are done as dilations by the matching voxel balls, which is
    several times faster than the transform on small crops (same voxels; the
    transform is used when a ball's distance lies within rounding of a limit)."""
    sp = np.asarray(spacing_kji, float)
    pad = np.ceil((width_mm + gap_mm) / sp).astype(int) + 2
    sl = bbox(region, pad)
    out = np.zeros_like(region, dtype=bool)
    if sl is None:
        return out
    balls = _shell_balls(tuple(float(x) for x in sp), float(width_mm), float(gap_mm))
    if balls is None:
        inner = ndimage.binary_dilation(region[sl], CONN26)
        d = ndimage.distance_transform_edt(~inner, sampling=sp)
        sh = (~inner) & (d > gap_mm) & (d <= gap_mm + width_mm + 1e-6)
    else:
        outer_rows, gap_rows, pad = balls
        sub = region[sl]
        inner = _flat_box1(_padded(sub, pad))  # exact on the inside of the padding (see _flat_morph)
        sh = _flat_morph(inner, outer_rows)
        sh &= ~inner
        if gap_rows:
            sh &= ~_flat_morph(inner, gap_rows)
        sh = sh[_inside(sub.shape, pad)]
    out[sl] = sh
    if allowed is not None:
        out &= allowed
    return out


@functools.lru_cache(maxsize=64)
def _shell_balls(sp: tuple[float, float, float], width_mm: float, gap_mm: float):
    """Runs (:func:`_rows`) of the voxel offsets within ``gap_mm + width_mm + 1e-6`` and within
    ``gap_mm``, their length computed exactly as ``distance_transform_edt`` computes a distance,
    and the padding (voxels per axis) that keeps the 26-neighbour dilation and the outer ball
    exact; None when an offset lies just beyond a limit (within 1e-9 relative: rounding could
    then decide, so the caller uses the transform itself)."""
    limits = (gap_mm + width_mm + 1e-6, gap_mm)
    n = np.floor(max(limits[0], 0.0) / np.asarray(sp)).astype(int) + 1
    off = np.stack(np.meshgrid(*(np.arange(-x, x + 1) for x in n), indexing="ij")).astype(np.int32)
    dt = off.astype(np.float64)
    for ii in range(len(sp)):
        dt[ii, ...] *= sp[ii]
    np.multiply(dt, dt, dt)
    d = np.sqrt(np.add.reduce(dt, axis=0))
    out = []
    for lim in limits:
        if np.any((d > lim) & (d <= lim + 1e-9 * max(abs(lim), 1.0))):
            return None
        out.append(tuple(_rows(off[:, d <= lim].T)) if lim >= 0 else ())
    return out[0], out[1], tuple(r + 1 for r in _reach(out[0]))


def core(region: np.ndarray, min_voxels: int = 20) -> np.ndarray:
    """The region eroded by one voxel, or the region itself if that leaves too little.

    6-connectivity; voxels on the crop's faces are eroded (outside counts as background)."""
    if not region.any():
        return region
    er = region.copy()
    for ax in range(region.ndim):
        lo = [slice(None)] * region.ndim
        hi = [slice(None)] * region.ndim
        lo[ax], hi[ax] = slice(1, None), slice(None, -1)
        er[tuple(lo)] &= region[tuple(hi)]
        er[tuple(hi)] &= region[tuple(lo)]
        first = [slice(None)] * region.ndim
        first[ax] = 0
        er[tuple(first)] = False
        first[ax] = -1
        er[tuple(first)] = False
    return er if np.count_nonzero(er) >= min_voxels else region
