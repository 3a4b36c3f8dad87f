"""Quality-control numbers and flags for a segmentation mask.

Flags (strings, stable names that reports and tables can filter on):

==========================  ===========================================================
flag                        meaning
==========================  ===========================================================
``empty-mask``              the method left no voxel (the result is "failed")
``touches-image-border``    the mask reaches the edge of the image: the lesion may be cut
``touches-padding``         the mask reaches padding (zero-filled / masked-out voxels at the
                            crop's minimum, e.g. a brain mask or a resampled field of view):
                            the lesion may be cut there, as at the image's edge
``touches-search-limit``    the mask still reaches the largest search region (possible leak)
``multiple-components``     the mask has more than one 26-connected component
``narrow-neck``             more than :data:`NECK_FRACTION` of the mask lies in bodies joined to
                            its largest body only through necks narrower than 3 voxels, or on
                            thick slices beyond a slice whose area drops under
                            :data:`WAIST_RATIO` of the peak area on both sides
                            (:func:`neck_fraction`): possibly a neighbouring lesion or vessel
                            merged across a gap thinner than a voxel; check the overlay
``outside-box``             more than :data:`OUTSIDE_BOX_FRACTION` of the thresholded
                            region around the seeds lies outside the box (the box cuts
                            the lesion)
``seed-intensity-atypical``  the seed intensity is more than :data:`SEED_Z_MAX` SD from
                            the lesion's mean
``low-contrast``            lesion − background < :data:`LOW_CONTRAST_SD` noise SD
``few-voxels``              fewer than :data:`FEW_VOXELS` voxels (partial volume dominates)
``mask-resampled``          an imported mask was resampled to the image grid (io.masks)
``registration-*``          flags of the follow-up registration (propagate)
==========================  ===========================================================
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._morphology import box_opening, component_sizes26
from ._qc_kernels import waist_share
from .common import CONN6, bbox, grown_box, padding_mask

#: A box cutting more than this fraction of the region (dimensionless) is flagged.
OUTSIDE_BOX_FRACTION = 0.05
#: Seed intensity farther than this many lesion SDs from the lesion mean is flagged.
SEED_Z_MAX = 3.0
#: Contrast below this many noise SDs is flagged.
LOW_CONTRAST_SD = 4.0
#: Masks with fewer voxels than this are flagged.
FEW_VOXELS = 30
#: A mask with more than this fraction (dimensionless) of its opened voxels beyond a narrow neck is flagged.
NECK_FRACTION = 0.05
#: On thick slices, a slice whose mask area is below this fraction (dimensionless) of the largest
#: slice area on each side of it is a waist (:func:`neck_fraction`). Audit: single-lesion phantoms
#: and expert masks on 3-6 mm slices have no slice below 0.92 of both peaks; two lesions stacked
#: across the slices and merged through the slice between them, 0.04-0.43.
WAIST_RATIO = 0.5


def mask_qc(crop_image: np.ndarray, crop_mask: np.ndarray, seed_value: float | None,
            touches_image_border: bool, spacing_kji=None) -> dict:
    """QC numbers of a (non-empty) crop mask.

    Parameters
    ----------
    crop_image : numpy.ndarray
        Intensities of the crop.
    crop_mask : numpy.ndarray
        Boolean mask on the crop.
    seed_value : float or None
        Intensity at the seeds.
    touches_image_border : bool
        Whether the mask reaches the image's edge.
    spacing_kji : sequence of float, optional
        Voxel spacing (mm) along k, j, i; with it, ``neck_fraction`` is computed.

    Returns
    -------
    dict
        ``n_voxels``, ``n_components``, ``lesion_mean``, ``lesion_sd``,
        ``seed_z`` (seed intensity z-score against the lesion), ``touches_border`` (0/1),
        ``touches_padding`` (0/1: a mask voxel is a face neighbour of a padding voxel,
        :func:`volumetry.segment.common.padding_mask`), and with ``spacing_kji``
        ``neck_fraction`` (:func:`neck_fraction`).
    """
    vals = crop_image[crop_mask]
    sl = bbox(crop_mask)  # None: an empty mask
    ncomp = len(component_sizes26(np.ascontiguousarray(crop_mask if sl is None else crop_mask[sl], dtype=bool)))
    mean, sd = float(vals.mean()), float(vals.std())
    seed_z = float((seed_value - mean) / sd) if seed_value is not None and sd > 0 else float("nan")
    out = {"n_voxels": np.count_nonzero(crop_mask), "n_components": int(ncomp), "lesion_mean": mean,
           "lesion_sd": sd, "seed_z": seed_z, "touches_border": int(bool(touches_image_border)),
           "touches_padding": int(_touches_padding(crop_image, crop_mask))}
    if spacing_kji is not None:
        grown = None if sl is None else grown_box(sl, 1, crop_mask.shape)  # bbox(crop_mask, 1)
        out["neck_fraction"] = _neck_fraction(crop_mask, spacing_kji, grown)
    return out


def neck_element(spacing_kji) -> np.ndarray:
    """The structuring element of :func:`neck_fraction`: 3 voxels wide along the two finest axes,
    and along the third only when its voxels are at most 1.5 × the second finest (near-isotropic)."""
    sp = np.asarray(spacing_kji, float)
    order = np.argsort(sp, kind="stable")
    shape = [3, 3, 3]
    if sp[order[2]] > 1.5 * sp[order[1]]:
        shape[int(order[2])] = 1
    return np.ones(shape, dtype=bool)


def neck_fraction(crop_mask: np.ndarray, spacing_kji) -> float:
    """Share of a mask lying in bodies joined to its largest body only through narrow necks.

    The mask is opened (eroded, then dilated) by :func:`neck_element`, a block 3 voxels
    wide in-plane (and across slices when they are about as fine): whatever is narrower
    than the block — a neck, a spur, the thin rim of partial-volume voxels — disappears,
    and bodies joined only through such necks come apart. Two lesions 3 mm apart on 4 mm
    slices, merged through the slice that straddles the gap, are two bodies here.

    On slices too thick for the block to have depth (the element is one voxel across them),
    a merger *across* the slices shows no in-plane neck when the two lesions' caps touch over
    a wide area; it shows as a waist instead: a slice whose mask area is below
    :data:`WAIST_RATIO` of the largest slice area on each side (:func:`waist_fraction`).

    Parameters
    ----------
    crop_mask : numpy.ndarray of bool
        The mask (any crop of the image holding it).
    spacing_kji : sequence of float
        Voxel spacing (mm) along k, j, i.

    Returns
    -------
    float
        The larger of ``1 - largest / total`` of the opened mask's 26-connected bodies
        (0 for one body, or none: a mask thinner than the block everywhere) and, on thick
        slices, :func:`waist_fraction`.
    """
    return _neck_fraction(crop_mask, spacing_kji, bbox(crop_mask, 1))


def _neck_fraction(crop_mask: np.ndarray, spacing_kji, sl: tuple[slice, ...] | None) -> float:
    """:func:`neck_fraction` given ``sl = bbox(crop_mask, 1)``."""
    if sl is None:
        return 0.0
    element = neck_element(spacing_kji)
    sub = crop_mask[sl]
    waist = waist_fraction(sub, int(np.argmin(element.shape))) if min(element.shape) == 1 else 0.0
    # np.pad(sub, 1): the opening must not treat the crop's edge as mask
    box = np.zeros(tuple(n + 2 for n in sub.shape), dtype=bool)
    box[1:-1, 1:-1, 1:-1] = sub
    opened = box_opening(box, *element.shape)
    sizes = component_sizes26(opened)  # 26-connected bodies
    if len(sizes) < 2:
        return waist
    return max(waist, float(1.0 - sizes.max() / sizes.sum()))


def waist_fraction(mask: np.ndarray, axis: int) -> float:
    """Share of a mask beyond its deepest waist across the slices along ``axis``.

    A waist is a slice whose mask area is below :data:`WAIST_RATIO` of the largest slice
    area on each side of it; what lies beyond it, on the side with less of the mask
    (the waist slice itself counted on neither side), may be another lesion.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        The mask.
    axis : int
        The axis across the (thick) slices.

    Returns
    -------
    float
        The largest such share over the waists (dimensionless, 0 to 0.5); 0 without a waist.
    """
    rows = np.moveaxis(np.asarray(mask, dtype=bool), axis, 0)
    rows = np.ascontiguousarray(rows).reshape(rows.shape[0], -1)  # one row of voxels per slice
    return float(waist_share(rows, WAIST_RATIO))


def _touches_padding(crop_image: np.ndarray, crop_mask: np.ndarray) -> bool:
    """Whether a mask voxel has a face neighbour that is padding (zero-filled / masked-out voxels)."""
    pad = padding_mask(crop_image)
    if not pad.any():
        return False
    return bool(np.any(ndimage.binary_dilation(crop_mask, CONN6) & pad & ~crop_mask))


def flags_from_qc(qc: dict) -> list[str]:
    """Flags implied by the QC numbers (see the module table)."""
    flags = []
    if qc.get("touches_border"):
        flags.append("touches-image-border")
    if qc.get("touches_padding"):
        flags.append("touches-padding")
    if qc.get("touches_search_limit"):
        flags.append("touches-search-limit")
    if qc.get("n_components", 1) > 1:
        flags.append("multiple-components")
    if qc.get("neck_fraction", 0.0) > NECK_FRACTION:
        flags.append("narrow-neck")
    if qc.get("fraction_outside_box", 0.0) > OUTSIDE_BOX_FRACTION:
        flags.append("outside-box")
    if abs(qc.get("seed_z", 0.0)) > SEED_Z_MAX:
        flags.append("seed-intensity-atypical")
    if qc.get("contrast_sd", np.inf) < LOW_CONTRAST_SD:
        flags.append("low-contrast")
    if 0 < qc.get("n_voxels", FEW_VOXELS) < FEW_VOXELS:
        flags.append("few-voxels")
    return flags
