"""The fast building blocks and ``region_growing`` give the same masks and QC numbers as the
straightforward implementation they replaced (kept below, verbatim but renamed ``_ref_*``).

The reference is the code of volumetry/segment/common.py and region_growing.py before the
speed-up (commit 78eb3f5): scipy.ndimage morphology, a Euclidean distance transform per shell,
``np.isin`` on labels. Every comparison is exact (masks voxel for voxel, QC numbers within
1e-12 relative).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from volumetry.errors import InputError
from volumetry.phantoms import make_lesion_phantom, phantom_suite
from volumetry.segment import Prompt, common
from volumetry.segment import region_growing as rg
from volumetry.segment.common import CONN6, CONN26, PADDING_FRACTION, MethodOutput
from volumetry.segment.region_growing import CONNECTIVITY, DEFAULTS
from volumetry.segment.roi import Roi, make_roi

log = rg.log


# ---------------------------------------------------------------- reference (old code) ----


def _ref_smooth(a: np.ndarray, spacing_kji, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing with ``sigma_mm`` (mm) per axis; axes whose voxels are
    coarser than 2 × sigma are left alone (no blur across thick slices)."""
    if sigma_mm <= 0:
        return a
    sig = [sigma_mm / s if s <= 2 * sigma_mm else 0.0 for s in spacing_kji]
    if not any(sig):
        return a
    return ndimage.gaussian_filter(a, sig, mode="nearest", truncate=3.0)


def _ref_noise_sigma(a: np.ndarray) -> float:
    """Robust noise standard deviation from first differences along the finest
    axes (median absolute difference / (0.6745·√2)); edges barely move it."""
    ests = []
    pad = _ref_padding_mask(a)
    for ax in (1, 2):
        if a.shape[ax] > 1:
            d = np.diff(a, axis=ax)
            d = d[~(pad.take(range(1, a.shape[ax]), axis=ax) | pad.take(range(a.shape[ax] - 1), axis=ax))]
            if d.size < 10:
                continue
            ests.append(np.median(np.abs(d - np.median(d))) / (0.6745 * np.sqrt(2)))
    s = float(np.median(ests)) if ests else float(np.std(a))
    return max(s, 1e-6 * (float(np.ptp(a)) or 1.0))


def _ref_padding_mask(a: np.ndarray) -> np.ndarray:
    """Voxels at the crop's minimum when that exact value is frequent (padding / masked background)."""
    lo = a.min()
    pad = a == lo
    if pad.sum() > PADDING_FRACTION * a.size:
        return pad
    return np.zeros(a.shape, dtype=bool)


def _ref_seed_value(a: np.ndarray, seeds: np.ndarray, spacing_kji, radius_mm: float) -> float:
    """Median intensity in small balls around the seeds (see :func:`seed_balls`)."""
    balls = _ref_seed_balls(a.shape, seeds, spacing_kji, radius_mm)
    return float(np.median(np.concatenate([a[tuple(b.T)] for b in balls])))


def _ref_connected_to_seeds(binary: np.ndarray, seeds: np.ndarray, structure=CONN6,
                       anchors: list[np.ndarray] | None = None) -> np.ndarray:
    """The components of ``binary`` that hold a seed voxel.

    ``anchors`` (one index array ``(m, 3)`` per seed, e.g. a small ball): when a
    seed voxel itself is not in ``binary``, the components meeting its anchor
    voxels count instead (a seed dropped on a dark speck of a bright lesion).
    """
    lab, n = ndimage.label(binary, structure=structure)
    if n == 0:
        return np.zeros_like(binary, dtype=bool)
    ids = []
    for s_i, s in enumerate(seeds):
        v = lab[tuple(s)]
        if v > 0:
            ids.append(v)
        elif anchors is not None:
            ids.extend(lab[tuple(anchors[s_i].T)].tolist())
    ids = np.unique(np.asarray(ids, dtype=lab.dtype))
    ids = ids[ids > 0]
    if len(ids) == 0:
        return np.zeros_like(binary, dtype=bool)
    return np.isin(lab, ids)


