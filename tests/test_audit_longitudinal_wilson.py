"""Audit of the summary's intervals: the Wilson bound of a rate of 0 is exactly 0 and of a rate
of 1 exactly 1 (the score interval's closed form), not a rounding residue such as 2.8e-17 that
summary.csv would print as a non-zero lower bound."""
import math

import pandas as pd
import pytest
from scipy.stats import norm

from volumetry.tables import course_summary, wilson_interval


def _by_hand(k, n, z=norm.ppf(0.975)):
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 13, 29, 100])
def test_wilson_bounds_of_none_and_all_are_exact(n):
    assert wilson_interval(0, n)[0] == 0.0  # n = 7 gave 2.7755575615628914e-17
    assert wilson_interval(n, n)[1] == 1.0  # n = 10 gave 0.9999999999999999
    for k in range(n + 1):  # every other bound is the closed form (to the last bits)
        lo, hi = wilson_interval(k, n)
        a, b = _by_hand(k, n)
        assert lo == pytest.approx(max(a, 0.0), abs=1e-15) and hi == pytest.approx(min(b, 1.0), abs=1e-15)


def test_summary_csv_prints_zero_for_a_rate_of_zero(tmp_path):
    """7 subjects, none with CR: cr_ci_low is written 0, not 2.77555756156e-17; all PR: n/(n+z²) to 1."""
    rows = [dict(method="voxel", course=1, subject_id=f"S{i}", lesion_id="total", visit="C1",
                 percent_change=-30.0, response="PR") for i in range(7)]
    s = course_summary(pd.DataFrame(rows))
    assert s.loc[0, "cr_ci_low"] == 0.0 and s.loc[0, "pr_ci_high"] == 1.0
    s.to_csv(tmp_path / "s.csv", index=False, float_format="%.12g")
    back = pd.read_csv(tmp_path / "s.csv")
    assert back.loc[0, "cr_ci_low"] == 0.0 and back.loc[0, "pr_ci_low"] == pytest.approx(7 / (7 + norm.ppf(0.975) ** 2), abs=1e-12)
