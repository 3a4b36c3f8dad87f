"""Audit of the time order the nadir and the confirmation follow.

* A scan with an explicit course but no date, in a series whose other scans are dated, is
  placed at its course's scheduled day (84·k), not after every dated scan: its volume is
  part of the nadir of the later courses, and it is confirmed by the next course.
* Two follow-ups on the same day are taken in the order of their visit labels (the order
  the table is sorted in and the one ``repeat-in-course`` keeps), not in the input's row
  order: the same scans in another row order give the same numbers.
"""
import pandas as pd
import pytest

from volumetry.longitudinal import CourseSchedule, assess

BASE = pd.Timestamp("2025-01-06")


def _row(visit, volume, day=None, course=None, lesion="L1"):
    return dict(subject_id="S1", lesion_id=lesion, visit=visit, method="voxel", volume_ml=volume,
                scan_date=None if day is None else BASE + pd.Timedelta(days=day), course=course)


def _series(out, lesion="L1"):
    return out[out["lesion_id"] == lesion].set_index("visit")


def test_undated_course_scan_enters_the_nadir_of_later_dated_courses():
    # baseline 10 mL, C1 (course 1, no date) 2 mL, C2 (day 168) 4 mL; recist PD = +73 % from the nadir
    df = pd.DataFrame([_row("baseline", 10.0, 0, 0), _row("C1", 2.0, None, 1), _row("C2", 4.0, 168)])
    out = assess(df, criteria="recist-volumetric")
    for lesion in ("L1", "total"):
        s = _series(out, lesion)
        assert list(s.index) == ["baseline", "C1", "C2"]  # was: baseline, C2, C1
        assert s.loc["C1", "nadir_volume_ml"] == 10.0 and s.loc["C1", "percent_change_from_nadir"] == -80.0  # was 4.0, -50
        assert s.loc["C1", "response"] == "PR"
        assert s.loc["C2", "nadir_volume_ml"] == 2.0 and s.loc["C2", "percent_change_from_nadir"] == 100.0  # was 10.0, -60
        assert s.loc["C2", "percent_change"] == -60.0 and s.loc["C2", "response"] == "PD"  # was SD
        assert s.loc["C2", "best_response"] == "PR"


def test_undated_course_scan_is_confirmed_by_the_next_course():
    df = pd.DataFrame([_row("baseline", 10.0, 0, 0), _row("C1", 7.0, None, 1), _row("C2", 7.5, 168)])
    s = _series(assess(df, confirm=True))
    assert s.loc["C1", "response"] == "PR" and s.loc["C1", "response_confirmed"] == True  # noqa: E712 (was pending)
    assert s.loc["C2", "response"] == "PR" and pd.isna(s.loc["C2", "response_confirmed"])  # was True, by C1
    # the scheduled day follows the schedule: with 8-week courses C1 is day 56, before a scan on day 100
    df = pd.DataFrame([_row("baseline", 10.0, 0, 0), _row("C1", 2.0, None, 1), _row("C2", 4.0, 100)])
    s = _series(assess(df, criteria="recist-volumetric", schedule=CourseSchedule(course_weeks=8, window_days=20)))
    assert s.loc["C2", "nadir_volume_ml"] == 2.0 and s.loc["C2", "response"] == "PD"


def test_undated_only_series_keep_their_course_order():
    df = pd.DataFrame([_row("C2", 4.0, None, 2), _row("baseline", 10.0, None, 0), _row("C1", 2.0, None, 1)])
    s = _series(assess(df, criteria="recist-volumetric"))
    assert list(s.index) == ["baseline", "C1", "C2"]
    assert s.loc["C2", "nadir_volume_ml"] == 2.0 and s.loc["C2", "response"] == "PD"


@pytest.mark.parametrize("order", [[0, 1, 2], [0, 2, 1], [2, 1, 0]])
def test_same_day_follow_ups_do_not_depend_on_row_order(order):
    # A (5 mL) and B (20 mL) both on day 84 against 10 mL: A first by label, so B's nadir is 5 mL
    rows = [_row("baseline", 10.0, 0), _row("A", 5.0, 84), _row("B", 20.0, 84)]
    out = assess(pd.DataFrame([rows[i] for i in order]), criteria="recist-volumetric")
    s = _series(out)
    assert s.loc["A", "nadir_volume_ml"] == 10.0 and s.loc["A", "percent_change_from_nadir"] == -50.0
    assert s.loc["B", "nadir_volume_ml"] == 5.0 and s.loc["B", "percent_change_from_nadir"] == 300.0  # row order B, A: 10.0, 100
    assert "repeat-in-course" in s.loc["B", "flags"] and "repeat-in-course" not in s.loc["A", "flags"]
    assert s.loc["B", "response"] == "PD" and s.loc["A", "response"] == "SD"
