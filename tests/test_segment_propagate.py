"""Follow-up propagation: registration accuracy, carried seeds, complete response."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.image import Volume
from volumetry.segment import Prompt, propagate, segment

from test_segment_helpers import rotation

#: (centre mm in body coordinates, radii mm, intensity) of the anatomy, drawn in order
ANATOMY = [
    ((0.0, 0.0, 0.0), (55.0, 42.0, 80.0), 300.0),    # body / muscle
    ((-18.0, 8.0, 0.0), (9.0, 9.0, 90.0), 40.0),     # bone
    ((20.0, -15.0, 0.0), (4.0, 4.0, 90.0), 520.0),   # vein
    ((-30.0, -20.0, 10.0), (10.0, 6.0, 14.0), 110.0),  # fat pad
]
LESION_CENTRE = np.array([12.0, 14.0, 4.0])
LESION_RADII = np.array([11.0, 9.0, 13.0])


def scan(rot, trans, lesion_factor=1.0, seed=0, shape=(22, 56, 60), spacing=(2.0, 2.0, 4.0)):
    """Render the body posed at ``x = rot @ b + trans`` (LPS mm) on an axial grid."""
    nk, nj, ni = shape
    origin = -np.array([ni - 1, nj - 1, nk - 1]) * np.array(spacing) / 2
    grid = Volume(np.zeros(shape, np.float32), spacing, origin, np.eye(3))
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    img = np.zeros(shape)
    frac = np.zeros(shape)
    offs = [-0.25, 0.25]
    for a in offs:
        for b in offs:
            for c in offs:
                pts = grid.index_to_lps(np.stack([ii + a, jj + b, kk + c], -1).astype(float))
                body = (pts - trans) @ rot
                sub = np.zeros(shape)
                for ctr, r, val in ANATOMY:
                    sub = np.where((((body - ctr) / r) ** 2).sum(-1) <= 1, val, sub)
                img += sub / 8
                if lesion_factor > 0:
                    r = LESION_RADII * lesion_factor ** (1 / 3)
                    frac += ((((body - LESION_CENTRE) / r) ** 2).sum(-1) <= 1) / 8
    img = img * (1 - frac) + 1000.0 * frac
    img += np.random.default_rng(seed).normal(0, 25.0, shape)
    true_ml = 4 / 3 * np.pi * np.prod(LESION_RADII) * lesion_factor / 1000
    return grid.with_array(img.astype(np.float32)), true_ml


@pytest.fixture(scope="module")
def baseline():
    return scan(np.eye(3), np.zeros(3))


def test_followup_is_registered_and_segmented_on_its_own_image(baseline):
    base, base_ml = baseline
    rot, trans = rotation([0.3, 1.0, 0.2], 4.0), np.array([6.0, -4.0, 5.0])
    follow, follow_ml = scan(rot, trans, lesion_factor=0.5, seed=1)
    prompt = Prompt.from_points(LESION_CENTRE + [2.0, 0.0, 0.0], "lps", base, lesion_id="L1")
    b = segment(base, prompt)
    fprompt, reg = propagate(base, follow, prompt)
    # the registration maps baseline points to follow-up points: check it at the lesion
    m, c = np.asarray(reg.matrix), np.asarray(reg.fixed_parameters[:3])
    carried = m @ (LESION_CENTRE - c) + c + reg.translation_mm
    assert np.linalg.norm(carried - (rot @ LESION_CENTRE + trans)) < 1.5
    assert reg.final_metric < reg.initial_metric and reg.flags == []
    assert fprompt.lesion_id == "L1" and fprompt.source["propagated"]
    f = segment(follow, fprompt)
    assert b.ok and f.ok, f.reason
    assert abs(f.volume_ml / follow_ml - 1) < 0.05
    pct = 100 * (f.volume_ml / b.volume_ml - 1)
    assert abs(pct - (-50.0)) < 4.0


def test_propagation_reproduces(baseline):
    base, _ = baseline
    follow, _ = scan(rotation([1, 0, 0], 3.0), np.array([3.0, 2.0, -4.0]), seed=2)
    prompt = Prompt.from_points(LESION_CENTRE, "lps", base)
    _, r1 = propagate(base, follow, prompt)
    _, r2 = propagate(base, follow, prompt)
    # fixed sampling seed, one ITK thread: bit-for-bit the same
    assert r1.parameters == r2.parameters


def test_complete_response_is_failed_with_reason_not_zero_ml(baseline):
    base, _ = baseline
    follow, _ = scan(rotation([0, 0, 1], 3.0), np.array([-5.0, 3.0, 2.0]), lesion_factor=0.0, seed=3)
    fprompt, reg = propagate(base, follow, Prompt.from_points(LESION_CENTRE, "lps", base))
    f = segment(follow, fprompt)
    assert f.status == "failed" and f.volume_ml is None and f.mask is None
    assert "lesion-like tissue" in f.reason, f.reason


def test_an_off_centre_click_still_finds_a_lesion_that_shrank_about_its_centre(baseline):
    base, base_ml = baseline
    follow, follow_ml = scan(rotation([0, 1, 0], 2.0), np.array([2.0, 3.0, -2.0]), lesion_factor=0.15, seed=4)
    click = LESION_CENTRE + [9.5, 0.0, 0.0]  # inside the baseline lesion (x radius 11 mm), outside the follow-up's
    prompt = Prompt.from_points(click, "lps", base)
    fprompt, reg = propagate(base, follow, prompt)
    f = segment(follow, fprompt)
    assert f.ok, f.reason
    assert abs(f.volume_ml / follow_ml - 1) < 0.1


def test_lesion_anchor_is_the_centroid_or_the_deepest_voxel_of_a_crescent():
    import sys

    anchors = sys.modules["volumetry.segment.propagate"].lesion_anchors
    shape = (5, 40, 40)
    grid = Volume(np.zeros(shape, np.float32), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    kk, jj, ii = np.indices(shape)
    disc = ((ii - 20) ** 2 + (jj - 20) ** 2 <= 100) & (kk >= 1) & (kk <= 3)
    crescent = disc & ~(((ii - 23) ** 2 + (jj - 20) ** 2) <= 81)
    for mask, inside_centroid in ((disc, True), (crescent, False)):
        ijk_seed = np.argwhere(mask)[0][::-1].astype(float)
        prompt = Prompt.from_points(ijk_seed, "voxel", grid)
        a = grid.lps_to_index(anchors(grid, prompt, grid.with_array(mask))[0])
        k, j, i = np.rint(a[::-1]).astype(int)
        assert mask[k, j, i]
        if inside_centroid:
            np.testing.assert_allclose(a, [20, 20, 2], atol=1e-9)
        else:  # the crescent's centroid lies in its hole: the deepest voxel is used
            assert not crescent[tuple(np.rint(np.argwhere(crescent).mean(axis=0)).astype(int))]


def test_lesion_anchor_refuses_a_baseline_mask_on_another_grid():
    # the mask's voxel indices were read through the baseline's geometry: a mask on another grid
    # (e.g. shifted by a slice) gave an anchor, hence a carried seed, at the wrong place, silently
    import sys

    from volumetry.errors import GeometryMismatchError

    anchors = sys.modules["volumetry.segment.propagate"].lesion_anchors
    shape = (5, 40, 40)
    grid = Volume(np.zeros(shape, np.float32), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    kk, jj, ii = np.indices(shape)
    disc = ((ii - 20) ** 2 + (jj - 20) ** 2 <= 100) & (kk >= 1) & (kk <= 3)
    shifted = Volume(disc, (1.0, 1.0, 2.0), (0.0, 0.0, 2.0), np.eye(3))
    prompt = Prompt.from_points([20, 20, 2], "voxel", grid)
    with pytest.raises(GeometryMismatchError, match="baseline mask is not on the image's grid"):
        anchors(grid, prompt, shifted)
