"""Audit of segmentation: hostile but plausible prompts and images that were already handled right,
each asserted against its known truth (or its failure reason / flag)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from volumetry.errors import PromptError
from volumetry.image import Volume
from volumetry.segment import Prompt, segment

from test_segment_helpers import dice, ellipsoid_phantom, rotation

METHODS = ["region_growing", "threshold", "levelset"]


def _like(array, image):
    return Volume(np.asarray(array), image.spacing, image.origin, image.direction)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("centre_ijk", [(20.2, 20.1, 0.0), (20.2, 20.1, 19.0), (0.0, 0.0, 0.0), (39.0, 39.0, 19.0)])
def test_a_lesion_cut_by_the_first_or_last_slice_or_a_corner_is_flagged(method, centre_ijk):
    grid = Volume(np.zeros((20, 40, 40), np.float32), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    image, truth, true_ml, _ = ellipsoid_phantom(shape=(20, 40, 40), spacing=(1.0, 1.0, 2.0), origin=(0, 0, 0),
                                                 centres=[grid.index_to_lps(np.array(centre_ijk))],
                                                 radii=((5.0, 5.0, 6.0),))
    res = segment(image, Prompt.from_points(centre_ijk, "voxel", image), method=method)
    assert res.ok and dice(res.mask.array, truth) > 0.97
    assert res.volume_ml < 0.65 * true_ml  # the part inside the image only ...
    assert "touches-image-border" in res.flags and res.qc["touches_border"] == 1  # ... and said so


@pytest.mark.parametrize("method", METHODS)
def test_seeds_on_background_padding_air_and_the_outer_half_voxel_fail_with_a_reason(method):
    image, *_ = ellipsoid_phantom(shape=(20, 40, 40), spacing=(1.0, 1.0, 2.0), origin=(0, 0, 0))
    padded = image.array.copy()
    padded[:, :, :8] = 0.0
    air = image.array.copy()
    air[:, :, :8] = np.random.default_rng(1).normal(5.0, 2.0, air[:, :, :8].shape)
    for img, ijk in [(image, (0, 0, 0)), (image, (-0.49, -0.49, -0.49)), (image, (39.49, 39.49, 19.49)),
                     (_like(padded, image), (3, 20, 10)), (_like(air, image), (3, 20, 10))]:
        res = segment(img, Prompt.from_points(ijk, "voxel", img), method=method)
        assert res.status == "failed" and res.mask is None and res.volume_ml is None
        assert "not on lesion-like tissue" in res.reason or "below the threshold" in res.reason, res.reason
    with pytest.raises(PromptError, match="lies outside the image"):
        Prompt.from_points((-0.51, 0, 0), "voxel", image)


@pytest.mark.parametrize("direction", [np.diag([-1.0, 1.0, -1.0]) @ rotation((1, 2, 3), 25),  # flipped, oblique
                                       np.diag([1.0, 1.0, -1.0]) @ rotation((1, 0, 1), 15)])  # left-handed
@pytest.mark.parametrize("box", [False, True])
def test_ras_lps_and_voxel_seeds_on_a_flipped_oblique_grid_give_the_same_mask(direction, box):
    image, truth, true_ml, c = ellipsoid_phantom(shape=(20, 40, 40), spacing=(1.0, 1.2, 2.0), direction=direction)
    ras = c * [-1, -1, 1]
    ijk = image.lps_to_index(c[0])
    lps = segment(image, Prompt.from_points(c, "lps", image, box=[c[0] - 10, c[0] + 10] if box else None))
    ras = segment(image, Prompt.from_points(ras, "ras", image, box=[ras[0] - 10, ras[0] + 10] if box else None))
    vox = segment(image, Prompt.from_points(ijk, "voxel", image))
    assert lps.ok and dice(lps.mask.array, truth) > 0.98 and abs(lps.volume_ml / true_ml - 1) < 0.03
    assert np.array_equal(lps.mask.array, ras.mask.array) and np.array_equal(lps.mask.array, vox.mask.array)


@pytest.mark.parametrize("method", METHODS)
def test_very_anisotropic_voxels(method):
    image, truth, true_ml, c = ellipsoid_phantom(shape=(8, 100, 100), spacing=(0.4, 0.4, 8.0),
                                                 radii=((8.0, 7.0, 12.0),))
    res = segment(image, Prompt.from_points(c, "lps", image), method=method)
    assert res.ok and dice(res.mask.array, truth) > 0.95 and abs(res.volume_ml / true_ml - 1) < 0.1
    assert res.flags == []


@pytest.mark.parametrize("method", METHODS)
def test_two_seeds_in_two_lesions_give_both_and_one_seed_gives_one(method):
    image, truth, true_ml, c = ellipsoid_phantom(shape=(20, 50, 50), spacing=(1.0, 1.0, 1.0),
                                                 radii=((5, 5, 5), (4, 4, 4)), centres=[(-10, -20, 20), (8, 0, 20)])
    both = segment(image, Prompt.from_points(c, "lps", image), method=method)
    assert both.ok and both.qc["n_components"] == 2 and "multiple-components" in both.flags
    assert dice(both.mask.array, truth) > (0.85 if method == "levelset" else 0.95)
    one = segment(image, Prompt.from_points(c[:1], "lps", image), method=method)
    lab, _ = ndimage.label(truth)
    first = lab == lab[tuple(np.rint(image.lps_to_index(c[0])[::-1]).astype(int))]
    assert one.ok and one.qc["n_components"] == 1 and one.flags == []
    assert dice(one.mask.array, first) > (0.85 if method == "levelset" else 0.95)


def test_a_lesion_of_a_few_voxels_is_found_and_flagged():
    image, truth, true_ml, c = ellipsoid_phantom(shape=(20, 30, 30), spacing=(1.0, 1.0, 1.0),
                                                 radii=((1.0, 1.0, 1.0),), noise=10.0)
    res = segment(image, Prompt.from_points(c, "lps", image))
    assert res.ok and np.array_equal(res.mask.array, truth) and "few-voxels" in res.flags


@pytest.mark.parametrize("transform", ["offset", "zscore", "uint16"])
def test_negative_and_high_uint16_intensities_give_the_same_lesion(transform):
    image, truth, true_ml, c = ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40))
    a = {"offset": lambda x: x - 1000.0, "zscore": lambda x: (x - 100.0) / 15.0,
         "uint16": lambda x: np.clip(x * 100 + 35000, 0, 65535).astype(np.uint16)}[transform](image.array)
    assert transform != "uint16" or a.max() == 65535
    for method in METHODS:
        res = segment(_like(a, image), Prompt.from_points(c, "lps", image), method=method)
        assert res.ok and dice(res.mask.array, truth) > 0.94, (method, res.reason)


def test_region_growing_on_an_image_that_is_all_lesion_or_uniform_fails():
    image, *_, c = ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40))
    bright = _like((300 + np.random.default_rng(0).normal(0, 15, image.array.shape)).astype(np.float32), image)
    flat = _like(np.full(image.array.shape, 100.0, np.float32), image)
    for img in (bright, flat):
        res = segment(img, Prompt.from_points(c, "lps", img))
        assert res.status == "failed" and res.volume_ml is None and res.reason


def test_a_lesion_larger_than_the_largest_search_region_is_flagged_or_fails():
    image, truth, true_ml, c = ellipsoid_phantom(shape=(20, 120, 120), spacing=(1.0, 1.0, 1.0),
                                                 radii=((50, 50, 8),), supersample=1)
    params = {"max_search_radius_mm": 40.0, "search_radius_mm": 10.0}
    rg = segment(image, Prompt.from_points(c, "lps", image), params=params)
    assert rg.ok and rg.volume_ml < 0.95 * true_ml and "touches-search-limit" in rg.flags
    th = segment(image, Prompt.from_points(c, "lps", image), method="threshold", params=params)
    assert th.status == "failed" and "leaks out of the search region" in th.reason


def test_a_flat_box_is_a_prompt_error():
    image, *_, c = ellipsoid_phantom()
    ijk = image.lps_to_index(c[0])
    for corners in ([ijk, ijk], [ijk - [5, 5, 0], ijk + [5, 5, 0]]):
        with pytest.raises(PromptError, match="flat along an axis"):
            Prompt.from_points(ijk, "voxel", image, box=corners)
