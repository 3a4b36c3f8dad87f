"""The compiled measurement and segmentation-QC kernels give exactly the numbers of the code they
replaced (frozen in tests/frozen_measure_qc.py): every field of ``measure``'s Measurement and every
value of ``mask_qc``'s dict, with its type, on the project's phantoms (oblique, anisotropic, thick
and gapped slices, every shape, their label maps), on random masks and edge cases (one voxel, a
line, a plane, the whole grid, touching borders, several components, bool / uint8 / int16 / float
label maps, float32 and int16 images), and kernel by kernel against the scipy / numpy calls they
stand for. The sample trial's own masks: tests/test_measure_sample_trial_fast.py.

What changed: 26-connected component counts and sizes (``ndimage.label``), the neck opening
(``ndimage.binary_opening`` by a box), the ±1-voxel band, the per-tetrahedron mesh volumes
(summed by numpy as before), the longest in-plane diameter (outline candidates, exact integer
hull, pair search) are compiled kernels; ``np.cross`` of 3-vectors in the orthogonal diameters is
written out; the marching-cubes input is padded without ``np.pad``; the intensity percentiles are
numpy's steps without ``np.percentile``'s machinery (``core._percentiles``); the marching cubes itself
is compiled (tests/test_measure_marching.py); the max Feret diameter's search over the Gram rows (all
but numpy's product) is a kernel, ``farthest_pair``.
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import frozen_measure_qc as ref
import numpy as np
import pytest
from scipy import ndimage
from test_measure_equivalence import blobs, random_case, rotation

from volumetry._morphology import box_opening, component_sizes26
from volumetry.image import Volume
from volumetry.measure import core, diameters, measure, mesh
from volumetry.measure._kernels import six_signed_volumes
from volumetry.segment import qc

# ---------------------------------------------------------------- helpers ----


def assert_same_measurement(new, old):
    """Every field equal (floats bit for bit: ``==``, never isclose) and of the same type."""
    assert type(new) is type(old)
    for f in dataclasses.fields(old):
        a, b = getattr(new, f.name), getattr(old, f.name)
        assert a == b, (f.name, a, b)
        assert type(a) is type(b), (f.name, type(a), type(b))
        if isinstance(b, tuple):
            assert [type(x) for x in a] == [type(x) for x in b], f.name
            for x, y in zip(a, b):
                if isinstance(y, tuple):
                    assert [type(z) for z in x] == [type(z) for z in y], f.name


def assert_same_qc(new, old):
    assert list(new) == list(old)
    for key in old:
        a, b = new[key], old[key]
        assert type(a) is type(b), (key, type(a), type(b))
        if isinstance(b, float) and math.isnan(b):
            assert math.isnan(a), key
        else:
            assert a == b, (key, a, b)


def both_measures(mask, image=None, label=None):
    new, old = measure(mask, image, label=label), ref.measure(mask, image, label=label)
    assert_same_measurement(new, old)
    return new


# ---------------------------------------------------------------- measure: phantoms ----

SUITE = None


def _suite():
    global SUITE
    if SUITE is None:
        from volumetry.phantoms.lesion import phantom_suite

        SUITE = phantom_suite(48)
    return SUITE


@pytest.mark.parametrize("idx", range(0, 48, 2))
def test_measure_of_phantoms_equals_reference(idx):
    """The suite's phantoms: axial, coronal, sagittal, double-oblique grids, 1-6 mm slices with gaps,
    anisotropic pixels, every shape; the truth mask, each focus of the label map, with the image."""
    from volumetry.phantoms import make_lesion_phantom

    ph = make_lesion_phantom(_suite()[idx])
    m = both_measures(ph.mask, ph.image)
    assert m.status == "ok"
    for label in np.unique(ph.labels.array)[1:3].tolist():
        both_measures(ph.labels, ph.image, label=int(label))


@pytest.mark.parametrize("idx", [1, 3, 11])
def test_measure_of_phantoms_on_other_grids_equals_reference(idx):
    """The same phantom masks on resliced grids: mirrored axes, swapped axes (thick slices in-plane),
    a rotated direction with shorter spacing, and cropped to touch the border."""
    from volumetry.phantoms import make_lesion_phantom

    ph = make_lesion_phantom(_suite()[idx])
    arr, img = ph.mask.array, ph.image.array
    sp, org, d = np.asarray(ph.mask.spacing, float), ph.mask.origin, ph.mask.direction
    rng = np.random.default_rng(idx)
    grids = [
        (arr[::-1, :, ::-1], img[::-1, :, ::-1], sp, org, d @ np.diag([-1.0, 1.0, -1.0])),
        (arr.transpose(2, 1, 0), img.transpose(2, 1, 0), sp[::-1], org, d[:, ::-1]),
        (arr, img, sp * [0.7, 1.3, 0.5], org, rotation(rng)),
    ]
    lo, hi = core._bounding_box(arr)
    mid = (lo + hi) // 2  # the grid ends in the middle of the lesion on two sides
    grids.append((arr[:mid[0], mid[1]:], img[:mid[0], mid[1]:], sp, org, d))
    for a, im, spacing, origin, direction in grids:
        mv = Volume(np.ascontiguousarray(a), tuple(spacing), tuple(origin), direction)
        both_measures(mv, mv.with_array(np.ascontiguousarray(im)))
        both_measures(mv.with_array(np.asfortranarray(a)))  # another memory layout, no image


# ---------------------------------------------------------------- measure: random and edge cases ----


@pytest.mark.parametrize("seed", range(300))
def test_measure_of_random_masks_equals_reference(seed):
    mv, image, label = random_case(seed)
    both_measures(mv, image, label)


def _edge_masks():
    shape = (7, 9, 11)
    out = {}
    one = np.zeros(shape, bool)
    one[3, 4, 5] = True
    out["one voxel"] = one
    corner = np.zeros(shape, bool)
    corner[0, 0, 0] = True
    out["one voxel in a corner"] = corner
    for axis in range(3):
        line = np.zeros(shape, bool)
        idx = [2, 3, 4]
        idx[axis] = slice(None)
        line[tuple(idx)] = True
        out[f"a line along axis {axis}"] = line
        plane = np.zeros(shape, bool)
        idx = [slice(None)] * 3
        idx[axis] = 1
        plane[tuple(idx)] = True
        out[f"a plane across axis {axis}"] = plane
    diag = np.zeros(shape, bool)
    for t in range(7):
        diag[t, t, t] = True
    out["a diagonal line (26-connected only)"] = diag
    out["the whole grid"] = np.ones(shape, bool)
    shell = np.ones(shape, bool)
    shell[1:-1, 1:-1, 1:-1] = False
    out["the grid's outer shell"] = shell
    several = np.zeros(shape, bool)
    several[0:2, 0:3, 0:3] = True
    several[5:7, 6:9, 8:11] = True
    several[3, 4, 5] = True
    out["three components touching corners"] = several
    chess = np.indices(shape).sum(axis=0) % 2 == 0
    out["a 3D checkerboard"] = chess
    stripes = np.zeros(shape, bool)
    stripes[:, ::2] = True
    out["stripes"] = stripes
    return out


EDGE = _edge_masks()


@pytest.mark.parametrize("name", list(EDGE))
@pytest.mark.parametrize("grid", ["identity", "anisotropic", "oblique left-handed", "thick"])
def test_measure_of_edge_cases_equals_reference(name, grid):
    mask = EDGE[name]
    rng = np.random.default_rng(len(name))
    spacing, direction = {
        "identity": ((1.0, 1.0, 1.0), np.eye(3)),
        "anisotropic": ((0.45, 0.9375, 3.0), np.eye(3)),
        "oblique left-handed": ((0.7, 0.7, 1.4), rotation(rng) @ np.diag([-1.0, 1.0, 1.0])),
        "thick": ((0.5, 0.5, 6.0), rotation(rng)),
    }[grid]
    mv = Volume(mask, spacing, (-10.5, 20.25, 3.0), direction)
    image = mv.with_array(rng.normal(500, 80, mask.shape).astype(np.float32))
    both_measures(mv, image)
    both_measures(mv.with_array(mask.astype(np.uint8)))
    lab = np.where(mask, 3, np.where(rng.random(mask.shape) < 0.1, 1, 0))
    both_measures(mv.with_array(lab.astype(np.int16)), mv.with_array(image.array.astype(np.int16)), label=3)
    both_measures(mv.with_array(lab.astype(np.float32)), label=3)


def test_an_empty_mask_and_a_missing_label_equal_reference():
    mv = Volume(np.zeros((4, 5, 6), bool), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    assert both_measures(mv).status == "empty"
    lab = np.zeros((4, 5, 6), np.int16)
    lab[1, 2, 3] = 2
    assert both_measures(mv.with_array(lab), label=5).status == "empty"


# ---------------------------------------------------------------- kernels one by one ----


def _random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(x) for x in rng.integers(1, 26, size=3))
    kind = seed % 4
    if kind == 0:
        return rng.random(shape) < rng.uniform(0.02, 0.7)  # noise: many components, diagonal contacts
    if kind == 1:
        return blobs(rng, shape, int(rng.integers(1, 5)))
    if kind == 2:
        m = blobs(rng, shape, 2)
        return m & (rng.random(shape) < 0.9)  # holes and specks
    return np.zeros(shape, bool) if seed % 8 == 3 else np.ones(shape, bool)


@pytest.mark.parametrize("seed", range(200))
def test_component_sizes_equal_ndimage_label(seed):
    mask = _random_masks(seed)
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = component_sizes26(mask)
    assert len(sizes) == n
    assert sizes.dtype == np.int64
    assert np.array_equal(np.sort(sizes), np.sort(np.bincount(lab.ravel())[1:]))


@pytest.mark.parametrize("seed", range(120))
@pytest.mark.parametrize("element", [(3, 3, 3), (1, 3, 3), (3, 1, 3), (3, 3, 1)])
def test_box_opening_equals_ndimage(seed, element):
    mask = _random_masks(seed)
    assert np.array_equal(box_opening(mask, *element), ndimage.binary_opening(mask, structure=np.ones(element, bool)))


@pytest.mark.parametrize("seed", range(150))
def test_band_equals_reference(seed):
    mv, _, label = random_case(seed)
    sel = core._binary(mv, label)
    if not sel.any():
        return
    lo, hi = core._bounding_box(sel)
    assert core._band(sel, lo, hi, mv.voxel_volume_mm3) == ref._band(sel, lo, hi, mv.voxel_volume_mm3)


def _meshes():
    for seed in range(0, 120, 3):
        mv, _, label = random_case(seed)
        sel = core._binary(mv, label)
        if not sel.any():
            continue
        lo, hi = core._bounding_box(sel)
        crop = sel[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        matrix = mv.direction @ np.diag(mv.spacing)
        yield crop, lo[::-1], matrix, mv.origin


@pytest.mark.parametrize("case", list(range(40)))
def test_surface_and_mesh_volume_equal_reference(case):
    meshes = list(_meshes())
    if case >= len(meshes):
        return
    crop, offset, matrix, origin = meshes[case]
    verts, faces = mesh.surface_lps(crop, offset, matrix, origin)
    rverts, rfaces = ref.surface_lps(crop, offset, matrix, origin)
    assert np.array_equal(verts, rverts) and np.array_equal(faces, rfaces)
    assert verts.dtype == rverts.dtype and faces.dtype == rfaces.dtype
    assert mesh.signed_volume_mm3(verts, faces, matrix) == ref.signed_volume_mm3(verts, faces, matrix)
    assert diameters.orthogonal_diameters(verts)[0] == ref.orthogonal_diameters(verts)[0]
    assert np.array_equal(diameters.orthogonal_diameters(verts)[1], ref.orthogonal_diameters(verts)[1])


def test_per_tetrahedron_volumes_equal_numpys_cross_and_einsum():
    """The kernel's terms are np.cross's and einsum's, bit for bit, including far-off, lattice-like
    and cancelling coordinates, on contiguous int64 faces and marching cubes' flipped int32 view."""
    rng = np.random.default_rng(11)
    verts = rng.normal(size=(3000, 3)) * 10.0 ** rng.uniform(-4, 4, size=(3000, 1)) + rng.uniform(-300, 300, 3)
    verts[:600] = np.round(verts[:600] * 2) / 2  # lattice-like: exact cancellations
    faces = rng.integers(0, len(verts), size=(5000, 3))
    for f in (faces, np.fliplr(faces.astype(np.int32))):
        v = verts - verts.mean(axis=0)
        tri = v[f]
        want = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
        assert np.array_equal(six_signed_volumes(verts, f, verts.mean(axis=0)), want)


