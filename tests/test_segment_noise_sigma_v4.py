"""noise_sigma's MAD of non-integer differences, with its middle values and deviations read by compiled
kernels between numpy's two partitions, gives exactly the numbers of the code before it.

Changed: ``common.noise_sigma``'s path for float32 / float64 differences that are not small integers
(``common._partitioned_mad``: ``kernels.deviations_of_partition`` and
``kernels.finite_median_of_partition`` instead of ``_median_of_partitioned`` and ``np.abs(d - m)``).
The oracle is a frozen copy of ``noise_sigma`` before the change (below; it calls the unchanged
kernels ``noise_diffs``, ``counted_mad`` and ``median_of_partition``). Every comparison is exact: the
same type, ``==`` and the same sign of zero, NaN with NaN. Inputs: every ``noise_sigma`` call of the 29
sample-trial ``segment()`` calls (recorded by wrapping it), suite phantoms on several grids, and
random crops: float32, float64, int16 and uint16, even and odd counts, few values, ties, all-equal,
negative values, signed zeros, subnormals, large magnitudes (differences overflowing to infinity),
padding, NaN and infinities.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from test_segment_kernels import _sample_calls
from volumetry.phantoms import make_lesion_phantom, phantom_suite
from volumetry.segment import Prompt, api, common, kernels
from volumetry.segment import region_growing as rg
from volumetry.segment.kernels import COUNT_MAX_BINS, ROUNDER, counted_mad, median_of_partition, noise_diffs

# ------------------------------------------------ frozen copy of the code before the change ----


def _old_median_of_partitioned(part, x):
    n = part.size
    h = n // 2
    if part.dtype == np.float32 or part.dtype == np.float64:
        value = median_of_partition(part, h)
        if value is not None:
            return value
    if np.isnan(part[h]) or np.isnan(part[h + 1:]).any():
        return np.median(x)
    if n % 2:
        return np.mean(part[h:h + 1])
    mid = np.empty(2, dtype=part.dtype)
    mid[0] = part[:h].max()
    mid[1] = part[h]
    return np.mean(mid)


def _old_median(x):
    x = np.ravel(x)
    n = x.size
    if n < 3 or not np.issubdtype(x.dtype, np.floating):
        return np.median(x)
    return _old_median_of_partitioned(np.partition(x, n // 2), x)


_MAD_TO_SD = 0.6745 * np.sqrt(2)


def _old_combine(a, ests):
    if len(ests) == 2:
        s = float((ests[0] + ests[1]) / 2)
    elif ests:
        s = float(ests[0])
    else:
        s = float(np.std(a))
    return max(s, 1e-6 * (float(np.ptp(a)) or 1.0))


def _old_noise_sigma_numpy(a, pad):
    ests = []
    any_pad = bool(pad.any())
    diff = np.not_equal if a.dtype == np.bool_ else np.subtract
    for ax in (1, 2):
        if a.shape[ax] > 1:
            upper = (slice(None),) * ax + (slice(1, None),)
            lower = (slice(None),) * ax + (slice(None, -1),)
            d = diff(a[upper], a[lower])
            if any_pad:
                d = d[~(pad[upper] | pad[lower])]
            if d.size < 10:
                continue
            ests.append(_old_median(np.abs(d - _old_median(d))) / _MAD_TO_SD)
    return _old_combine(a, ests)


def old_noise_sigma(a, pad=None):
    if pad is None:
        pad = common.padding_mask(a)
    if a.ndim != 3 or a.dtype not in ROUNDER or pad.shape != a.shape or pad.dtype != np.bool_:
        return _old_noise_sigma_numpy(a, pad)
    any_pad = bool(pad.any())
    buf = np.empty(a.size, dtype=a.dtype)
    rounder = ROUNDER[a.dtype]
    ests = []
    for ax in (1, 2):
        if a.shape[ax] > 1:
            n, finite, integers = noise_diffs(a, pad, any_pad, ax, buf, rounder)
            if not finite:
                return _old_noise_sigma_numpy(a, pad)
            if n < 10:
                continue
            d = buf[:n]
            lo, hi = (int(d.min()), int(d.max())) if integers else (0, COUNT_MAX_BINS)
            if hi - lo < COUNT_MAX_BINS:
                value = a.dtype.type(counted_mad(d, lo, hi))
            else:
                d.partition(n // 2)
                dev = np.abs(d - _old_median_of_partitioned(d, d))
                dev.partition(n // 2)
                value = _old_median_of_partitioned(dev, dev)
            ests.append(value / _MAD_TO_SD)
    return _old_combine(a, ests)


def _old_partitioned_mad(d):
    """The frozen MAD step alone (the ``else`` branch above) on a copy of ``d``."""
    d = d.copy()
    n = d.size
    d.partition(n // 2)
    dev = np.abs(d - _old_median_of_partitioned(d, d))
    dev.partition(n // 2)
    return _old_median_of_partitioned(dev, dev)


# ------------------------------------------------------------------------------ helpers ----


def _same(x, y):
    """Exactly the same number: type, value, sign of zero, NaN with NaN."""
    assert type(x) is type(y), (type(x), type(y))
    if isinstance(x, float) or isinstance(x, np.floating):
        if math.isnan(x):
            assert math.isnan(y)
            return
        assert x == y and math.copysign(1.0, x) == math.copysign(1.0, y), (x, y)
    else:
        assert x == y


def _warned(f, *args):
    """``f(*args)`` and the (category, message) of each warning it gives."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = f(*args)
    return out, [(x.category, str(x.message)) for x in w]


