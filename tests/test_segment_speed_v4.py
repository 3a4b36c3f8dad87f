"""The fourth round of segmentation speed-ups gives exactly the numbers, messages and errors of the code before it.

Changed: ``common.median`` copies and partitions without ``np.partition``'s wrapper and takes an even
count's lower middle value (``part[:h].max()``) in its compiled kernel; ``registry._wrong_type`` (the parameter type check of ``resolve_params``) checks plain ``float``
and ``int`` values without the abstract number classes; ``api.segment`` takes which crop faces the mask
touches once, and counts the image-sized mask for its log line only when the line is logged;
``qc.mask_qc`` gives ``neck_fraction`` the bounding box it has taken already, and the padded box is
made without ``np.pad``.

``mask_qc`` and ``neck_fraction`` are compared with the frozen code before the compiled kernels
(tests/frozen_measure_qc.py) by tests/test_measure_kernels_fast.py (phantoms, random crops, edge cases)
and tests/test_measure_sample_trial_fast.py (every call of a sample-trial run); ``segment()``'s
results by tests/test_segment_speed_v3.py and tests/test_segment_kernels.py (sample trial, phantoms).
``median`` is compared with the former code (``_ref_median``) by tests/test_segment_kernels.py on
random values (up to 200, NaN, signed zeros, infinities, ties) and every median of a sample-trial run.
Here: ``median`` on larger arrays, ``_wrong_type`` against a frozen copy of the former one on values of every kind that matters,
and ``segment()``'s face test and log line.
"""
from __future__ import annotations

import fractions
import logging
import math
import numbers

import numpy as np
import pytest

from test_segment_kernels import _phantom, _ref_median, _same_float, _same_result, _seeds
from volumetry.image import Volume
from volumetry.segment import Prompt, api, common, registry
from volumetry.segment.roi import Roi


def _old_wrong_type(default, value) -> str:
    """``registry._wrong_type`` before this round (frozen)."""
    def number(v) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)

    if isinstance(default, bool):
        return "" if isinstance(value, (bool, np.bool_)) else "true or false"
    if isinstance(default, int):
        return "" if number(value) and isinstance(value, numbers.Integral) else "a whole number"
    if isinstance(default, float):
        return "" if number(value) else "a finite number"
    if isinstance(default, str):
        return "" if isinstance(value, str) or number(value) else "text or a number"
    return ""


class _Int(int):
    """An int subclass (not ``type(v) is int``)."""


class _Float(float):
    """A float subclass (not ``type(v) is float``)."""


VALUES = [True, False, np.bool_(True), 0, 1, -3, 18, 10 ** 18, 10 ** 400, _Int(5), 0.0, -0.0, 1.5, 2.0,
          float("nan"), float("inf"), -float("inf"), 1e308, _Float(2.5), _Float("nan"), np.float32(1.5),
          np.float64(float("nan")), np.float64(3.0), np.int64(7), np.int16(-2), np.uint8(200), np.float16(0.5),
          fractions.Fraction(1, 3), fractions.Fraction(4, 1), 1 + 2j, "auto", "", "18", None, [1], (2.0,), {"a": 1},
          b"x", np.array(1.5), np.array([1, 2])]
DEFAULTS = [True, 12, 0.5, "auto", None, {"k": 1}]


def _outcome(f, default, value):
    try:
        return f(default, value)
    except Exception as exc:  # the same exception, e.g. OverflowError for an int beyond float's range
        return type(exc), str(exc)


@pytest.mark.parametrize("default", DEFAULTS, ids=repr)
def test_wrong_type_equals_the_old_code(default):
    outcomes = [_outcome(registry._wrong_type, default, v) for v in VALUES]
    assert outcomes == [_outcome(_old_wrong_type, default, v) for v in VALUES]
    if isinstance(default, float):  # the check is exercised both ways
        assert "" in outcomes and "a finite number" in outcomes