@pytest.mark.parametrize("seed", range(60))
def test_cross3_is_numpys(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, 3)) * 10.0 ** rng.uniform(-6, 6, size=(2, 1))
    if seed % 3 == 0:
        b = np.eye(3)[seed % 3]
    assert np.array_equal(diameters._cross3(a, b), np.cross(a, b))


@pytest.mark.parametrize("seed", range(200))
def test_longest_inplane_diameter_equals_reference(seed):
    """Large slices (the hull path), noise, rows, columns, repeated slices (ties), sheared axes."""
    rng = np.random.default_rng(7000 + seed)
    kind = seed % 5
    if kind == 0:
        size = (int(rng.integers(30, 120)), int(rng.integers(30, 120)))
        crop = np.stack([blobs(rng, size, int(rng.integers(1, 5))) for _ in range(int(rng.integers(1, 4)))])
    elif kind == 1:
        crop = rng.random((int(rng.integers(1, 6)), int(rng.integers(1, 90)), int(rng.integers(1, 90)))) < 0.2
    elif kind == 2:
        one = blobs(rng, (int(rng.integers(2, 70)), int(rng.integers(2, 70))), 2)
        crop = np.stack([one, one[::-1, ::-1], one])
    elif kind == 3:
        crop = np.zeros((3, int(rng.integers(1, 50)), int(rng.integers(1, 50))), bool)
        crop[1, int(rng.integers(0, crop.shape[1]))] = True  # a row
        crop[2, :, int(rng.integers(0, crop.shape[2]))] = True  # a column
    else:
        crop = blobs(rng, tuple(int(x) for x in rng.integers(2, 40, size=3)), int(rng.integers(1, 4)))
    m = rotation(rng) @ np.diag(rng.choice([0.3, 0.45, 0.9375, 1.0, 2.5, 6.0], size=3))
    if rng.random() < 0.3:
        m[:, 1] += rng.uniform(-0.6, 0.6) * m[:, 0]
    assert diameters.longest_inplane_diameter(crop, m) == ref.longest_inplane_diameter(crop, m)