def _check(a, pad=None):
    a_old, a_new = a.copy(), a.copy()
    p_old = None if pad is None else pad.copy()
    p_new = None if pad is None else pad.copy()
    old, w_old = _warned(old_noise_sigma, a_old, p_old)
    new, w_new = _warned(common.noise_sigma, a_new, p_new)
    _same(old, new)
    assert w_old == w_new  # the same warnings (numpy's overflow in a subtraction)
    assert np.array_equal(a_new, a, equal_nan=a.dtype.kind == "f")  # the crop is left as it was


# -------------------------------------------------------------------------------- tests ----


@pytest.fixture(scope="module")
def sample_noise_inputs():
    """Every noise_sigma call's arguments in the sample-trial segment() calls (both passes)."""
    calls = _sample_calls()

    def run():
        for image, prompt, method, params in calls:
            api.segment(image, prompt, method=method, params=params)

    return _recorded(run)


def test_sample_trial_calls(sample_noise_inputs):
    assert len(sample_noise_inputs) >= 29
    partitioned = 0
    for a, pad in sample_noise_inputs:
        _check(a, pad)
        for ax in (1, 2):  # the changed path is taken (differences that are not small integers)
            d = np.diff(a, axis=ax).ravel()
            partitioned += not np.array_equal(d, np.round(d))
    assert partitioned > 0


def _recorded(run):
    """The arguments of every noise_sigma call of region growing during ``run()``."""
    seen = []
    orig = rg.noise_sigma

    def rec(a, pad=None):
        seen.append((a.copy(), None if pad is None else pad.copy()))
        return orig(a, pad)

    rg.noise_sigma = rec
    try:
        run()
    finally:
        rg.noise_sigma = orig
    return seen


def test_phantoms():
    """Suite phantoms (several grids, SNRs, bias fields): their segment() calls' crops, and whole images."""
    specs = phantom_suite()[::4]
    n = 0
    for spec in specs:
        ph = make_lesion_phantom(spec)
        t = ph.truth
        seeds = t["lesion_centres_lps_mm"] if t["shape"] == "multifocal" else [t["seed_point_lps_mm"]]
        prompt = Prompt.from_points(seeds, "lps", ph.image)
        for a, pad in _recorded(lambda: api.segment(ph.image, prompt, method="region_growing")):
            _check(a, pad)
            n += 1
        whole = np.asarray(ph.image.array)
        for dt in (np.float32, np.float64):
            _check(whole.astype(dt))
    assert n >= len(specs)


