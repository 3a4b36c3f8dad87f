"""narrow-neck on thick slices: two lesions stacked across the slices and merged through the
slice between them (their caps touch over a wide area, so no in-plane neck shows) are flagged
by the slice whose area drops under half the peak area on both sides; single lesions are not."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.phantoms.lesion import PhantomSpec, make_lesion_phantom
from volumetry.segment.qc import NECK_FRACTION, WAIST_RATIO, flags_from_qc, neck_fraction

SS = 4  # sub-samples per voxel side


def _occupancy(balls, shape, spacing_kji):
    """Partial-volume occupancy (0..1) of a union of balls ((centre k, j, i mm), radius mm) on a grid."""
    axes = [((np.arange(n * SS) + 0.5) / SS) * s for n, s in zip(shape, spacing_kji)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    inside = np.zeros(z.shape, bool)
    for (cz, cy, cx), r in balls:
        inside |= (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r ** 2
    return inside.reshape(shape[0], SS, shape[1], SS, shape[2], SS).mean(axis=(1, 3, 5))


@pytest.mark.parametrize("spacing", [(4.0, 0.7, 0.7), (3.0, 1.0, 1.0)])
def test_lesions_stacked_across_slices_merged_through_one_slice_are_flagged(spacing):
    shape = (int(48 / spacing[0]), int(36 / spacing[1]), int(36 / spacing[2]))
    big, small = ((14.0, 18.0, 18.0), 10.0), ((14.0 + 10 + 6 + 1, 18.0, 18.0), 6.0)  # 1 mm apart
    occ = _occupancy([big, small], shape, spacing)
    mask = occ > 0.35  # a threshold that joins them through the slice straddling the gap
    from scipy import ndimage

    assert ndimage.label(mask, np.ones((3, 3, 3)))[1] == 1  # one body: merged
    frac = neck_fraction(mask, spacing)
    share = (occ * (_occupancy([small], shape, spacing) > 0)).sum() / occ.sum()  # the small lesion's share
    assert frac > NECK_FRACTION and "narrow-neck" in flags_from_qc({"neck_fraction": frac})
    assert frac == pytest.approx(share, abs=0.08)


def test_a_waist_not_deep_enough_is_not_a_neck():
    # an hourglass whose narrowest slice keeps more than WAIST_RATIO of the smaller peak
    shape, spacing = (10, 40, 40), (4.0, 1.0, 1.0)
    jj, ii = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    radii = [5, 9, 12, 12, 10, 9, 10, 11, 9, 5]  # waist 9 vs peaks 12 and 11: area ratio (9/11)^2 = 0.67
    mask = np.stack([(jj - 20) ** 2 + (ii - 20) ** 2 <= r * r for r in radii])
    assert (9 / 11) ** 2 > WAIST_RATIO
    assert neck_fraction(mask, spacing) == 0.0


@pytest.mark.parametrize("shape,grid,seed", [
    ("infiltrative", dict(pixel_spacing=(0.7, 0.7), slice_thickness=4.0), 1),  # the audit's lowest waist, 0.92
    ("lobulated", dict(pixel_spacing=(2.0, 2.0), slice_thickness=6.0), 0),
    ("septated", dict(pixel_spacing=(0.8, 0.8), slice_thickness=3.0, plane="coronal"), 2),
    ("multifocal", dict(pixel_spacing=(1.0, 1.0), slice_thickness=3.0, plane="oblique"), 0),
])
def test_single_lesion_phantoms_on_thick_slices_are_not_flagged(shape, grid, seed):
    ph = make_lesion_phantom(PhantomSpec(shape=shape, volume_ml=20.0, seed=seed, **grid))
    mask = np.asarray(ph.mask.array, bool)
    if shape == "multifocal":  # each focus alone is one lesion
        labels = np.asarray(ph.labels.array)
        for n in np.unique(labels[labels > 0]):
            assert neck_fraction(labels == n, ph.mask.spacing[::-1]) <= NECK_FRACTION
    else:
        assert neck_fraction(mask, ph.mask.spacing[::-1]) <= NECK_FRACTION


def test_waist_fraction_of_slice_areas():
    from volumetry.segment.qc import waist_fraction

    def stack(areas):
        m = np.zeros((len(areas), 1, max(areas)), bool)
        for k, a in enumerate(areas):
            m[k, 0, :a] = True
        return m

    assert waist_fraction(stack([4, 9, 2, 7, 3]), 0) == pytest.approx(10 / 25)  # the 2 under half of 9 and 7
    # 4 is under half of 9 and 9 (9 of 25 before it); 1 is not under half of the 2 after it
    assert waist_fraction(stack([9, 4, 9, 1, 2]), 0) == pytest.approx(9 / 25)
    assert waist_fraction(stack([3, 9, 12, 9, 3]), 0) == 0.0  # one body tapering both ways
    assert waist_fraction(stack([5, 0, 5]), 0) == pytest.approx(0.5)  # an empty slice between two bodies
    assert waist_fraction(stack([5, 5]), 0) == 0.0