# ---------------------------------------------------------------- mask_qc ----


def _segmented_qc_calls(idx):
    """``mask_qc``'s arguments as ``segment`` passes them on a phantom (recorded)."""
    from volumetry.phantoms import make_lesion_phantom
    from volumetry.segment import api
    from volumetry.segment.prompts import Prompt

    ph = make_lesion_phantom(_suite()[idx])
    calls = []
    real = api.mask_qc

    def record(*args, **kwargs):
        calls.append(tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args))
        return real(*args, **kwargs)

    api.mask_qc = record
    try:
        for method in ("region_growing", "threshold"):
            api.segment(ph.image, Prompt.from_points(ph.truth["seed_point_lps_mm"], "lps", ph.image), method=method)
    finally:
        api.mask_qc = real
    return calls


@pytest.mark.parametrize("idx", range(0, 48, 3))
def test_mask_qc_of_segmented_phantoms_equals_reference(idx):
    calls = _segmented_qc_calls(idx)
    assert calls
    for args in calls:
        assert_same_qc(qc.mask_qc(*args), ref.mask_qc(*args))
        assert qc.neck_fraction(args[1], args[4]) == ref.neck_fraction(args[1], args[4])


SPACINGS = [(1.0, 1.0, 1.0), (5.0, 1.4, 1.4), (4.0, 0.5, 0.5), (0.45, 0.9375, 3.0), (1.4, 6.0, 1.4), (1.2, 1.0, 1.7)]


