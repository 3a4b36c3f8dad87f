"""The fast longitudinal assessment (plain Python rows) gives exactly the tables of the
pandas implementation it replaced (tests/longitudinal_reference.py), on randomised
synthetic studies: many subjects, missing visits, several lesions, new, empty and
vanished lesions, 0 mL baselines, failed scans, scans outside every course window,
before baseline or without date, repeats in a course, explicit courses, treatment
start dates, both built-in criteria sets and a user set, with and without confirmation.
"""
import numpy as np
import pandas as pd
import pytest
from test_longitudinal_reference import (
    _validate,
    reference_assess,
    reference_assess_series,
    reference_assign_courses,
    reference_conform,
)

from volumetry.longitudinal import CourseSchedule, ResponseCriteria, assess, assess_series, assign_courses, get_criteria
from volumetry.tables import conform

BASE = pd.Timestamp("2025-03-03")
USER = ResponseCriteria("user", -30.0, 25.0, "nadir", complete_response_ml=0.05, new_lesion_is_progression=False)
FLAGS = ("touches-border", "few-voxels", "multiple-components", "propagated")


def _visit_days(rng, n_courses):
    """Day of each follow-up: on schedule, jittered inside or outside the window, repeats, before baseline."""
    days = []
    for k in range(1, n_courses + 1):
        kind = rng.random()
        if kind < 0.6:
            days.append(84 * k + int(rng.integers(-21, 22)))
        elif kind < 0.75:
            days.append(84 * k + int(rng.choice([-40, -30, 30, 40])))  # outside every window
        elif kind < 0.85:
            days += [84 * k + int(rng.integers(-10, 11)), 84 * k + int(rng.integers(-10, 11))]  # repeat in course
        elif kind < 0.9:
            days.append(-int(rng.integers(1, 30)))  # before the baseline
        else:
            days.append(84 * k)
    if rng.random() < 0.1:
        days.append(0)  # a second scan on the baseline day
    return days


def random_study(seed, *, conformed):
    """A random measurement table (rows shuffled), as the pipeline (conformed) or a user (raw) gives it."""
    rng = np.random.default_rng(seed)
    rows = []
    n_subjects = int(rng.integers(1, 7))
    for si in range(n_subjects):
        subject = f"S{rng.integers(0, 100):02d}-{si}"
        explicit = rng.random() < 0.15
        methods = list(rng.choice(["voxel", "mesh", "ellipsoid-us"], size=int(rng.integers(1, 3)), replace=False))
        for method in methods:
            n_courses = int(rng.integers(0, 5))
            follow = _visit_days(rng, n_courses)
            visits = [("baseline", 0)] + [(f"V{i + 1}", d) for i, d in enumerate(follow)]
            if rng.random() < 0.1:
                visits = visits[1:]  # no baseline scan at all
            n_lesions = int(rng.integers(1, 5))
            undated = rng.random() < 0.1
            for li in range(n_lesions):
                lesion = f"L{li + 1}"
                kind = rng.random()  # 'new' lesions appear after baseline
                for vi, (visit, d) in enumerate(visits):
                    if rng.random() < 0.12:
                        continue  # lesion not measured at this visit
                    if kind < 0.15 and visit == "baseline":
                        continue
                    status = rng.choice(["ok", "ok", "ok", "ok", "ok", "empty", "failed"])
                    vol = float(np.round(rng.uniform(0, 80), int(rng.integers(0, 4))))
                    if visit == "baseline" and rng.random() < 0.08:
                        vol = 0.0  # 0 mL baseline
                    if kind < 0.25 and visit == "baseline" and rng.random() < 0.5:
                        status = "empty"
                    if rng.random() < 0.05:
                        vol = round(vol * 0.8, 6)  # lands near a threshold
                    row = {
                        "subject_id": subject, "lesion_id": lesion, "visit": visit, "method": method,
                        "volume_ml": vol if status == "ok" else (np.nan if rng.random() < 0.7 else vol),
                        "status": status,
                        "reason": {"ok": None, "empty": "no voxel", "failed": rng.choice(["segment: no seed", None])}[status],
                        "scan_date": (BASE + pd.Timedelta(days=d)) if not (undated and vi == len(visits) - 1) else None,
                        "flags": list(rng.choice(FLAGS, size=int(rng.integers(0, 3)))),
                    }
                    if method == "voxel" and status == "ok":
                        row["volume_low_ml"] = vol * 0.8 if rng.random() < 0.9 else np.nan
                        row["volume_high_ml"] = vol * 1.2
                        row["d1_mm"] = float(rng.uniform(1, 50))
                    if explicit:
                        row["course"] = vi if vi <= 4 else None
                    row["series_uid"] = f"1.2.{si}.{vi}" if rng.random() < 0.9 else f"1.2.{si}.{vi}.{li}"
                    row["input_hash"] = None if rng.random() < 0.05 else f"h{si}{vi}"
                    row["computed_at"] = pd.Timestamp("2026-01-01T10:00:00Z") + pd.Timedelta(seconds=int(rng.integers(0, 2)))
                    rows.append(row)
    order = rng.permutation(len(rows))
    df = pd.DataFrame([rows[i] for i in order])
    if df.empty:
        return df
    if conformed:
        df = conform(df)
    else:
        df["flags"] = [";".join(f) if i % 3 == 0 else f for i, f in enumerate(df["flags"])]
    return df


