"""Known-answer tests of volumetry.measure: cubes, analytic ellipsoids, pyradiomics' published volumes."""
import json
import math

import numpy as np
import pytest

from volumetry.errors import GeometryMismatchError, InputError
from volumetry.image import Volume
from volumetry.measure import Measurement, measure
from volumetry.measure.diameters import max_feret, orthogonal_diameters


def rot(axis, deg):
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


MIRROR = np.diag([1.0, -1.0, 1.0])  # a left-handed grid (det -1), like pyradiomics' brain1


def ellipsoid(abc, spacing, direction=np.eye(3), axes=np.eye(3), center=(3.0, -2.0, 5.0)):
    """Voxelise the ellipsoid with semi-axes ``abc`` (mm) along the columns of ``axes``
    (LPS) on a grid with ``spacing`` and ``direction``: voxel centres inside are set."""
    a = np.asarray(abc, float)
    sp = np.asarray(spacing, float)
    n = np.ceil(2 * 1.2 * a.max() / sp).astype(int) + 1
    m = np.asarray(direction) @ np.diag(sp)
    center = np.asarray(center)
    origin = center - m @ ((n - 1) / 2)
    k, j, i = np.indices(n[::-1])
    ijk = np.stack([i, j, k], -1).reshape(-1, 3)
    y = (ijk @ m.T + origin - center) @ np.asarray(axes)
    inside = ((y / a) ** 2).sum(1) <= 1
    return Volume(inside.reshape(n[::-1]), tuple(sp), tuple(origin), direction)


def box_mask(shape_kji, box, spacing=(1, 1, 1), direction=np.eye(3)):
    arr = np.zeros(shape_kji, bool)
    arr[box] = True
    return Volume(arr, spacing, (-20.0, 10.0, 3.0), direction)


# ----------------------------------------------------------------------------- cube
@pytest.mark.parametrize(
    "spacing, n_ijk",
    [((1.0, 1.0, 1.0), (10, 10, 10)), ((0.5, 2.0, 2.5), (20, 5, 4)), ((0.625, 1.25, 5.0), (16, 8, 2))],
)
@pytest.mark.parametrize("direction", [np.eye(3), rot("x", 30) @ rot("z", 17), MIRROR @ rot("y", 40)])
def test_10mm_cube_is_1ml_with_any_voxels_and_rotation(spacing, n_ijk, direction):
    ni, nj, nk = n_ijk
    v = box_mask((nk + 6, nj + 6, ni + 6), (slice(3, 3 + nk), slice(3, 3 + nj), slice(3, 3 + ni)), spacing, direction)
    m = measure(v)
    assert m.status == "ok" and m.reason is None
    assert m.volume_ml == pytest.approx(1.0, rel=1e-12)
    assert m.n_components == 1 and not m.touches_border and m.flags == ()
    # the closed surface bevels the 12 edges and 8 corners: a little less than 1 mL, the same in any orientation
    assert 0.85 < m.mesh_volume_ml < 1.0
    ref = measure(box_mask((nk + 6, nj + 6, ni + 6), (slice(3, 3 + nk), slice(3, 3 + nj), slice(3, 3 + ni)), spacing))
    assert m.mesh_volume_ml == pytest.approx(ref.mesh_volume_ml, rel=1e-9)


def test_cube_mesh_volume_known_answer():
    # the surface bevels edges and corners by half a voxel: the mesh volume of a box converges
    # to the true 1 mL as the voxels shrink
    coarse = measure(box_mask((16, 16, 16), (slice(3, 13),) * 3))
    fine = measure(box_mask((46, 46, 46), (slice(3, 43),) * 3, spacing=(0.25, 0.25, 0.25)))
    assert fine.volume_ml == pytest.approx(1.0, rel=1e-12)
    assert abs(fine.mesh_volume_ml - 1.0) < abs(coarse.mesh_volume_ml - 1.0)
    assert fine.mesh_volume_ml == pytest.approx(1.0, rel=0.02)


def test_uncertainty_band_of_a_cube_is_exact():
    m = measure(box_mask((16, 16, 16), (slice(3, 13),) * 3))
    assert m.volume_low_ml == pytest.approx(8**3 / 1000, rel=1e-12)  # eroded: 8x8x8
    assert m.volume_high_ml == pytest.approx((1000 + 6 * 100) / 1000, rel=1e-12)  # + one layer on each face


def test_cube_at_the_border_is_flagged_and_the_band_stays_inside_the_image():
    m = measure(box_mask((12, 12, 12), (slice(0, 10), slice(1, 11), slice(1, 11))))
    assert m.touches_border and "touches-border" in m.flags
    assert m.volume_ml == pytest.approx(1.0, rel=1e-12)
    assert m.volume_high_ml == pytest.approx((1000 + 5 * 100) / 1000, rel=1e-12)  # no layer outside the image
    assert m.mesh_volume_ml > 0.85  # the surface is closed at the border


