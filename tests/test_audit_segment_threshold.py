"""Audit of segmentation: the threshold method on crops where Otsu has nothing to split.

A uniform crop raised a bare IndexError; a crop that is all lesion, or a tiny lesion in a search
region reaching the image border on every side, gave a mask of the whole crop (31.3 mL, 10.6 mL for
a 0.004 mL lesion) flagged only touches-image-border: Otsu split the noise and the region above it
percolated. Now both fail with a reason, as region_growing does."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.image import Volume
from volumetry.segment import Prompt, segment

from test_segment_helpers import dice, ellipsoid_phantom


def _image(array, like):
    return Volume(np.asarray(array, np.float32), like.spacing, like.origin, like.direction)


@pytest.fixture(scope="module")
def phantom():
    return ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40))


@pytest.mark.parametrize("method", ["threshold", "levelset"])
def test_a_uniform_image_fails_with_a_reason(phantom, method):
    image, *_, centres = phantom
    flat = _image(np.full(image.array.shape, 100.0), image)
    res = segment(flat, Prompt.from_points(centres, "lps", flat), method=method,
                  params={"init": "threshold"} if method == "levelset" else None)
    assert res.status == "failed" and res.mask is None and res.volume_ml is None
    assert "uniform" in res.reason and "100" in res.reason


@pytest.mark.parametrize("box", [False, True])
def test_an_image_that_is_all_lesion_fails_not_a_whole_crop_mask(phantom, box):
    image, *_, centres = phantom
    rng = np.random.default_rng(0)
    bright = _image(300 + rng.normal(0, 15, image.array.shape), image)
    corners = [centres[0] - 8, centres[0] + 8] if box else None
    res = segment(bright, Prompt.from_points(centres, "lps", bright, box=corners), method="threshold")
    assert res.status == "failed" and res.volume_ml is None
    assert "noise SD brighter" in res.reason and "not a lesion" in res.reason, res.reason
    # region_growing already failed there
    assert segment(bright, Prompt.from_points(centres, "lps", bright, box=corners)).status == "failed"


def test_a_tiny_lesion_in_an_image_smaller_than_the_search_region_is_not_a_whole_image_leak():
    image, truth, true_ml, centres = ellipsoid_phantom(shape=(20, 30, 30), spacing=(1.0, 1.0, 1.0),
                                                       radii=((1.0, 1.0, 1.0),), noise=10.0)
    res = segment(image, Prompt.from_points(centres, "lps", image), method="threshold")
    assert res.status == "failed" and res.volume_ml is None, (res.volume_ml, true_ml)
    # region_growing finds its 4 voxels (flagged few-voxels)
    rg = segment(image, Prompt.from_points(centres, "lps", image))
    assert rg.ok and dice(rg.mask.array, truth) == 1.0 and "few-voxels" in rg.flags


def test_threshold_still_finds_a_clear_lesion_with_and_without_box(phantom):
    image, truth, true_ml, centres = phantom
    for corners in (None, [centres[0] - 10, centres[0] + 10]):
        res = segment(image, Prompt.from_points(centres, "lps", image, box=corners), method="threshold")
        assert res.ok and dice(res.mask.array, truth) > 0.97 and abs(res.volume_ml / true_ml - 1) < 0.04


@pytest.mark.parametrize("method", ["region_growing", "threshold", "levelset"])
def test_a_box_inside_a_large_lesion_fails_for_every_method(method):
    image, truth, true_ml, centres = ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(40, 60, 60),
                                                       radii=((15.0, 15.0, 15.0),))
    prompt = Prompt.from_points(centres, "lps", image, box=[centres[0] - 4, centres[0] + 4])
    res = segment(image, prompt, method=method)
    # threshold returned the box's thresholded noise (flagged outside-box only) before
    assert res.status == "failed" and res.volume_ml is None and "lesion" in res.reason


def test_threshold_records_its_contrast_and_flags_a_low_one():
    from volumetry.segment.common import noise_sigma
    from volumetry.segment.roi import make_roi

    # lesion 60 above a background with noise SD 20: about 3 noise SD, above threshold's minimum (2)
    # and below the low-contrast flag's 4 (before: no contrast_sd, so threshold never flagged it)
    image, truth, true_ml, centres = ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40),
                                                       radii=((8.0, 8.0, 8.0),), lesion=160.0, noise=20.0)
    prompt = Prompt.from_points(centres, "lps", image, box=[centres[0] - 11, centres[0] + 11])
    res = segment(image, prompt, method="threshold")
    assert res.ok, res.reason
    roi = make_roi(image, prompt, 0.0)
    assert res.qc["noise_sd"] == noise_sigma(roi.array)
    assert res.qc["contrast_sd"] == (res.qc["lesion_median"] - res.qc["background_median"]) / res.qc["noise_sd"]
    assert 2.0 < res.qc["contrast_sd"] < 4.0 and "low-contrast" in res.flags
    # a clear lesion: about 13 noise SD, not flagged
    image, truth, true_ml, centres = ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40))
    clear = segment(image, Prompt.from_points(centres, "lps", image), method="threshold")
    assert clear.ok and clear.qc["contrast_sd"] > 8 and "low-contrast" not in clear.flags