def _ref_seed_balls(shape, seeds: np.ndarray, spacing_kji, radius_mm: float) -> list[np.ndarray]:
    """For each seed, the ``(m, 3)`` voxel indices of a small ball around it, inside ``shape``.

    The ball has ``radius_mm`` (mm) but always spans at least one voxel on each side
    along the two finest axes (a 3 × 3 patch in-plane), so that one noisy voxel
    never decides the seed intensity.
    """
    sp = np.asarray(spacing_kji, float)
    r = np.floor(radius_mm / sp).astype(int)
    fine = np.argsort(sp)[:2]
    r[fine] = np.maximum(r[fine], 1)
    r = np.maximum(r, 0)
    offs = np.stack(np.meshgrid(*(np.arange(-x, x + 1) for x in r), indexing="ij"), -1).reshape(-1, 3)
    norm = np.where(r > 0, np.maximum(r * sp, radius_mm), 1.0)
    offs = offs[(((offs * sp) / norm) ** 2).sum(axis=1) <= 1 + 1e-9]
    out = []
    for s in seeds:
        pts = s + offs
        ok = np.all((pts >= 0) & (pts < np.asarray(shape)), axis=1)
        out.append(pts[ok])
    return out


def _ref_ball(radius_mm: float, spacing_kji, min_voxels: int = 0) -> np.ndarray:
    """Boolean ellipsoidal structuring element of radius ``radius_mm`` (mm) on the voxel grid;
    axes with voxels coarser than the radius get ``min_voxels`` half-width."""
    sp = np.asarray(spacing_kji, float)
    r = np.maximum(np.floor(radius_mm / sp).astype(int), min_voxels)
    grid = np.meshgrid(*(np.arange(-x, x + 1) * d for x, d in zip(r, sp)), indexing="ij")
    el = sum(g ** 2 for g in grid) <= radius_mm ** 2 + 1e-9
    el[tuple(r)] = True
    return el


