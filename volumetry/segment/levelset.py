"""Level-set refinement: morphological Chan–Vese (ACWE) inside the crop,
started from the mask of region growing or threshold.

Chan–Vese moves the contour so that the lesion and its surroundings are each
as uniform as possible, with a curvature term that smooths the outline; it can
recover parts a single threshold misses on heterogeneous lesions. It runs on a
sub-crop around the initial mask (a few mm larger), never on the whole image.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

from .common import MethodOutput, bbox, closing, connected_to_seeds, fill_holes, padding_mask, seed_balls
from .roi import Roi

#: The curvature term of morphological snakes works in voxel units: on grids more
#: anisotropic than this (thickest / thinnest voxel side) it would shave whole thick
#: slices off a small lesion, so it is turned off there.
ANISOTROPY_MAX = 1.5

#: Documented parameters of ``levelset`` and their defaults.
DEFAULTS = {
    "init": "region_growing",  # method giving the initial contour: "region_growing" or "threshold"
    "iterations": 15,          # morphological Chan-Vese iterations
    "smoothing": 1,            # curvature smoothing steps per iteration (0-4); 0 on anisotropic grids
    "lambda1": 1.0,            # weight of the inside uniformity
    "lambda2": 1.0,            # weight of the outside uniformity
    "margin_mm": 6.0,          # sub-crop margin (mm) around the initial mask
    "closing_mm": 1.5,         # closing radius (mm) bridging thin dark septa (0 = none)
}


def levelset(roi: Roi, params: dict) -> MethodOutput:
    """Refine an initial segmentation with morphological Chan–Vese.

    Parameters
    ----------
    roi : Roi
        The crop with the seeds (and the box, if any).
    params : dict
        See :data:`DEFAULTS`; parameters of the ``init`` method can be passed
        under the key ``"init_params"`` (a dict).

    Returns
    -------
    MethodOutput
        The refined crop mask, or the failure of the initial method.
    """
    from skimage.segmentation import morphological_chan_vese

    from .registry import get_method

    p = {**DEFAULTS, **params}
    if p["init"] == "levelset":
        raise InputError("levelset cannot start from itself; init must be 'region_growing' or 'threshold'")
    first = get_method(p["init"]).func(roi, dict(p.get("init_params") or {}))
    if first.mask is None:
        return first
    pad = np.ceil(p["margin_mm"] / np.asarray(roi.spacing_kji)).astype(int)
    sl = bbox(first.mask, pad)
    sub = roi.array[sl].astype(float)
    pad_vox = padding_mask(roi.array)[sl]
    if pad_vox.any() and (~pad_vox).any():
        # masked-out background (skull-stripped, zero-filled) would pull the outside mean: use the
        # background the initial method learnt, else the median of the real voxels outside the mask
        fill = first.qc.get("background_median")
        if fill is None or not np.isfinite(fill):
            fill = float(np.median(sub[~pad_vox & ~first.mask[sl]]))
        sub[pad_vox] = fill
    lo, hi = np.percentile(sub, [1, 99])
    sub = np.clip((sub - lo) / max(hi - lo, 1e-12), 0, 1)
    # an axis one voxel thick (a single-slice image) has no gradient: evolve on the other axes
    keep = [ax for ax, n in enumerate(sub.shape) if n > 1]
    sp = np.asarray(roi.spacing_kji, float)[keep]
    smoothing = int(p["smoothing"]) if sp.max() / sp.min() <= ANISOTROPY_MAX else 0
    flat = tuple(sub.shape[ax] for ax in keep)
    _restart_curvature_cycle()
    ls = morphological_chan_vese(sub.reshape(flat), int(p["iterations"]),
                                 init_level_set=first.mask[sl].astype(np.int8).reshape(flat),
                                 smoothing=smoothing, lambda1=float(p["lambda1"]),
                                 lambda2=float(p["lambda2"]))
    out = np.zeros_like(first.mask)
    out[sl] = ls.astype(bool).reshape(sub.shape)
    # thin dark septa split the contour into compartments: bridge them as region growing does
    out = closing(out, float(p["closing_mm"]), roi.spacing_kji)
    if roi.box_mask is not None:
        out &= roi.box_mask
    out = connected_to_seeds(out, roi.seeds, anchors=seed_balls(out.shape, roi.seeds, roi.spacing_kji, 1.5))
    if not out.any():
        return MethodOutput(None, "the level set left no region at the seeds", first.qc, first.flags)
    out = fill_holes(out)
    if roi.box_mask is not None:
        out &= roi.box_mask
    qc = dict(first.qc)
    qc["init_voxels"] = int(first.mask.sum())
    return MethodOutput(out, "", qc, first.flags)


def _restart_curvature_cycle() -> None:
    """Restart scikit-image's alternation of the curvature operators (SI∘IS, then IS∘SI, ...).

    ``skimage.segmentation.morphsnakes`` keeps that alternation in a module-level cycle that
    carries over from one call to the next, so the same level set came out differently depending
    on how many smoothing steps earlier calls in the process had made (0.788 / 0.798 mL in turn on
    a phantom). Every call now starts with SI∘IS, as the first call in a fresh process does.
    Nothing is done if scikit-image no longer keeps that cycle.
    """
    from skimage.segmentation import morphsnakes as ms

    if isinstance(getattr(ms, "_curvop", None), getattr(ms, "_fcycle", ())) and hasattr(ms, "sup_inf") \
            and hasattr(ms, "inf_sup"):
        ms._curvop = ms._fcycle([lambda u: ms.sup_inf(ms.inf_sup(u)), lambda u: ms.inf_sup(ms.sup_inf(u))])
