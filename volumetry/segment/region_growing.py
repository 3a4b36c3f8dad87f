"""Seeded region growing with intensity statistics learnt around the seed.

The lesion is the set of voxels connected to the seeds (6-connectivity) that are
brighter than a threshold half-way between the lesion's and the surrounding
background's median intensities. Both medians are learnt iteratively: start
from a tight region around the seeds (voxels within ``start_sigmas`` noise
standard deviations of the seed intensity), measure the lesion median inside
the region (:func:`lesion_intensity`) and the background median in a shell
around it (after a one-voxel gap and ``gap_mm``; padding voxels left out), set
the threshold half-way, regrow, repeat until the threshold settles. Thin dark
septa are bridged by a small closing before connectivity is decided; finally
holes are filled (3D, then slice by slice) and the components holding a seed kept.

Why half-way: a voxel that straddles the lesion edge has an intensity
proportional to the fraction of it inside the lesion (partial volume), so
counting voxels above the half-way intensity gives an unbiased volume even for
small lesions on thick slices; a conservative threshold in the lesion's tail
would shrink them.
"""
from __future__ import annotations

import functools
import logging

import numpy as np

from ..errors import InputError
from scipy import ndimage

from .common import (MethodOutput, _ball_rows, _shell_balls, ball, core, median, noise_sigma,
                     padding_mask, seed_balls, shell, smooth)
from .kernels import (core_indices, core_values, design_kernel, field_exponent, fill_slices_kernel, grow_kernel,
                      rows_kept, shell_kernel)
from .roi import Roi

log = logging.getLogger(__name__)

#: Structuring elements by connectivity (6: faces, 18: faces and edges, 26: all neighbours).
CONNECTIVITY = {6: ndimage.generate_binary_structure(3, 1), 18: ndimage.generate_binary_structure(3, 2),
                26: ndimage.generate_binary_structure(3, 3)}

#: Documented parameters of ``region_growing`` and their defaults.
DEFAULTS = {
    "smoothing_mm": 0.5,      # Gaussian sigma (mm) before thresholding; not across slices thicker than 2x
    "seed_radius_mm": 1.5,    # ball (mm) around each seed for the seed intensity
    "start_sigmas": 1.0,      # first region: voxels above seed value - start_sigmas x noise SD
    "shell_mm": 4.0,          # width (mm) of the background shell around the region
    "gap_mm": 2.0,            # gap (mm) between the region (+1 voxel) and its background shell
    "lesion_stat": "auto",    # lesion intensity: median of the region eroded by a voxel ("core"), of it all
                              # ("region"), or "auto": the region when its core holds >= core_fraction of it
    "core_fraction": 0.7,     # "auto": above this core/region ratio partial volume is negligible
    "fraction": 0.5,          # threshold = background + fraction x (lesion - background)
    "min_contrast_sd": 2.0,   # lesion - background must exceed this many noise SDs, else "failed"
    "max_iterations": 12,     # threshold updates
    "tolerance": 0.01,        # stop when the threshold moves by less than this x contrast
    "connectivity": "auto",   # of the final region: 6 (faces), 18 (+ edges), 26 (+ corners), or "auto": 18 when the
                              # lesion is >= auto_connectivity_sd noise SD above its surroundings (background
                              # voxels then never reach the threshold), else 6 (noise specks percolate less)
    "auto_connectivity_sd": 8.0,
    "closing_mm": 1.5,        # closing radius (mm) bridging thin dark septa inside the lesion (0 = none)
    "fill_holes": True,
    "bias_correction": True,  # positive images: divide the crop by the lesion's linear (log) intensity trend, redo
    "bias_min_pct_per_cm": 2.0,  # ... only when the trend exceeds this (% per cm)
    "bias_max_change": 0.15,  # ... and keep the corrected mask only if its volume changes by less than this fraction
}


def lesion_intensity(a: np.ndarray, region: np.ndarray, stat: str, core_fraction: float) -> float:
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
    inner = core(region)
    if stat == "region" or (stat == "auto" and np.count_nonzero(inner) >= core_fraction * np.count_nonzero(region)):
        return float(median(a[region]))
    return float(median(a[inner]))


