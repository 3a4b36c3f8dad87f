"""Audit of course assignment: a scan given an explicit course but dated before the baseline
scan is not assessed (nothing earlier to compare with in time); it now carries the
``before-baseline`` flag that says so, as a dated scan before baseline does, instead of only
``course-date-mismatch`` while its course's summary quietly lacked it."""
import pandas as pd

from volumetry.longitudinal import assess, assign_courses

BASE = pd.Timestamp("2025-01-06")


def _row(visit, volume, day, course=None):
    return dict(subject_id="S1", lesion_id="L1", visit=visit, method="voxel", volume_ml=volume,
                scan_date=BASE + pd.Timedelta(days=day), course=course)


def test_explicit_course_dated_before_baseline_is_flagged_before_baseline():
    df = pd.DataFrame([_row("baseline", 10.0, 0, 0), _row("C1", 5.0, -5, 1), _row("C2", 4.0, 168, 2)])
    out = assess(df)
    for lesion in ("L1", "total"):
        s = out[out["lesion_id"] == lesion].set_index("visit")
        flags = s.loc["C1", "flags"].split(";")
        assert "before-baseline" in flags and "course-date-mismatch" in flags  # was: course-date-mismatch only
        assert s.loc["C1", "course"] == 1 and s.loc["C1", "days_from_baseline"] == -5
        assert pd.isna(s.loc["C1", "response"]) and pd.isna(s.loc["C1", "percent_change"])  # not assessed
        assert s.loc["C2", "nadir_volume_ml"] == 10.0 and s.loc["C2", "percent_change"] == -60.0  # C1 not in the nadir
    # an explicit course on or after the baseline date gets no such flag
    a = assign_courses(pd.DataFrame([_row("baseline", 10.0, 0, 0), _row("C1", 5.0, 84, 1), _row("C2", 4.0, 120, 2)]))
    assert [("before-baseline" in f) for f in a["flags"]] == [False, False, False]
    assert a["flags"].tolist()[2] == ["course-date-mismatch"]