# ------------------------------------------------------------------------ ellipsoid
@pytest.mark.parametrize(
    "spacing, direction, axes",
    [
        ((0.5, 0.5, 0.5), np.eye(3), np.eye(3)),
        ((0.4, 0.6, 1.5), rot("x", 30) @ rot("z", 17), np.eye(3)),
        ((0.5, 0.5, 0.5), np.eye(3), rot("y", 35) @ rot("z", 50)),
        ((0.4, 0.6, 1.5), MIRROR @ rot("x", -20) @ rot("y", 10), rot("y", 35) @ rot("z", 50)),
    ],
    ids=["axis-aligned", "rotated-anisotropic-grid", "rotated-ellipsoid", "both-rotated-mirrored"],
)
def test_ellipsoid_volumes_and_diameters_against_analytic_truth(spacing, direction, axes):
    a, b, c = 12.0, 9.0, 6.0
    truth_ml = 4 / 3 * math.pi * a * b * c / 1000
    m = measure(ellipsoid((a, b, c), spacing, direction, axes))
    assert m.status == "ok"
    assert m.volume_ml == pytest.approx(truth_ml, rel=0.01)
    assert m.mesh_volume_ml == pytest.approx(truth_ml, rel=0.01)
    assert m.volume_low_ml < m.volume_ml < m.volume_high_ml
    # diameters on a voxel mask are right to about one voxel (the surface lies half a voxel
    # beyond the outermost voxel centres)
    tol = max(spacing) * 1.01
    np.testing.assert_allclose(m.diameters_mm, (2 * a, 2 * b, 2 * c), atol=tol)
    # ... along the ellipsoid's own axes (sign-free)
    got_axes = np.array(m.diameter_axes)
    for row, true_axis in zip(got_axes, np.asarray(axes).T):
        assert abs(row @ true_axis) > 0.98
    l, w, h = m.diameters_mm
    assert m.ellipsoid_volume_ml == pytest.approx(math.pi / 6 * l * w * h / 1000, rel=1e-12)
    assert m.ellipsoid_volume_ml == pytest.approx(truth_ml, rel=0.2)


def test_well_resolved_ellipsoid_mesh_volume_within_half_percent():
    a, b, c = 15.0, 11.0, 8.0
    m = measure(ellipsoid((a, b, c), (0.4, 0.4, 0.4), rot("z", 20), rot("x", 15)))
    truth = 4 / 3 * math.pi * a * b * c / 1000
    assert m.mesh_volume_ml == pytest.approx(truth, rel=0.005)
    assert m.volume_ml == pytest.approx(truth, rel=0.005)


def test_longest_inplane_diameter():
    # long axis in the slice plane: the in-plane diameter is 2a; tilted out of plane it is shorter
    flat = measure(ellipsoid((12, 9, 6), (0.5, 0.5, 0.5)))
    assert flat.longest_inplane_diameter_mm == pytest.approx(24.0, abs=0.51)
    tilted = measure(ellipsoid((12, 9, 6), (0.5, 0.5, 0.5), axes=rot("y", 60)))
    # the central slice cuts the tilted ellipsoid in an ellipse whose long semi-axis is
    # 1 / sqrt(cos^2(60)/a^2 + sin^2(60)/c^2) along i  (b along j is shorter)
    t = np.deg2rad(60)
    expect = 2 / math.sqrt(math.cos(t) ** 2 / 144 + math.sin(t) ** 2 / 36)
    assert tilted.longest_inplane_diameter_mm == pytest.approx(max(expect, 18.0), abs=0.75)
    assert tilted.longest_inplane_diameter_mm < 22.0


def test_max_feret_and_orthogonal_diameters_of_points():
    pts = np.array([[0, 0, 0], [3, 4, 0], [1, 1, 0]], float)
    length, p, q = max_feret(pts)
    assert length == pytest.approx(5.0) and {tuple(p), tuple(q)} == {(0, 0, 0), (3, 4, 0)}
    # the 8 corners of a 10 x 6 x 2 box rotated in space
    corners = np.array([[x, y, z] for x in (0, 10) for y in (0, 6) for z in (0, 2)], float)
    r = rot("x", 20) @ rot("z", 33)
    (l, w, h), _ = orthogonal_diameters(corners @ r.T)
    assert l == pytest.approx(math.sqrt(100 + 36 + 4))
    assert l >= w > 0 and h > 0