def region_growing(roi: Roi, params: dict) -> MethodOutput:
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
    anchors = seed_balls(roi.array.shape, roi.seeds, roi.spacing_kji, p["seed_radius_mm"])
    out = _one_pass(roi.array, roi, p, anchors)
    if out.mask is None or not p["bias_correction"] or float(roi.array.min()) < 0:
        return out
    field, gradient = lesion_field(roi.array, out.mask, roi.spacing_kji)
    if field is None:
        return out
    out.qc["bias_gradient_pct_per_cm"] = gradient
    if not gradient >= p["bias_min_pct_per_cm"]:
        return out
    second = _one_pass(roi.array / field, roi, p, anchors)
    n1 = np.count_nonzero(out.mask)
    if second.mask is None or abs(np.count_nonzero(second.mask) / n1 - 1) > p["bias_max_change"]:
        # a correction that changes the lesion this much is not a shading fix (e.g. a leak at low SNR)
        out.flags.append("bias-correction-rejected")
        return out
    second.qc["bias_gradient_pct_per_cm"] = gradient
    second.qc["bias_corrected"] = 1
    return second


def lesion_field(a: np.ndarray, region: np.ndarray, spacing_kji, min_voxels: int = 50):
    """Linear (log-domain) intensity trend across the lesion: a multiplicative bias field.

    Fits ``log(I) = c + g · x`` (x in mm) to the lesion's core voxels, robustly
    (one refit without residuals beyond 2.5 MAD), and returns the field
    ``exp(g · (x - centroid))`` over the crop (1 at the lesion's centroid) and
    ``|g|`` in % per cm. A receive-coil shading multiplies lesion and background
    alike, so dividing the crop by it makes one threshold fit the whole lesion.
    Returns ``(None, nan)`` when the lesion is too small or the image not positive.
    """
    # np.argwhere(core(region)) and a[core(region)], by a compiled kernel; the same (n, 3) transposed
    # view of a (3, n) array as np.transpose(np.nonzero(...)) (the layout decides the order of the sums
    # in x.mean below)
    if not region.any():
        return None, float("nan")
    idx3, core_vals = core_indices(a, np.ascontiguousarray(region), 20)
    idx = np.transpose(idx3)
    if len(idx) < min_voxels:
        return None, float("nan")
    vals = core_vals.astype(float)
    if np.any(vals <= 0):
        return None, float("nan")
    sp = np.asarray(spacing_kji, float)
    x = idx * sp
    x0 = x.mean(axis=0)
    # np.column_stack([np.ones(len(x)), x - x0]): the same values in the same (Fortran) layout
    design = np.empty((4, len(x))).T
    design_kernel(idx3, sp, x0, design)
    y = np.log(vals)
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    res = y - design @ coef
    mad = median(np.abs(res - median(res))) * 1.4826
    keep = np.abs(res) <= 2.5 * max(mad, 1e-9)
    m = np.count_nonzero(keep)
    if m >= min_voxels:
        # design[keep] and y[keep] (C-ordered, as boolean indexing gives them)
        design_kept, y_kept = np.empty((m, 4)), np.empty(m)
        rows_kept(design, y, keep, design_kept, y_kept)
        coef = np.linalg.lstsq(design_kept, y_kept, rcond=None)[0]
    g = coef[1:]
    # np.exp(sum(g_c * (arange(n_c) * sp_c - x0_c))) over the crop's grid, summed in the same order
    field = np.empty(a.shape)
    field_exponent(g, sp, x0, field)
    field = np.exp(field, out=field).astype(np.float32)
    return field, float(np.linalg.norm(g) * 10 * 100)


