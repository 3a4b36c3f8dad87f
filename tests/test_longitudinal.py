"""Longitudinal engine: courses, percent change at and around every boundary, nadir,
responses, confirmation, new lesions, totals, failures and a 0 mL baseline."""
import math

import numpy as np
import pandas as pd
import pytest

from volumetry.errors import ConfigError, InputError, MeasurementError
from volumetry.longitudinal import (
    CourseSchedule,
    ResponseCriteria,
    assess,
    assign_courses,
    best_overall_response,
    confirm_responses,
    get_criteria,
    percent_change,
)

BASE = pd.Timestamp("2025-01-06")


def day(n):
    return BASE + pd.Timedelta(days=n)


def series(volumes, *, subject="S1", lesion="L1", method="voxel", days=None, statuses=None):
    """Rows for one lesion: baseline then courses 1..n at the scheduled days (84·k)."""
    days = days if days is not None else [84 * k for k in range(len(volumes))]
    rows = []
    for k, (v, d) in enumerate(zip(volumes, days)):
        st = statuses[k] if statuses else ("ok" if v is not None else "failed")
        rows.append(dict(subject_id=subject, lesion_id=lesion, visit="baseline" if k == 0 else f"V{k}",
                         scan_date=day(d), method=method, volume_ml=v, status=st,
                         reason="segmentation failed" if st == "failed" else None))
    return rows


def courses(df):
    return [None if pd.isna(c) else int(c) for c in df["course"]]


def lesion_rows(out, lesion="L1", method="voxel"):
    return out[(out["lesion_id"] == lesion) & (out["method"] == method)].reset_index(drop=True)


# ------------------------------------------------------------------ percent change
def test_percent_change_exact_boundaries_and_zero_baseline():
    assert percent_change(8.0, 10.0) == -20.0
    assert percent_change(12.0, 10.0) == 20.0
    assert percent_change(0.8 * 1.2, 0.8) == 20.0  # 19.99999999999999 before rounding
    assert percent_change(0.7 * 0.8, 0.7) == -20.0
    assert percent_change(0.35, 1.0) == -65.0
    assert percent_change(1.73, 1.0) == 73.0
    assert percent_change(10.0, 10.0) == 0.0 and math.copysign(1, percent_change(10.0, 10.0)) == 1
    assert math.isnan(percent_change(float("nan"), 10.0))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(MeasurementError, match="positive volume"):
            percent_change(5.0, bad)


VASC = [(-20.0, "PR"), (-19.99, "SD"), (-20.01, "PR"), (20.0, "PD"), (19.99, "SD"), (20.01, "PD"),
        (0.0, "SD"), (-99.9, "PR"), (150.0, "PD")]
RECIST = [(-65.0, "PR"), (-64.99, "SD"), (-65.01, "PR"), (73.0, "PD"), (72.99, "SD"), (73.01, "PD"),
          (-20.0, "SD"), (20.0, "SD")]


@pytest.mark.parametrize("baseline_ml", [10.0, 0.7, 123.456])
@pytest.mark.parametrize("criteria, pct, expected",
                         [("vascular-anomaly", p, e) for p, e in VASC] + [("recist-volumetric", p, e) for p, e in RECIST])
def test_category_at_and_around_each_boundary(criteria, pct, expected, baseline_ml):
    v = baseline_ml * (1 + pct / 100)
    out = assess(pd.DataFrame(series([baseline_ml, v])), criteria=criteria)
    row = lesion_rows(out).iloc[1]
    assert row["percent_change"] == pytest.approx(pct, abs=1e-9)
    if pct in (-20.0, 20.0, -65.0, 73.0):
        assert row["percent_change"] == pct  # lands exactly on the boundary
    assert row["response"] == expected
    assert row["criteria"] == criteria
    assert lesion_rows(out, "total").iloc[1]["response"] == expected


@pytest.mark.parametrize("criteria", ["vascular-anomaly", "recist-volumetric"])
def test_complete_response_empty_mask_or_zero_volume(criteria):
    rows = series([10.0, None, 0.0], statuses=["ok", "empty", "ok"])
    out = lesion_rows(assess(pd.DataFrame(rows), criteria=criteria))
    assert list(out["response"][1:]) == ["CR", "CR"]
    assert math.isnan(out.loc[1, "volume_ml"])  # nothing measured: empty, not 0
    assert out.loc[1, "percent_change"] == -100.0
    assert "no-measurable-lesion" in out.loc[1, "flags"]
    assert out.loc[2, "volume_ml"] == 0.0 and out.loc[2, "percent_change"] == -100.0
    assert out.loc[0, "best_response"] == "CR"


