"""Audit of the primary outcome: cases already handled right, each checked against numbers
worked out by hand (percent change, nadir, category, confirmation, best response, the
subject's total, the per-course summary, and the written tables)."""
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from volumetry.longitudinal import assess
from volumetry.tables import course_summary, read_tables, write_tables

BASE = pd.Timestamp("2025-01-06")


def _row(visit, volume, day, *, lesion="L1", subject="S1", status=None, course=None):
    return dict(subject_id=subject, lesion_id=lesion, visit=visit, method="voxel", volume_ml=volume,
                scan_date=BASE + pd.Timedelta(days=day), status=status or ("ok" if volume is not None else "failed"),
                reason="segment: no seed" if status == "failed" or (status is None and volume is None) else None,
                course=course)


def _series(out, lesion="L1", subject="S1"):
    return out[(out["lesion_id"] == lesion) & (out["subject_id"] == subject)].set_index("visit")


def test_thresholds_inclusive_and_just_inside():
    # 10 mL baseline: 8 mL = -20 % (PR), 12 mL = +20 % (PD), 8.0000001 and 11.9999999 mL SD
    df = pd.DataFrame([_row("baseline", 10.0, 0), _row("C1", 8.0, 84), _row("C2", 12.0, 168),
                       _row("C3", 8.0000001, 252), _row("C4", 11.9999999, 336)])
    s = _series(assess(df))
    assert s.loc["C1", "percent_change"] == -20.0 and s.loc["C1", "response"] == "PR"
    assert s.loc["C2", "percent_change"] == 20.0 and s.loc["C2", "response"] == "PD"
    assert s.loc["C3", "percent_change"] == -19.999999 and s.loc["C3", "response"] == "SD"
    assert s.loc["C4", "percent_change"] == 19.999999 and s.loc["C4", "response"] == "SD"


def test_failed_scan_between_good_ones_is_ne_and_skipped_by_nadir_and_confirmation():
    df = pd.DataFrame([_row("baseline", 10.0, 0), _row("C1", 7.0, 84), _row("C2", None, 168), _row("C3", 7.5, 252)])
    out = assess(df, confirm=True, criteria="recist-volumetric")
    s = _series(out)
    assert s.loc["C2", "response"] == "NE" and s.loc["C2", "status"] == "failed"
    assert math.isnan(s.loc["C2", "volume_ml"]) and math.isnan(s.loc["C2", "percent_change"])
    assert s.loc["C3", "nadir_volume_ml"] == 7.0  # C1, not a 0 or a carried value from C2
    assert s.loc["C3", "percent_change_from_nadir"] == round(100 * 0.5 / 7.0, 9)
    t = _series(out, "total")
    assert t.loc["C2", "status"] == "incomplete" and t.loc["C2", "response"] == "NE" and math.isnan(t.loc["C2", "volume_ml"])


def test_vanished_then_returning_lesion():
    df = pd.DataFrame([_row("baseline", 10.0, 0), _row("C1", None, 84, status="empty"), _row("C2", 1.0, 168)])
    va, rv = _series(assess(df)), _series(assess(df, criteria="recist-volumetric"))
    for s in (va, rv):
        assert s.loc["C1", "response"] == "CR" and s.loc["C1", "percent_change"] == -100.0 and math.isnan(s.loc["C1", "volume_ml"])
        assert s.loc["C2", "nadir_volume_ml"] == 0.0 and math.isnan(s.loc["C2", "percent_change_from_nadir"])
        assert "nadir-zero" in s.loc["C2", "flags"] and s.loc["C2", "best_response"] == "CR"
    assert va.loc["C2", "response"] == "PR"  # -90 % from baseline: PD is from baseline in this set
    assert rv.loc["C2", "response"] == "PD"  # reappearance after a nadir of 0


def test_multifocal_total_new_lesion_and_per_lesion_rows():
    df = pd.DataFrame([_row("baseline", 4.0, 0), _row("baseline", 6.0, 0, lesion="L2"),
                       _row("C1", 2.0, 84), _row("C1", None, 84, lesion="L2", status="empty"),
                       _row("C1", 1.0, 84, lesion="N1"),
                       _row("C2", 5.0, 168), _row("C2", 9.0, 168, lesion="L2")])
    out = assess(df)
    t = _series(out, "total")
    assert t.loc["baseline", "volume_ml"] == 10.0
    assert t.loc["C1", "volume_ml"] == 2.0 and t.loc["C1", "percent_change"] == -80.0  # empty L2 = 0 mL, N1 not added
    assert t.loc["C1", "response"] == "PD" and "new-lesion" in t.loc["C1", "flags"]
    assert t.loc["C2", "volume_ml"] == 14.0 and t.loc["C2", "percent_change"] == 40.0 and t.loc["C2", "response"] == "PD"
    assert _series(out, "L1").loc["C1", "response"] == "PR" and _series(out, "L2").loc["C1", "response"] == "CR"
    n1 = _series(out, "N1").loc["C1"]
    assert n1["response"] == "PD" and math.isnan(n1["percent_change"]) and "new-lesion" in n1["flags"]


