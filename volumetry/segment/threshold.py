"""Threshold segmentation inside the box (or the search region around the seeds).

The threshold is Otsu's on the (lightly smoothed) intensities inside the box
(padding voxels at the crop's minimum left out), or a value given by the caller; the lesion is the set of voxels above it that
are connected to the seeds, with holes filled. Without a box, the search region around the seeds stands in for
it and a region that leaks out of it is a failure (give a box).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

from .common import MethodOutput, connected_to_seeds, fill_holes, noise_sigma, padding_mask, seed_value, smooth
from .roi import Roi

#: The region above the threshold must be this many noise SDs (dimensionless) brighter than the
#: rest of the box / search region; below it, Otsu split the noise, not a lesion from its background.
MIN_CONTRAST_SD = 2.0

#: Documented parameters of ``threshold`` and their defaults.
DEFAULTS = {
    "smoothing_mm": 0.5,   # Gaussian sigma (mm) before thresholding
    "threshold": "otsu",   # "otsu" or an intensity value in the image's units
    "seed_radius_mm": 1.5,  # ball (mm) around each seed for the seed intensity
    "fill_holes": True,
}


def threshold(roi: Roi, params: dict) -> MethodOutput:
    """Segment the voxels above a threshold, connected to the seeds, inside the box.

    Parameters
    ----------
    roi : Roi
        The crop with the seeds (and the box, if any).
    params : dict
        See :data:`DEFAULTS`.

    Returns
    -------
    MethodOutput
        The crop mask, or None with the reason (seed below the threshold).
    """
    from skimage.filters import threshold_otsu

    p = {**DEFAULTS, **params}
    sm = smooth(roi.array, roi.spacing_kji, p["smoothing_mm"])
    inside = roi.box_mask if roi.box_mask is not None else np.ones(sm.shape, bool)
    where = "box" if roi.box_mask is not None else "search region"
    lo, hi = float(roi.array[inside].min()), float(roi.array[inside].max())
    if lo == hi:
        return MethodOutput(None, f"the {where} is uniform (every voxel {lo:.4g}): no threshold separates a lesion "
                            "from its background; check the image, or move the seed onto the lesion")
    if isinstance(p["threshold"], str):
        if p["threshold"] != "otsu":
            raise InputError(f"threshold must be 'otsu' or a number, got {p['threshold']!r}")
        # padding (skull-stripped / zero-filled background) would make Otsu split body from padding
        t = float(threshold_otsu(sm[inside & ~padding_mask(roi.array)]))
    else:
        t = float(p["threshold"])
    sval = seed_value(sm, roi.seeds, roi.spacing_kji, p["seed_radius_mm"])
    qc = {"threshold": t, "seed_value": sval}
    if sval <= t:
        return MethodOutput(None, f"the seed intensity {sval:.4g} is below the threshold {t:.4g}: the seed is "
                            "not on the bright lesion; move it onto the lesion or tighten the box", qc)
    free = connected_to_seeds(sm > t, roi.seeds)
    region = free & inside
    if roi.box_mask is not None and free.any():
        qc["fraction_outside_box"] = float((free & ~inside).sum() / free.sum())
    region = connected_to_seeds(region, roi.seeds)
    if p["fill_holes"]:
        region = fill_holes(region) & inside
    if roi.box_mask is None and np.any(roi.touches_crop_side(region) & ~roi.at_image_border):
        return MethodOutput(None, f"the threshold {t:.4g} leaks out of the search region around the seed: give a box "
                            "around the lesion, or use the region_growing method", qc)
    lesion = float(np.median(roi.array[region])) if region.any() else np.nan
    background = float(np.median(roi.array[inside & ~region])) if (inside & ~region).any() else np.nan
    qc.update(lesion_median=lesion, background_median=background)
    sigma = noise_sigma(roi.array)
    # as region_growing records them: the low-contrast flag (segment.qc) reads contrast_sd
    qc.update(noise_sd=sigma, contrast_sd=(lesion - background) / sigma)
    if not lesion - background > MIN_CONTRAST_SD * sigma:
        # an image that is all lesion, or a tiny lesion in a search region reaching the image's edge everywhere
        contrast = "fills all of it" if not np.isfinite(background) else \
            f"is only {(lesion - background) / sigma:.1f} noise SD brighter than the rest of it (need > {MIN_CONTRAST_SD:g})"
        return MethodOutput(None, f"the region above the threshold {t:.4g} in the {where} {contrast}: Otsu split the "
                            "noise, not a lesion from its background; move the seed onto the lesion, give a box "
                            "around it, or use the region_growing method", qc)
    return MethodOutput(region, "", qc)
