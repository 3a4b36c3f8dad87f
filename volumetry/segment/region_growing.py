"""Seeded region growing with intensity statistics learnt around the seed.

The lesion is the set of voxels connected to the seeds (6-connectivity) that are
brighter than a threshold half-way between the lesion's and the surrounding
background's median intensities. Both medians are learnt iteratively: start
from a tight region around the seeds (voxels within ``start_sigmas`` noise
standard deviations of the seed intensity), measure the lesion median inside
the region (eroded by one voxel) and the background median in a shell around it
(after a one-voxel gap), set the threshold half-way, regrow, repeat until the
threshold settles. Then fill holes (3D and slice by slice) and keep the
components that hold a seed.

Why half-way: a voxel that straddles the lesion edge has an intensity
proportional to the fraction of it inside the lesion (partial volume), so
counting voxels above the half-way intensity gives an unbiased volume even for
small lesions on thick slices; a conservative threshold in the lesion's tail
would shrink them.
"""
from __future__ import annotations

import logging

import numpy as np

from .common import (MethodOutput, closing, connected_to_seeds, core, fill_holes, noise_sigma, padding_mask, seed_balls,
                     seed_value, shell, smooth)
from .roi import Roi

log = logging.getLogger(__name__)

#: Documented parameters of ``region_growing`` and their defaults.
DEFAULTS = {
    "smoothing_mm": 0.5,      # Gaussian sigma (mm) before thresholding; not across slices thicker than 2x
    "seed_radius_mm": 1.5,    # ball (mm) around each seed for the seed intensity
    "start_sigmas": 1.0,      # first region: voxels above seed value - start_sigmas x noise SD
    "shell_mm": 4.0,          # width (mm) of the background shell around the region
    "gap_mm": 2.0,            # gap (mm) between the region (+1 voxel) and its background shell
    "lesion_stat": "core",   # lesion intensity: median of the region eroded by a voxel ("core") or of it all
    "fraction": 0.5,          # threshold = background + fraction x (lesion - background)
    "min_contrast_sd": 2.0,   # lesion - background must exceed this many noise SDs, else "failed"
    "max_iterations": 12,     # threshold updates
    "tolerance": 0.01,        # stop when the threshold moves by less than this x contrast
    "closing_mm": 1.5,        # closing radius (mm) bridging thin dark septa inside the lesion (0 = none)
    "fill_holes": True,
}


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
    a = roi.array
    sm = smooth(a, roi.spacing_kji, p["smoothing_mm"])
    sigma = noise_sigma(a)
    sigma_sm = noise_sigma(sm) if sm is not a else sigma
    allowed = roi.box_mask
    padding = padding_mask(a)
    stats_ok = ~padding if allowed is None else (allowed & ~padding)
    sval = seed_value(sm, roi.seeds, roi.spacing_kji, p["seed_radius_mm"])
    t = sval - p["start_sigmas"] * sigma_sm
    anchors = seed_balls(a.shape, roi.seeds, roi.spacing_kji, p["seed_radius_mm"])

    def grow(threshold: float) -> np.ndarray:
        binary = sm > threshold
        if allowed is not None:
            binary &= allowed
        binary = closing(binary, p["closing_mm"], roi.spacing_kji)
        if allowed is not None:
            binary &= allowed
        return connected_to_seeds(binary, roi.seeds, anchors=anchors)

    qc = {"noise_sd": sigma, "seed_value": sval}
    region = None
    lesion = background = np.nan
    for it in range(int(p["max_iterations"])):
        region = grow(t)
        if not region.any():
            return MethodOutput(None, f"no voxel at the seed is above the threshold {t:.4g}", qc)
        sh = shell(region, roi.spacing_kji, p["shell_mm"], stats_ok, p["gap_mm"])
        if sh.sum() < 10:
            return MethodOutput(
                None, "the seed is not on lesion-like tissue: the region grown from it fills the whole search "
                "region (or box) without standing out from its surroundings; move the seed onto the bright lesion, "
                "or there is no measurable lesion here", qc, needs_larger_crop=True)
        lesion = float(np.median(a[core(region) if p['lesion_stat'] == 'core' else region]))
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
    region = grow(t)
    if p["fill_holes"]:
        region = fill_holes(region)
        if allowed is not None:
            region &= allowed
    return MethodOutput(region, "", qc)
