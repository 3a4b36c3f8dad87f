"""Public entry point of segmentation: :func:`segment` and :class:`SegmentationResult`."""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from ..image import Volume
from .prompts import Prompt
from .qc import flags_from_qc, mask_qc
from .registry import get_method, resolve_params
from .roi import make_roi

log = logging.getLogger(__name__)

#: A propagated lesion must reach at least this fraction (dimensionless) of the way from
#: its surroundings to the intensity the baseline lesion maps to in the follow-up.
MIN_EXPECTED_FRACTION = 0.6


@dataclasses.dataclass
class SegmentationResult:
    """The result of segmenting one lesion.

    Attributes
    ----------
    mask : Volume or None
        Boolean mask on the image's grid; None when ``status == "failed"``.
    status : str
        ``"ok"`` or ``"failed"``.
    reason : str
        Why it failed ('' when ok).
    method : str
        Name of the method used.
    params : dict
        The parameters used (defaults filled in).
    flags : list of str
        QC flags (see :mod:`volumetry.segment.qc`).
    qc : dict
        QC numbers: ``seed_z``, ``contrast_sd``, ``n_components``, ``fraction_outside_box``,
        ``touches_border``, ``threshold``, ``lesion_median``, ``background_median`` ...
    lesion_id : str
        Id of the lesion (from the prompt).
    elapsed_s : float
        Wall time of the segmentation (s).
    """

    mask: Volume | None
    status: str
    reason: str
    method: str
    params: dict
    flags: list[str]
    qc: dict[str, Any]
    lesion_id: str = "1"
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when a mask was produced."""
        return self.status == "ok"

    @property
    def volume_ml(self) -> float | None:
        """Voxel-count volume of the mask in mL (None when failed: never 0 for a failure)."""
        if self.mask is None:
            return None
        return float(np.count_nonzero(self.mask.array) * self.mask.voxel_volume_mm3 / 1000.0)

    def to_json(self) -> dict:
        """JSON-ready summary (no arrays)."""
        return {"lesion_id": self.lesion_id, "status": self.status, "reason": self.reason,
                "method": self.method, "volume_ml": self.volume_ml, "flags": list(self.flags),
                "params": _jsonable(self.params), "qc": _jsonable(self.qc), "elapsed_s": self.elapsed_s}


def segment(image: Volume, prompt: Prompt, *, method: str = "default", params: dict | None = None) -> SegmentationResult:
    """Segment the lesion a prompt points at.

    Works on a crop: the prompt's box plus a margin, or a search region around
    the seeds that grows (up to ``max_search_radius_mm``) while the mask touches it.

    Parameters
    ----------
    image : Volume
        The image (T2-weighted / FLAIR: the lesion is bright).
    prompt : Prompt
        Seeds (and optional box) in LPS mm, see :class:`Prompt`.
    method : str
        ``"default"`` (= ``region_growing``), ``"region_growing"``, ``"threshold"`` or ``"levelset"``.
    params : dict, optional
        Method parameters overriding the defaults (see :mod:`volumetry.segment.registry`).

    Returns
    -------
    SegmentationResult
        ``status == "failed"`` with a reason (and ``mask=None``) when the seed
        is not on lesion-like tissue or nothing was segmented; never a 0 mL mask.

    Raises
    ------
    PromptError
        If a seed lies outside the image (or outside its box).
    InputError
        If the method or a parameter is unknown.
    """
    t0 = time.perf_counter()
    m = get_method(method)
    p = resolve_params(m, params)
    prompt.check_inside(image, space=prompt.source.get("space", "lps") if not prompt.source.get("propagated") else "lps")
    method_params = {k: v for k, v in p.items() if k in m.defaults or k == "init_params"}
    radius = np.full(6, float(p["search_radius_mm"]))
    touches_limit = False
    expected = prompt.source.get("expected_lesion_intensity")
    while True:
        roi = make_roi(image, prompt, radius)
        out = m.func(roi, method_params)
        sides = None  # roi.touches_crop_side(out.mask), once taken
        if out.mask is not None and out.mask.any() and expected is not None and np.isfinite(expected):
            # a propagated prompt: no need to grow the search region around tissue that is not lesion
            out = _check_expected_intensity(out, float(expected), p["min_expected_fraction"])
        if prompt.box is not None:
            break
        if out.mask is None:
            if not out.needs_larger_crop or np.all(radius >= p["max_search_radius_mm"]) or roi.at_image_border.all():
                break
            radius = np.minimum(radius * 2, p["max_search_radius_mm"])
            continue
        sides = roi.touches_crop_side(out.mask)
        touched = sides & ~roi.at_image_border
        if not touched.any():
            break
        grow = touched.ravel()
        if np.all(radius[grow] >= p["max_search_radius_mm"]):
            touches_limit = True
            break
        radius = np.where(grow, np.minimum(radius * 2, p["max_search_radius_mm"]), radius)
        log.debug("lesion %s: mask touches the search region, growing it to %s mm", prompt.lesion_id, radius)
    qc = {k: _num(v) for k, v in out.qc.items()}
    qc.update(search_radius_mm=float(radius.max()) if prompt.box is None else float("nan"))
    flags = list(out.flags) + list(prompt.source.get("registration_flags", []))
    name = m.name
    if out.mask is None or not out.mask.any():
        reason = out.reason or "the method left an empty mask"
        if out.mask is not None:
            flags.append("empty-mask")
        return SegmentationResult(None, "failed", reason, name, p, flags + flags_from_qc(qc), qc,
                                  prompt.lesion_id, time.perf_counter() - t0)
    crop_mask = out.mask
    if sides is None:
        sides = roi.touches_crop_side(crop_mask)
    on_border = bool(np.any(sides & roi.at_image_border))
    qc.update(mask_qc(roi.array, crop_mask, out.qc.get("seed_value"), on_border, roi.spacing_kji))
    qc["touches_search_limit"] = int(touches_limit)
    qc.setdefault("fraction_outside_box", 0.0 if prompt.box is not None else float("nan"))
    flags += flags_from_qc(qc)
    full = roi.paste(crop_mask, image.array.shape)
    meta = {"kind": "mask", "lesion_id": prompt.lesion_id, "method": name,
            "series_uid": image.meta.get("series_uid")}
    mask = Volume(full, image.spacing, image.origin, image.direction, meta)
    res = SegmentationResult(mask, "ok", "", name, p, flags, qc, prompt.lesion_id, time.perf_counter() - t0)
    if log.isEnabledFor(logging.INFO):  # res.volume_ml counts the image-sized mask: only when it is logged
        log.info("lesion %s: %s %.3f mL in %.2f s%s", prompt.lesion_id, name, res.volume_ml, res.elapsed_s,
                 f" (flags: {', '.join(flags)})" if flags else "")
    return res


def _check_expected_intensity(out, expected: float, fraction: float):
    """Fail a propagated segmentation whose region is far darker than the baseline lesion
    mapped into this scan (a complete response leaves muscle or fat at the seed)."""
    from .common import MethodOutput

    qc = dict(out.qc)
    bright = max(qc.get("seed_value", -np.inf), qc.get("lesion_median", -np.inf))
    background = qc.get("background_median")
    qc["expected_lesion_intensity"] = expected
    if background is None or not np.isfinite(background) or not np.isfinite(bright):
        return MethodOutput(out.mask, out.reason, qc, out.flags)
    reached = (bright - background) / (expected - background) if expected > background else np.inf
    qc["expected_contrast_fraction"] = float(reached)
    if reached < fraction:
        return MethodOutput(
            None, f"no lesion-like tissue at the propagated seed: the region there (intensity {bright:.4g}, "
            f"surroundings {background:.4g}) is far darker than the baseline lesion maps to in this scan "
            f"({expected:.4g}); no measurable lesion (complete response?) — check the follow-up, or give a seed on it",
            qc, out.flags + ["no-lesion-at-propagated-seed"])
    return MethodOutput(out.mask, out.reason, qc, out.flags)


def segment_lesions(image: Volume, prompts: list[Prompt], *, method: str = "default",
                    params: dict | None = None) -> dict[str, SegmentationResult]:
    """Segment several lesions (one prompt each) of one image; results by lesion id.

    Raises
    ------
    PromptError
        If two prompts share a lesion id, or a seed lies outside the image.
    """
    from .prompts import merge

    return {lid: segment(image, p, method=method, params=params) for lid, p in merge(prompts).items()}


def _num(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        v = _num(v)
        if isinstance(v, float) and not np.isfinite(v):
            v = None
        elif isinstance(v, dict):
            v = _jsonable(v)
        out[k] = v
    return out