@pytest.mark.parametrize("seed", range(150))
def test_mask_qc_of_random_crops_equals_reference(seed):
    rng = np.random.default_rng(900 + seed)
    mask = _random_masks(seed)
    if seed % 5 == 0:  # two blobs joined by a one-voxel neck, or stacked across thick slices
        shape = (int(rng.integers(5, 16)), int(rng.integers(8, 30)), int(rng.integers(8, 30)))
        mask = blobs(rng, shape, 2)
        mask[shape[0] // 2, shape[1] // 2, :] = True
    if not mask.any():
        mask[tuple(int(rng.integers(0, s)) for s in mask.shape)] = True
    dtype = [np.float32, np.int16, np.float64][seed % 3]
    image = rng.normal(700, 120, mask.shape)
    if seed % 4 == 1:
        image[:, :2] = 0  # padding next to the mask
    image = image.astype(dtype)
    seed_value = None if seed % 6 == 0 else float(rng.normal(700, 100))
    spacing = SPACINGS[seed % len(SPACINGS)]
    args = (image, mask, seed_value, bool(seed % 2), spacing if seed % 7 else None)
    assert_same_qc(qc.mask_qc(*args), ref.mask_qc(*args))
    assert qc.neck_fraction(mask, spacing) == ref.neck_fraction(mask, spacing)


@pytest.mark.parametrize("name", list(EDGE))
@pytest.mark.parametrize("spacing", SPACINGS[:4])
def test_mask_qc_of_edge_cases_equals_reference(name, spacing):
    mask = EDGE[name]
    image = np.full(mask.shape, 640.0, np.float32)  # constant: sd 0, seed_z nan
    args = (image, mask, 600.0, True, spacing)
    assert_same_qc(qc.mask_qc(*args), ref.mask_qc(*args))
    assert qc.neck_fraction(mask, spacing) == ref.neck_fraction(mask, spacing)


def test_a_grid_without_voxels_equals_reference():
    for shape in ((0, 4, 5), (3, 0, 5)):
        mv = Volume(np.zeros(shape, bool), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
        try:
            old = ref.measure(mv)
        except Exception as exc:  # the grid itself is refused: the same way
            with pytest.raises(type(exc)):
                measure(mv)
        else:
            assert_same_measurement(measure(mv), old)


@pytest.mark.parametrize("seed", range(200))
def test_waist_fraction_equals_reference(seed):
    """Two lesions stacked across thick slices and merged through a thin slice, random stacks,
    any axis, empty and one-slice masks."""
    rng = np.random.default_rng(3300 + seed)
    kind = seed % 4
    if kind == 0:
        shape = (int(rng.integers(3, 14)), int(rng.integers(4, 30)), int(rng.integers(4, 30)))
        mask = blobs(rng, shape, 2)
        mask[shape[0] // 2] = False
        mask[shape[0] // 2, shape[1] // 2, : int(rng.integers(1, shape[2] + 1))] = True  # the merging slice
    elif kind == 1:
        mask = rng.random(tuple(int(x) for x in rng.integers(1, 12, size=3))) < rng.uniform(0.0, 0.6)
    elif kind == 2:
        mask = blobs(rng, tuple(int(x) for x in rng.integers(1, 25, size=3)), int(rng.integers(1, 4)))
    else:
        mask = np.zeros(tuple(int(x) for x in rng.integers(1, 9, size=3)), bool)
        if seed % 8 == 7:
            mask[int(rng.integers(0, mask.shape[0]))] = True
    axis = int(rng.integers(0, 3))
    for m in (mask, mask[:, ::-1], np.asfortranarray(mask)):
        new, old = qc.waist_fraction(m, axis), ref.waist_fraction(m, axis)
        assert new == old and type(new) is type(old)


# ---------------------------------------------------------------- intensity percentiles ----


def _percentile_cases():
    rng = np.random.default_rng(31)
    cases = [np.array([-0.0]), np.array([0.0]), np.array([7.5]), np.array([np.inf]), np.array([-np.inf, np.inf]),
             np.array([np.nan, 1.0]), np.array([-0.0, 0.0, -0.0]), np.array([1.0, 2.0]), np.full(41, -0.0)]
    for n in [*range(1, 42), 100, 101, 1000, 4321]:
        for kind in range(5):
            v = rng.normal(size=n) * 10.0 ** rng.uniform(-5, 5)
            if kind == 1:
                v = np.round(v)  # ties
            elif kind == 2:
                v = rng.choice([-0.0, 0.0, 1.0, -1.0], size=n)  # signed zeros at the interpolated ranks
            elif kind == 3:
                v[rng.integers(n)] = rng.choice([np.inf, -np.inf, np.nan])
            elif kind == 4:
                v = rng.integers(-3000, 3000, n).astype(np.int16).astype(np.float64)  # an int16 image's values
            cases.append(v)
    return cases


def test_intensity_percentiles_are_numpys():
    """core._percentiles is np.percentile(vals, [5, 50, 95]) bit for bit (sign of zero, NaN, inf
    included), as Python floats, and leaves its input as it was."""
    for v in _percentile_cases():
        before = v.copy()
        got = core._percentiles(v)
        with np.errstate(invalid="ignore"):  # numpy warns on inf - inf; the values are what matter
            want = [float(x) for x in np.percentile(v, [5, 50, 95])]
        assert np.array_equal(v, before, equal_nan=True)
        for a, b in zip(got, want):
            assert type(a) is float
            same_zero_sign = math.copysign(1, a) == math.copysign(1, b)
            assert (math.isnan(a) and math.isnan(b)) or (a == b and same_zero_sign), (v, a, b)


# ---------------------------------------------------------------- farthest pair (max Feret) ----


def _old_max_feret_of(pts):
    """``diameters._max_feret_of`` before farthest_pair (frozen_measure_qc.max_feret without the hull)."""
    centred = pts - pts.mean(axis=0)
    sq = (centred ** 2).sum(axis=1)
    best, bp, bq = -1.0, pts[0], pts[0]
    for start in range(0, len(pts), 2048):
        blk = centred[start:start + 2048]
        d2 = sq[start:start + 2048, None] + sq[None, :] - 2.0 * (blk @ centred.T)
        a, b = np.unravel_index(int(np.argmax(d2)), d2.shape)
        exact = float(((pts[start + a] - pts[b]) ** 2).sum())
        if exact > best:
            best, bp, bq = exact, pts[start + a], pts[b]
    return float(np.sqrt(max(best, 0.0))), bp, bq


def _point_sets(rng):
    for d in (2, 3):
        yield rng.normal(size=(1, d))
        yield np.zeros((5, d))  # all equal: every pair ties at 0
        yield np.eye(d) * 3.0  # ties
        yield np.array(list(itertools.product([0.0, 1.0], repeat=d))) * 0.4688 + 250.3  # a box's corners
        angle = np.linspace(0, 2 * np.pi, 37)[:-1]  # a regular polygon: many equal diameters
        circle = np.c_[np.cos(angle), np.sin(angle)] * 7.3
        yield circle if d == 2 else np.c_[circle, np.zeros(36)] @ rotation(rng).T
        for n in (2, 3, 17, 130, 700):
            yield rng.normal(size=(n, d)) * rng.uniform(0.1, 60) + rng.uniform(-400, 400, d)
            yield np.round(rng.normal(size=(n, d)) * 6) * 0.5 @ np.diag(rng.choice([0.45, 1.0, 3.0], d))  # lattice
        yield rng.normal(size=(2500, d))  # two blocks of rows
    with_nan = rng.normal(size=(40, 3))
    with_nan[[7, 30], 1] = np.nan
    yield with_nan
    with_inf = rng.normal(size=(40, 2))
    with_inf[5, 0] = np.inf
    yield with_inf


def test_farthest_pair_gives_the_former_max_feret():
    """The length (mm) and both end points, bit for bit, on ties, lattices, polygons, offsets, two
    blocks of rows, NaN and inf; and max_feret (hull first) against the frozen code."""
    rng = np.random.default_rng(77)
    compared = 0
    for pts in _point_sets(rng):
        with np.errstate(invalid="ignore"):
            got, want = diameters._max_feret_of(pts), _old_max_feret_of(pts)
        assert (got[0] == want[0]) or (math.isnan(got[0]) and math.isnan(want[0])), (got[0], want[0])
        assert np.array_equal(got[1], want[1], equal_nan=True) and np.array_equal(got[2], want[2], equal_nan=True)
        if np.isfinite(pts).all():
            new, old = diameters.max_feret(pts), ref.max_feret(pts)
            assert new[0] == old[0] and np.array_equal(new[1], old[1]) and np.array_equal(new[2], old[2])
        compared += 1
    assert compared > 30


@pytest.mark.parametrize("seed", range(4))
def test_farthest_pair_picks_numpys_argmax(seed):
    """The first largest d2 in C order, and the first NaN when there is one (np.argmax's rule), on
    Gram rows with equal values and NaNs placed anywhere."""
    from volumetry.measure._kernels import farthest_pair

    rng = np.random.default_rng(seed)
    for _ in range(50):
        n, d = int(rng.integers(1, 40)), int(rng.integers(2, 4))
        pts = np.round(rng.normal(size=(n, d)) * 3)
        centred = pts - pts.mean(axis=0)
        start = int(rng.integers(0, n))
        gram = np.round(rng.normal(size=(n - start, n)) * 2)  # few distinct values: ties
        if rng.random() < 0.5:
            gram.flat[rng.integers(0, gram.size, int(rng.integers(1, 4)))] = np.nan
        sq = (centred ** 2).sum(axis=1)
        d2 = sq[start:, None] + sq[None, :] - 2.0 * gram
        a, b, exact = farthest_pair(pts, centred, gram, start)
        assert (a, b) == np.unravel_index(int(np.argmax(d2)), d2.shape)
        assert exact == float(((pts[start + a] - pts[b]) ** 2).sum())