def test_nadir_and_progression_reference():
    vols = [10.0, 4.0, 6.92, 3.0]
    v = lesion_rows(assess(pd.DataFrame(series(vols)), criteria="vascular-anomaly"))
    assert list(v["nadir_volume_ml"]) == [10.0, 10.0, 4.0, 4.0]
    assert v.loc[2, "percent_change_from_nadir"] == 73.0
    assert v.loc[3, "percent_change_from_nadir"] == -25.0
    assert list(v["percent_change"][1:]) == [-60.0, -30.8, -70.0]
    # vascular-anomaly measures PD from baseline: -30.8 % is PR
    assert list(v["response"][1:]) == ["PR", "PR", "PR"]
    r = lesion_rows(assess(pd.DataFrame(series(vols)), criteria="recist-volumetric"))
    # RECIST-volumetric: -60 % SD; +73 % from the 4 mL nadir is PD; -70 % PR
    assert list(r["response"][1:]) == ["SD", "PD", "PR"]
    assert r.loc[0, "best_response"] == "PR"


def test_reappearance_after_cr_is_pd_from_nadir():
    rows = series([10.0, None, 0.5], statuses=["ok", "empty", "ok"])
    r = lesion_rows(assess(pd.DataFrame(rows), criteria="recist-volumetric"))
    assert list(r["response"][1:]) == ["CR", "PD"]
    assert r.loc[2, "nadir_volume_ml"] == 0.0 and math.isnan(r.loc[2, "percent_change_from_nadir"])
    assert "nadir-zero" in r.loc[2, "flags"]
    v = lesion_rows(assess(pd.DataFrame(rows), criteria="vascular-anomaly"))
    assert v.loc[2, "response"] == "PR"  # -95 % from baseline


def test_user_defined_criteria():
    mine = ResponseCriteria("mine", partial_response_pct=-30, progression_pct=25)
    out = lesion_rows(assess(pd.DataFrame(series([10.0, 7.0, 7.01, 12.5, 12.49])), criteria=mine))
    assert list(out["response"][1:]) == ["PR", "SD", "PD", "SD"]
    assert out.loc[0, "criteria"] == "mine"
    with pytest.raises(ConfigError, match="partial_response_pct"):
        ResponseCriteria("bad", 20, 20)
    with pytest.raises(ConfigError, match="progression_pct"):
        ResponseCriteria("bad", -20, 0)
    with pytest.raises(ConfigError, match="progression_reference"):
        ResponseCriteria("bad", -20, 20, progression_reference="best")
    with pytest.raises(ConfigError, match="vascular-anomaly"):
        get_criteria("who")
    assert get_criteria().name == "vascular-anomaly"


# --------------------------------------------------------- confirmation and BOR
def test_confirmation_rule():
    eff, conf = confirm_responses(["PR", "SD", "CR", "CR", "PR", "NE", "PR"])
    assert conf == [False, None, True, False, True, None, None]
    assert eff == ["SD", "SD", "CR", "PR", "PR", "NE", "SD"]
    assert best_overall_response(["SD", "PD", "NE"]) == "SD"
    assert best_overall_response([None, "NE"]) == "NE"
    assert best_overall_response([]) is None

    rows = series([10.0, 7.0, 9.0])  # PR then SD
    plain = lesion_rows(assess(pd.DataFrame(rows)))
    assert plain.loc[0, "best_response"] == "PR" and plain["response_confirmed"].isna().all()
    conf = lesion_rows(assess(pd.DataFrame(rows), confirm=True))
    assert conf.loc[0, "best_response"] == "SD"
    assert not conf.loc[1, "response_confirmed"]
    conf2 = lesion_rows(assess(pd.DataFrame(series([10.0, 7.0, 6.0, 6.5])), confirm=True))
    assert conf2.loc[0, "best_response"] == "PR"
    assert conf2.loc[1, "response_confirmed"] and conf2.loc[2, "response_confirmed"]
    assert conf2.loc[3, "response_confirmed"] is pd.NA  # SD: nothing to confirm


# --------------------------------------------------------------------- courses
def test_course_windows_inclusive_and_outside_kept_and_flagged():
    days = [0, 56, 113, 140, 196, 200, 308, 400]
    rows = series([10.0] * len(days), days=days)
    out = lesion_rows(assess(pd.DataFrame(rows)))
    assert list(out["days_from_baseline"]) == days
    assert courses(out) == [0, 1, None, 2, 2, None, 4, None]
    outside = out[out["course"].isna()]
    assert len(outside) == 3 and outside["flags"].str.contains("outside-course-window").all()
    # kept and assessed like any scan
    assert (outside["percent_change"] == 0.0).all() and (outside["response"] == "SD").all()
    assert "repeat-in-course" in out.loc[4, "flags"] and "repeat-in-course" not in out.loc[3, "flags"]
    assert lesion_rows(out.assign(), "L1").shape[0] == len(days)


