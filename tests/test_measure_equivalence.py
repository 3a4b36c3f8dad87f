"""The faster ``measure`` gives the numbers of the implementation it replaced
(tests/test_measure_reference.py) on random masks: anisotropic and oblique grids,
tiny, flat and multi-component masks, masks touching the border, label maps.

Exact: voxel counts and volumes, the ±1-voxel band, bounding box, components, flags,
intensities, mesh volume, the three orthogonal diameters and their axes, the ellipsoid
volume. Within 1e-12 (relative): the longest in-plane diameter, now computed from the
outline's row/column extreme points instead of scikit-image contours; its slice is the
first slice whose reference length is within 1e-12 of the longest.
"""
import dataclasses

import numpy as np
import pytest
from test_measure_reference import longest_inplane_diameter as reference_inplane
from test_measure_reference import reference_measure

from volumetry.image import Volume
from volumetry.measure import measure
from volumetry.measure.diameters import longest_inplane_diameter

REL = 1e-12
INPLANE = ("longest_inplane_diameter_mm", "longest_inplane_slice")


def rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if rng.random() < 0.3:
        q[:, 0] = -q[:, 0]  # a left-handed grid
    return q


def blobs(rng, shape, n):
    """``n`` random ellipsoids (some touching the border, some one voxel thin) in an index grid."""
    grid = np.indices(shape, dtype=float)
    mask = np.zeros(shape, bool)
    for _ in range(n):
        c = [rng.uniform(-1, s) for s in shape]
        r = [rng.uniform(0.4, max(0.5, s / 3)) for s in shape]
        mask |= sum(((x - cx) / rx) ** 2 for x, cx, rx in zip(grid, c, r)) <= 1
    return mask


def random_case(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(x) for x in rng.integers(3, 24, size=3))
    kind = seed % 6
    if kind == 0:  # tiny: a few isolated voxels
        mask = np.zeros(shape, bool)
        n = int(rng.integers(1, 4))
        idx = tuple(rng.integers(0, s, size=n) for s in shape)
        mask[idx] = True
    elif kind == 1:  # a single slice or a single row (flat, collinear in-plane)
        mask = np.zeros(shape, bool)
        k = int(rng.integers(0, shape[0]))
        mask[k] = blobs(rng, shape[1:], 2) if rng.random() < 0.5 else False
        mask[k, int(rng.integers(0, shape[1])), : int(rng.integers(1, shape[2] + 1))] = True
    else:  # blobs, often several components
        mask = blobs(rng, shape, int(rng.integers(1, 4)))
        if not mask.any():
            mask[tuple(s // 2 for s in shape)] = True
    spacing = tuple(float(x) for x in rng.choice([0.45, 0.7, 1.0, 1.4, 3.0, 5.0], size=3))
    direction = np.eye(3) if seed % 3 == 0 else rotation(rng)
    origin = tuple(rng.uniform(-200, 200, size=3))
    label = None
    arr = mask
    if seed % 4 == 3:  # a label map: the lesion is label 2
        arr = np.where(mask, 2, np.where(rng.random(shape) < 0.05, 1, 0)).astype(np.int16)
        label = 2
    elif seed % 4 == 2:
        arr = mask.astype(np.uint8)
    mv = Volume(arr, spacing, origin, direction)
    image = mv.with_array(rng.normal(100, 20, shape).astype(np.float32)) if seed % 2 == 0 else None
    return mv, image, label


def check_same(new, ref, crop, matrix):
    for f in dataclasses.fields(ref):
        if f.name in INPLANE:
            continue
        assert getattr(new, f.name) == getattr(ref, f.name), f.name
    if ref.status != "ok":
        assert new.longest_inplane_diameter_mm is None and new.longest_inplane_slice is None
        return
    assert new.longest_inplane_diameter_mm == pytest.approx(ref.longest_inplane_diameter_mm, rel=REL, abs=0)
    k = new.longest_inplane_slice - new.bbox_ijk[0][2]
    at_k, _ = reference_inplane(crop[k:k + 1], matrix)
    assert at_k == pytest.approx(ref.longest_inplane_diameter_mm, rel=REL, abs=0)
    assert new.longest_inplane_slice <= ref.longest_inplane_slice  # the first of tied slices


@pytest.mark.parametrize("seed", range(60))
def test_measure_equals_reference_on_random_masks(seed):
    mask, image, label = random_case(seed)
    ref = reference_measure(mask, image, label=label)
    new = measure(mask, image, label=label)
    sel = (mask.array == label) if label is not None else mask.array.astype(bool)
    crop = None
    if ref.status == "ok":
        (i0, j0, k0), (i1, j1, k1) = ref.bbox_ijk
        crop = sel[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1]
    check_same(new, ref, crop, mask.direction @ np.diag(mask.spacing))


def test_empty_mask_equals_reference():
    mask = Volume(np.zeros((4, 5, 6), bool), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    assert measure(mask) == reference_measure(mask)
    labels = Volume(np.ones((4, 5, 6), np.int16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    assert measure(labels, label=3) == reference_measure(labels, label=3)


@pytest.mark.parametrize("seed", range(20))
def test_longest_inplane_diameter_equals_reference(seed):
    rng = np.random.default_rng(500 + seed)
    low, high = (1, 40) if seed % 2 else (60, 160)  # large slices: more candidates than compared pairwise (the hull path)
    shape = (int(rng.integers(1, 6)), int(rng.integers(low, high)), int(rng.integers(low, high)))
    if seed % 2:
        crop = blobs(rng, shape, int(rng.integers(1, 5)))
    else:  # slices of 2D blobs: large outlines
        crop = np.stack([blobs(rng, shape[1:], int(rng.integers(1, 5))) for _ in range(shape[0])])
    crop[tuple(int(rng.integers(0, s)) for s in shape)] = True
    matrix = rotation(rng) @ np.diag(rng.choice([0.3, 0.45, 1.0, 2.5], size=3))
    length, k = longest_inplane_diameter(crop, matrix)
    ref_length, ref_k = reference_inplane(crop, matrix)
    assert length == pytest.approx(ref_length, rel=REL, abs=0)
    assert reference_inplane(crop[k:k + 1], matrix)[0] == pytest.approx(ref_length, rel=REL, abs=0)
    assert k <= ref_k


def test_longest_inplane_diameter_of_a_large_slice_uses_the_hull():
    """A 300-pixel disc (706 outline candidates) goes through the hull path."""
    j, i = np.indices((320, 330))
    disc = ((j - 160.3) ** 2 + (i - 163.7) ** 2 <= 150 ** 2)[None]
    disc[0, 5, 163] = True  # a spike
    matrix = np.diag([0.45, 0.45, 1.0])
    length, k = longest_inplane_diameter(disc, matrix)
    ref_length, _ = reference_inplane(disc, matrix)
    assert k == 0
    assert length == pytest.approx(ref_length, rel=REL, abs=0)
    assert length == pytest.approx(0.45 * (160.3 + 150 - 5 + 0.5), abs=0.45)  # from the spike across the disc

