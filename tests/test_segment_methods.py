"""Each segmentation method on small analytic phantoms, failures with reasons, QC flags."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.errors import InputError
from volumetry.segment import Prompt, method_names, segment, segment_lesions

from test_segment_helpers import dice, ellipsoid_phantom, rotation


@pytest.fixture(scope="module")
def phantom():
    return ellipsoid_phantom(radii=((8.0, 6.5, 9.0),), shape=(12, 40, 40), noise=20.0, seed=3)


@pytest.mark.parametrize("method", ["default", "region_growing", "threshold", "levelset"])
def test_each_method_finds_the_ellipsoid(phantom, method):
    image, truth, true_ml, centres = phantom
    corners = np.array([centres[0] - 12, centres[0] + 12])
    prompt = Prompt.from_points(centres, "lps", image, box=corners)
    res = segment(image, prompt, method=method)
    assert res.status == "ok", res.reason
    assert res.mask.same_grid(image) and res.mask.array.dtype == bool
    tol = {"levelset": 0.08}.get(res.method, 0.04)
    assert abs(res.volume_ml / true_ml - 1) < tol, (res.volume_ml, true_ml)
    assert dice(res.mask.array, truth) > 0.9
    assert res.method == ("region_growing" if method == "default" else method)
    assert res.qc["n_components"] == 1 and res.qc["touches_border"] == 0


def test_region_growing_without_box_is_unbiased_on_thick_slices():
    vols = []
    for seed in range(4):
        image, truth, true_ml, centres = ellipsoid_phantom(radii=((7.0, 7.0, 8.0),), spacing=(1.0, 1.0, 5.0),
                                                           shape=(8, 36, 36), noise=25.0, seed=seed)
        res = segment(image, Prompt.from_points(centres, "lps", image))
        vols.append(res.volume_ml / true_ml - 1)
    # partial volume at 5 mm slices: the half-way threshold is right on average
    assert abs(np.mean(vols)) < 0.05, vols


def test_search_region_grows_until_the_lesion_fits():
    image, truth, true_ml, centres = ellipsoid_phantom(radii=((14.0, 12.0, 15.0),), spacing=(1.0, 1.0, 2.0),
                                                       shape=(20, 40, 40), noise=15.0)
    res = segment(image, Prompt.from_points(centres, "lps", image), params={"search_radius_mm": 4.0})
    assert res.ok and res.qc["search_radius_mm"] >= 16
    assert abs(res.volume_ml / true_ml - 1) < 0.03


def test_oblique_grid_and_voxel_seed():
    d = rotation([1, 1, 0], 30)
    image, truth, true_ml, centres = ellipsoid_phantom(direction=d, noise=15.0)
    ijk = np.rint(image.lps_to_index(centres[0]))
    res = segment(image, Prompt.from_points(ijk, "voxel", image))
    assert res.ok and dice(res.mask.array, truth) > 0.9


def test_multifocal_lesion_with_one_seed_per_focus():
    image, truth, true_ml, centres = ellipsoid_phantom(
        radii=((5.0, 5.0, 6.0), (4.0, 4.5, 6.0)), centres=[[-8.0, -12.0, 28.0], [10.0, 2.0, 30.0]],
        noise=15.0, seed=5)
    one = segment(image, Prompt.from_points(centres[:1], "lps", image))
    both = segment(image, Prompt.from_points(centres, "lps", image))
    assert both.qc["n_components"] == 2 and "multiple-components" in both.flags
    # two small foci on 3 mm slices: compare with the voxels at least half inside
    truth_ml = truth.sum() * image.voxel_volume_mm3 / 1000
    assert abs(both.volume_ml / truth_ml - 1) < 0.06 and dice(both.mask.array, truth) > 0.9
    assert one.volume_ml < 0.7 * both.volume_ml
    several = segment_lesions(image, [Prompt.from_points(centres[:1], "lps", image, lesion_id="a"),
                                      Prompt.from_points(centres[1:], "lps", image, lesion_id="b")])
    assert abs(several["a"].volume_ml + several["b"].volume_ml - both.volume_ml) < 1e-9


def test_seed_on_background_fails_with_a_reason_not_zero_ml(phantom):
    image, truth, true_ml, centres = phantom
    off = image.index_to_lps(np.array([3.0, 3.0, 6.0]))
    for method in ("region_growing", "levelset", "threshold"):
        res = segment(image, Prompt.from_points(off, "lps", image, box=[off - 6, off + 6]), method=method)
        assert res.status == "failed" and res.mask is None and res.volume_ml is None
        assert "seed" in res.reason and ("lesion" in res.reason or "threshold" in res.reason), res.reason


def test_no_lesion_at_all_is_failed_not_empty():
    rng = np.random.default_rng(1)
    image, _, _, centres = ellipsoid_phantom(lesion=100.0, noise=15.0)  # lesion intensity = background
    res = segment(image, Prompt.from_points(centres, "lps", image))
    assert res.status == "failed"
    assert "not on lesion-like tissue" in res.reason or "stands out" in res.reason
    assert rng is not None


def test_mask_touching_the_image_border_is_flagged():
    image, truth, true_ml, centres = ellipsoid_phantom(centres=[[-20.0, -10.0, 25.0]], noise=10.0)
    res = segment(image, Prompt.from_points([[-19.0, -10.0, 25.0]], "lps", image))
    assert res.ok and "touches-image-border" in res.flags and res.qc["touches_border"] == 1


def test_threshold_reports_a_box_that_cuts_the_lesion(phantom):
    image, truth, true_ml, centres = phantom
    c = centres[0]
    res = segment(image, Prompt.from_points(c, "lps", image, box=[c - [12, 12, 12], c + [3, 12, 12]]),
                  method="threshold")
    assert res.ok and res.qc["fraction_outside_box"] > 0.05 and "outside-box" in res.flags


def test_unknown_method_and_parameter_are_input_errors(phantom):
    image, _, _, centres = phantom
    prompt = Prompt.from_points(centres, "lps", image)
    with pytest.raises(InputError, match="unknown segmentation method 'watershed'; choose one of: default, "):
        segment(image, prompt, method="watershed")
    with pytest.raises(InputError, match="unknown parameter.*'region_growing'"):
        segment(image, prompt, params={"smoothing": 1})
    assert set(method_names()) == {"region_growing", "threshold", "levelset"}


@pytest.mark.parametrize("method, params, message", [
    ("region_growing", {"closing_mm": {"a": 1}}, "'closing_mm' of method 'region_growing' must be a finite number"),
    ("region_growing", {"closing_mm": float("nan")}, "'closing_mm' .* must be a finite number, got nan"),
    ("region_growing", {"closing_mm": True}, "'closing_mm' .* must be a finite number, got True"),
    ("region_growing", {"fill_holes": "yes"}, "'fill_holes' .* must be true or false"),
    ("region_growing", {"max_iterations": 5.5}, "'max_iterations' .* must be a whole number"),
    ("threshold", {"threshold": [120]}, "'threshold' of method 'threshold' must be text or a number"),
    ("levelset", {"init_params": {"closing_mm": "x"}}, "init_params of method 'levelset': parameter 'closing_mm'"),
    ("levelset", {"init_params": {"smoothng_mm": 1}}, "init_params of method 'levelset': unknown parameter"),
    ("region_growing", {"init_params": {}}, "takes no 'init_params'"),
])
def test_a_parameter_of_the_wrong_type_is_an_input_error_before_segmenting(method, params, message):
    """Checked when the parameters are resolved (the pipeline does it before any scan), not as a
    TypeError deep inside the method, scan after scan."""
    from volumetry.segment.registry import get_method, resolve_params

    with pytest.raises(InputError, match=message):
        resolve_params(get_method(method), params)


def test_parameters_of_the_right_type_are_accepted():
    from volumetry.segment.registry import get_method, resolve_params

    p = resolve_params(get_method("region_growing"), {"closing_mm": 2, "connectivity": 18, "fill_holes": False,
                                                      "max_iterations": np.int64(5), "fraction": np.float64(0.4)})
    assert (p["closing_mm"], p["connectivity"], p["fill_holes"], p["max_iterations"], p["fraction"]) == (2, 18, False,
                                                                                                         5, 0.4)
    assert resolve_params(get_method("threshold"), {"threshold": 120.5})["threshold"] == 120.5
    assert resolve_params(get_method("levelset"), {"init": "threshold",
                                                   "init_params": {"threshold": "otsu"}})["init"] == "threshold"


def test_result_json_is_plain(phantom):
    import json

    image, _, _, centres = phantom
    res = segment(image, Prompt.from_points(centres, "lps", image))
    d = json.loads(json.dumps(res.to_json()))
    assert d["status"] == "ok" and d["volume_ml"] == pytest.approx(res.volume_ml) and d["method"] == "region_growing"
    assert set(d["qc"]) >= {"seed_z", "n_components", "touches_border", "contrast_sd", "threshold"}


def test_bias_field_across_the_lesion_is_measured_and_corrected():
    image, truth, _, centres = ellipsoid_phantom(radii=((13.0, 11.0, 14.0),), shape=(14, 44, 44), noise=10.0, seed=4)
    ii = np.indices(image.array.shape)[2]
    shaded = image.with_array((image.array * np.exp(0.025 * (ii - 22))).astype(np.float32))  # 25 % per cm along i
    truth_ml = truth.sum() * image.voxel_volume_mm3 / 1000
    on = segment(shaded, Prompt.from_points(centres, "lps", shaded))
    off = segment(shaded, Prompt.from_points(centres, "lps", shaded), params={"bias_correction": False})
    assert on.qc["bias_corrected"] == 1 and abs(on.qc["bias_gradient_pct_per_cm"] - 25.0) < 2.0
    assert abs(on.volume_ml / truth_ml - 1) < 0.005 < abs(off.volume_ml / truth_ml - 1)


def test_connectivity_is_18_only_for_clear_lesions_and_bad_values_are_input_errors(phantom):
    image, _, _, centres = phantom  # contrast 200 over noise 20: 10 SD
    clear = segment(image, Prompt.from_points(centres, "lps", image))
    noisy_img, _, _, c2 = ellipsoid_phantom(radii=((8.0, 6.5, 9.0),), shape=(12, 40, 40), noise=40.0, seed=3)
    noisy = segment(noisy_img, Prompt.from_points(c2, "lps", noisy_img))
    assert clear.qc["connectivity"] == 18 and noisy.qc["connectivity"] == 6
    with pytest.raises(InputError, match="connectivity must be 6, 18, 26 or 'auto', got 8"):
        segment(image, Prompt.from_points(centres, "lps", image), params={"connectivity": 8})
    with pytest.raises(InputError, match="threshold must be 'otsu' or a number"):
        segment(image, Prompt.from_points(centres, "lps", image), method="threshold", params={"threshold": "max"})


def test_levelset_on_a_single_slice_image_segments_in_plane():
    # one 5 mm slice through a 14 mm-wide ellipsoid: the level set evolves in the plane only
    image, truth, _, centres = ellipsoid_phantom(shape=(1, 48, 48), spacing=(1.0, 1.0, 5.0),
                                                 radii=((7.0, 6.0, 2.0),), noise=8.0, seed=3)
    prompt = Prompt.from_points(centres, "lps", image)
    res = segment(image, prompt, method="levelset")
    assert res.status == "ok", res.reason
    assert dice(res.mask.array, truth) > 0.85