def test_course_schedule_boundaries():
    s = CourseSchedule()
    assert [s.course_of_day(d) for d in (0, 55, 56, 84, 112, 113, 139, 140, 364, 365)] == \
        [0, None, 1, 1, 1, None, None, 2, 4, None]
    assert CourseSchedule(window_days=7).course_of_day(76) is None
    with pytest.raises(ConfigError, match="overlaps"):
        CourseSchedule(window_days=42)


def test_missed_visit_keeps_course_numbers():
    rows = series([10.0, 8.0, 6.0], days=[0, 84, 252])  # course 2 missed
    out = lesion_rows(assess(pd.DataFrame(rows)))
    assert courses(out) == [0, 1, 3]
    assert out.loc[2, "percent_change"] == -40.0 and out.loc[2, "nadir_volume_ml"] == 8.0
    assert out["flags"].eq("").all()


def test_baseline_choice_label_treatment_start_earliest_and_explicit_course():
    base = [dict(subject_id="S1", lesion_id="L1", visit=v, scan_date=day(d), method="voxel", volume_ml=vol)
            for v, d, vol in [("screening", -20, 11.0), ("baseline", 0, 10.0), ("C1", 84, 8.0)]]
    out = lesion_rows(assess(pd.DataFrame(base)))
    assert courses(out) == [None, 0, 1] and "before-baseline" in out.loc[0, "flags"]
    assert math.isnan(out.loc[0, "percent_change"]) and out.loc[2, "percent_change"] == -20.0
    # no label: the last scan on or before the treatment start, else the earliest
    nolabel = pd.DataFrame(base).assign(visit=["a", "b", "c"])
    out = lesion_rows(assess(nolabel, treatment_start={"S1": day(-5)}))
    assert courses(out) == [0, None, 1]  # -20 is baseline: 0 and 84 are 20 and 104 days later
    assert out.loc[2, "days_from_baseline"] == 104 and "outside-course-window" in out.loc[1, "flags"]
    out = lesion_rows(assess(nolabel))
    assert out.loc[0, "course"] == 0
    out = lesion_rows(assess(nolabel, treatment_start={"S1": day(1)}))
    assert courses(out) == [None, 0, 1]
    # explicit course wins (flagged when the date disagrees)
    expl = pd.DataFrame(base).assign(course=[None, None, 2])
    out = lesion_rows(assess(expl))
    assert out.loc[2, "course"] == 2 and "course-date-mismatch" in out.loc[2, "flags"]
    # explicit courses without dates
    nodate = pd.DataFrame(series([10.0, 9.0, 7.0])).drop(columns="scan_date").assign(course=[0, 1, 2])
    out = lesion_rows(assess(nodate))
    assert courses(out) == [0, 1, 2] and out.loc[2, "percent_change"] == -30.0
    assert out["days_from_baseline"].isna().all()


def test_assign_courses_rejects_inconsistent_visits():
    rows = pd.DataFrame(series([10.0, 8.0]) + series([5.0, 4.0], lesion="L2"))
    rows.loc[3, "scan_date"] = day(85)
    with pytest.raises(InputError, match="two scan dates"):
        assign_courses(rows)
    rows = pd.DataFrame(series([10.0, 8.0])).assign(course=[0, 0])
    with pytest.raises(InputError, match="course 0"):
        assign_courses(rows)
    rows = pd.DataFrame(series([10.0, 8.0])).assign(course=[0, 7])
    with pytest.raises(InputError, match="course 7"):
        assign_courses(rows)


# ------------------------------------------------- failures, 0 mL, totals, new lesions
def test_baseline_of_zero_ml_is_a_status_not_a_division():
    out = lesion_rows(assess(pd.DataFrame(series([0.0, 3.0]))))
    assert (out["status"] == "baseline-zero").all()
    assert out["percent_change"].isna().all() and out.loc[1, "response"] == "NE"
    assert "0 mL" in out.loc[1, "reason"]
    assert out.loc[1, "volume_ml"] == 3.0


def test_failed_measurement_is_kept_and_never_zero_in_the_total():
    rows = series([10.0, None, 6.0]) + series([5.0, 2.0, 2.0], lesion="L2")
    out = assess(pd.DataFrame(rows))
    l1 = lesion_rows(out)
    assert l1.loc[1, "status"] == "failed" and l1.loc[1, "reason"] == "segmentation failed"
    assert math.isnan(l1.loc[1, "volume_ml"]) and math.isnan(l1.loc[1, "percent_change"])
    assert l1.loc[1, "response"] == "NE"
    assert l1.loc[2, "nadir_volume_ml"] == 10.0  # the failed scan does not enter the nadir
    tot = lesion_rows(out, "total")
    assert tot.loc[0, "volume_ml"] == 15.0
    assert tot.loc[1, "status"] == "incomplete" and math.isnan(tot.loc[1, "volume_ml"])
    assert "lesion L1: failed" in tot.loc[1, "reason"]
    assert tot.loc[1, "response"] == "NE"  # not -86.7 % from 2 mL counted alone
    assert tot.loc[2, "volume_ml"] == 8.0 and tot.loc[2, "percent_change"] == pytest.approx(-46.666666667)