@pytest.mark.parametrize("baseline, status", [(0.0, "baseline-zero"), (None, "no-baseline")])
def test_zero_or_failed_baseline_is_ne_never_divided(baseline, status):
    s = _series(assess(pd.DataFrame([_row("baseline", baseline, 0), _row("C1", 1.0, 84)])))
    assert s.loc["C1", "status"] == status and s.loc["C1", "response"] == "NE"
    assert math.isnan(s.loc["C1", "percent_change"]) and s.loc["C1", "best_response"] == "NE"


def test_courses_beyond_four_outside_windows_and_explicit_mismatch():
    df = pd.DataFrame([_row("baseline", 10.0, 0), _row("C1", 9.0, 84, course=2), _row("X", 12.0, 130),
                       _row("C4", 4.0, 336), _row("C5", 5.0, 420)])
    s = _series(assess(df))
    assert s.loc["C1", "course"] == 2 and "course-date-mismatch" in s.loc["C1", "flags"]  # the explicit course wins
    for v in ("X", "C5"):  # day 130 between windows, day 420 = a fifth course: kept, assessed, no course
        assert pd.isna(s.loc[v, "course"]) and "outside-course-window" in s.loc[v, "flags"]
    assert s.loc["X", "response"] == "PD" and s.loc["C5", "percent_change"] == -50.0
    assert s.loc["C5", "nadir_volume_ml"] == 4.0 and s.loc["C5", "percent_change_from_nadir"] == 25.0


def test_summary_numbers_by_hand():
    rows = []
    for subj, c1 in (("S1", 8.0), ("S2", 13.0), ("S3", None), ("S4", 5.0)):
        rows += [_row("baseline", 10.0, 0, subject=subj), _row("C1", c1, 84, subject=subj)]
    rows += [_row("C1b", 20.0, 90, subject="S4")]  # a repeat in course 1: left out
    rows += [_row("C2", 9.0, 168, subject="S1"), _row("C2", 11.0, 168, subject="S2")]
    s = course_summary(assess(pd.DataFrame(rows))).set_index("course")
    # course 1: -20, +30, -50 (S3 NE): sorted -50, -20, 30 -> median -20, q1 -35, q3 5
    assert s.loc[1, "n"] == 3 and s.loc[1, "n_assessed"] == 4
    assert (s.loc[1, "median_percent_change"], s.loc[1, "q1_percent_change"], s.loc[1, "q3_percent_change"]) == (-20.0, -35.0, 5.0)
    assert (s.loc[1, "pr_n"], s.loc[1, "pd_n"], s.loc[1, "ne_n"], s.loc[1, "orr_n"]) == (2, 1, 1, 2)
    assert s.loc[1, "pr_rate"] == 0.5 and s.loc[1, "ne_rate"] == 0.25
    # course 2, n = 2: -10, +10 -> median 0, q1 -5, q3 5
    assert (s.loc[2, "n"], s.loc[2, "median_percent_change"], s.loc[2, "q1_percent_change"], s.loc[2, "q3_percent_change"]) == (2, 0.0, -5.0, 5.0)
    one = course_summary(assess(pd.DataFrame(rows[:2]))).iloc[0]
    assert one["n"] == 1 and one["median_percent_change"] == one["q1_percent_change"] == one["q3_percent_change"] == -20.0


def test_written_tables_round_trip(tmp_path):
    df = pd.DataFrame([_row("baseline", 1 / 3, 0), _row("C1", None, 84), _row("C2", 0.1 + 0.2, 168)])
    out = assess(df)
    write_tables(out, tmp_path)
    back_csv, back_pq = read_tables(tmp_path / "volumes.csv"), read_tables(tmp_path / "volumes.parquet")
    pd.testing.assert_frame_equal(back_pq, out)  # Parquet: exact
    assert back_csv.dtypes.equals(out.dtypes)
    assert back_csv["volume_ml"].tolist()[0] == 0.333333333333  # CSV: 12 significant digits, as documented
    assert np.isnan(back_csv["volume_ml"].tolist()[1]) and back_csv["percent_change"].tolist()[2] == -10.0
    schema = pq.read_schema(tmp_path / "volumes.parquet")
    assert str(schema.field("d1_mm").type) == "double" and back_pq["d1_mm"].isna().all()  # all-missing column
    assert str(schema.field("course").type) == "int64"