# -------------------------------------------------------------------- other properties
def test_components_and_intensity_statistics():
    arr = np.zeros((20, 20, 20), np.uint8)
    arr[2:6, 2:6, 2:6] = 1
    arr[10:15, 10:15, 10:15] = 1
    rng = np.random.default_rng(7)
    img_arr = rng.normal(100, 15, arr.shape)
    mask = Volume(arr, (1, 1, 1), (0, 0, 0), np.eye(3))
    img = mask.with_array(img_arr)
    m = measure(mask, img)
    assert m.n_components == 2 and "multiple-components" in m.flags
    assert m.n_voxels == 64 + 125
    vals = img_arr[arr == 1]
    assert m.intensity_mean == pytest.approx(vals.mean())
    assert m.intensity_sd == pytest.approx(vals.std())
    assert m.intensity_median == pytest.approx(np.median(vals))
    assert m.intensity_p5 == pytest.approx(np.percentile(vals, 5))
    assert m.intensity_p95 == pytest.approx(np.percentile(vals, 95))
    assert m.bbox_ijk == ((2, 2, 2), (14, 14, 14))
    assert measure(mask).intensity_mean is None


def test_label_map_needs_a_label():
    arr = np.zeros((8, 8, 8), np.int16)
    arr[1:3, 1:3, 1:3] = 1
    arr[4:7, 4:7, 4:7] = 2
    labels = Volume(arr, (1, 1, 2), (0, 0, 0), np.eye(3))
    with pytest.raises(InputError, match="not binary.*pass the lesion's label"):
        measure(labels)
    assert measure(labels, label=2).volume_ml == pytest.approx(27 * 2 / 1000)
    assert measure(labels, label=1).n_voxels == 8


def test_empty_mask_is_empty_with_a_reason_never_zero():
    empty = Volume(np.zeros((5, 5, 5), bool), (1, 1, 1), (0, 0, 0), np.eye(3))
    m = measure(empty)
    assert m.status == "empty" and "empty" in m.reason
    assert m.volume_ml is None and m.mesh_volume_ml is None and m.diameters_mm is None
    assert m.flags == ("empty-mask",)
    arr = np.zeros((5, 5, 5), np.uint8)
    arr[1, 1, 1] = 1
    m = measure(Volume(arr, (1, 1, 1), (0, 0, 0), np.eye(3)), label=3)
    assert m.status == "empty" and "no voxel has label 3" in m.reason and "[1]" in m.reason
    assert m.volume_ml is None


def test_mask_on_another_grid_is_rejected():
    mask = box_mask((10, 10, 10), (slice(2, 5),) * 3)
    img = Volume(np.zeros((10, 10, 10)), (1, 1, 1), (0.0, 0.0, 0.5), np.eye(3))
    with pytest.raises(GeometryMismatchError, match="not on the image's grid"):
        measure(mask, img)


def test_single_voxel_and_to_dict_is_json_ready():
    m = measure(box_mask((5, 5, 5), (slice(2, 3),) * 3, spacing=(0.5, 0.5, 3.0)))
    assert m.volume_ml == pytest.approx(0.75 / 1000)
    assert "few-voxels" in m.flags
    assert m.mesh_volume_ml > 0
    d = json.loads(json.dumps(m.to_dict()))
    assert d["status"] == "ok" and d["flags"] == ["few-voxels"] and len(d["diameters_mm"]) == 3
    f = Measurement.failed("segmentation did not converge")
    assert f.status == "failed" and f.volume_ml is None and f.to_dict()["reason"] == "segmentation did not converge"
    with pytest.raises(ValueError, match="status"):
        Measurement(status="bogus")


# ---------------------------------------------------------------------- pyradiomics
PYRADIOMICS = {  # published baseline (mm^3), label 1; see ../shared/data/README.md
    "brain1": (16412.658691406243, 16149.4954427),
    "breast1": (132.42579545515324, 124.091304832),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("case", sorted(PYRADIOMICS))
def test_pyradiomics_published_volumes(shared_data, case):
    from volumetry.io.reader import read_image

    folder = shared_data / "volumes" / "pyradiomics"
    image = read_image(folder / f"{case}_image.nrrd")
    mask = read_image(folder / f"{case}_label.nrrd")
    m = measure(mask, image, label=1)
    voxel_mm3, mesh_mm3 = PYRADIOMICS[case]
    assert m.volume_ml * 1000 == pytest.approx(voxel_mm3, rel=1e-6)
    assert m.mesh_volume_ml * 1000 == pytest.approx(mesh_mm3, rel=0.01)


def test_label_of_a_probability_map_is_refused_not_measured():
    # --label 1 on a probability map would count only the voxels at exactly 1.0: a silent wrong volume
    prob = np.zeros((6, 7, 8), np.float32)
    prob[2:4, 2:5, 2:6] = 0.7
    prob[3, 3, 3] = 1.0
    with pytest.raises(InputError, match="non-integer"):
        measure(Volume(prob, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)), label=1)
    nan = np.zeros((6, 7, 8), np.float32)
    nan[2:4, 2:5, 2:6] = 1.0
    nan[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        measure(Volume(nan, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)), label=1)