def _random_crops(rng):
    shapes = [(1, 1, 11), (1, 11, 1), (2, 3, 4), (1, 2, 6), (1, 6, 2), (3, 4, 5), (4, 6, 7), (5, 9, 12), (7, 13, 17),
              (2, 40, 41), (3, 1, 1), (1, 3, 13), (1, 12, 2)]
    for shape in shapes:
        for dt in (np.float32, np.float64):
            yield rng.standard_normal(shape).astype(dt)
            yield (rng.standard_normal(shape) * 1e3 - 5e3).astype(dt)
            yield rng.integers(-3, 3, shape).astype(dt) * dt(0.5)  # ties, zero medians
            yield rng.integers(0, 2, shape).astype(dt) * dt(0.1)
            yield np.full(shape, 3.7, dt)
            yield np.full(shape, -0.0, dt)
            z = rng.choice(np.array([0.0, -0.0, 1.5, -1.5], dt), shape)
            yield z
            tiny = np.finfo(dt).smallest_subnormal
            yield (rng.integers(-4, 5, shape) * tiny).astype(dt)
            big = np.finfo(dt).max
            yield (rng.choice([-1.0, 1.0], shape) * big * rng.uniform(0.6, 1.0, shape)).astype(dt)  # inf diffs
            yield (rng.standard_normal(shape) * 1e30).astype(dt)
            yield (rng.standard_normal(shape) + 1e6).astype(dt)
            x = rng.standard_normal(shape).astype(dt)
            x.flat[rng.integers(0, x.size)] = np.nan
            yield x
            x = rng.standard_normal(shape).astype(dt)
            x.flat[rng.integers(0, x.size)] = np.inf
            yield x
            x = rng.standard_normal(shape).astype(dt)
            x.flat[:: 3] = x.min() - 1  # padding at the minimum
            yield x
        yield rng.integers(-300, 300, shape).astype(np.int16)
        yield rng.integers(0, 4000, shape).astype(np.uint16)


def test_random_crops():
    rng = np.random.default_rng(20261206)
    n = 0
    for a in _random_crops(rng):
        _check(a)
        _check(a, np.zeros(a.shape, bool))
        _check(a, rng.random(a.shape) < 0.3)
        n += 1
    assert n > 300


def test_mad_step_on_values():
    """The changed step alone, on value arrays of every size from 10 (its callers' least) to 40 and larger."""
    rng = np.random.default_rng(7)
    warned = 0
    for dt in (np.float32, np.float64):
        tiny = np.finfo(dt).smallest_subnormal
        big = float(np.finfo(dt).max)
        for n in list(range(10, 41)) + [101, 1000, 1001, 27720, 27721]:
            for values in (rng.standard_normal(n), rng.integers(-2, 3, n) * 0.5, np.zeros(n), -np.zeros(n),
                           rng.choice([0.0, -0.0, 1.0], n), rng.integers(-3, 4, n) * tiny,
                           rng.standard_normal(n) * 1e300 if dt == np.float64 else rng.standard_normal(n) * 1e37,
                           np.r_[np.zeros(n // 2), np.ones(n - n // 2)], np.r_[-np.ones(n // 2), np.ones(n - n // 2)],
                           # deviations overflowing to infinity (numpy warns)
                           rng.permutation(np.r_[np.full(n // 2 + 2, -0.6), np.full(n - n // 2 - 2, 0.7)]) * big):
                d = np.asarray(values).astype(dt)
                old, w_old = _warned(_old_partitioned_mad, d)
                new, w_new = _warned(common._partitioned_mad, d.copy())
                _same(old, new)
                assert w_old == w_new
                warned += bool(w_old)
    assert warned > 0


def test_broken_versions_fail(monkeypatch):
    """The comparison catches an upper middle value in place of the mean of the two middle values."""
    d = np.arange(12, dtype=np.float32) * np.float32(1.1)
    _same(_old_partitioned_mad(d), common._partitioned_mad(d.copy()))

    def upper_only(part):
        return part.dtype.type(part[part.size // 2])

    monkeypatch.setattr(common, "finite_median_of_partition", upper_only)
    with pytest.raises(AssertionError):
        _same(_old_partitioned_mad(d), common._partitioned_mad(d.copy()))
    rng = np.random.default_rng(3)
    with pytest.raises(AssertionError):
        _check(rng.standard_normal((3, 8, 9)).astype(np.float32))


def test_kernels_warmed():
    """The new kernels are registered with float32 and float64 examples (compiled in warm_up)."""
    from volumetry import _jit

    warmed = {f for f, _ in _jit._WARM}
    for f in (kernels._deviations_f32, kernels._deviations_f64, kernels._finite_mid_f32, kernels._finite_mid_f64):
        assert f in warmed