def _ref_closing(binary: np.ndarray, radius_mm: float, spacing_kji) -> np.ndarray:
    """Binary closing with a ball of ``radius_mm`` (mm), on a padded copy (no border artefact).
    Bridges thin dark septa (about 2 × radius thick) inside a lesion."""
    if radius_mm <= 0:
        return binary
    el = _ref_ball(radius_mm, spacing_kji)
    if el.sum() <= 1:
        return binary
    pad = [(s // 2, s // 2) for s in el.shape]
    sl = _ref_bbox(binary)
    if sl is None:
        return binary
    sub = np.pad(binary[sl], pad)
    closed = ndimage.binary_closing(sub, el)[tuple(slice(a, -b if b else None) for a, b in pad)]
    out = binary.copy()
    out[sl] |= closed
    return out


def _ref_bbox(mask: np.ndarray, pad: np.ndarray | int = 0) -> tuple[slice, ...] | None:
    """Slices of the bounding box of ``mask`` grown by ``pad`` voxels (clipped)."""
    idx = np.nonzero(mask.any(axis=(1, 2)))[0], np.nonzero(mask.any(axis=(0, 2)))[0], np.nonzero(mask.any(axis=(0, 1)))[0]
    if any(len(i) == 0 for i in idx):
        return None
    pad = np.broadcast_to(np.asarray(pad, int), (3,))
    return tuple(slice(max(int(i[0]) - p, 0), min(int(i[-1]) + p + 1, n)) for i, p, n in zip(idx, pad, mask.shape))


def _ref_fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill 3D holes, then 2D holes slice by slice along k (cystic cores open to a thick slice)."""
    sl = _ref_bbox(mask, 1)
    if sl is None:
        return mask
    out = mask.copy()
    sub = ndimage.binary_fill_holes(mask[sl])
    for k in range(sub.shape[0]):
        sub[k] = ndimage.binary_fill_holes(sub[k])
    out[sl] = sub
    return out


def _ref_shell(region: np.ndarray, spacing_kji, width_mm: float, allowed: np.ndarray | None = None,
          gap_mm: float = 0.0) -> np.ndarray:
    """Background shell: voxels within ``gap_mm + width_mm`` of the region but farther
    than ``gap_mm``, after a one-voxel gap (partial-volume voxels), optionally limited
    to ``allowed``."""
    sp = np.asarray(spacing_kji, float)
    pad = np.ceil((width_mm + gap_mm) / sp).astype(int) + 2
    sl = _ref_bbox(region, pad)
    out = np.zeros_like(region, dtype=bool)
    if sl is None:
        return out
    inner = ndimage.binary_dilation(region[sl], CONN26)
    d = ndimage.distance_transform_edt(~inner, sampling=sp)
    sh = (~inner) & (d > gap_mm) & (d <= gap_mm + width_mm + 1e-6)
    out[sl] = sh
    if allowed is not None:
        out &= allowed
    return out


def _ref_core(region: np.ndarray, min_voxels: int = 20) -> np.ndarray:
    """The region eroded by one voxel, or the region itself if that leaves too little."""
    sl = _ref_bbox(region, 1)
    if sl is None:
        return region
    er = np.zeros_like(region)
    er[sl] = ndimage.binary_erosion(region[sl], CONN6)
    return er if er.sum() >= min_voxels else region


def _ref_lesion_intensity(a: np.ndarray, region: np.ndarray, stat: str, core_fraction: float) -> float:
    """Median lesion intensity of ``region``.

    ``"core"`` leaves out the outer voxel layer (partial volume: right for small
    lesions on thick slices); ``"region"`` keeps it (right for large
    heterogeneous lesions whose rim is dimmer, e.g. oedema); ``"auto"`` takes the
    whole region once its core holds at least ``core_fraction`` of it.

    Raises
    ------
    InputError
        If ``stat`` is unknown.
    """
    if stat not in ("core", "region", "auto"):
        raise InputError(f"lesion_stat must be 'core', 'region' or 'auto', got {stat!r}")
    inner = _ref_core(region)
    if stat == "region" or (stat == "auto" and inner.sum() >= core_fraction * region.sum()):
        return float(np.median(a[region]))
    return float(np.median(a[inner]))


def _ref_region_growing(roi: Roi, params: dict) -> MethodOutput:
    """Segment the bright lesion holding the seeds inside ``roi``.

    Parameters
    ----------
    roi : Roi
        The crop with the seeds (and the box, if any).
    params : dict
        See :data:`DEFAULTS`.

    Returns
    -------
    MethodOutput
        The crop mask, or None with the reason (seed not on lesion-like tissue,
        region does not stand out from its surroundings).
    """
    p = {**DEFAULTS, **params}
    out = _ref__one_pass(roi.array, roi, p)
    if out.mask is None or not p["bias_correction"] or float(roi.array.min()) < 0:
        return out
    field, gradient = _ref_lesion_field(roi.array, out.mask, roi.spacing_kji)
    if field is None:
        return out
    out.qc["bias_gradient_pct_per_cm"] = gradient
    if not gradient >= p["bias_min_pct_per_cm"]:
        return out
    second = _ref__one_pass(roi.array / field, roi, p)
    n1 = int(out.mask.sum())
    if second.mask is None or abs(int(second.mask.sum()) / n1 - 1) > p["bias_max_change"]:
        # a correction that changes the lesion this much is not a shading fix (e.g. a leak at low SNR)
        out.flags.append("bias-correction-rejected")
        return out
    second.qc["bias_gradient_pct_per_cm"] = gradient
    second.qc["bias_corrected"] = 1
    return second


def _ref_lesion_field(a: np.ndarray, region: np.ndarray, spacing_kji, min_voxels: int = 50):
    """Linear (log-domain) intensity trend across the lesion: a multiplicative bias field.

    Fits ``log(I) = c + g · x`` (x in mm) to the lesion's core voxels, robustly
    (one refit without residuals beyond 2.5 MAD), and returns the field
    ``exp(g · (x - centroid))`` over the crop (1 at the lesion's centroid) and
    ``|g|`` in % per cm. A receive-coil shading multiplies lesion and background
    alike, so dividing the crop by it makes one threshold fit the whole lesion.
    Returns ``(None, nan)`` when the lesion is too small or the image not positive.
    """
    inner = _ref_core(region)
    idx = np.argwhere(inner)
    if len(idx) < min_voxels:
        return None, float("nan")
    vals = a[inner].astype(float)
    if np.any(vals <= 0):
        return None, float("nan")
    sp = np.asarray(spacing_kji, float)
    x = idx * sp
    x0 = x.mean(axis=0)
    design = np.column_stack([np.ones(len(x)), x - x0])
    y = np.log(vals)
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    res = y - design @ coef
    mad = np.median(np.abs(res - np.median(res))) * 1.4826
    keep = np.abs(res) <= 2.5 * max(mad, 1e-9)
    if keep.sum() >= min_voxels:
        coef = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
    g = coef[1:]
    grids = np.meshgrid(*(np.arange(n) * d - c for n, d, c in zip(a.shape, sp, x0)), indexing="ij", sparse=True)
    field = np.exp(sum(gi * gr for gi, gr in zip(g, grids))).astype(np.float32)
    return field, float(np.linalg.norm(g) * 10 * 100)


def _ref__one_pass(a: np.ndarray, roi: Roi, p: dict) -> MethodOutput:
    """Learn the half-way threshold on ``a`` (the crop, maybe bias-corrected) and grow the region."""
    sm = _ref_smooth(a, roi.spacing_kji, p["smoothing_mm"])
    sigma = _ref_noise_sigma(a)
    sigma_sm = _ref_noise_sigma(sm) if sm is not a else sigma
    allowed = roi.box_mask
    padding = _ref_padding_mask(a)
    stats_ok = ~padding if allowed is None else (allowed & ~padding)
    sval = _ref_seed_value(sm, roi.seeds, roi.spacing_kji, p["seed_radius_mm"])
    t = sval - p["start_sigmas"] * sigma_sm
    anchors = _ref_seed_balls(a.shape, roi.seeds, roi.spacing_kji, p["seed_radius_mm"])

    def grow(threshold: float, connectivity: int = 6) -> np.ndarray:
        binary = sm > threshold
        if allowed is not None:
            binary &= allowed
        binary = _ref_closing(binary, p["closing_mm"], roi.spacing_kji)
        if allowed is not None:
            binary &= allowed
        return _ref_connected_to_seeds(binary, roi.seeds, anchors=anchors, structure=CONNECTIVITY[connectivity])

    qc = {"noise_sd": sigma, "seed_value": sval}
    region = None
    lesion = background = np.nan
    for it in range(int(p["max_iterations"])):
        region = grow(t)
        if not region.any():
            return MethodOutput(None, f"no voxel at the seed is above the threshold {t:.4g}", qc)
        sh = _ref_shell(region, roi.spacing_kji, p["shell_mm"], stats_ok, p["gap_mm"])
        if sh.sum() < 10:
            return MethodOutput(
                None, "the seed is not on lesion-like tissue: the region grown from it fills the whole search "
                "region (or box) without standing out from its surroundings; move the seed onto the bright lesion, "
                "or there is no measurable lesion here", qc, needs_larger_crop=True)
        lesion = _ref_lesion_intensity(a, region, p["lesion_stat"], p["core_fraction"])
        background = float(np.median(a[sh]))
        contrast = lesion - background
        new_t = background + p["fraction"] * contrast
        log.debug("iteration %d: threshold %.4g -> %.4g (lesion %.4g, background %.4g)", it, t, new_t, lesion, background)
        if contrast <= 0:
            break
        if abs(new_t - t) <= p["tolerance"] * abs(contrast):
            t = new_t
            break
        t = new_t
    contrast = lesion - background
    qc.update(lesion_median=lesion, background_median=background, threshold=t,
              contrast_sd=contrast / sigma, iterations=it + 1)
    if not contrast > p["min_contrast_sd"] * sigma:
        return MethodOutput(
            None, f"the seed is not on lesion-like tissue: the region around it is only {contrast / sigma:.1f} "
            f"noise SD brighter than its surroundings (need > {p['min_contrast_sd']}); move the seed onto the "
            "bright lesion, or there is no measurable lesion here", qc)
    conn = p["connectivity"]
    if conn == "auto":
        conn = 18 if contrast >= p["auto_connectivity_sd"] * sigma else 6
    if conn not in CONNECTIVITY:
        raise InputError(f"connectivity must be 6, 18, 26 or 'auto', got {p['connectivity']!r}")
    qc["connectivity"] = conn
    region = grow(t, conn)
    if p["fill_holes"]:
        region = _ref_fill_holes(region)
        if allowed is not None:
            region &= allowed
    return MethodOutput(region, "", qc)


# ------------------------------------------------------------------------------ tests ----

#: Voxel sizes (k, j, i) in mm: thick slices, isotropic, fine in-plane, odd values.
SPACINGS = [(5.0, 1.4, 1.4), (1.0, 1.0, 1.0), (3.0, 0.7, 0.75), (2.2, 0.45, 0.505), (6.0, 1.6, 1.6)]


def _blobs(shape, seed, level=0.6):
    """A random boolean volume of blobs (smoothed noise above a level)."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 1.5) > np.quantile(
        ndimage.gaussian_filter(rng.random(shape), 1.5), level)


def _image(shape, seed):
    rng = np.random.default_rng(seed)
    return (100 * ndimage.gaussian_filter(rng.random(shape), 1.0) + rng.normal(0, 5, shape)).astype(np.float32)


@pytest.mark.parametrize("sp", SPACINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_morphology_blocks_match_reference(sp, seed):
    rng = np.random.default_rng(100 + seed)
    m = _blobs((11, 27, 31), seed)
    allowed = rng.random(m.shape) > 0.1
    for r in (0.0, 0.5, 1.5, 2.5):
        assert np.array_equal(common.closing(m, r, sp), _ref_closing(m, r, sp)), r
    assert np.array_equal(common.fill_holes(m), _ref_fill_holes(m))
    assert np.array_equal(common.fill_holes(~m), _ref_fill_holes(~m))  # many enclosed holes
    for width, gap in ((4.0, 2.0), (3.0, 0.0), (6.5, 1.3)):
        assert np.array_equal(common.shell(m, sp, width, allowed, gap), _ref_shell(m, sp, width, allowed, gap))
    assert np.array_equal(common.core(m), _ref_core(m))
    assert np.array_equal(common.core(m, min_voxels=10 ** 6), _ref_core(m, min_voxels=10 ** 6))
    seeds = rng.integers(0, m.shape, size=(3, 3))
    anchors = _ref_seed_balls(m.shape, seeds, sp, 1.5)
    for st in (CONN6, CONN26):
        assert np.array_equal(common.connected_to_seeds(m, seeds, structure=st, anchors=anchors),
                              _ref_connected_to_seeds(m, seeds, structure=st, anchors=anchors))
        assert np.array_equal(common.connected_to_seeds(m, seeds, structure=st),
                              _ref_connected_to_seeds(m, seeds, structure=st))


@pytest.mark.parametrize("sp", SPACINGS[:3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_growing_on_the_bounding_box_matches_the_whole_crop(sp, seed):
    """region_growing's grow step labels only the bounding box of the voxels above the threshold:
    the closing of that box, then connected_to_seeds_in_box, give the same voxels as the reference
    closing and labelling of the whole crop (seeds and anchor balls inside, across and outside the box)."""
    rng = np.random.default_rng(200 + seed)
    m = np.zeros((13, 33, 35), bool)
    m[3:10, 6:25, 9:30] = _blobs((7, 19, 21), seed, level=0.5)
    allowed = rng.random(m.shape) > 0.05
    m &= allowed
    sl = common.bbox(m)
    corner = [s.start for s in sl]
    seeds = np.vstack([rng.integers(0, m.shape, size=(4, 3)), np.argwhere(m)[rng.integers(0, m.sum(), 2)],
                       [[0, 0, 0], [12, 32, 34], [sl[0].start - 1, sl[1].start, sl[2].start]]])
    anchors = _ref_seed_balls(m.shape, seeds, sp, 1.5)
    for r in (0.0, 1.5, 2.5):
        box = common.closing(m[sl], r, sp)
        box &= allowed[sl]
        whole = _ref_closing(m, r, sp) & allowed
        assert not whole[~np.pad(np.ones(box.shape, bool), [(s.start, n - s.stop) for s, n in zip(sl, m.shape)])].any()
        for st in (CONN6, CONN26):
            for picks, anc in ((seeds, anchors), (seeds[:1], anchors[:1]), (seeds[-3:], anchors[-3:])):
                got = np.zeros(m.shape, bool)
                got[sl] = common.connected_to_seeds_in_box(box, corner, picks, structure=st, anchors=anc)
                want = _ref_connected_to_seeds(whole, picks, structure=st, anchors=anc)
                assert np.array_equal(got, want), (r, picks.tolist())
                got[sl] = common.connected_to_seeds_in_box(box, corner, picks, structure=st)
                assert np.array_equal(got, _ref_connected_to_seeds(whole, picks, structure=st))


@pytest.mark.parametrize("sp", SPACINGS)
def test_seed_balls_match_reference(sp):
    rng = np.random.default_rng(7)
    shape = (9, 21, 23)
    seeds = np.vstack([rng.integers(0, shape, size=(5, 3)), [[0, 0, 0], [8, 20, 22], [0, 10, 22]]])
    for radius in (0.3, 1.5, 3.0, 7.5):
        for _ in range(2):  # the second call reads the cached offsets
            got, want = common.seed_balls(shape, seeds, sp, radius), _ref_seed_balls(shape, seeds, sp, radius)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and np.array_equal(g, w), radius


@pytest.mark.parametrize("sp", SPACINGS[:3])
@pytest.mark.parametrize("seed", [0, 1])
def test_lesion_field_matches_reference(sp, seed):
    """Same field (every voxel) and gradient as the reference, on a shaded image of blobs."""
    m = _blobs((11, 27, 31), seed, level=0.4)
    a = _image(m.shape, seed) + 50 + 100 * m
    a *= np.exp(0.02 * np.arange(m.shape[2]))[None, None, :].astype(np.float32)
    field, g = rg.lesion_field(a, m, sp)
    ref_field, ref_g = _ref_lesion_field(a, m, sp)
    assert field is not None and g > 2.0
    assert g == ref_g and np.array_equal(field, ref_field)


def test_small_and_empty_regions_match_reference():
    sp = (5.0, 1.4, 1.4)
    empty = np.zeros((5, 9, 9), bool)
    one = empty.copy()
    one[2, 4, 4] = True
    edge = empty.copy()
    edge[0, :3, :] = True  # on the crop's faces
    for m in (empty, one, edge):
        assert np.array_equal(common.closing(m, 1.5, sp), _ref_closing(m, 1.5, sp))
        assert np.array_equal(common.fill_holes(m), _ref_fill_holes(m))
        assert np.array_equal(common.shell(m, sp, 4.0, None, 2.0), _ref_shell(m, sp, 4.0, None, 2.0))
        assert np.array_equal(common.core(m, 1), _ref_core(m, 1))
    flat = np.zeros((1, 12, 12), bool)  # a single slice
    flat[0, 3:9, 4:8] = True
    flat[0, 5, 5] = False
    assert np.array_equal(common.fill_holes(flat), _ref_fill_holes(flat))
    assert np.array_equal(common.shell(flat, sp, 4.0, None, 2.0), _ref_shell(flat, sp, 4.0, None, 2.0))


def test_shell_falls_back_to_the_distance_transform_on_a_rounding_tie():
    # isotropic 1 mm: a gap a hair below 2 mm puts the offset (0, 0, 2) just beyond it
    sp = (1.0, 1.0, 1.0)
    gap = 2.0 - 1e-12
    assert common._shell_balls(sp, 4.0, gap) is None
    assert common._shell_balls(sp, 4.0, 2.0) is not None
    m = _blobs((9, 21, 21), 3)
    assert np.array_equal(common.shell(m, sp, 4.0, None, gap), _ref_shell(m, sp, 4.0, None, gap))


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_sigma_matches_reference(seed):
    a = _image((9, 30, 33), seed)
    assert common.noise_sigma(a) == _ref_noise_sigma(a)
    padded = a.copy()
    padded[:, :6, :] = 0.0  # masked background: left out of the statistics
    assert common.noise_sigma(padded) == _ref_noise_sigma(padded)
    assert common.noise_sigma(padded, common.padding_mask(padded)) == _ref_noise_sigma(padded)
    assert common.noise_sigma(a[:, :1, :1]) == _ref_noise_sigma(a[:, :1, :1])  # no in-plane differences


def _same_output(new: MethodOutput, old: MethodOutput):
    assert new.reason == old.reason
    assert new.flags == old.flags
    assert new.needs_larger_crop == old.needs_larger_crop
    assert (new.mask is None) == (old.mask is None)
    if old.mask is not None:
        assert new.mask.dtype == old.mask.dtype
        assert np.array_equal(new.mask, old.mask)
    assert set(new.qc) == set(old.qc)
    for k, v in old.qc.items():
        assert new.qc[k] == pytest.approx(v, rel=1e-12, abs=0), k
        assert type(new.qc[k]) is type(v), k


def _phantom(name):
    spec = next(s for s in phantom_suite() if s.name == name)
    return make_lesion_phantom(spec)


def _seeds(ph):
    t = ph.truth
    return t["lesion_centres_lps_mm"] if t["shape"] == "multifocal" else [t["seed_point_lps_mm"]]


#: Suite phantoms: cystic (bias-corrected), septated (correction rejected, 12 iterations),
#: multifocal (several seeds), a small sphere with a bias field, a low-contrast sphere.
CASES = ["suite04-cystic-1ml-axial-5mm", "suite19-septated-1ml-sagittal-3mm", "suite13-multifocal-14ml-axial-5mm",
         "suite35-sphere-6ml-sagittal-5mm", "suite42-sphere-2.5ml-axial-6mm", "suite15-ellipsoid-0.5ml-oblique-5mm"]


@pytest.mark.parametrize("name", CASES)
def test_region_growing_matches_reference_on_phantoms(name):
    ph = _phantom(name)
    prompt = Prompt.from_points(_seeds(ph), "lps", ph.image)
    roi = make_roi(ph.image, prompt, 30.0)
    old = _ref_region_growing(roi, {})
    new = rg.region_growing(roi, {})
    assert old.mask is not None  # the case does what it is here for
    _same_output(new, old)
    for params in ({"connectivity": 26, "lesion_stat": "core"}, {"bias_correction": False, "closing_mm": 0.0}):
        _same_output(rg.region_growing(roi, params), _ref_region_growing(roi, params))


def test_region_growing_matches_reference_on_failures_and_boxes():
    ph = _phantom("suite35-sphere-6ml-sagittal-5mm")
    img = ph.image
    seed = np.asarray(ph.truth["seed_point_lps_mm"], float)
    # seed on background far from the lesion: not lesion-like tissue
    far = img.index_to_lps(np.array([3.0, 3.0, img.array.shape[0] // 2]))
    roi = make_roi(img, Prompt.from_points([far], "lps", img), 30.0)
    old = _ref_region_growing(roi, {})
    assert old.mask is None
    _same_output(rg.region_growing(roi, {}), old)
    # a search region smaller than the lesion: no background left (needs a larger crop)
    roi = make_roi(img, Prompt.from_points([seed], "lps", img), 3.0)
    old = _ref_region_growing(roi, {})
    assert old.mask is None and old.needs_larger_crop
    _same_output(rg.region_growing(roi, {}), old)
    # a box around the lesion (the box limits the region and the statistics)
    box = [seed - 12.0, seed + 12.0]
    roi = make_roi(img, Prompt.from_points([seed], "lps", img, box=box), 30.0)
    assert roi.box_mask is not None
    old = _ref_region_growing(roi, {})
    assert old.mask is not None
    new = rg.region_growing(roi, {})
    # the one addition: the share of the lesion the box cuts off (none here; tests/test_audit_segment_box.py)
    assert new.qc.pop("fraction_outside_box") == 0.0
    _same_output(new, old)


def test_unknown_lesion_stat_still_raises():
    ph = _phantom("suite35-sphere-6ml-sagittal-5mm")
    roi = make_roi(ph.image, Prompt.from_points([ph.truth["seed_point_lps_mm"]], "lps", ph.image), 30.0)
    with pytest.raises(InputError, match="lesion_stat must be"):
        rg.region_growing(roi, {"lesion_stat": "mean"})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 7, 10, 1001, 4096])
def test_median_is_numpy_median(dtype, n):
    rng = np.random.default_rng(n)
    x = rng.normal(100, 30, n).astype(dtype)
    x[: n // 3] = np.round(x[: n // 3])  # ties
    for v in (x, np.round(x), x.reshape(1, -1)):
        got, want = common.median(v), np.median(v)
        assert got == want and type(got) is type(want)
    x[0] = np.nan
    assert np.isnan(common.median(x))


@pytest.mark.parametrize("level", [0.3, 0.5, 0.7])
def test_fill_holes_matches_reference_on_cavities(level):
    kk, jj, ii = np.mgrid[:15, :25, :25]
    r2 = (kk - 7) ** 2 + (jj - 12) ** 2 + (ii - 12) ** 2
    hollow = (r2 <= 36) & (r2 >= 9)  # a closed 3D cavity
    tube = hollow.copy()
    tube[:, 12, 12] = False  # the cavity opened along k: a hole in each slice only
    rng = np.random.default_rng(int(level * 10))
    for m in (hollow, tube, hollow ^ (_blobs(hollow.shape, 5, level) & (rng.random(hollow.shape) > 0.2))):
        assert np.array_equal(common.fill_holes(m), _ref_fill_holes(m))


@pytest.mark.parametrize("seed", range(8))
def test_flat_morphology_matches_scipy_on_random_symmetric_elements(seed):
    rng = np.random.default_rng(seed)
    half = rng.integers(0, 3, size=3)
    el = rng.random(tuple(2 * half + 1)) > 0.5
    el = el | el[::-1, ::-1, ::-1]  # symmetric, runs along i not always contiguous
    el[tuple(half)] = True
    rows = common._rows(np.argwhere(el) - half)
    shape = tuple(int(n) for n in rng.integers(1, 14, size=3))
    m = rng.random(shape) > 0.97  # sparse: the dilation shows the element's shape
    pad = tuple(int(r) for r in common._reach(rows))
    inside = common._inside(shape, pad)
    dil = common._flat_morph(common._padded(m, pad), rows)[inside]
    assert np.array_equal(dil, ndimage.binary_dilation(m, el))
    # erosion: exact where the element stays inside (here: the inside of a twice-padded array)
    pad2 = tuple(2 * p for p in pad)
    big = common._padded(m, pad2) | common._padded(np.ones(shape, bool), pad2) & (rng.random(
        tuple(n + 2 * p for n, p in zip(shape, pad2))) > 0.3)
    ero = common._flat_morph(big, rows, dilate=False)[common._inside(shape, pad2)]
    assert np.array_equal(ero, ndimage.binary_erosion(big, el)[common._inside(shape, pad2)])
    assert np.array_equal(common._flat_box1(common._padded(m, (1, 1, 1)))[common._inside(shape, (1, 1, 1))],
                          ndimage.binary_dilation(m, CONN26))
