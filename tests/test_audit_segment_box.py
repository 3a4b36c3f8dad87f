"""Audit of segmentation: a box that cuts the lesion is reported by every method (qc
``fraction_outside_box`` and flag ``outside-box``), not only by ``threshold``. region_growing and
levelset used to return the cut mask (0.514 mL for a 0.880 mL lesion) with fraction 0.0 and no flag."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.segment import Prompt, segment

from test_segment_helpers import dice, ellipsoid_phantom


@pytest.fixture(scope="module")
def phantom():
    return ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40))


def _box(centre, lo, hi):
    return [np.asarray(centre) + lo, np.asarray(centre) + hi]


@pytest.mark.parametrize("method", ["region_growing", "threshold", "levelset"])
def test_a_box_cutting_the_lesion_in_half_is_flagged(phantom, method):
    image, truth, true_ml, centres = phantom
    ijk = image.lps_to_index(centres[0])
    # the box ends half a voxel past the centre along i: about half the lesion lies outside it
    prompt = Prompt.from_points(ijk, "voxel", image, box=_box(ijk, [-10, -10, -10], [0.5, 10, 10]))
    res = segment(image, prompt, method=method)
    assert res.ok and res.volume_ml < 0.7 * true_ml
    assert 0.3 < res.qc["fraction_outside_box"] < 0.6, res.qc["fraction_outside_box"]
    assert "outside-box" in res.flags


@pytest.mark.parametrize("method", ["region_growing", "threshold", "levelset"])
def test_a_box_holding_the_lesion_is_not_flagged_and_its_mask_is_unchanged(phantom, method):
    image, truth, true_ml, centres = phantom
    ijk = image.lps_to_index(centres[0])
    box = _box(ijk, [-10, -10, -10], [10, 10, 10])
    res = segment(image, Prompt.from_points(ijk, "voxel", image, box=box), method=method)
    assert res.ok and res.qc["fraction_outside_box"] == 0.0 and "outside-box" not in res.flags
    assert dice(res.mask.array, truth) > 0.94
    # an inverted box (corners swapped) is the same box
    inv = segment(image, Prompt.from_points(ijk, "voxel", image, box=box[::-1]), method=method)
    assert np.array_equal(inv.mask.array, res.mask.array)


def test_a_box_reaching_out_of_the_image_is_clipped_to_it(phantom):
    image, truth, true_ml, centres = phantom
    ijk = image.lps_to_index(centres[0])
    inside = segment(image, Prompt.from_points(ijk, "voxel", image, box=_box(ijk, [-10, -10, -10], [10, 10, 10])))
    out = segment(image, Prompt.from_points(ijk, "voxel", image, box=_box(ijk, [-10, -10, -10], [100, 100, 100])))
    assert out.ok and np.array_equal(out.mask.array, inside.mask.array) and out.flags == []
