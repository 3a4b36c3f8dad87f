"""The intensity percentiles of ``measure`` are exactly ``np.percentile(vals, [5, 50, 95])``."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.measure.core import _percentiles


def _cases(rng):
    for n in list(range(1, 40)) + [97, 100, 101, 1000, 4096, 12345]:
        yield rng.normal(100.0, 30.0, n)
        yield rng.integers(0, 5, n).astype(np.float64)  # many ties
        yield np.round(rng.uniform(-1e4, 1e4, n), 1)
        yield rng.uniform(0, 1, n).astype(np.float32).astype(np.float64)
    yield np.array([np.nan, 1.0, 2.0, 3.0])
    yield np.array([1.0, np.inf, 2.0, -np.inf, 5.0])
    yield np.full(50, 7.25)


@pytest.mark.parametrize("seed", range(3))
def test_percentiles_equal_numpys(seed):
    rng = np.random.default_rng(seed)
    for vals in _cases(rng):
        before = vals.copy()
        with np.errstate(invalid="ignore"):  # numpy's own lerp of infinities
            expected = np.percentile(vals, [5, 50, 95])
        got = np.array(_percentiles(vals))
        assert np.array_equal(got, expected, equal_nan=True), (len(vals), got, expected)
        assert np.array_equal(vals, before, equal_nan=True)  # not reordered: the mean and SD follow
