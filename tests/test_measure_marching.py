"""The compiled marching cubes of a binary mask (``volumetry.measure._marching``) is scikit-image's
Lewiner marching cubes, vertex for vertex and face for face: ``mesh.surface`` returns exactly what
it returned when it called ``skimage.measure.marching_cubes`` (frozen below as ``_skimage_surface``):
the same LPS vertices (float64, bit for bit), the same faces in the same order, the same lattice.

Why it can be: on a 0/1 mask at the level 0.5 every cube corner is 0.5 from the level, so the
triangles scikit-image emits for a cube depend on its 8-bit case index only; the table of them is
derived again here from the installed scikit-image (one 2x2x2 cube per index), and the whole
surface is compared on every 2x2x3 mask (every pair of neighbouring cubes sharing vertices), on
random masks of every kind (noise of every density, blobs with holes and cavities, thin sheets and
rods, one voxel, several components, masks filling their crop so that the surface touches the
padding everywhere), non-bool inputs, and oblique, mirrored and anisotropic grids. The sample
trial's masks: tests/test_measure_sample_trial_fast.py; the phantoms and random masks through
``measure``: tests/test_measure_kernels_fast.py (frozen ``measure`` with scikit-image).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import marching_cubes
from test_measure_equivalence import blobs, rotation

from volumetry.measure import mesh
from volumetry.measure._marching import CORNERS, EDGES, TRIANGLE_TABLE, TRIANGLES, _triangle_table, lewiner_binary

# ---------------------------------------------------------------- the replaced code (frozen) ----


def _skimage_surface(crop, offset_ijk, matrix, origin):
    """``mesh.surface`` as it was: scikit-image's marching cubes of the padded crop."""
    padded = np.zeros(tuple(n + 2 for n in crop.shape), dtype=np.float32)  # one voxel of background around
    padded[1:-1, 1:-1, 1:-1] = crop
    verts_kji, faces, _, _ = marching_cubes(padded, level=0.5, method="lewiner")
    ijk = verts_kji[:, ::-1] + (np.asarray(offset_ijk, dtype=float) - 1.0)
    lps = ijk @ np.asarray(matrix, dtype=float).T + np.asarray(origin, dtype=float)
    lattice = np.rint(2.0 * verts_kji).astype(np.int64)  # k + 0.5 etc. are exact in float32
    return lps, faces, lattice


def assert_same_surface(crop, matrix=np.eye(3), origin=(0.0, 0.0, 0.0), offset=(0, 0, 0)):
    """The new surface equals the frozen one: values bit for bit, dtypes, face order."""
    v, f, lat = mesh.surface(crop, offset, matrix, origin)
    rv, rf, rlat = _skimage_surface(np.asarray(crop), offset, matrix, origin)
    assert v.dtype == rv.dtype == np.float64 and np.array_equal(v, rv)
    assert f.dtype == rf.dtype and f.shape == rf.shape and np.array_equal(f, rf)
    assert lat.dtype == rlat.dtype and np.array_equal(lat, rlat)
    assert mesh.signed_volume_mm3(v, f, matrix) == mesh.signed_volume_mm3(rv, rf, matrix)
    return len(f)


def _skimage_table():
    """The triangles scikit-image emits for each case index of one binary cube (edge numbers)."""
    mid_to_edge = {tuple(int(x) for x in e[4:]): n for n, e in enumerate(EDGES)}
    out = []
    for index in range(256):
        cube = np.zeros((2, 2, 2), np.float32)
        for bit, (x, y, z) in enumerate(CORNERS):
            cube[z, y, x] = index >> bit & 1
        if index in (0, 255):
            out.append("")
            continue
        verts_kji, faces, _, _ = marching_cubes(cube, level=0.5, method="lewiner")
        added = faces[:, ::-1].ravel()  # the order scikit-image added the vertices in
        first_use = list(dict.fromkeys(added.tolist()))
        assert first_use == list(range(len(verts_kji)))  # numbered when first used
        doubled = np.rint(2.0 * verts_kji[:, ::-1]).astype(int)
        assert np.array_equal(doubled, 2.0 * verts_kji[:, ::-1])  # mid-points (and centres)
        out.append("".join("0123456789abc"[mid_to_edge[tuple(doubled[v])]] for v in added))
    return tuple(out)


