"""The second round of region-growing speed-ups gives exactly the numbers of the code before it.

Changed: ``common.noise_sigma`` (a compiled pass for the differences, and a counted median absolute
deviation for integer differences: :func:`volumetry.segment.kernels.noise_diffs` and
:func:`~volumetry.segment.kernels.counted_mad`), ``kernels.grow_kernel`` (branch-free rows for the
threshold and the closing, no divisions in the flood fill), ``kernels.fill_slices_kernel`` (slices
without a gap in any row are skipped), ``region_growing.lesion_field`` (the design matrices and the
field's exponent built by kernels), ``kernels.core_indices`` (rows without a region voxel skipped) and
``_Grower`` (no ``np.errstate`` for a threshold within range).

The oracles are frozen copies of the code before (commit 8737b9c): tests/frozen_segment_kernels_v2.py,
tests/frozen_region_growing_v2.py and tests/frozen_segment_common_v2.py. Every comparison is exact:
arrays with ``array_equal`` (same dtype and shape), floats with ``==`` and the same sign of zero (NaN
with NaN), messages and flags with ``==``, and the warnings numpy gives with ``==``. Inputs:

* the 29 ``segment()`` calls of a sample-trial run (tests/segment_sample_calls.json), whole results,
  and every noise_sigma, grow, fill and lesion_field call they make;
* suite phantoms on several grids (thick and thin slices, sagittal, oblique) through ``segment()``
  with several parameter sets, with and without a box;
* random crops: float32, float64, int16 and other dtypes, padding present or absent, tiny and thin
  crops, NaN and infinities, integer values (counted) with even and odd counts, half-integer medians,
  spans too wide for the histogram, huge values; random thresholds, connectivities, closings, boxes.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest

import frozen_region_growing_v2 as F2
import frozen_segment_common_v2 as FC
import frozen_segment_kernels_v2 as FK
from test_segment_kernels import (CASES, SPACINGS, _allowed, _crop, _phantom, _rbox, _region, _same_array,
                                  _same_float, _same_qc, _same_result, _sample_calls, _seed_voxels, _seeds,
                                  _shape)
from volumetry.segment import Prompt, api, common, kernels
from volumetry.segment import region_growing as rg
from volumetry.segment.common import padding_mask, seed_balls


@contextlib.contextmanager
def _old_code():
    """Within: ``segment()`` runs the frozen region growing (frozen kernels, noise_sigma and median)."""
    saved = rg.region_growing
    rg.region_growing = F2.region_growing
    try:
        yield
    finally:
        rg.region_growing = saved


def _run(f, *args):
    """``f(*args)`` (or the exception's type and message) and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = f(*args)
        except Exception as exc:  # noqa: BLE001 -- the same error is part of the behaviour
            value = (type(exc), str(exc))
    return value, [(w.category, str(w.message)) for w in caught]


def _same_value(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return _same_float(x, y)
    return x == y


# ---------------------------------------------------------------- the sample trial ----


@pytest.fixture(scope="module")
def sample_calls():
    return _sample_calls()


class _Recorder:
    """Records the arguments of the changed functions during ``segment()`` calls."""

    def __init__(self, m):
        self.noise, self.grow, self.fill, self.field = [], [], [], []
        noise, grower_call, fill, field = common.noise_sigma, rg._Grower.__call__, rg.fill_slices_kernel, rg.lesion_field

        def rec_noise(a, pad=None):
            self.noise.append((a.copy(), None if pad is None else pad.copy()))
            return noise(a, pad)

        def rec_grow(grower, threshold, connectivity, allowed):
            self.grow.append((grower, threshold, connectivity, allowed))
            return grower_call(grower, threshold, connectivity, allowed)

        def rec_fill(region, rbox):
            self.fill.append((region.copy(), rbox.copy()))
            return fill(region, rbox)

        def rec_field(a, region, spacing_kji, *args):
            self.field.append((a, region.copy(), spacing_kji, args))
            return field(a, region, spacing_kji, *args)

        m.setattr(rg, "noise_sigma", rec_noise)
        m.setattr(rg._Grower, "__call__", rec_grow)
        m.setattr(rg, "fill_slices_kernel", rec_fill)
        m.setattr(rg, "lesion_field", rec_field)


def _old_grow(grower, threshold, connectivity, allowed):
    """The frozen grow kernel on a ``_Grower``'s arguments, as the frozen ``_Grower`` called it."""
    region = np.zeros(grower.sm.shape, dtype=bool)
    rbox = np.zeros(6, dtype=np.int64)
    with np.errstate(over="ignore"):
        thr = grower.sm.dtype.type(threshold)
    use = allowed is not None
    n = FK.grow_kernel(grower.sm, thr, np.ascontiguousarray(allowed) if use else rg._NOWHERE, use,
                       grower.closing_offsets, rg._CONNECTIVITY_OFFSETS[connectivity], grower.seeds,
                       grower.anchors, grower.anchor_start, region, rbox)
    return region, n, rbox


def _check_grow(grower, threshold, connectivity, allowed):
    region, n, rbox = grower(threshold, connectivity, allowed)
    ref, ref_n, ref_rbox = _old_grow(grower, threshold, connectivity, allowed)
    assert _same_array(region, ref) and n == ref_n
    if n:
        assert _same_array(rbox, ref_rbox)


def _check_fill(region, rbox):
    new, old = region.copy(), region.copy()
    assert kernels.fill_slices_kernel(new, rbox) == FK.fill_slices_kernel(old, rbox)
    assert _same_array(new, old)


def _check_field(a, region, spacing_kji, args=()):
    new_field, new_g = rg.lesion_field(a, region, spacing_kji, *args)
    old_field, old_g = F2.lesion_field(a, region, spacing_kji, *args)
    assert _same_float(new_g, old_g)
    assert (new_field is None) == (old_field is None)
    if old_field is not None:
        assert _same_array(new_field, old_field)


def _check_recorded(r: _Recorder):
    for a, pad in r.noise:
        assert _run(common.noise_sigma, a, pad) == _run(FC.noise_sigma, a, pad)
    for call in r.grow:
        _check_grow(*call)
    for region, rbox in r.fill:
        _check_fill(region, rbox)
    for a, region, spacing_kji, args in r.field:
        _check_field(a, region, spacing_kji, args)


def test_segment_results_of_the_sample_trial_equal_the_old_code(sample_calls):
    new = [api.segment(image, prompt, method=method, params=params) for image, prompt, method, params in sample_calls]
    with _old_code():
        old = [api.segment(image, prompt, method=method, params=params)
               for image, prompt, method, params in sample_calls]
    assert len(old) == 29 and sum(res.ok for res in old) == 24
    assert sum(res.qc.get("bias_corrected", 0) for res in old) > 10  # the second, corrected pass is exercised
    for n, o in zip(new, old):
        _same_result(n, o)


def test_every_changed_call_of_the_sample_trial_equals_the_old_code(sample_calls, monkeypatch):
    with monkeypatch.context() as m:
        r = _Recorder(m)
        for image, prompt, method, params in sample_calls:
            api.segment(image, prompt, method=method, params=params)
    # the run's calls: 62 passes (34 region_growing calls), 245 grows, 34 lesion fields
    assert len(r.noise) >= 60 and len(r.grow) > 200 and len(r.fill) >= 60 and len(r.field) > 30
    # both noise paths: integer differences (the scanner's values) and others (bias-corrected crops)
    kinds = {bool(np.all(np.diff(a, axis=2) == np.round(np.diff(a, axis=2)))) for a, _ in r.noise}
    assert kinds == {True, False}
    _check_recorded(r)


# ---------------------------------------------------------------- phantoms ----

#: CASES of tests/test_segment_kernels.py and more grids: 1 mm (smoothed), 1.5 and 2 mm slices,
#: coronal, oblique, a small multifocal lesion.
PHANTOMS = CASES + ["suite00-sphere-0.5ml-axial-1mm", "suite01-ellipsoid-4ml-coronal-3mm",
                    "suite12-septated-2.5ml-axial-2mm", "suite24-infiltrative-9ml-oblique-5mm",
                    "suite34-multifocal-1ml-axial-1.5mm", "suite46-cystic-4ml-axial-4mm"]


@pytest.mark.parametrize("name", PHANTOMS)
def test_segment_results_on_phantoms_equal_the_old_code(name, monkeypatch):
    ph = _phantom(name)
    prompts = [Prompt.from_points(_seeds(ph), "lps", ph.image)]
    seed = np.asarray(_seeds(ph)[0], float)
    prompts.append(Prompt.from_points([seed], "lps", ph.image, box=[seed - 10.0, seed + 10.0]))
    far = ph.image.index_to_lps(np.array([2.0, 2.0, ph.image.array.shape[0] // 2]))
    prompts.append(Prompt.from_points([far], "lps", ph.image))  # background: fails
    for params in ({}, {"connectivity": 26, "lesion_stat": "core"}, {"bias_correction": False, "closing_mm": 0.0},
                   {"connectivity": 6, "closing_mm": 3.0, "lesion_stat": "region", "fill_holes": False},
                   {"smoothing_mm": 1.0, "bias_min_pct_per_cm": 0.0}):
        for prompt in prompts:
            with monkeypatch.context() as m:
                r = _Recorder(m)
                new = api.segment(ph.image, prompt, params=params)
            with _old_code():
                old = api.segment(ph.image, prompt, params=params)
            _same_result(new, old)
            _check_recorded(r)


# ---------------------------------------------------------------- noise_sigma ----

DTYPES = (np.float32, np.float64, np.int16, np.float32, np.float64, np.uint16, np.float16)


def _noise_crop(seed):
    """A crop with the cases that take each path of noise_sigma."""
    rng = np.random.default_rng(seed)
    kind = seed % 12
    shape = tuple(int(x) for x in rng.integers(1, 30, size=3))
    if kind == 0:  # thin / tiny: few or no differences
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 6)))
    dtype = DTYPES[seed % len(DTYPES)]
    a = rng.normal(300, rng.uniform(0.5, 60), size=shape)
    a[tuple(slice(s // 4, max(s // 4 + 1, 3 * s // 4)) for s in shape)] += rng.uniform(20, 600)
    if kind in (1, 2, 3, 4):  # integer values (a scanner's), counted
        a = np.round(a / rng.choice([1, 7, 40]))
    if kind == 2:  # padding: a frequent exact minimum
        a[rng.random(shape) < rng.uniform(0.02, 0.6)] = a.min() - 50
    elif kind == 3:  # half-integer medians: two values only, even counts likely
        a = rng.integers(0, 2, size=shape).astype(float) * rng.choice([1.0, 3.0])
    elif kind == 4:  # constant
        a[...] = float(rng.integers(-5, 5))
    elif kind == 5:  # integers spanning more than the histogram holds, or beyond the counted magnitude
        a = np.round(rng.normal(0, 1, size=shape) * rng.choice([4.0e4, 3.0e5, 2.0e6]))
    elif kind == 6:  # NaN or infinities (in padding too)
        a.flat[rng.integers(0, a.size, size=max(1, a.size // 50))] = rng.choice([np.nan, np.inf, -np.inf])
    elif kind == 7:  # huge values: differences overflow float32
        a = rng.choice([-3.0e38, 3.0e38, 1.0], size=shape)
    elif kind == 8:  # signed zeros and ties
        a = rng.choice([0.0, -0.0, 1.0, -1.0, 0.5], size=shape)
    elif kind == 9:  # padding at the minimum, floats
        a[rng.random(shape) < 0.3] = a.min() - 1.25
    with np.errstate(all="ignore"):
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            a = np.clip(np.nan_to_num(a, nan=0, posinf=info.max, neginf=info.min), info.min, info.max)
        return a.astype(dtype)


@pytest.mark.parametrize("seed", range(480))
def test_noise_sigma_equals_the_old_code(seed):
    a = _noise_crop(seed)
    pads = [None, padding_mask(a), np.zeros(a.shape, bool)]
    if a.size > 1:
        pads.append(np.random.default_rng(seed).random(a.shape) < 0.3)  # a pad the caller gives
    for pad in pads:
        new, new_warnings = _run(common.noise_sigma, a, pad)
        old, old_warnings = _run(FC.noise_sigma, a, pad)
        assert type(new) is type(old) and _same_value(new, old), (new, old)
        assert new_warnings == old_warnings


def test_noise_sigma_of_non_contiguous_and_other_shapes_equals_the_old_code():
    rng = np.random.default_rng(11)
    a = np.round(rng.normal(200, 30, size=(12, 40, 40))).astype(np.float32)
    for view in (a[:, ::2, 1::3], a.transpose(1, 0, 2), np.asfortranarray(a), a[3], a[None]):
        for pad in (None, np.zeros(view.shape, bool)):
            assert _run(common.noise_sigma, view, pad) == _run(FC.noise_sigma, view, pad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counted_mad_equals_the_medians(dtype):
    rng = np.random.default_rng(3)
    for t in range(600):
        n = int(rng.integers(10, 300))
        d = rng.integers(-int(rng.choice([1, 3, 50, 30000])), int(rng.choice([1, 2, 50, 30000])) + 1, n).astype(dtype)
        lo, hi = int(d.min()), int(d.max())
        mad = dtype(kernels.counted_mad(d, lo, hi))
        ref = FC.median(np.abs(d - FC.median(d)))
        assert _same_float(mad, ref), (d, mad, ref)


# ---------------------------------------------------------------- grow, fill, lesion field ----


@pytest.mark.parametrize("seed", range(60))
def test_grow_equals_the_old_kernel_on_random_crops(seed):
    rng = np.random.default_rng(1000 + seed)
    shape = _shape(rng, seed % 3)
    sm = _crop(rng, shape, (np.float32, np.float64)[seed % 2])
    sp = SPACINGS[seed % len(SPACINGS)]
    closing_mm = (0.0, 1.5, 3.0, 0.5, 2.2)[seed % 5]
    seeds = _seed_voxels(rng, shape)
    anchors = seed_balls(shape, seeds, sp, float(rng.choice([0.0, 1.5, 3.0])))
    roi = type("R", (), {"seeds": seeds, "spacing_kji": sp})()
    grower = rg._Grower(sm, roi, closing_mm, anchors)
    allowed = _allowed(rng, shape)
    values = np.unique(sm)
    thresholds = [float(values[int(rng.integers(0, len(values)))]), float(np.quantile(sm, 0.3)),
                  float(np.quantile(sm, 0.6)), float(sm.max()), float(sm.min()) - 1.0, 1e300, -1e300, math.nan]
    for threshold in thresholds:
        for conn in (6, 18, 26):
            _check_grow(grower, threshold, conn, allowed)


@pytest.mark.parametrize("seed", range(40))
def test_fill_equals_the_old_kernel_on_random_regions(seed):
    rng = np.random.default_rng(2000 + seed)
    shape = _shape(rng, seed % 3)
    region = _region(rng, shape, seed % 4)
    _check_fill(region, _rbox(region))
    ring = np.zeros((3, 9, 11), bool)  # a hole in one slice only, a gap open to a face in another
    ring[1, 2:7, 2:8] = True
    ring[1, 4, 4] = False
    ring[2, 3, 1:9] = True
    ring[2, 3, 5] = False
    _check_fill(ring, _rbox(ring))


@pytest.mark.parametrize("seed", range(16))
def test_lesion_field_equals_the_old_code(seed):
    rng = np.random.default_rng(3000 + seed)
    shape = _shape(rng, 2)
    region = _region(rng, shape, seed % 2 * 3)
    dtype = (np.float32, np.float64)[seed % 2]
    a = (_crop(rng, shape, np.float64) * 100 + 50 + 100 * region).astype(dtype)
    a *= np.exp(rng.normal(0, 0.03, 3)[2] * np.arange(shape[2]))[None, None, :].astype(dtype)
    sp = SPACINGS[seed % len(SPACINGS)]
    _check_field(a, region, sp)
    _check_field(a, region, sp, (10 ** 6,))  # too few voxels
    _check_field(a, region, sp, (int(np.count_nonzero(region)) // 2,))  # the refit's threshold on the edge
    _check_field(a, np.zeros(shape, bool), sp)
    neg = a.copy()
    neg[region] *= -1
    _check_field(neg, region, sp)  # not positive


def test_a_pass_with_a_threshold_beyond_float32_equals_the_old_code():
    rng = np.random.default_rng(5)
    sm = _crop(rng, (6, 12, 12), np.float32)
    roi = type("R", (), {"seeds": np.array([[3, 6, 6]]), "spacing_kji": (3.0, 0.7, 0.75)})()
    grower = rg._Grower(sm, roi, 1.5, seed_balls(sm.shape, roi.seeds, roi.spacing_kji, 1.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither warns
        for threshold in (3.5e38, -3.5e38, float(np.finfo(np.float32).max), 1e39):
            _check_grow(grower, threshold, 6, None)


@pytest.mark.parametrize("seed", range(40))
def test_core_indices_equal_the_old_kernel(seed):
    rng = np.random.default_rng(4000 + seed)
    shape = _shape(rng, seed % 3)
    region = _region(rng, shape, seed % 4)
    a = _crop(rng, shape, (np.float32, np.float64)[seed % 2])
    for r in (region, np.zeros(shape, bool), np.ones(shape, bool)):
        for min_voxels in (20, 1, 10 ** 6):
            new, old = kernels.core_indices(a, r, min_voxels), FK.core_indices(a, r, min_voxels)
            assert _same_array(new[0], old[0]) and _same_array(new[1], old[1])