def _one_pass(a: np.ndarray, roi: Roi, p: dict, anchors: list[np.ndarray]) -> MethodOutput:
    """Learn the half-way threshold on ``a`` (the crop, maybe bias-corrected) and grow the region
    (``anchors``: :func:`seed_balls` of the seeds)."""
    sm = smooth(a, roi.spacing_kji, p["smoothing_mm"])
    padding = padding_mask(a)
    sigma = noise_sigma(a, padding)
    sigma_sm = noise_sigma(sm) if sm is not a else sigma
    allowed = roi.box_mask
    stats_ok = ~padding if allowed is None else (allowed & ~padding)
    # the seed intensity (common.seed_value): median of sm in the same balls
    sval = float(median(np.concatenate([sm[tuple(b.T)] for b in anchors])))
    t = sval - p["start_sigmas"] * sigma_sm
    grower = _Grower(sm, roi, p["closing_mm"], anchors)
    shell_of = _Shell(a, roi.spacing_kji, p["shell_mm"], p["gap_mm"], stats_ok)

    def grow(threshold: float, connectivity: int = 6, allowed: np.ndarray | None = allowed) -> np.ndarray:
        return grower(threshold, connectivity, allowed)[0]

    qc = {"noise_sd": sigma, "seed_value": sval}
    region = None
    lesion = background = np.nan
    for it in range(int(p["max_iterations"])):
        region, n_region, rbox = grower(t, 6, allowed)
        if not n_region:
            return MethodOutput(None, f"no voxel at the seed is above the threshold {t:.4g}", qc)
        background_values = shell_of(region, rbox)  # a[shell(...)]
        if len(background_values) < 10:
            return MethodOutput(
                None, "the seed is not on lesion-like tissue: the region grown from it fills the whole search "
                "region (or box) without standing out from its surroundings; move the seed onto the bright lesion, "
                "or there is no measurable lesion here", qc, needs_larger_crop=True)
        lesion = _lesion_intensity(a, region, rbox, n_region, p["lesion_stat"], p["core_fraction"])
        background = float(median(background_values))
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
    region, n_region, rbox = grower(t, conn, allowed)
    if allowed is not None and n_region:
        # the same region without the box: how much of the lesion the box cuts off (flag outside-box)
        free = grow(t, conn, None)
        qc["fraction_outside_box"] = float(np.count_nonzero(free & ~allowed) / max(np.count_nonzero(free), 1))
    if p["fill_holes"]:
        if n_region:
            fill_slices_kernel(region, rbox)  # common.fill_holes, in place (the array is this function's own)
        if allowed is not None:
            region &= allowed
    return MethodOutput(region, "", qc)


def _lesion_intensity(a: np.ndarray, region: np.ndarray, rbox: np.ndarray, n: int, stat: str,
                      core_fraction: float) -> float:
    """:func:`lesion_intensity` of a non-empty ``region`` of ``n`` voxels whose bounding box is ``rbox``
    (lo, hi corners), with the region's and its core's values gathered by a compiled kernel (the same
    values in the same order as ``a[region]`` and ``a[core(region)]``).

    Raises
    ------
    InputError
        If ``stat`` is unknown.
    """
    if stat not in ("core", "region", "auto"):
        raise InputError(f"lesion_stat must be 'core', 'region' or 'auto', got {stat!r}")
    vals, inner = core_values(a, region, rbox, n, 20)
    if stat == "region" or (stat == "auto" and len(inner) >= core_fraction * len(vals)):
        return float(median(vals))
    return float(median(inner))


class _Grower:
    """``grow(threshold, connectivity, allowed)`` of :func:`_one_pass`: the components of the closed
    ``sm > threshold`` (and ``allowed``) that hold a seed or, for a seed off them, meet its anchors;
    one compiled pass (:func:`volumetry.segment.kernels.grow_kernel`) instead of threshold, bounding
    box, closing (:func:`common.closing`) and labelling (:func:`common.connected_to_seeds_in_box`)."""

    def __init__(self, sm: np.ndarray, roi: Roi, closing_mm: float, anchors: list[np.ndarray]):
        self.sm = sm
        self.max_value = float(np.finfo(sm.dtype).max) if sm.dtype.kind == "f" else -1.0
        self.closing_offsets = _closing_offsets(float(closing_mm), tuple(float(x) for x in roi.spacing_kji))
        self.seeds = np.asarray(roi.seeds, dtype=np.int64).reshape(-1, 3)
        sizes = [len(b) for b in anchors]
        self.anchors = (np.concatenate([np.asarray(b, np.int64).reshape(-1, 3) for b in anchors])
                        if anchors else np.zeros((0, 3), np.int64))
        self.anchor_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if len(self.anchor_start) < len(self.seeds) + 1:
            raise ValueError("one anchor array per seed is needed")

    def __call__(self, threshold: float, connectivity: int, allowed: np.ndarray | None):
        """(region, number of voxels, bounding box (lo k, j, i, hi k, j, i) of the region)."""
        region = np.zeros(self.sm.shape, dtype=bool)
        rbox = np.zeros(6, dtype=np.int64)
        if abs(threshold) <= self.max_value:
            thr = self.sm.dtype.type(threshold)  # numpy compares `sm > threshold` in sm's dtype
        else:
            with np.errstate(over="ignore"):  # beyond the dtype's range (or NaN): inf, quietly
                thr = self.sm.dtype.type(threshold)
        use = allowed is not None
        n = grow_kernel(self.sm, thr, np.ascontiguousarray(allowed) if use else _NOWHERE, use,
                        self.closing_offsets, _CONNECTIVITY_OFFSETS[connectivity], self.seeds, self.anchors,
                        self.anchor_start, region, rbox)
        return region, n, rbox


