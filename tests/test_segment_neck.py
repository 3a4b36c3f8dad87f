"""The narrow-neck QC: bodies joined only through a neck thinner than 3 voxels are counted apart."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.segment.qc import NECK_FRACTION, flags_from_qc, neck_element, neck_fraction


def ellipsoid(shape, centre, radii_vox):
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return ((kk - centre[0]) / radii_vox[0]) ** 2 + ((jj - centre[1]) / radii_vox[1]) ** 2 + \
        ((ii - centre[2]) / radii_vox[2]) ** 2 <= 1


def test_element_is_in_plane_on_thick_slices_and_3d_when_near_isotropic():
    assert neck_element((4.0, 2.0, 2.0)).shape == (1, 3, 3)
    assert neck_element((2.0, 2.0, 4.5)).shape == (3, 3, 1)  # coarsest axis last (e.g. a sagittal grid)
    assert neck_element((1.2, 1.0, 1.0)).shape == (3, 3, 3)


def test_one_ellipsoid_has_no_neck():
    m = ellipsoid((20, 40, 40), (10, 20, 20), (6, 12, 9))
    assert neck_fraction(m, (4.0, 2.0, 2.0)) == 0.0
    assert neck_fraction(m, (1.0, 1.0, 1.0)) == 0.0


def test_two_balls_joined_by_a_thin_bridge_are_two_bodies():
    shape = (40, 40, 60)
    big = ellipsoid(shape, (20, 20, 18), (10, 10, 10))
    small = ellipsoid(shape, (20, 20, 44), (6, 6, 6))
    m = big | small
    m[20, 20, 18:45] = True  # a one-voxel bridge
    frac = neck_fraction(m, (1.0, 1.0, 1.0))
    # the opening keeps each ball less its rim: the small one's share of the two
    expected = small.sum() / (big.sum() + small.sum())
    assert frac == pytest.approx(expected, rel=0.15)
    assert frac > NECK_FRACTION and "narrow-neck" in flags_from_qc({"neck_fraction": frac})
    # a bridge 3 voxels wide is not a neck
    m[19:22, 19:22, 18:45] = True
    assert neck_fraction(m, (1.0, 1.0, 1.0)) == 0.0


def test_bodies_joined_through_one_thin_slice_on_thick_slices():
    # per-slice areas as in a follow-up merged with its neighbour: ... 70, 44, 4 | 5, 23, 23
    shape = (12, 30, 30)
    m = np.zeros(shape, bool)
    m[0:6] = ellipsoid((6, 30, 30), (2.5, 15, 15), (3.2, 6, 6))
    m[6, 14:16, 14:16] = True  # 4 voxels
    m[7:10] = ellipsoid((3, 30, 30), (1, 15, 15), (1.8, 3.5, 3.5))
    frac = neck_fraction(m, (4.0, 2.0, 2.0))
    assert 0.05 < frac < 0.5
    # the same mask without the thin slice's voxels is two components (and the same bodies)
    assert neck_fraction(np.where(np.arange(12)[:, None, None] == 6, False, m), (4.0, 2.0, 2.0)) == pytest.approx(frac)


def test_a_small_spur_below_the_fraction_is_not_flagged():
    shape = (40, 40, 60)
    m = ellipsoid(shape, (20, 20, 20), (12, 12, 12))
    spur = ellipsoid(shape, (20, 20, 38), (2.5, 2.5, 2.5))  # a knob holding a 3x3x3 block, on a one-voxel stalk
    m |= spur
    m[20, 20, 30:37] = True
    frac = neck_fraction(m, (1.0, 1.0, 1.0))
    assert 0 < frac < NECK_FRACTION
    assert "narrow-neck" not in flags_from_qc({"neck_fraction": frac})


def test_thin_mask_and_empty_mask():
    m = np.zeros((5, 20, 20), bool)
    assert neck_fraction(m, (1.0, 1.0, 1.0)) == 0.0
    m[2, 5:15, 10] = True  # a line: nothing survives the opening
    assert neck_fraction(m, (1.0, 1.0, 1.0)) == 0.0
