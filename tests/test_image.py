import numpy as np
import pytest
import SimpleITK as sitk

from volumetry.errors import GeometryMismatchError, InputError
from volumetry.image import Volume


def rot(axis, deg):
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    m = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
    return np.array(m)


def test_cube_of_1mm_voxels_is_exactly_1ml_any_rotation():
    arr = np.ones((10, 10, 10), bool)
    for d in (np.eye(3), rot("x", 30) @ rot("z", 17)):
        v = Volume(arr, (1, 1, 1), (0, 0, 0), d)
        assert v.voxel_volume_mm3 * arr.sum() / 1000 == pytest.approx(1.0, abs=1e-12)


def test_anisotropic_voxel_volume_from_geometry():
    v = Volume(np.zeros((3, 4, 5)), (0.5, 0.7, 4.8), (1, 2, 3), rot("z", 40))
    assert v.voxel_volume_mm3 == pytest.approx(0.5 * 0.7 * 4.8, rel=1e-12)
    assert v.size == (5, 4, 3)


def test_index_lps_round_trip_and_affine():
    d = rot("x", 25) @ rot("z", -10)
    v = Volume(np.zeros((6, 7, 8)), (0.9, 1.1, 3.0), (-10.0, 20.0, 5.0), d)
    ijk = np.array([[0, 0, 0], [7, 6, 5], [1.5, 2.5, 3.5]])
    xyz = v.index_to_lps(ijk)
    np.testing.assert_allclose(xyz[0], v.origin)
    np.testing.assert_allclose(v.lps_to_index(xyz), ijk, atol=1e-12)
    h = np.c_[ijk, np.ones(3)] @ v.affine.T
    np.testing.assert_allclose(h[:, :3], xyz, atol=1e-12)
    w = Volume.from_affine(v.array, v.affine)
    assert w.same_grid(v)


def test_sitk_round_trip_keeps_geometry_and_index_order():
    arr = np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8)
    v = Volume(arr, (0.9, 1.1, 3.0), (-10.0, 20.0, 5.0), rot("z", 33))
    img = v.to_sitk()
    assert img.GetSize() == v.size
    # pixel (i, j, k) = (3, 2, 1) is array[1, 2, 3]
    assert img.GetPixel(3, 2, 1) == arr[1, 2, 3]
    np.testing.assert_allclose(img.TransformIndexToPhysicalPoint((3, 2, 1)), v.index_to_lps([3, 2, 1]))
    back = Volume.from_sitk(img)
    assert back.same_grid(v) and np.array_equal(back.array, arr)
    assert sitk.GetArrayFromImage(Volume(arr.astype(bool), v.spacing, v.origin, v.direction).to_sitk()).dtype == np.uint8


def test_bad_geometry_is_rejected_with_a_reason():
    with pytest.raises(InputError, match="3D array"):
        Volume(np.zeros((3, 3)), (1, 1, 1), (0, 0, 0), np.eye(3))
    with pytest.raises(InputError, match="spacing"):
        Volume(np.zeros((3, 3, 3)), (1, 0, 1), (0, 0, 0), np.eye(3))
    with pytest.raises(InputError, match="orthonormal"):
        Volume(np.zeros((3, 3, 3)), (1, 1, 1), (0, 0, 0), [[1, 0.1, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(InputError, match="singular"):
        Volume.from_affine(np.zeros((3, 3, 3)), np.diag([1.0, 0.0, 1.0, 1.0]))


def test_mask_on_another_grid_is_an_error():
    img = Volume(np.zeros((4, 4, 4)), (1, 1, 1), (0, 0, 0), np.eye(3))
    moved = Volume(np.zeros((4, 4, 4), bool), (1, 1, 1), (0.5, 0, 0), np.eye(3))
    with pytest.raises(GeometryMismatchError, match="origin"):
        img.require_same_grid(moved)
    img.require_same_grid(img.with_array(np.ones((4, 4, 4), bool)))


def test_same_grid_equals_the_tolerance_checks_alone():
    """The exact-equality shortcuts of ``same_grid`` give the answer of the three allclose checks."""
    from volumetry.image import GRID_DIRECTION_TOL, GRID_ORIGIN_TOL_MM, GRID_SPACING_TOL_MM

    def reference(a, b):
        return (a.size == b.size
                and np.allclose(a.spacing, b.spacing, rtol=0, atol=GRID_SPACING_TOL_MM)
                and np.allclose(a.origin, b.origin, rtol=0, atol=GRID_ORIGIN_TOL_MM)
                and np.allclose(a.direction, b.direction, rtol=0, atol=GRID_DIRECTION_TOL))

    rng = np.random.default_rng(3)
    theta = 0.3
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    base = Volume(np.zeros((3, 4, 5)), (0.7, 0.8, 3.0), (-10.0, 20.0, 33.3), rot)
    seen = set()
    for _ in range(400):
        spacing = np.array(base.spacing) + rng.choice([0, 1, 10, 1000], 3) * GRID_SPACING_TOL_MM * rng.uniform(-1, 1, 3)
        origin = np.array(base.origin) + rng.choice([0, 1, 10, 1000], 3) * GRID_ORIGIN_TOL_MM * rng.uniform(-1, 1, 3)
        t = theta + rng.choice([0, 0.5, 2, 100]) * GRID_DIRECTION_TOL * rng.uniform(-1, 1)
        direction = rot if t == theta else np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
        shape = (3, 4, 5) if rng.random() < 0.9 else (3, 4, 6)
        other = Volume(np.zeros(shape), tuple(spacing), tuple(origin), direction)
        expected = reference(base, other)
        assert base.same_grid(other) == expected and other.same_grid(base) == reference(other, base)
        seen.add(expected)
    assert seen == {True, False}
