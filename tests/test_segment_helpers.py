"""Tiny analytic phantoms for the segmentation tests (a bright ellipsoid in noise),
and a check of the helper itself."""
from __future__ import annotations

import numpy as np

from volumetry.image import Volume


def rotation(axis, angle_deg: float) -> np.ndarray:
    """Rotation matrix about ``axis`` (Rodrigues)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def ellipsoid_phantom(*, shape=(14, 48, 48), spacing=(1.0, 1.0, 3.0), radii=((6.0, 5.0, 7.0),),
                      centres=None, lesion=300.0, background=100.0, noise=15.0, seed=0,
                      direction=np.eye(3), origin=(-20.0, -30.0, 10.0), supersample=3):
    """A noisy image holding bright ellipsoids with exact partial volume.

    Returns
    -------
    image : Volume
    truth : numpy.ndarray (bool, voxels at least half inside)
    true_ml : float (analytic volume)
    centres_lps : numpy.ndarray (n, 3)
    """
    nk, nj, ni = shape
    tmp = Volume(np.zeros(shape, np.float32), spacing, origin, direction)
    if centres is None:
        centres = [tmp.index_to_lps((np.array([ni, nj, nk]) - 1) / 2.0 + 0.23)]
    centres = np.asarray(centres, float).reshape(-1, 3)
    off = (np.arange(supersample) + 0.5) / supersample - 0.5
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    frac = np.zeros(shape)
    for a in off:
        for b in off:
            for c in off:
                pts = tmp.index_to_lps(np.stack([ii + a, jj + b, kk + c], -1).astype(float))
                inside = np.zeros(shape, bool)
                for ctr, r in zip(centres, radii):
                    inside |= (((pts - ctr) / np.asarray(r)) ** 2).sum(-1) <= 1
                frac += inside
    frac /= supersample ** 3
    rng = np.random.default_rng(seed)
    img = background + (lesion - background) * frac + rng.normal(0, noise, shape)
    true_ml = sum(4 / 3 * np.pi * np.prod(r) for r in radii) / 1000.0
    return Volume(img.astype(np.float32), spacing, origin, direction), frac >= 0.5, true_ml, centres


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_helper_partial_volume_is_unbiased():
    image, truth, true_ml, _ = ellipsoid_phantom(noise=0.0, spacing=(1.0, 1.0, 1.0), shape=(30, 30, 30))
    # with no noise, the mean excess intensity integrates to the analytic volume
    frac_ml = ((image.array - 100.0) / 200.0).sum() * image.voxel_volume_mm3 / 1000
    assert abs(frac_ml - true_ml) / true_ml < 0.01
