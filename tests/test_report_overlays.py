"""Overlay montages: the contour lies on the ground-truth boundary, pixel by pixel."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from volumetry.errors import GeometryMismatchError
from volumetry.image import Volume
from volumetry.report.overlays import (
    CONTOUR_RGB, OUTSIDE_RGB, ViewPlan, load_tiles, plan_views, render_montage, render_scan_overlay, save_montage,
)


def ellipsoid_phantom(shape=(14, 40, 48), spacing=(0.7, 0.8, 2.5), origin=(-20.0, -15.0, 30.0),
                      centre_mm=(-3.0, 2.0, 46.0), radii_mm=(9.0, 7.0, 11.0), seed=3):
    """An ellipsoidal bright lesion in noise; truth = voxel centres inside the ellipsoid."""
    rng = np.random.default_rng(seed)
    grid = Volume(np.zeros(shape, np.float32), spacing, origin, np.eye(3))
    kk, jj, ii = np.indices(shape)
    xyz = grid.index_to_lps(np.stack([ii, jj, kk], axis=-1))
    r = np.sum(((xyz - np.asarray(centre_mm)) / np.asarray(radii_mm)) ** 2, axis=-1)
    truth = r <= 1.0
    image = (100 + 20 * rng.standard_normal(shape) + 300 * truth).astype(np.float32)
    return grid.with_array(image), grid.with_array(truth)


def _boundary_2d(mask2d: np.ndarray) -> np.ndarray:
    return mask2d & ~ndimage.binary_erosion(mask2d, ndimage.generate_binary_structure(2, 1), border_value=1)


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_contour_pixels_lie_on_truth_boundary_and_cover_it():
    image, truth = ellipsoid_phantom()
    montage = render_montage(image, truth, n_levels=5)
    rgb = _decode(montage.png)
    np.testing.assert_array_equal(rgb, montage.rgb)  # the PNG holds exactly what was drawn
    red = np.all(rgb == CONTOUR_RGB, axis=-1)
    assert red.sum() > 200
    # every non-contour pixel of a tile is grey (R = G = B): nothing else can look like the contour
    other = ~red
    assert np.all((rgb[other][:, 0] == rgb[other][:, 1]) | np.all(rgb[other] == OUTSIDE_RGB, axis=-1))
    shown_ks = [t.k for t in montage.tiles]
    assert len(shown_ks) == 5 and None not in shown_ks
    nk_truth = np.nonzero(truth.array.any(axis=(1, 2)))[0]
    assert shown_ks[0] == nk_truth.min() and shown_ks[-1] == nk_truth.max()
    for tile in montage.tiles:
        b = _boundary_2d(truth.array[tile.k])
        near = ndimage.binary_dilation(b, ndimage.generate_binary_structure(2, 2))  # boundary ± 1 voxel
        ys, xs = np.nonzero(red[:, tile.x0:tile.x0 + tile.n_i * tile.scale_i])
        covered = np.zeros_like(b)
        for y, x in zip(ys, xs + tile.x0):
            v = tile.voxel_at(x, y)
            assert v is not None and v[2] == tile.k
            assert near[v[1], v[0]], f"contour pixel ({x}, {y}) on voxel {v} is not at the truth boundary"
            covered[v[1], v[0]] = True
        crop = np.zeros_like(b)
        crop[tile.j0:tile.j0 + tile.n_j, tile.i0:tile.i0 + tile.n_i] = True
        missed = b & crop & ~covered
        assert b[crop].sum() > 0 and not missed.any(), f"boundary voxels without contour on slice {tile.k}"


def _check_contour_on_truth(image, truth, montage):
    """Every contour pixel is on a voxel within one voxel of the truth boundary; every boundary
    voxel in view carries contour. Returns the number of contour pixels."""
    rgb = _decode(montage.png)
    red = np.all(rgb == CONTOUR_RGB, axis=-1)
    for tile in montage.tiles:
        if tile.k is None:
            continue
        b = _boundary_2d(truth.array[tile.k].astype(bool))
        near = ndimage.binary_dilation(b, ndimage.generate_binary_structure(2, 2))
        band = red[tile.y0:tile.y0 + tile.n_j * tile.scale_j, tile.x0:tile.x0 + tile.n_i * tile.scale_i]
        ys, xs = np.nonzero(band)
        vj, vi = tile.j0 + ys // tile.scale_j, tile.i0 + xs // tile.scale_i
        assert near[vj, vi].all(), f"contour off the truth boundary on slice {tile.k}"
        covered = np.zeros_like(b)
        covered[vj, vi] = True
        crop = np.zeros_like(b)
        crop[tile.j0:tile.j0 + tile.n_j, tile.i0:tile.i0 + tile.n_i] = True
        assert not (b & crop & ~covered).any(), f"boundary voxels without contour on slice {tile.k}"
    return int(red.sum())


@pytest.mark.parametrize("shape, plane", [("septated", "oblique"), ("multifocal", "coronal"), ("cystic", "axial")])
def test_contour_on_phantom_truth_boundary(shape, plane):
    """On the phantom module's lesions (oblique grids, infiltrative and multifocal shapes)."""
    phantoms = pytest.importorskip("volumetry.phantoms.lesion", reason="volumetry.phantoms not available")
    ph = phantoms.make_lesion_phantom(phantoms.PhantomSpec(shape=shape, plane=plane, volume_ml=4.0), seed=11)
    montage = render_montage(ph.image, ph.mask, n_levels=5)
    assert all(t.k is not None for t in montage.tiles)
    assert _check_contour_on_truth(ph.image, ph.mask, montage) > 100