def _both(fn_fast, fn_ref, *args, **kwargs):
    """Run both; they must return equal frames or raise the same error."""
    try:
        expected = fn_ref(*args, **kwargs)
    except Exception as exc:  # the reference's error is the expected behaviour
        with pytest.raises(type(exc)) as info:
            fn_fast(*args, **kwargs)
        assert str(info.value) == str(exc)
        return None
    got = fn_fast(*args, **kwargs)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    return got


SETTINGS = [
    dict(),
    dict(criteria="recist-volumetric"),
    dict(criteria="vascular-anomaly", confirm=True),
    dict(criteria="recist-volumetric", confirm=True),
    dict(criteria=USER, confirm=True, schedule=CourseSchedule(course_weeks=12, max_courses=4, window_days=21)),
]


#: Random studies compared (each with both input forms); the coverage test checks what they reach.
N_STUDIES = 24


@pytest.mark.parametrize("seed", range(N_STUDIES))
def test_assess_equals_reference_on_random_studies(seed):
    for conformed in (True, False):
        df = random_study(seed, conformed=conformed)
        kwargs = SETTINGS[seed % len(SETTINGS)]
        starts = None
        if seed % 4 == 3 and len(df):
            subjects = sorted(set(df["subject_id"]))
            starts = {s: BASE + pd.Timedelta(days=int(d)) for s, d in zip(subjects, np.arange(len(subjects)) * 30 - 10)}
        got = _both(assess, reference_assess, df, treatment_start=starts, **kwargs)
        if got is not None:
            assert len(got) >= len(df)


@pytest.mark.parametrize("seed", range(12))
def test_assign_courses_equals_reference(seed):
    df = random_study(1000 + seed, conformed=seed % 2 == 0)
    if df.empty:
        return
    if seed % 3 == 0:
        df = df.set_index(pd.Index(np.arange(len(df)) * 7 + 3))  # a non-default index is kept
    _both(assign_courses, reference_assign_courses, df)


@pytest.mark.parametrize("seed", range(3))
def test_assess_series_equals_reference(seed):
    """The DataFrame front end of one series: same frame, dtypes included."""
    data = reference_assign_courses(_validate(random_study(3000 + seed, conformed=seed % 2 == 0)))
    for _, g in data.groupby(["subject_id", "method", "lesion_id"]):
        for criteria, confirm, new in (("vascular-anomaly", False, False), ("recist-volumetric", True, False),
                                       (USER, True, True)):
            crit = get_criteria(criteria)
            _both(assess_series, reference_assess_series, g, crit, confirm=confirm, new_lesion=new)


def test_the_random_studies_cover_every_case():
    """The generator reaches every status, flag and response the comparison is meant to cover."""
    tables = [assess(random_study(seed, conformed=True), **SETTINGS[seed % len(SETTINGS)]) for seed in range(N_STUDIES)]
    t = pd.concat(tables, ignore_index=True)
    statuses = set(t["status"].dropna())
    assert statuses == {"ok", "empty", "failed", "no-baseline", "baseline-zero", "incomplete"}
    assert set(t["response"].dropna()) == {"CR", "PR", "SD", "PD", "NE"}
    flags = set(";".join(t["flags"].dropna()).split(";"))
    for f in ("outside-course-window", "before-baseline", "repeat-in-course", "new-lesion",
              "no-measurable-lesion", "nadir-zero", "no-scan-date"):
        assert f in flags, f
    assert t["response_confirmed"].notna().any()
    assert (t["lesion_id"] == "total").any()
    assert t["course"].isna().any() and (t["course"] == 4).any()


@pytest.mark.parametrize("bad", ["dup", "negative", "ok-without-volume", "total", "two-dates", "two-baselines",
                                 "course-text", "course-range", "status"])