_NOWHERE = np.zeros((1, 1, 1), dtype=bool)

#: Neighbour offsets of each connectivity (:data:`CONNECTIVITY` without the centre).
_CONNECTIVITY_OFFSETS = {c: (np.argwhere(s) - 1)[np.any(np.argwhere(s) != 1, axis=1)].astype(np.int64)
                         for c, s in CONNECTIVITY.items()}


@functools.lru_cache(maxsize=64)
def _closing_offsets(radius_mm: float, spacing_kji: tuple[float, float, float]) -> np.ndarray:
    """Offsets ``(m, 3)`` of :func:`common.closing`'s ball; the centre alone when it does not close."""
    if radius_mm <= 0 or _ball_rows(radius_mm, spacing_kji) is None:
        return _read_only(np.zeros((1, 3), dtype=np.int64))
    el = ball(radius_mm, spacing_kji)
    return _read_only(np.argwhere(el) - np.asarray([s // 2 for s in el.shape]))


def _read_only(a: np.ndarray) -> np.ndarray:
    """A C-ordered read-only int64 copy of ``a`` (a cached kernel argument: the type the kernels are
    warmed up with, see :mod:`volumetry.segment.kernels`)."""
    out = np.array(a, dtype=np.int64, order="C")
    out.flags.writeable = False
    return out


class _Shell:
    """``a[shell(region, spacing, width_mm, allowed, gap_mm)]`` (:func:`common.shell`) of regions whose
    bounding box is known, by :func:`volumetry.segment.kernels.shell_kernel` (the distance transform
    of :func:`common.shell` itself when a ball's distance lies within rounding of a limit)."""

    def __init__(self, a: np.ndarray, spacing_kji, width_mm: float, gap_mm: float, allowed: np.ndarray):
        self.a = a
        self.spacing_kji, self.width_mm, self.gap_mm = spacing_kji, width_mm, gap_mm
        self.allowed = np.ascontiguousarray(allowed)
        sp = tuple(float(x) for x in spacing_kji)
        self.rows = _shell_offsets(sp, float(width_mm), float(gap_mm))
        self.pad = (np.ceil((width_mm + gap_mm) / np.asarray(spacing_kji, float)).astype(int) + 2).astype(np.int64)

    def __call__(self, region: np.ndarray, rbox: np.ndarray) -> np.ndarray:
        """The values of ``a`` in the shell of the non-empty ``region``, in C order."""
        if self.rows is None:
            return self.a[shell(region, self.spacing_kji, self.width_mm, self.allowed, self.gap_mm)]
        return shell_kernel(region, rbox, self.pad, self.rows[0], self.rows[1], self.allowed, self.a, _NOWHERE)


@functools.lru_cache(maxsize=64)
def _shell_offsets(sp: tuple[float, float, float], width_mm: float, gap_mm: float):
    """The runs ``(dk, dj, di, w)`` of :func:`common.shell`'s outer and gap balls (``common._shell_balls``)
    as ``(m, 4)`` arrays, or None when :func:`common.shell` uses the distance transform (or the balls'
    runs are very many: then common.shell does it, as it did when the kernel counted in int16; the same
    voxels either way)."""
    balls = _shell_balls(sp, width_mm, gap_mm)
    if balls is None:
        return None
    out = []
    for rows in balls[:2]:
        arr = _read_only(np.asarray(rows, dtype=np.int64).reshape(-1, 4))
        if int(np.sum(arr[:, 3] + 1)) >= 2 ** 15:  # the former kernel's int16 limit, kept (see above)
            return None
        out.append(arr)
    return tuple(out)