def test_same_anatomical_level_across_visits_on_different_grids():
    base_img, base_mask = ellipsoid_phantom()
    plan = plan_views(base_mask, 4)
    # follow-up: other origin and slice spacing, lesion shrunk at the same place
    fu_img, fu_mask = ellipsoid_phantom(shape=(20, 44, 50), spacing=(0.75, 0.75, 2.0), origin=(-22.0, -17.5, 27.0),
                                        radii_mm=(6.0, 5.0, 8.0), seed=4)
    m0, m1 = render_montage(base_img, base_mask, plan), render_montage(fu_img, fu_mask, plan)
    for t0, t1, p in zip(m0.tiles, m1.tiles, plan.points_lps):
        z0 = base_img.index_to_lps(np.array([0, 0, t0.k], float))[2]
        z1 = fu_img.index_to_lps(np.array([0, 0, t1.k], float))[2]
        assert abs(z0 - p[2]) <= base_img.spacing[2] / 2 + 1e-6
        assert abs(z1 - p[2]) <= fu_img.spacing[2] / 2 + 1e-6
        assert abs(z1 - z0) <= (base_img.spacing[2] + fu_img.spacing[2]) / 2


def test_level_outside_the_scan_gets_a_marked_tile():
    image, truth = ellipsoid_phantom()
    plan = ViewPlan(((0.0, 0.0, 46.0), (0.0, 0.0, 500.0)), 60.0)
    m = render_montage(image, truth, plan)
    assert m.tiles[0].k is not None and m.tiles[1].k is None
    assert np.all(m.rgb[:, m.tiles[1].x0 + 2] == OUTSIDE_RGB)


def test_empty_mask_and_no_mask_render_without_contour():
    image, truth = ellipsoid_phantom()
    for mask in (truth.with_array(np.zeros_like(truth.array)), None):
        rgb = _decode(render_scan_overlay(image, mask))
        assert not np.all(rgb == CONTOUR_RGB, axis=-1).any()
        assert rgb.shape[0] > 50


def test_mask_on_another_grid_is_refused():
    image, truth = ellipsoid_phantom()
    other = Volume(truth.array, truth.spacing, (0.0, 0.0, 0.0), truth.direction)
    with pytest.raises(GeometryMismatchError, match="not on the image's grid"):
        render_montage(image, other)


def test_saved_montage_has_tile_sidecar(tmp_path):
    image, truth = ellipsoid_phantom()
    m = render_montage(image, truth, n_levels=3)
    path = save_montage(m, tmp_path / "a" / "overlay.png")
    assert _decode(path.read_bytes()).shape == m.rgb.shape
    tiles = load_tiles(path)
    assert [t.k for t in tiles] == [t.k for t in m.tiles] and tiles[0].caption.startswith("slice ")


def test_plan_carried_by_a_registration_transform():
    plan = ViewPlan(((10.0, 0.0, 0.0), (0.0, 0.0, 5.0)), 50.0)
    rot90z = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # +90 degrees about z
    moved = plan.mapped(rot90z, (1.0, 2.0, 3.0), (0.0, 0.0, 5.0))
    np.testing.assert_allclose(moved.points_lps, [(1.0, 12.0, 3.0), (1.0, 2.0, 8.0)], atol=1e-12)
    assert moved.field_mm == 50.0
    from volumetry.errors import InputError
    with pytest.raises(InputError, match="finite 3x3 matrix"):
        plan.mapped(np.eye(3), (np.nan, 0, 0), (0, 0, 0))


def test_carried_levels_find_the_moved_lesion():
    """A follow-up where the patient lies 7.5 mm further along z: with the registration the
    tiles show the lesion at the same slices of the lesion as on the baseline."""
    base_img, base_mask = ellipsoid_phantom()
    fu_img, fu_mask = ellipsoid_phantom(centre_mm=(-3.0, 2.0, 53.5))
    plan = plan_views(base_mask, 3)
    carried = plan.mapped(np.eye(3), (0.0, 0.0, 7.5), (0.0, 0.0, 0.0))
    m0, m1 = render_montage(base_img, base_mask, plan), render_montage(fu_img, fu_mask, carried)
    for t0, t1 in zip(m0.tiles, m1.tiles):
        assert t1.k - t0.k == 3  # 7.5 mm / 2.5 mm slices
        np.testing.assert_array_equal(base_mask.array[t0.k], fu_mask.array[t1.k])


def test_mask_outside_the_zoomed_views_gets_a_whole_slice_tile():
    """A leak far from the lesion must be visible: the montage adds the whole slice holding
    most of the mask outside the views, with the contour on it."""
    image, truth = ellipsoid_phantom(shape=(14, 90, 96))
    leak = truth.array.copy()
    leak[12, 60:85, 5:30] = True  # beyond the lesion's slab and field of view
    mask = truth.with_array(leak)
    plan = plan_views(truth, 5)
    m = render_montage(image, mask, plan)
    assert m.outside_fraction == pytest.approx(25 * 25 / leak.sum())
    over = m.tiles[-1]
    assert over.k == 12 and over.caption.startswith("whole slice 13/14")
    assert (over.n_i, over.n_j) == (96, 90) and len(m.tiles) == 6
    assert _check_contour_on_truth(image, mask, m) > 0
    red = np.all(m.rgb == CONTOUR_RGB, axis=-1)
    block = red[over.y0 + 60 * over.scale_j: over.y0 + 85 * over.scale_j, over.x0 + 5 * over.scale_i:
                over.x0 + 30 * over.scale_i]
    assert block.sum() > 0
    # the lesion alone stays inside the views: no extra tile
    assert render_montage(image, truth, plan).outside_fraction == 0.0