def test_resolve_params_accepts_and_refuses_as_before():
    method = registry.get_method("region_growing")
    assert registry.resolve_params(method, {"max_iterations": np.int64(5), "tolerance": 0.02})["max_iterations"] == 5
    for name, value, why in [("max_iterations", 5.5, "a whole number"), ("tolerance", float("nan"), "a finite number"),
                             ("fill_holes", 1, "true or false"), ("connectivity", None, "text or a number"),
                             ("closing_mm", True, "a finite number"), ("max_iterations", _Float(3.0), "a whole number")]:
        with pytest.raises(registry.InputError, match=f"parameter '{name}' of method 'region_growing' must be {why}"):
            registry.resolve_params(method, {name: value})


@pytest.fixture(scope="module")
def phantom_cases():
    """(image, prompt): a phantom with and without a box, and cut through its lesion (the mask on the
    image's edge)."""
    ph = _phantom("suite24-infiltrative-9ml-oblique-5mm")
    seed = np.asarray(_seeds(ph)[0], float)
    image = ph.image
    i0 = int(np.rint(image.lps_to_index(seed)[0])) - 2
    cut = Volume(np.ascontiguousarray(image.array[:, :, i0:]), image.spacing,
                 tuple(image.index_to_lps(np.array([i0, 0.0, 0.0]))), image.direction, dict(image.meta))
    return [(image, Prompt.from_points(_seeds(ph), "lps", image)),
            (image, Prompt.from_points([seed], "lps", image, box=[seed - 15.0, seed + 15.0])),
            (cut, Prompt.from_points([seed], "lps", cut))]


def test_segment_face_test_and_log_line(phantom_cases, monkeypatch, caplog):
    """``touches_border`` is the mask's faces on the image's edge, as taken from the final crop; the log
    line (at INFO) states the result's volume; below INFO the image-sized mask is not counted."""
    made = []
    make_roi = api.make_roi

    def record(*args, **kwargs):
        made.append(make_roi(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(api, "make_roi", record)
    counted = []
    volume_ml = api.SegmentationResult.volume_ml

    def counting(res):
        counted.append(res)
        return volume_ml.fget(res)

    monkeypatch.setattr(api.SegmentationResult, "volume_ml", property(counting))
    borders = []
    for image, prompt in phantom_cases:
        made.clear()
        with caplog.at_level(logging.WARNING, logger="volumetry.segment.api"):
            quiet = api.segment(image, prompt)
        assert quiet.ok and not counted
        roi: Roi = made[-1]
        crop_mask = quiet.mask.array[roi.slices]
        assert np.count_nonzero(crop_mask) == np.count_nonzero(quiet.mask.array)
        on_border = bool(np.any(roi.touches_crop_side(crop_mask) & roi.at_image_border))
        assert quiet.qc["touches_border"] == int(on_border)
        borders.append(on_border)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="volumetry.segment.api"):
            loud = api.segment(image, prompt)
        _same_result(loud, quiet)
        lines = [r.getMessage() for r in caplog.records if r.name == "volumetry.segment.api"]
        assert f"lesion {prompt.lesion_id}: region_growing {volume_ml.fget(quiet):.3f} mL in" in lines[-1]
        assert counted == [loud]
        counted.clear()
    assert borders == [False, False, True]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_of_larger_arrays_equals_the_old_code(dtype):
    rng = np.random.default_rng(11)
    for n in (201, 256, 999, 1000, 4097, 30000):
        for kind in range(5):
            x = rng.normal(600, 80, n)
            if kind == 1:
                x = np.round(x / 10)  # ties
            elif kind == 2:
                x = rng.choice([-0.0, 0.0, -1.0, 1.0], n)  # signed zeros around the middle
            elif kind == 3:
                x[rng.integers(0, n, 3)] = np.nan
            elif kind == 4:
                x[: n // 2] = -np.inf  # the lower middle value infinite
            with np.errstate(all="ignore"):
                x = x.astype(dtype)
                new, old = common.median(x), _ref_median(x)
            assert _same_float(new, old), (n, kind, new, old)
