"""Prompts: spaces, conversions, and the messages bad prompts give."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.errors import PromptError
from volumetry.image import Volume
from volumetry.segment import Prompt, segment
from volumetry.segment.prompts import image_extent

from test_segment_helpers import ellipsoid_phantom, rotation


@pytest.fixture(scope="module")
def oblique_image():
    d = rotation([1, 2, 3], 25)
    return Volume(np.zeros((10, 20, 30), np.float32), (0.8, 0.9, 3.0), (12.0, -40.0, 7.5), d)


def test_the_three_spaces_give_the_same_lps_point(oblique_image):
    ijk = np.array([12.0, 7.0, 4.0])
    lps = oblique_image.index_to_lps(ijk)
    ras = lps * [-1, -1, 1]
    p_vox = Prompt.from_points(ijk, "voxel", oblique_image)
    p_lps = Prompt.from_points(lps, "LPS", oblique_image)
    p_ras = Prompt.from_points([ras], "ras", oblique_image)
    for p in (p_vox, p_lps, p_ras):
        np.testing.assert_allclose(p.seeds_lps[0], lps, atol=1e-9)
    np.testing.assert_array_equal(p_vox.seeds_index(oblique_image)[0], ijk.astype(int))


def test_voxel_box_is_a_parallelepiped_along_the_grid(oblique_image):
    p = Prompt.from_points([5, 5, 5], "voxel", oblique_image, box=[[2, 3, 1], [10, 12, 8]])
    inside = [oblique_image.index_to_lps(np.array(x, float)) for x in ([2, 3, 1], [10, 12, 8], [6, 7, 4])]
    outside = [oblique_image.index_to_lps(np.array(x, float)) for x in ([1, 3, 1], [10, 13, 8], [6, 7, 9])]
    assert p.box.contains(np.array(inside)).all()
    assert not p.box.contains(np.array(outside)).any()


def test_seed_outside_the_image_names_seed_extent_and_fix(oblique_image):
    lo, hi = image_extent(oblique_image, "voxel")
    np.testing.assert_array_equal(hi, [29, 19, 9])
    with pytest.raises(PromptError, match=r"seed 1 at \(35\.0, 5\.0, 5\.0\) \(voxel i, j, k\) lies outside the image, "
                                          r"whose extent in VOXEL is \(0\.0, 0\.0, 0\.0\) to \(29\.0, 19\.0, 9\.0\).*"
                                          r"--seed-space"):
        Prompt.from_points([[5, 5, 5], [35, 5, 5]][1:], "voxel", oblique_image)


def test_seed_outside_in_ras_is_reported_in_ras():
    image = Volume(np.zeros((10, 10, 10), np.float32), (1, 1, 1), (0, 0, 0), np.eye(3))
    # RAS (5, 5, 5) is LPS (-5, -5, 5): outside an image spanning LPS 0..9
    with pytest.raises(PromptError, match=r"\(5\.0, 5\.0, 5\.0\) \(ras mm\).*extent in RAS is \(-9\.0, -9\.0, 0\.0\) "
                                          r"to \(0\.0, 0\.0, 9\.0\)"):
        Prompt.from_points([5, 5, 5], "ras", image)


def test_space_must_be_stated():
    image = Volume(np.zeros((4, 4, 4), np.float32), (1, 1, 1), (0, 0, 0), np.eye(3))
    with pytest.raises(PromptError, match="unknown coordinate space 'mm'.*lps, ras, voxel"):
        Prompt.from_points([1, 1, 1], "mm", image)
    with pytest.raises(PromptError, match="unknown coordinate space None"):
        Prompt.from_points([1, 1, 1], None, image)


def test_malformed_points_and_boxes():
    image = Volume(np.zeros((4, 4, 4), np.float32), (1, 1, 1), (0, 0, 0), np.eye(3))
    with pytest.raises(PromptError, match="exactly 3 coordinates"):
        Prompt.from_points([1, 1], "lps", image)
    with pytest.raises(PromptError, match="flat along an axis"):
        Prompt.from_points([1, 1, 1], "lps", image, box=[[0, 0, 1], [3, 3, 1]])
    with pytest.raises(PromptError, match=r"seed 1 at \(1\.0, 1\.0, 1\.0\) \(LPS mm\) lies outside its box"):
        Prompt.from_points([1, 1, 1], "lps", image, box=[[2, 2, 2], [3, 3, 3]])


def test_seed_outside_another_image_is_caught_by_segment():
    image, _, _, centres = ellipsoid_phantom(noise=5.0)
    prompt = Prompt.from_points(centres, "lps", image)
    other = Volume(np.zeros((5, 5, 5), np.float32), (1, 1, 1), (500, 500, 500), np.eye(3))
    with pytest.raises(PromptError, match="lies outside the image"):
        segment(other, prompt)
