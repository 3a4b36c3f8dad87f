"""FROZEN COPY (test oracle): volumetry/segment/region_growing.py as of commit 779ea9a, before its
compiled kernels (volumetry/segment/kernels.py), verbatim except for these two lines of docstring and
the package-relative imports made absolute. Do not edit: tests/test_segment_kernels.py asserts that
the current code gives exactly what this gives.

Seeded region growing with intensity statistics learnt around the seed.

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

import logging

import numpy as np

from volumetry.errors import InputError
from scipy import ndimage

from volumetry.segment.common import (MethodOutput, bbox, closing, connected_to_seeds_in_box, core, fill_holes, median, noise_sigma,
                     padding_mask, seed_balls, shell, smooth)
from volumetry.segment.roi import Roi

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
    inner = core(region)
    # np.argwhere(inner), faster; the same (n, 3) transposed view of a (3, n) array (the layout decides
    # the order of the sums in x.mean below)
    idx = np.transpose(np.asarray(np.nonzero(inner)))
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
    mad = median(np.abs(res - median(res))) * 1.4826
    keep = np.abs(res) <= 2.5 * max(mad, 1e-9)
    if np.count_nonzero(keep) >= min_voxels:
        coef = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
    g = coef[1:]
    grids = np.meshgrid(*(np.arange(n) * d - c for n, d, c in zip(a.shape, sp, x0)), indexing="ij", sparse=True)
    field = np.exp(sum(gi * gr for gi, gr in zip(g, grids))).astype(np.float32)
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

    def grow(threshold: float, connectivity: int = 6, allowed: np.ndarray | None = allowed) -> np.ndarray:
        # closing, then the components holding a seed; all of it on the bounding box of the voxels
        # above the threshold (nothing outside it is in the region; the closing of the box is the box
        # of the closing)
        binary = sm > threshold
        if allowed is not None:
            binary &= allowed
        region = np.zeros(binary.shape, dtype=bool)
        sl = bbox(binary)
        if sl is None:
            return region
        box = closing(binary[sl], p["closing_mm"], roi.spacing_kji)
        if allowed is not None:
            box &= allowed[sl]
        region[sl] = connected_to_seeds_in_box(box, [s.start for s in sl], roi.seeds, anchors=anchors,
                                               structure=CONNECTIVITY[connectivity])
        return region

    qc = {"noise_sd": sigma, "seed_value": sval}
    region = None
    lesion = background = np.nan
    for it in range(int(p["max_iterations"])):
        region = grow(t)
        if not region.any():
            return MethodOutput(None, f"no voxel at the seed is above the threshold {t:.4g}", qc)
        sh = shell(region, roi.spacing_kji, p["shell_mm"], stats_ok, p["gap_mm"])
        if np.count_nonzero(sh) < 10:
            return MethodOutput(
                None, "the seed is not on lesion-like tissue: the region grown from it fills the whole search "
                "region (or box) without standing out from its surroundings; move the seed onto the bright lesion, "
                "or there is no measurable lesion here", qc, needs_larger_crop=True)
        lesion = lesion_intensity(a, region, p["lesion_stat"], p["core_fraction"])
        background = float(median(a[sh]))
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
    if allowed is not None and region.any():
        # the same region without the box: how much of the lesion the box cuts off (flag outside-box)
        free = grow(t, conn, None)
        qc["fraction_outside_box"] = float(np.count_nonzero(free & ~allowed) / max(np.count_nonzero(free), 1))
    if p["fill_holes"]:
        region = fill_holes(region)
        if allowed is not None:
            region &= allowed
    return MethodOutput(region, "", qc)
