"""Regions of interest: crop an image around a prompt before any morphology.

Whole-volume morphology costs seconds; the same inside the lesion's box costs
milliseconds (DESIGN.md). Every method works on a :class:`Roi`: a C-ordered
float32 crop of the image, the seeds and the box in crop indices, and the
crop's position in the full grid so that the mask can be pasted back.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import InputError
from ..image import Volume
from .prompts import Prompt

#: Extra margin (mm) around a prompt's box so that the background around the
#: lesion is part of the crop.
BOX_MARGIN_MM = 6.0


@dataclasses.dataclass
class Roi:
    """A crop of an image around a prompt.

    Attributes
    ----------
    array : numpy.ndarray
        float32 voxel values of the crop, indexed ``[k, j, i]``.
    lo, hi : numpy.ndarray
        Inclusive / exclusive ``(k, j, i)`` bounds of the crop in the full array.
    spacing_kji : tuple of float
        Voxel size (mm) along ``(k, j, i)``.
    seeds : numpy.ndarray
        Seed voxels ``(n, 3)`` in crop ``(k, j, i)`` indices.
    box_mask : numpy.ndarray or None
        Boolean crop array: voxel centres inside the prompt's box.
    at_image_border : numpy.ndarray
        Bool ``(3, 2)``: whether each side ``(k, j, i) × (low, high)`` of the crop
        is the image's own border.
    """

    array: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    spacing_kji: tuple[float, float, float]
    seeds: np.ndarray
    box_mask: np.ndarray | None
    at_image_border: np.ndarray

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Slices of the crop in the full ``[k, j, i]`` array."""
        return tuple(slice(int(a), int(b)) for a, b in zip(self.lo, self.hi))

    def paste(self, crop_mask: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """Full-size boolean array holding ``crop_mask`` at the crop's place."""
        full = np.zeros(shape, dtype=bool)
        full[self.slices] = crop_mask
        return full

    def touches_crop_side(self, crop_mask: np.ndarray) -> np.ndarray:
        """Bool ``(3, 2)``: which crop faces the mask touches."""
        out = np.zeros((3, 2), dtype=bool)
        for ax in range(3):
            out[ax, 0] = crop_mask.take(0, axis=ax).any()
            out[ax, 1] = crop_mask.take(-1, axis=ax).any()
        return out


def make_roi(image: Volume, prompt: Prompt, radius_mm: float | np.ndarray) -> Roi:
    """Crop ``image`` around the prompt.

    With a box, the crop is the box's bounding box plus :data:`BOX_MARGIN_MM`;
    without one, it spans the seeds' bounding box plus ``radius_mm`` on every side.
    A crop never exceeds the image.

    Parameters
    ----------
    image : Volume
        The full image.
    prompt : Prompt
        Seeds and optional box (LPS mm).
    radius_mm : float or array of 6 floats
        Margin around the seeds in mm; either one value or one per side
        ``(k-, k+, j-, j+, i-, i+)``.

    Returns
    -------
    Roi

    Raises
    ------
    InputError
        If the crop holds a NaN or infinite voxel (no threshold or statistic means anything there).
    """
    shape = np.asarray(image.array.shape)  # (nk, nj, ni)
    spacing_kji = np.asarray(image.spacing[::-1], float)
    seeds_ijk = image.lps_to_index(prompt.seeds_lps)
    if prompt.box is not None:
        pts = image.lps_to_index(prompt.box.corners())
        margin = np.full(6, BOX_MARGIN_MM)
    else:
        pts = seeds_ijk
        margin = np.broadcast_to(np.asarray(radius_mm, float), (6,)) if np.ndim(radius_mm) else np.full(6, float(radius_mm))
    pts_kji = pts[:, ::-1]
    lo = np.floor(pts_kji.min(axis=0) - margin[0::2] / spacing_kji).astype(int)
    hi = np.ceil(pts_kji.max(axis=0) + margin[1::2] / spacing_kji).astype(int) + 1
    lo = np.clip(lo, 0, shape)
    hi = np.clip(hi, lo + 1, shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    arr = np.ascontiguousarray(image.array[sl], dtype=np.float32)
    _check_finite(arr, lo, image, prompt.lesion_id)
    seeds = np.clip(np.rint(seeds_ijk[:, ::-1]).astype(int), 0, shape - 1) - lo
    box_mask = None
    if prompt.box is not None:
        kk, jj, ii = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij")
        ijk = np.stack([ii, jj, kk], axis=-1).astype(float)
        box_mask = prompt.box.contains(image.index_to_lps(ijk))
    at_border = np.stack([lo == 0, hi == shape], axis=1)
    return Roi(arr, lo, hi, tuple(spacing_kji), seeds, box_mask, at_border)


def _check_finite(arr: np.ndarray, lo: np.ndarray, image: Volume, lesion_id: str) -> None:
    """Raise :class:`InputError` naming the first NaN / infinite voxel of the crop ``arr`` (whose
    first voxel is ``lo`` (k, j, i) of ``image``), if any."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    k, j, i = (np.argwhere(bad)[0] + lo).tolist()
    n = int(np.count_nonzero(bad))
    name = image.meta.get("source")
    raise InputError(
        f"lesion {lesion_id!r}: the image{f' {name}' if name else ''} has {n} non-finite voxel{'s' if n > 1 else ''} "
        f"(NaN or infinite) near the prompt, the first at voxel (i, j, k) = ({i}, {j}, {k}); no threshold can be "
        "learnt there: reconvert the image (a float file written with NaN for missing data) or mask those voxels "
        "to a finite value")
