"""course_summary on plain arrays (and the Wilson z computed once) gives exactly the
numbers of the former pandas-per-group code, kept here as the reference."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from volumetry.tables import RESPONSES, conform, course_summary, split_flags, wilson_interval


def _reference_wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # the bounds of 0 and of n successes are exactly 0 and 1 (tests/test_audit_longitudinal_wilson.py)
    return (0.0 if successes == 0 else max(0.0, centre - half), 1.0 if successes == n else min(1.0, centre + half))


def _reference_summary(df: pd.DataFrame, lesion_id: str | None = "total") -> pd.DataFrame:
    """The former course_summary (pandas Series per group)."""
    t = conform(df)
    t = t[t["course"].notna() & (t["course"] >= 1)]
    if lesion_id is not None:
        t = t[t["lesion_id"] == lesion_id]
    repeat = t["flags"].fillna("").map(lambda f: "repeat-in-course" in split_flags(f)).astype(bool)
    t = t[~repeat]
    rows = []
    for (method, course), g in t.groupby(["method", "course"], sort=True):
        pct = g["percent_change"].dropna()
        resp = g["response"].dropna()
        row: dict[str, Any] = {
            "method": method, "course": int(course), "n": int(len(pct)),
            "median_percent_change": float(pct.median()) if len(pct) else math.nan,
            "q1_percent_change": float(pct.quantile(0.25)) if len(pct) else math.nan,
            "q3_percent_change": float(pct.quantile(0.75)) if len(pct) else math.nan,
            "n_assessed": int(len(resp)),
        }
        counts = {c: int((resp == c).sum()) for c in RESPONSES}
        counts["ORR"] = counts["CR"] + counts["PR"]
        for cat, k in counts.items():
            lo, hi = _reference_wilson(k, len(resp))
            key = cat.lower()
            row[f"{key}_n"] = k
            row[f"{key}_rate"] = k / len(resp) if len(resp) else math.nan
            row[f"{key}_ci_low"] = lo
            row[f"{key}_ci_high"] = hi
        rows.append(row)
    cols = ["method", "course", "n", "median_percent_change", "q1_percent_change", "q3_percent_change", "n_assessed"]
    cols += [f"{c.lower()}_{s}" for c in (*RESPONSES, "ORR") for s in ("n", "rate", "ci_low", "ci_high")]
    out = pd.DataFrame(rows, columns=cols)
    return out.astype({"course": "int64", "n": "int64", "n_assessed": "int64"}) if len(out) else out


def _random_table(seed: int, n_subjects: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        for lesion in ("total", "L1"):
            for course in range(0, 5):
                for method in ("voxel", "mesh", "ellipsoid-mri"):
                    missing = rng.random() < 0.15
                    pct = None if missing or course == 0 else float(rng.normal(-20, 30))
                    if pct is not None and rng.random() < 0.3:
                        pct = round(pct, int(rng.integers(0, 4)))  # ties and round values
                    resp = None if course == 0 or rng.random() < 0.1 else str(rng.choice(RESPONSES))
                    rows.append(dict(subject_id=f"S{s:03d}", lesion_id=lesion, visit=f"c{course}", method=method,
                                     course=None if rng.random() < 0.05 else course, percent_change=pct,
                                     response=resp, flags=["repeat-in-course"] if rng.random() < 0.05 else []))
    return pd.DataFrame.from_records(rows)


@pytest.mark.parametrize("seed,n_subjects", [(1, 1), (2, 3), (3, 7), (4, 40)])
@pytest.mark.parametrize("lesion_id", ["total", "L1", None])
def test_course_summary_equals_former_code(seed, n_subjects, lesion_id):
    df = _random_table(seed, n_subjects)
    new, ref = course_summary(df, lesion_id=lesion_id), _reference_summary(df, lesion_id)
    assert len(new) > 0
    pd.testing.assert_frame_equal(new, ref, check_exact=True)
    # the same text in summary.csv
    assert new.to_csv(index=False, float_format="%.12g", na_rep="") == \
        ref.to_csv(index=False, float_format="%.12g", na_rep="")


def test_course_summary_of_no_course_rows_equals_former_code():
    df = _random_table(5, 2)
    df = df[df["course"].isna() | (df["course"] == 0)]
    pd.testing.assert_frame_equal(course_summary(df), _reference_summary(df), check_exact=True)


def test_wilson_interval_equals_former_code():
    for n in range(0, 60):
        for k in range(0, n + 1):
            for conf in (0.95, 0.9):
                new, ref = wilson_interval(k, n, conf), _reference_wilson(k, n, conf)
                assert (new == ref) or (n == 0 and all(math.isnan(v) for v in new))


@pytest.mark.parametrize("read", [dict(dtype=str), dict(dtype=str, keep_default_na=False), dict()])
def test_course_summary_of_the_written_table_read_back_as_text_equals_former_code(read, tmp_path):
    """volumes.csv read back (every column text, or pandas' own guesses) has exactly the schema's
    columns but not its dtypes: it is conformed as before (was a TypeError comparing text courses)."""
    table = conform(_random_table(6, 5))
    table.to_csv(tmp_path / "volumes.csv", index=False)
    df = pd.read_csv(tmp_path / "volumes.csv", **read)
    assert list(df.columns) == list(table.columns)
    pd.testing.assert_frame_equal(course_summary(df), _reference_summary(df), check_exact=True)
    if read.get("keep_default_na", True):  # (without NA parsing, an empty response is the text "")
        pd.testing.assert_frame_equal(course_summary(df), course_summary(table), check_exact=True)
