"""Phantom truth: analytic and Monte-Carlo volumes, the voxelised truth mask,
partial volume across the slice profile, and the MR look (contrast, Rician noise, bias)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from volumetry.phantoms import PhantomSpec, make_grid, make_lesion_phantom, phantom_suite
from volumetry.phantoms.mri import LESION_SIGNAL, Anatomy, Focus, Scene, focus_fractions, render
from volumetry.phantoms.shapes import Ellipsoid, Solid, build_solid, monte_carlo_volume, random_rotation, true_volume


def _cases(n: int, seed: int = 11):
    """Random lesions >= 1 mL on grids with <= 3 mm contiguous slices, every shape and plane."""
    rng = np.random.default_rng(seed)
    shapes = ("sphere", "ellipsoid", "lobulated", "infiltrative", "cystic", "septated", "multifocal")
    planes = ("axial", "coronal", "sagittal", "oblique")
    for idx in range(n):
        plane = planes[idx % 4]
        tilt = (float(rng.uniform(8, 30)), float(rng.uniform(-30, -5))) if plane == "oblique" else (0.0, 0.0)
        px = float(rng.uniform(0.6, 1.2))
        yield PhantomSpec(
            shape=shapes[idx % len(shapes)], volume_ml=float(np.exp(rng.uniform(np.log(1.0), np.log(40.0)))),
            plane=plane, tilt_deg=tilt, pixel_spacing=(px, px * float(rng.choice([1.0, 1.25]))),
            slice_thickness=float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0])), snr=float(rng.uniform(5, 40)),
            n_foci=2 + idx % 2, seed=1000 + idx,
        )


@pytest.mark.parametrize("spec", list(_cases(21)), ids=lambda s: f"{s.shape}-{s.volume_ml:.1f}ml-{s.plane}-{s.slice_thickness}mm")
def test_voxelised_mask_within_1_percent_of_truth(spec):
    ph = make_lesion_phantom(spec)
    t = ph.truth
    mask_ml = ph.mask.array.sum() * ph.mask.voxel_volume_mm3 / 1000
    assert t["true_volume_ml"] == pytest.approx(spec.volume_ml, rel=1e-6)
    assert t["mask_volume_ml"] == pytest.approx(mask_ml, abs=1e-6)
    tol = 0.01 * t["true_volume_ml"] + 3 * t["true_volume_se_ml"]
    assert abs(mask_ml - t["true_volume_ml"]) <= tol, (mask_ml, t["true_volume_ml"])
    # the labels agree with the mask, the grids are shared, the seed lies in the lesion
    assert np.array_equal(ph.labels.array > 0, ph.mask.array)
    ph.image.require_same_grid(ph.mask)
    i, j, k = t["seed_point_ijk"]
    assert ph.mask.array[k, j, i]
    assert np.allclose(ph.image.index_to_lps([i, j, k]), t["seed_point_lps_mm"], atol=1e-3)


def test_analytic_volumes():
    sph = build_solid("sphere", np.random.default_rng(0)).scaled(1.7)
    assert true_volume(sph, seed=0).mm3 == pytest.approx(4 / 3 * math.pi * 17.0 ** 3, rel=1e-12)
    ell = Ellipsoid((1, 2, 3), (5, 7, 11), random_rotation(np.random.default_rng(1)))
    tv = true_volume(Solid((ell,)), seed=0)
    assert tv.mm3 == pytest.approx(4 / 3 * math.pi * 385, rel=1e-12) and tv.se_mm3 == 0 and tv.method == "analytic"


def test_monte_carlo_estimate_and_its_standard_error():
    rng = np.random.default_rng(5)
    # a union whose volume is known: two disjoint balls + a ball inside the body
    body = Ellipsoid((0, 0, 0), (10, 10, 10), np.eye(3))
    far = Ellipsoid((25, 0, 0), (4, 4, 4), np.eye(3))
    inner = Ellipsoid((2, 0, 0), (3, 3, 3), np.eye(3))
    tv = monte_carlo_volume(Solid((body, far, inner)), seed=3)
    exact = 4 / 3 * math.pi * (1000 + 64)
    assert tv.se_mm3 > 0 and abs(tv.mm3 - exact) < 4 * tv.se_mm3
    assert tv.se_mm3 / exact < 0.002
    # two seeds of a lobulated shape agree within their errors
    lob = build_solid("lobulated", rng)
    a, b = monte_carlo_volume(lob, seed=1), monte_carlo_volume(lob, seed=2)
    assert abs(a.mm3 - b.mm3) < 4 * math.hypot(a.se_mm3, b.se_mm3)
    assert a.mm3 > lob.parts[0].volume_mm3  # the lobes add volume


def test_partial_volume_follows_the_slice_profile():
    """Fractions integrate to the true volume on contiguous slices; with a gap, a thin
    sheet of lesion that falls between two slabs is invisible, as on a scanner."""
    sphere = Focus(1, Solid((Ellipsoid((0.3, -0.2, 0.1), (9, 9, 9), np.eye(3)),)))
    grid = make_grid((0, 0, 0), matrix=(40, 40), pixel_spacing=(0.9, 0.9), n_slices=12, slice_spacing=3.0)
    _, frac, _ = focus_fractions(grid, sphere)
    assert frac.sum() * grid.voxel_volume_mm3 == pytest.approx(4 / 3 * math.pi * 729, rel=0.003)
    assert frac.max() == 1.0 and frac.min() == 0.0
    # a 2 mm thick disc centred in the gap between slabs (slices at 0, 6 mm; 3 mm thick)
    disc = Focus(1, Solid((Ellipsoid((0, 0, 3.0), (12, 12, 0.9), np.eye(3)),)))
    gap_grid = make_grid((0, 0, 3.0), matrix=(40, 40), pixel_spacing=(0.9, 0.9), n_slices=2,
                         slice_spacing=6.0, slice_thickness=3.0)
    _, frac_gap, _ = focus_fractions(gap_grid, disc)
    assert frac_gap.max() == 0.0
    contiguous = make_grid((0, 0, 3.0), matrix=(40, 40), pixel_spacing=(0.9, 0.9), n_slices=1,
                           slice_spacing=6.0, slice_thickness=6.0)
    _, frac_thick, _ = focus_fractions(contiguous, disc)
    assert frac_thick.max() == pytest.approx(1.8 / 6.0, abs=0.05)  # the disc fills 1.8 of 6 mm


def _scene(seed=3):
    focus = Focus(1, Solid((Ellipsoid((5, 0, 0), (12, 10, 9), np.eye(3)),)))
    from volumetry.phantoms.shapes import TrueVolume
    focus = Focus(1, focus.solid, (), TrueVolume(focus.solid.parts[0].volume_mm3, 0, "analytic"))
    return Scene(Anatomy.around([focus], seed=seed), (focus,))


def test_rician_noise_at_the_stated_snr():
    scene = _scene()
    grid = make_grid((0, 0, 0), matrix=(160, 160), pixel_spacing=(1.2, 1.2), n_slices=6, slice_spacing=4.0)
    snr = 12.5
    r = render(scene, grid, snr=snr, bias_amplitude=0.0, seed=9)
    sigma = LESION_SIGNAL / snr
    assert r.sigma == pytest.approx(sigma)
    air = r.noiseless == 0
    assert air.sum() > 5000
    # magnitude of pure noise is Rayleigh: mean sigma*sqrt(pi/2), second moment 2 sigma^2
    assert r.image[air].mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.03)
    assert np.sqrt((r.image[air] ** 2).mean() / 2) == pytest.approx(sigma, rel=0.03)
    # in the bright lesion the noise is ~Gaussian with that sigma
    core = (r.labels == 1) & (r.lesion_fraction == 1)
    resid = r.image[core] - np.sqrt(r.noiseless[core] ** 2 + sigma ** 2)
    assert resid.std() == pytest.approx(sigma, rel=0.1)


def test_t2_fat_sat_look_and_bias_field():
    spec = PhantomSpec(shape="lobulated", volume_ml=15, slice_thickness=3, snr=40, bias=0.0)
    flat = make_lesion_phantom(spec, seed=4)
    les = flat.mask.array
    from scipy import ndimage
    ring = ndimage.binary_dilation(les, iterations=6) & ~ndimage.binary_dilation(les, iterations=2)
    lesion_med, ring_med = np.median(flat.image.array[les]), np.median(flat.image.array[ring])
    assert lesion_med > 2.5 * ring_med  # T2-bright lesion against muscle
    # the tissue background is not flat: its spread is well above the noise alone
    tissue = ring & (flat.image.array > 150)
    assert flat.image.array[tissue].std() > 1.4 * LESION_SIGNAL / spec.snr
    # a bias field shades the image smoothly: same seed, same anatomy, ratio varies by >10 %
    biased = make_lesion_phantom(PhantomSpec(shape="lobulated", volume_ml=15, slice_thickness=3, snr=40, bias=0.3), seed=4)
    assert np.array_equal(biased.mask.array, flat.mask.array)
    ratio = biased.image.array[les].astype(float) / np.maximum(flat.image.array[les], 1)
    assert np.percentile(ratio, 95) - np.percentile(ratio, 5) > 0.1


def test_suite_is_varied():
    suite = phantom_suite()
    assert len(suite) >= 40
    assert len({s.name for s in suite}) == len(suite)
    vols = [s.volume_ml for s in suite]
    assert min(vols) <= 0.5 and max(vols) >= 200
    assert min(s.slice_thickness for s in suite) <= 1 and max(s.slice_thickness for s in suite) >= 6
    assert min(s.snr for s in suite) <= 5 and max(s.snr for s in suite) >= 40
    assert {s.shape for s in suite} >= {"sphere", "ellipsoid", "lobulated", "infiltrative", "cystic", "septated", "multifocal"}
    assert {s.plane for s in suite} == {"axial", "coronal", "sagittal", "oblique"}
    assert any(s.slice_gap > 0 for s in suite) and any(s.bias > 0 for s in suite)
    assert any(s.pixel_spacing[0] != s.pixel_spacing[1] for s in suite)
    assert any(s.tilt_deg[0] and s.tilt_deg[1] for s in suite)  # double oblique
    assert phantom_suite() == suite  # deterministic


def test_bad_spec_is_an_input_error():
    from volumetry.errors import InputError
    with pytest.raises(InputError, match="unknown phantom shape 'cube'"):
        PhantomSpec(shape="cube")
    with pytest.raises(InputError, match="unknown plane 'axal'"):
        PhantomSpec(plane="axal")
    with pytest.raises(InputError, match="volume_ml > 0"):
        PhantomSpec(volume_ml=0)


def test_texture_on_a_grid_equals_the_pointwise_field():
    from volumetry.phantoms.mri import RandomField
    from volumetry.phantoms.geometry import rotation_matrix

    field = RandomField.make(np.random.default_rng(3), 12, (4.0, 30.0))
    steps = rotation_matrix((1, 2, 3), 27) @ np.diag([0.7, 0.9, 3.5])
    origin = np.array([-40.0, 12.5, 80.0])
    shape = (5, 7, 9)
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    pts = np.stack([ii, jj, kk], -1) @ steps.T + origin
    assert np.abs(field.on_grid(origin, steps, shape) - field(pts)).max() < 1e-9
