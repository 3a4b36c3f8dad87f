"""The faster building blocks of volumetry/segment/common.py give exactly the numbers of the
code they replaced (kept below as ``_ref_*``, verbatim but renamed), on random crops: float32,
float64, integer and float16 images, anisotropic shapes, thin axes (one or two voxels),
padding (a frequent minimum), too few differences, constant images, NaN and infinite values.

* ``noise_sigma``: first differences by slicing instead of ``np.diff`` (the same subtraction)
  and the median of its one or two estimates without ``np.median``'s overhead.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from volumetry.segment import common
from volumetry.segment.common import median, padding_mask

# ---------------------------------------------------------------- reference (old code) ----


def _ref_noise_sigma(a: np.ndarray, pad: np.ndarray | None = None) -> float:
    ests = []
    if pad is None:
        pad = padding_mask(a)
    any_pad = bool(pad.any())
    for ax in (1, 2):
        if a.shape[ax] > 1:
            d = np.diff(a, axis=ax)
            if any_pad:
                d = d[~(pad.take(range(1, a.shape[ax]), axis=ax) | pad.take(range(a.shape[ax] - 1), axis=ax))]
            if d.size < 10:
                continue
            ests.append(median(np.abs(d - median(d))) / (0.6745 * np.sqrt(2)))
    s = float(np.median(ests)) if ests else float(np.std(a))
    return max(s, 1e-6 * (float(np.ptp(a)) or 1.0))


# ---------------------------------------------------------------- inputs ----

DTYPES = (np.float32, np.float64, np.int16, np.uint16, np.float16, np.int32)


def random_crop(seed):
    """A crop as the segmentation methods see it, with the cases that take other branches."""
    rng = np.random.default_rng(seed)
    kind = seed % 8
    shape = tuple(int(x) for x in rng.integers(1, 30, size=3))
    if kind == 0:  # thin: one or two voxels along a fine axis (few or no differences)
        shape = (shape[0], int(rng.integers(1, 3)), shape[2])
    dtype = DTYPES[seed % len(DTYPES)]
    a = rng.normal(100, rng.uniform(0.5, 30), size=shape)
    lesion = np.zeros(shape, bool)
    lesion[tuple(slice(s // 4, max(s // 4 + 1, 3 * s // 4)) for s in shape)] = True
    a[lesion] += rng.uniform(20, 200)
    if kind == 1:  # padding: a frequent exact minimum (masked background)
        a[rng.random(shape) < rng.uniform(0.02, 0.6)] = a.min() - 50
    elif kind == 2:  # constant image
        a[...] = rng.uniform(-5, 5)
    elif kind == 3 and np.issubdtype(dtype, np.floating):  # NaN / inf values
        a.flat[rng.integers(0, a.size, size=max(1, a.size // 50))] = rng.choice([np.nan, np.inf, -np.inf])
    elif kind == 4:  # integer-valued (ties everywhere)
        a = np.round(a / 10)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        a = np.clip(np.nan_to_num(a, nan=0, posinf=info.max, neginf=info.min), info.min, info.max)
    return a.astype(dtype)


def _run(f, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = f(*args)
        except Exception as exc:  # noqa: BLE001 -- the same error is part of the behaviour
            value = (type(exc), str(exc))
    return value, [(w.category, str(w.message)) for w in caught]


def _same(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or x == y
    return x == y


# ---------------------------------------------------------------- tests ----


@pytest.mark.parametrize("seed", range(400))
def test_noise_sigma_equals_reference(seed):
    a = random_crop(seed)
    for args in ((a,), (a, padding_mask(a)), (a, np.zeros(a.shape, bool))):
        new, new_warnings = _run(common.noise_sigma, *args)
        ref, ref_warnings = _run(_ref_noise_sigma, *args)
        assert _same(new, ref), (new, ref)
        assert new_warnings == ref_warnings


def test_noise_sigma_of_a_boolean_crop_fails_as_before():
    a = np.random.default_rng(1).random((4, 8, 8)) > 0.5
    assert _run(common.noise_sigma, a) == _run(_ref_noise_sigma, a)