def test_errors_equal_reference(bad):
    df = random_study(7, conformed=False)
    df = df[df["subject_id"] == df["subject_id"].iloc[0]].reset_index(drop=True)
    if bad == "dup":
        df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    elif bad == "negative":
        df.loc[1, "volume_ml"] = -1.0
        df.loc[1, "status"] = "ok"
    elif bad == "ok-without-volume":
        df.loc[0, "volume_ml"] = np.nan
        df.loc[0, "status"] = "ok"
    elif bad == "total":
        df.loc[0, "lesion_id"] = "Total"
    elif bad == "two-dates":
        sizes = df.groupby(["method", "visit"]).size()
        method, visit = sizes[sizes > 1].index[0]
        same = df[(df["method"] == method) & (df["visit"] == visit)].index
        df.loc[same[-1], "scan_date"] = BASE + pd.Timedelta(days=1)
    elif bad == "two-baselines":
        df["course"] = [0 if v in ("baseline", "V1") else None for v in df["visit"]]
    elif bad == "course-text":
        df["course"] = ["one" if v == "V1" else None for v in df["visit"]]
    elif bad == "course-range":
        df["course"] = [9 if v == "V1" else None for v in df["visit"]]
    elif bad == "status":
        df.loc[0, "status"] = "lost"
    with pytest.raises(Exception):
        reference_assess(df)
    _both(assess, reference_assess, df)


def test_empty_and_minimal_tables_equal_reference():
    empty = pd.DataFrame(columns=["subject_id", "lesion_id", "visit", "method", "volume_ml", "scan_date"])
    _both(assess, reference_assess, empty)
    one = pd.DataFrame([{"subject_id": "S", "lesion_id": "L", "visit": "baseline", "method": "voxel",
                         "volume_ml": 2.0, "course": 0}])
    _both(assess, reference_assess, one)


@pytest.mark.parametrize("seed", range(6))
def test_conform_equals_reference(seed):
    """conform's fast paths (columns already in their dtype) change nothing."""
    raw = random_study(2000 + seed, conformed=False)
    if raw.empty:
        return
    once = reference_conform(raw)
    pd.testing.assert_frame_equal(conform(raw), once, check_exact=True)
    pd.testing.assert_frame_equal(conform(once), reference_conform(once), check_exact=True)
    shuffled = once.sample(frac=1.0, random_state=seed)  # non-default index
    pd.testing.assert_frame_equal(conform(shuffled), reference_conform(shuffled), check_exact=True)
    # a frame whose columns are in other dtypes: str, object, float with NaN, text dates
    mixed = once.astype({"subject_id": "str", "course": "float64", "response_confirmed": object})
    mixed["scan_date"] = once["scan_date"].dt.strftime("%Y-%m-%d")
    pd.testing.assert_frame_equal(conform(mixed), reference_conform(mixed), check_exact=True)


def test_conform_of_store_records_equals_reference():
    """Rows as the pipeline reads them from its store: text dates and UTC times, flag lists,
    integer courses, absent columns; also other text forms that must keep the old parsing
    (and the old errors)."""
    rng = np.random.default_rng(3)
    rows = []
    for n in range(40):
        rows.append({"subject_id": f"S{n % 5}", "lesion_id": "L1", "visit": f"V{n}", "course": n % 5,
                     "scan_date": f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}", "method": "voxel",
                     "volume_ml": float(rng.uniform(0, 50)), "status": "ok", "reason": None,
                     "flags": ["touches-border"] if n % 3 else [],
                     "computed_at": f"2026-11-24T12:{n % 60:02d}:00+00:00"})
    frame = pd.DataFrame.from_records(rows)
    _both(conform, reference_conform, frame)
    frame.loc[0, "scan_date"] = None  # the first value is empty: the guess uses the next one
    frame.loc[4, "computed_at"] = None
    _both(conform, reference_conform, frame)
    variants = [("scan_date", 0, "03/01/2024"), ("scan_date", 1, "2024-13-01"), ("scan_date", 5, "2024-02-30"),
                ("scan_date", 5, "2024-01-02 10:00"), ("scan_date", 5, "20240102"),
                ("computed_at", 0, "2026-11-24T12:00:00.25Z"), ("computed_at", 5, "2026-11-24T12:00:00.25Z"),
                ("computed_at", 0, "2026-11-24 12:00:00"), ("computed_at", 5, "2026-11-24T12:00:00Z")]
    errors = 0
    for column, row, value in variants:
        other = frame.copy()
        other.loc[row, column] = value
        errors += _both(conform, reference_conform, other) is None
    assert 0 < errors < len(variants)
