"""The faster tables code gives exactly the numbers of the code it replaced (kept below as
``_ref_*``, verbatim but renamed).

* The Wilson intervals' normal quantile comes from ``scipy.special.ndtri`` instead of
  ``scipy.stats.norm.ppf`` (whose import costs about 0.4 s per process): the same float for
  every confidence level, in (0, 1) and at its edges.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from volumetry import tables

# ---------------------------------------------------------------- reference (old code) ----


def _ref_z_score(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


# ---------------------------------------------------------------- tests ----

LEVELS = ([0.95, 0.9, 0.99, 0.999, 0.8, 0.5, 0.68, 0.6827, 0.9973, 0.999999, 1e-9, 0.0, 1.0, -0.5, 1.5]
          + np.random.default_rng(0).uniform(0, 1, 300).tolist()
          + (1 - 10.0 ** -np.arange(1, 16)).tolist() + (10.0 ** -np.arange(1, 16)).tolist())


def test_z_score_is_scipy_stats_norm_ppf():
    for c in LEVELS:
        tables._z_score.cache_clear()
        assert _same(tables._z_score(c), _ref_z_score(c)), c


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99, 0.5])
def test_wilson_interval_with_the_reference_quantile(confidence, monkeypatch):
    new = [tables.wilson_interval(k, n, confidence) for n in range(0, 40) for k in range(n + 1)]
    monkeypatch.setattr(tables, "_z_score", _ref_z_score)
    ref = [tables.wilson_interval(k, n, confidence) for n in range(0, 40) for k in range(n + 1)]
    assert all(_same(a, b) for x, y in zip(new, ref) for a, b in zip(x, y))
