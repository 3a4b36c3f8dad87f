"""Building blocks shared by the segmentation methods (all work inside a crop)."""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

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


def smooth(a: np.ndarray, spacing_kji, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing with ``sigma_mm`` (mm) per axis; axes whose voxels are
    coarser than 2 × sigma are left alone (no blur across thick slices)."""
    if sigma_mm <= 0:
        return a
    sig = [sigma_mm / s if s <= 2 * sigma_mm else 0.0 for s in spacing_kji]
    if not any(sig):
        return a
    return ndimage.gaussian_filter(a, sig, mode="nearest", truncate=3.0)


def noise_sigma(a: np.ndarray) -> float:
    """Robust noise standard deviation from first differences along the finest
    axes (median absolute difference / (0.6745·√2)); edges barely move it."""
    ests = []
    pad = padding_mask(a)
    for ax in (1, 2):
        if a.shape[ax] > 1:
            d = np.diff(a, axis=ax)
            d = d[~(pad.take(range(1, a.shape[ax]), axis=ax) | pad.take(range(a.shape[ax] - 1), axis=ax))]
            if d.size < 10:
                continue
            ests.append(np.median(np.abs(d - np.median(d))) / (0.6745 * np.sqrt(2)))
    s = float(np.median(ests)) if ests else float(np.std(a))
    return max(s, 1e-6 * (float(np.ptp(a)) or 1.0))


#: A crop value shared by more than this fraction of voxels at the crop's minimum is
#: padding (skull-stripped or masked background), left out of intensity statistics.
PADDING_FRACTION = 0.01


def padding_mask(a: np.ndarray) -> np.ndarray:
    """Voxels at the crop's minimum when that exact value is frequent (padding / masked background)."""
    lo = a.min()
    pad = a == lo
    if pad.sum() > PADDING_FRACTION * a.size:
        return pad
    return np.zeros(a.shape, dtype=bool)


def seed_value(a: np.ndarray, seeds: np.ndarray, spacing_kji, radius_mm: float) -> float:
    """Median intensity in small balls around the seeds (see :func:`seed_balls`)."""
    balls = seed_balls(a.shape, seeds, spacing_kji, radius_mm)
    return float(np.median(np.concatenate([a[tuple(b.T)] for b in balls])))


def connected_to_seeds(binary: np.ndarray, seeds: np.ndarray, structure=CONN6,
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


def seed_balls(shape, seeds: np.ndarray, spacing_kji, radius_mm: float) -> list[np.ndarray]:
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
    Bridges thin dark septa (about 2 × radius thick) inside a lesion."""
    if radius_mm <= 0:
        return binary
    el = ball(radius_mm, spacing_kji)
    if el.sum() <= 1:
        return binary
    pad = [(s // 2, s // 2) for s in el.shape]
    sl = bbox(binary)
    if sl is None:
        return binary
    sub = np.pad(binary[sl], pad)
    closed = ndimage.binary_closing(sub, el)[tuple(slice(a, -b if b else None) for a, b in pad)]
    out = binary.copy()
    out[sl] |= closed
    return out


def bbox(mask: np.ndarray, pad: np.ndarray | int = 0) -> tuple[slice, ...] | None:
    """Slices of the bounding box of ``mask`` grown by ``pad`` voxels (clipped)."""
    idx = np.nonzero(mask.any(axis=(1, 2)))[0], np.nonzero(mask.any(axis=(0, 2)))[0], np.nonzero(mask.any(axis=(0, 1)))[0]
    if any(len(i) == 0 for i in idx):
        return None
    pad = np.broadcast_to(np.asarray(pad, int), (3,))
    return tuple(slice(max(int(i[0]) - p, 0), min(int(i[-1]) + p + 1, n)) for i, p, n in zip(idx, pad, mask.shape))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill 3D holes, then 2D holes slice by slice along k (cystic cores open to a thick slice)."""
    sl = bbox(mask, 1)
    if sl is None:
        return mask
    out = mask.copy()
    sub = ndimage.binary_fill_holes(mask[sl])
    for k in range(sub.shape[0]):
        sub[k] = ndimage.binary_fill_holes(sub[k])
    out[sl] = sub
    return out


def shell(region: np.ndarray, spacing_kji, width_mm: float, allowed: np.ndarray | None = None,
          gap_mm: float = 0.0) -> np.ndarray:
    """Background shell: voxels within ``gap_mm + width_mm`` of the region but farther
    than ``gap_mm``, after a one-voxel gap (partial-volume voxels), optionally limited
    to ``allowed``."""
    sp = np.asarray(spacing_kji, float)
    pad = np.ceil((width_mm + gap_mm) / sp).astype(int) + 2
    sl = bbox(region, pad)
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


def core(region: np.ndarray, min_voxels: int = 20) -> np.ndarray:
    """The region eroded by one voxel, or the region itself if that leaves too little."""
    sl = bbox(region, 1)
    if sl is None:
        return region
    er = np.zeros_like(region)
    er[sl] = ndimage.binary_erosion(region[sl], CONN6)
    return er if er.sum() >= min_voxels else region