# ---------------------------------------------------------------- tests ----


def test_the_triangle_table_is_scikit_images():
    table = _skimage_table()
    assert table == TRIANGLES
    assert np.array_equal(_triangle_table(table), TRIANGLE_TABLE)
    assert sum("c" in s for s in table) > 0  # the cube-centre vertex is exercised


def test_every_2x2x3_mask():
    """4095 masks: every pair of neighbouring cubes, every case next to every case it can touch."""
    n = 0
    for bits in range(1, 1 << 12):
        crop = (np.array([bits >> b & 1 for b in range(12)]) == 1).reshape(2, 2, 3)
        n += assert_same_surface(crop)
    assert n > 0


def _mask(rng, kind):
    shape = tuple(int(s) for s in rng.integers(1, 16, size=3))
    if kind == 0:  # noise of any density: every case index, ambiguous faces and interiors
        return rng.random(shape) < rng.uniform(0.05, 0.95)
    if kind == 1:  # blobs with holes and specks
        return blobs(rng, shape, int(rng.integers(1, 4))) & (rng.random(shape) < 0.9)
    if kind == 2:  # a ball with a cavity inside (an inner surface)
        n = int(rng.integers(7, 16))
        r = np.linalg.norm(np.indices((n, n, n)) - (n - 1) / 2, axis=0)
        return (r <= (n - 1) / 2) & (r > rng.uniform(0.5, (n - 1) / 3))
    if kind == 3:  # a sheet one voxel thick, a rod one voxel wide, or one voxel
        m = np.zeros(shape, bool)
        pick = rng.integers(3)
        if pick == 0:
            m[shape[0] // 2] = rng.random(shape[1:]) < 0.7
        elif pick == 1:
            m[:, shape[1] // 2, shape[2] // 2] = True
        else:
            m[tuple(int(rng.integers(s)) for s in shape)] = True
        return m
    if kind == 4:  # several components, 26-connected by corners only
        m = np.zeros(shape, bool)
        for _ in range(int(rng.integers(2, 6))):
            m[tuple(int(rng.integers(s)) for s in shape)] = True
        return ndimage.binary_dilation(m, iterations=int(rng.integers(0, 2))) if rng.random() < 0.5 else m
    return np.ones(shape, bool)  # the whole crop: the surface lies on the padding everywhere


@pytest.mark.parametrize("seed", range(12))
def test_random_masks_on_several_grids(seed):
    rng = np.random.default_rng(4200 + seed)
    grids = [
        (np.diag([0.7, 0.7, 3.0]), np.array([-90.0, -120.0, 40.0])),
        (rotation(rng) @ np.diag([0.4688, 0.4688, 4.4]), np.array([12.3, -250.7, 1003.1])),
        (np.diag([-0.9, 0.9, 1.2]), np.array([300.0, 5.0, -80.0])),
    ]
    for kind in range(6):
        for _ in range(3):
            crop = _mask(rng, kind)
            if not crop.any():
                continue
            matrix, origin = grids[int(rng.integers(len(grids)))]
            offset = tuple(int(x) for x in rng.integers(0, 300, size=3))
            assert_same_surface(crop, matrix, origin, offset)


def test_inputs_that_are_not_contiguous_bool():
    rng = np.random.default_rng(7)
    crop = blobs(rng, (9, 12, 10), 2) | (rng.random((9, 12, 10)) < 0.1)
    matrix, origin = rotation(rng) @ np.diag([0.5, 0.6, 2.0]), np.array([1.5, -2.25, 30.0])
    want = _skimage_surface(crop, (3, 4, 5), matrix, origin)
    for other in (crop.astype(np.uint8), crop.astype(np.float32), crop.astype(np.int16), np.asfortranarray(crop)):
        got = mesh.surface(other, (3, 4, 5), matrix, origin)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
    view = np.zeros((9, 24, 10), bool)
    view[:, ::2] = crop
    got = mesh.surface(view[:, ::2], (3, 4, 5), matrix, origin)  # a strided view
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("crop", [np.zeros((3, 4, 5), bool), np.zeros((0, 4, 5), bool)],
                         ids=["no mask voxel", "no voxel at all"])
def test_no_surface_is_a_value_error(crop):
    with pytest.raises(ValueError, match="no mask voxel"):
        mesh.surface(crop, (0, 0, 0), np.eye(3), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError):  # what scikit-image raised for the padded empty crop
        _skimage_surface(crop, (0, 0, 0), np.eye(3), (0.0, 0.0, 0.0))


@pytest.mark.parametrize("crop, message", [(np.ones((3, 4)), "3D"), (np.full((2, 2, 2), 0.5), "binary")])
def test_a_crop_that_is_not_a_3d_binary_mask_is_a_value_error(crop, message):
    with pytest.raises(ValueError, match=message):
        mesh.surface(crop, (0, 0, 0), np.eye(3), (0.0, 0.0, 0.0))


def test_the_kernel_returns_scikit_images_raw_vertices():
    """``lewiner_binary`` itself: float32 ``x, y, z`` of the padded crop, int32 faces."""
    crop = np.zeros((3, 3, 3), bool)
    for k, j, i in itertools.product(range(3), repeat=3):
        crop[k, j, i] = (k + j + i) % 2 == 0  # every face ambiguous
    xyz, faces, lattice = lewiner_binary(crop, TRIANGLE_TABLE, EDGES)
    padded = np.pad(crop, 1).astype(np.float32)
    verts_kji, rfaces, _, _ = marching_cubes(padded, level=0.5, method="lewiner")
    assert xyz.dtype == np.float32 and faces.dtype == np.int32
    assert np.array_equal(xyz, verts_kji[:, ::-1]) and np.array_equal(faces, rfaces)
    assert np.array_equal(lattice, 2 * verts_kji)


WARM_CHECK = """
import json
import numpy as np
from volumetry._jit import warm_all
from volumetry.image import Volume
from volumetry.measure import _kernels, _marching, measure
warm_all()
kernels = [getattr(m, n) for m in (_kernels, _marching) for n in dir(m) if hasattr(getattr(m, n), "signatures")]
before = {k.__name__: list(k.signatures) for k in kernels}
rng = np.random.default_rng(5)
r = np.linalg.norm(np.indices((9, 30, 32)) - np.array([4, 14, 15])[:, None, None, None] * 1.0, axis=0)
mask = Volume((r < 8) & (rng.random(r.shape) < 0.97), (0.47, 0.47, 4.4), (-100.0, 20.0, 5.0), np.eye(3))
image = mask.with_array(rng.integers(0, 900, r.shape).astype(np.int16))
measure(mask.with_array(mask.array.astype(np.uint8)), image)
print(json.dumps({k.__name__: [str(s) for s in k.signatures if s not in before[k.__name__]] for k in kernels}))
"""


def test_warm_up_compiles_the_signatures_measure_uses():
    """A pool worker compiles (or loads) the measurement's kernels in warm_up, for the argument types
    ``measure`` passes (C-contiguous bool crops, int32 faces, int64 lattices): none inside a scan."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", WARM_CHECK], capture_output=True, text=True, check=True)
    new = json.loads(out.stdout.strip().splitlines()[-1])
    assert "lewiner_binary" in new and "six_signed_volumes" in new
    assert all(sigs == [] for sigs in new.values()), new