def test_failed_baseline_leaves_followups_unassessed():
    out = lesion_rows(assess(pd.DataFrame(series([None, 8.0]))))
    assert out.loc[1, "status"] == "no-baseline" and "baseline measurement failed" in out.loc[1, "reason"]
    assert math.isnan(out.loc[1, "percent_change"]) and out.loc[1, "response"] == "NE"


def test_missing_lesion_makes_total_incomplete():
    rows = series([10.0, 8.0]) + series([5.0], lesion="L2")
    tot = lesion_rows(assess(pd.DataFrame(rows)), "total")
    assert tot.loc[1, "status"] == "incomplete" and "lesion L2: not measured" in tot.loc[1, "reason"]


def test_new_lesion_is_reported_and_counts_as_progression():
    rows = series([10.0, 5.0, 4.0]) + [
        dict(subject_id="S1", lesion_id="L9", visit="V2", scan_date=day(168), method="voxel", volume_ml=0.3)]
    out = assess(pd.DataFrame(rows))
    new = lesion_rows(out, "L9")
    assert new.loc[0, "response"] == "PD" and "new-lesion" in new.loc[0, "flags"]
    assert math.isnan(new.loc[0, "percent_change"])
    tot = lesion_rows(out, "total")
    assert tot.loc[2, "volume_ml"] == 4.0  # new lesions are not added to the baseline total
    assert tot.loc[2, "percent_change"] == -60.0
    assert tot.loc[2, "response"] == "PD" and "new-lesion" in tot.loc[2, "flags"]
    assert tot.loc[1, "response"] == "PR" and tot.loc[0, "best_response"] == "PR"
    lenient = ResponseCriteria("lenient", -20, 20, new_lesion_is_progression=False)
    tot = lesion_rows(assess(pd.DataFrame(rows), criteria=lenient), "total")
    assert tot.loc[2, "response"] == "PR" and "new-lesion" in tot.loc[2, "flags"]
    # a lesion with an empty mask at baseline is new too
    rows2 = rows[:-1] + series([None, None, 0.4], lesion="L9", statuses=["empty", "empty", "ok"])
    out2 = assess(pd.DataFrame(rows2))
    assert lesion_rows(out2, "total").loc[2, "response"] == "PD"
    assert lesion_rows(out2, "total").loc[1, "response"] == "PR"


def test_methods_are_scheduled_and_assessed_separately():
    mri = series([10.0, 8.0])
    us = series([12.0, 12.0], method="ellipsoid-us", days=[3, 90])
    out = assess(pd.DataFrame(mri + us))
    u = lesion_rows(out, method="ellipsoid-us")
    assert courses(u) == [0, 1] and u["days_from_baseline"].tolist() == [0, 87]
    assert u.loc[1, "response"] == "SD" and lesion_rows(out).loc[1, "response"] == "PR"
    assert set(out["lesion_id"]) == {"L1", "total"} and len(out) == 8


def test_input_validation_messages():
    good = pd.DataFrame(series([10.0, 8.0]))
    with pytest.raises(InputError, match="more than once"):
        assess(pd.concat([good, good]))
    with pytest.raises(InputError, match="negative volume"):
        assess(good.assign(volume_ml=[10.0, -1.0]))
    with pytest.raises(InputError, match="reserved"):
        assess(good.assign(lesion_id="Total"))
    with pytest.raises(InputError, match="status ok but no volume"):
        assess(good.assign(volume_ml=[10.0, np.nan], status="ok"))
    with pytest.raises(InputError, match="volume_ml"):
        assess(good.drop(columns="volume_ml"))
    with pytest.raises(InputError, match="scan_date or course"):
        assess(good.drop(columns="scan_date"))


def test_unreadable_course_is_an_error():
    rows = pd.DataFrame(series([10.0, 8.0])).assign(course=[0, "first"])
    with pytest.raises(InputError, match="'first' is not a number"):
        assess(rows)


def test_second_scan_on_the_baseline_day_is_not_a_second_baseline():
    rows = series([10.0, 8.0]) + [dict(subject_id="S1", lesion_id="L1", visit="rescan", scan_date=day(0),
                                       method="voxel", volume_ml=10.4)]
    out = lesion_rows(assess(pd.DataFrame(rows)))
    assert courses(out) == [0, 0, 1]
    rescan = out[out["visit"] == "rescan"].iloc[0]
    assert "repeat-in-course" in rescan["flags"] and pd.isna(rescan["response"])
    assert out[out["visit"] == "V1"].iloc[0]["percent_change"] == -20.0
