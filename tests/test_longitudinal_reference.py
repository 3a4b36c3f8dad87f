"""The longitudinal assessment as it was written on pandas (per-row DataFrame indexing),
kept as the slow, obviously-correct reference of the fast implementation.

Copied verbatim from volumetry/longitudinal/{assess,courses,response}.py and
volumetry/tables.py (``conform``) at commit 78eb3f5, before the rewrite on plain
Python lists; only the names of the entry points changed (``reference_*``).
Used by tests/test_longitudinal_equivalence.py (no test in this module).
Do not "fix" anything here: it is the behaviour the fast code must reproduce.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from volumetry.errors import InputError
from volumetry.longitudinal.courses import CourseSchedule
from volumetry.longitudinal.criteria import NE, PD, ResponseCriteria, get_criteria
from volumetry.longitudinal.response import EVALUABLE, best_overall_response, confirm_responses, percent_change
from volumetry.tables import COLUMN_NAMES, COLUMNS, REQUIRED, TOTAL, Column, _BY_NAME, _bool, _isna, _join_flags

log = logging.getLogger(__name__)

INPUT_STATUSES = ("ok", "empty", "failed")
_PROVENANCE = ("series_uid", "input_hash", "config_hash", "software_version", "computed_at")
BASELINE_LABEL = "baseline"


def reference_assess(df: pd.DataFrame, *, criteria: str | ResponseCriteria | None = None, confirm: bool = False,
           schedule: CourseSchedule | None = None,
           treatment_start: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Assess every subject, lesion and method of a study.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per subject × lesion × visit × method with ``subject_id``,
        ``lesion_id``, ``visit``, ``method``, ``volume_ml`` (mL) and
        ``scan_date`` and/or ``course``; optional ``status`` (ok | empty |
        failed; default ok when a volume is given, failed otherwise),
        ``reason``, ``flags``, ``volume_low_ml``, ``volume_high_ml``,
        ``d1_mm``..``d3_mm`` and the provenance columns.
    criteria : str or ResponseCriteria
        ``"vascular-anomaly"`` (default), ``"recist-volumetric"`` or user thresholds.
    confirm : bool
        Require CR/PR to be confirmed by the next evaluable scan.
    schedule : CourseSchedule, optional
        Course length, number and window (default 12 weeks, 4, ±28 days).
    treatment_start : mapping, optional
        ``subject_id -> date`` of the first dose (baseline = last scan on or before it).

    Returns
    -------
    pandas.DataFrame
        The tidy table (:data:`volumetry.tables.COLUMNS`), lesions and totals.

    Raises
    ------
    InputError
        Missing columns, duplicate rows, negative volumes, an ``ok`` row without
        a volume, a reserved lesion id, inconsistent visit dates or courses.
    ConfigError
        Unknown criteria.
    """
    crit = get_criteria(criteria)
    data = _validate(df)
    data = reference_assign_courses(data, schedule=schedule, treatment_start=treatment_start)

    pieces = []
    for (subject, method), g in data.groupby(["subject_id", "method"], sort=True):
        base_visits = set(g.loc[g["is_baseline"], "visit"])
        new_ids = set()
        lesion_frames = {}
        for lesion, s in g.groupby("lesion_id", sort=True):
            b = s[s["is_baseline"]]
            is_new = bool(base_visits) and (b.empty or (b["status"] == "empty").all())
            if is_new:
                new_ids.add(lesion)
            lesion_frames[lesion] = s
            pieces.append(reference_assess_series(s, crit, confirm=confirm, new_lesion=is_new))
        total = _total_series(g, lesion_frames, new_ids, subject, method)
        pieces.append(reference_assess_series(total, crit, confirm=confirm))
    out = pd.concat(pieces, ignore_index=True) if pieces else data.iloc[0:0]
    out["criteria"] = crit.name
    out["_total"] = out["lesion_id"] == TOTAL
    # an undated scan with a course sits at its course's scheduled day (12-week courses in every setting compared)
    out["_key"] = out["days_from_baseline"].astype("Float64").fillna(out["course"].astype("Float64") * 84)
    out = out.sort_values(["subject_id", "method", "_total", "lesion_id", "_key", "visit"],
                          kind="stable", na_position="last")
    return reference_conform(out[[c for c in out.columns if c in COLUMN_NAMES]])


def _validate(df: pd.DataFrame) -> pd.DataFrame:
    need = ("subject_id", "lesion_id", "visit", "method", "volume_ml")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"the measurements lack the column(s) {', '.join(missing)}; need {', '.join(need)} "
                         "and scan_date and/or course")
    if "scan_date" not in df.columns and "course" not in df.columns:
        raise InputError("the measurements need scan_date or course to place each scan in a treatment course")
    d = df.copy().reset_index(drop=True)
    for c in ("subject_id", "lesion_id", "visit", "method"):
        if d[c].isna().any():
            r = int(np.flatnonzero(d[c].isna())[0])
            raise InputError(f"row {r}: {c} is empty; every row needs subject_id, lesion_id, visit and method")
        d[c] = d[c].astype(str)
    if (d["lesion_id"].str.lower() == TOTAL).any():
        raise InputError(f"lesion_id {TOTAL!r} is reserved for the subject's total; rename that lesion")
    dup = d.duplicated(["subject_id", "lesion_id", "visit", "method"], keep=False)
    if dup.any():
        r = d[dup].iloc[0]
        raise InputError(f"subject {r['subject_id']} lesion {r['lesion_id']} visit {r['visit']} ({r['method']}) "
                         "appears more than once; one measurement per lesion, visit and method")
    d["volume_ml"] = pd.to_numeric(d["volume_ml"], errors="raise").astype(float)
    if (d["volume_ml"] < 0).any():
        r = d[d["volume_ml"] < 0].iloc[0]
        raise InputError(f"subject {r['subject_id']} lesion {r['lesion_id']} visit {r['visit']}: "
                         f"negative volume {r['volume_ml']} mL")
    if "status" not in d:
        d["status"] = np.where(d["volume_ml"].notna(), "ok", "failed")
    d["status"] = d["status"].fillna("ok").astype(str)
    bad = ~d["status"].isin(INPUT_STATUSES)
    if bad.any():
        raise InputError(f"unknown status {d.loc[bad, 'status'].iloc[0]!r}; use one of {', '.join(INPUT_STATUSES)}")
    no_vol = (d["status"] == "ok") & d["volume_ml"].isna()
    if no_vol.any():
        r = d[no_vol].iloc[0]
        raise InputError(f"subject {r['subject_id']} lesion {r['lesion_id']} visit {r['visit']}: status ok but no "
                         "volume; give the volume or status failed/empty with a reason")
    d.loc[d["status"] != "ok", "volume_ml"] = np.nan
    d["reason"] = d["reason"].astype(object).where(d["reason"].notna(), None) if "reason" in d else None
    d.loc[(d["status"] == "failed") & d["reason"].isna(), "reason"] = "no volume given"
    return d


def _total_series(g: pd.DataFrame, lesions: dict[str, pd.DataFrame], new_ids: set, subject, method) -> pd.DataFrame:
    """Rows of the subject's total (one per visit) for one method."""
    base_ids = [lid for lid in lesions if lid not in new_ids and lesions[lid]["is_baseline"].any()]
    visit_cols = ["subject_id", "method", "visit", "scan_date", "course", "days_from_baseline", "is_baseline"]
    rows = []
    for visit, v in g.groupby("visit", sort=False):
        first = v.iloc[0]
        row: dict[str, Any] = {c: first[c] for c in visit_cols if c in v}
        row["lesion_id"] = TOTAL
        flags = [f for f in first["flags"] if f in _VISIT_FLAGS]
        comps = v[v["lesion_id"].isin(base_ids)]
        missing = [lid for lid in base_ids if lid not in set(comps["lesion_id"])]
        failed = comps[~comps["status"].isin(("ok", "empty"))]
        for f in comps["flags"]:
            flags += [x for x in f if x not in flags]
        if not base_ids:
            status, reason, vol = ("no-baseline", "no lesion measured at baseline", np.nan)
        elif missing or len(failed):
            parts = [f"lesion {lid}: not measured at this visit" for lid in missing]
            parts += [f"lesion {r['lesion_id']}: {r['status']}" + (f" ({r['reason']})" if isinstance(r["reason"], str) else "")
                      for _, r in failed.iterrows()]
            status, reason, vol = "incomplete", "; ".join(parts), np.nan
        elif (comps["status"] == "empty").all():
            status, reason, vol = "empty", "no measurable lesion", np.nan
        else:
            status, reason = "ok", None
            vol = float(comps.loc[comps["status"] == "ok", "volume_ml"].sum())
        row.update(status=status, reason=reason, volume_ml=vol)
        for band in ("volume_low_ml", "volume_high_ml"):
            if band in v and status == "ok" and comps.loc[comps["status"] == "ok", band].notna().all():
                row[band] = float(comps.loc[comps["status"] == "ok", band].sum())
        newv = v[v["lesion_id"].isin(new_ids) & (v["status"] != "empty") & ~v["is_baseline"]]
        row["new_lesion_pd"] = bool(len(newv))
        if len(newv):
            flags.append("new-lesion")
        for p in _PROVENANCE:
            if p in v and v[p].nunique(dropna=True) == 1 and v[p].notna().all():
                row[p] = v[p].iloc[0]
        row["flags"] = flags
        rows.append(row)
    return pd.DataFrame(rows)


#: Flags that describe the scan (visit), copied onto the total.
_VISIT_FLAGS = ("outside-course-window", "before-baseline", "no-scan-date", "no-baseline-date",
                "repeat-in-course", "course-date-mismatch", "no-baseline-scan")


def reference_assign_courses(df: pd.DataFrame, *, schedule: CourseSchedule | None = None,
                   treatment_start: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Add ``course``, ``days_from_baseline`` and ``is_baseline``; extend ``flags``.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows with ``subject_id``, ``method``, ``visit``, ``scan_date`` (date or
        empty), optionally ``course`` (explicit, wins) and ``flags`` (lists).
    schedule : CourseSchedule, optional
        Defaults to 12-week courses, 4 courses, ±28-day windows.
    treatment_start : mapping, optional
        ``subject_id -> date`` of the first dose; used to pick the baseline
        when no visit is labelled ``baseline`` and no explicit course 0 is given.

    Returns
    -------
    pandas.DataFrame
        A copy with ``course`` (Int64), ``days_from_baseline`` (Int64),
        ``is_baseline`` (bool) and ``flags`` (list of str per row).

    Raises
    ------
    InputError
        If a visit has two different dates, two different visits are both
        marked as baseline, or an explicit course is out of range.
    """
    schedule = schedule or CourseSchedule()
    out = df.copy()
    out["scan_date"] = pd.to_datetime(out["scan_date"]).astype("datetime64[ns]").dt.normalize() \
        if "scan_date" in out else pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
    explicit = pd.to_numeric(out["course"], errors="coerce") if "course" in out else pd.Series(np.nan, index=out.index)
    if "course" in out:
        unreadable = out["course"].notna() & explicit.isna()
        if unreadable.any():
            r = out[unreadable].iloc[0]
            raise InputError(f"subject {r['subject_id']} visit {r['visit']}: course {r['course']!r} is not a number "
                             "(0 = baseline, 1, 2, ...)")
    bad = explicit.notna() & ((explicit % 1 != 0) | (explicit < 0) | (explicit > schedule.max_courses))
    if bad.any():
        r = out[bad].iloc[0]
        raise InputError(f"subject {r['subject_id']} visit {r['visit']}: course {float(explicit[bad].iloc[0]):g} is not an integer "
                         f"from 0 (baseline) to {schedule.max_courses}")
    if "flags" not in out:
        out["flags"] = [[] for _ in range(len(out))]
    else:
        out["flags"] = [list(f) if isinstance(f, (list, tuple)) else ([] if pd.isna(f) or f == "" else str(f).split(";"))
                        for f in out["flags"]]
    course = pd.Series(pd.NA, index=out.index, dtype="Int64")
    days = pd.Series(pd.NA, index=out.index, dtype="Int64")
    is_base = pd.Series(False, index=out.index)
    starts = {str(k): pd.Timestamp(v).normalize() for k, v in (treatment_start or {}).items() if v is not None and not pd.isna(v)}

    for (subject, method), g in out.groupby(["subject_id", "method"], sort=False, dropna=False):
        visits = _visit_table(g, explicit, subject, method)
        base_visit = _baseline_visit(visits, starts.get(str(subject)), subject, method)
        base_date = visits.loc[base_visit, "date"] if base_visit is not None else pd.NaT
        per_visit: dict[str, tuple[Any, Any, list[str]]] = {}
        for visit, v in visits.iterrows():
            flags: list[str] = []
            d = None if pd.isna(v["date"]) or pd.isna(base_date) else int((v["date"] - base_date).days)
            if not pd.isna(v["course"]):
                k = int(v["course"])
                if k > 0 and d is not None and schedule.course_of_day(d) != k:
                    flags.append("course-date-mismatch")
                if k > 0 and d is not None and d < 0:
                    flags.append("before-baseline")  # not assessed: it precedes the baseline scan
            elif visit == base_visit:
                k = 0
            elif base_visit is None:
                k, flags = None, ["no-baseline-scan"]
            elif d is None:
                k, flags = None, ["no-scan-date" if pd.isna(v["date"]) else "no-baseline-date"]
            elif d < 0:
                k, flags = None, ["before-baseline"]
            else:
                k = schedule.course_of_day(d)
                if k is None:
                    flags.append("outside-course-window")
                elif k == 0:
                    flags.append("repeat-in-course")  # another scan on the baseline day
            per_visit[visit] = (k, d, flags)
        _flag_repeats(per_visit, schedule)
        for idx, visit in zip(g.index, g["visit"].astype(str)):
            k, d, flags = per_visit[visit]
            course[idx] = pd.NA if k is None else k
            days[idx] = pd.NA if d is None else d
            is_base[idx] = visit == base_visit
            out.at[idx, "flags"] = out.at[idx, "flags"] + [f for f in flags if f not in out.at[idx, "flags"]]
    out["course"] = course
    out["days_from_baseline"] = days
    out["is_baseline"] = is_base.astype(bool)
    return out


def _visit_table(g: pd.DataFrame, explicit: pd.Series, subject, method) -> pd.DataFrame:
    """One row per visit label: its date and explicit course (consistent across lesions)."""
    rows = {}
    for idx, r in g.iterrows():
        visit = str(r["visit"])
        date, k = r["scan_date"], explicit[idx]
        if visit in rows:
            d0, k0 = rows[visit]
            if not (pd.isna(d0) and pd.isna(date)) and (pd.isna(d0) != pd.isna(date) or d0 != date):
                raise InputError(f"subject {subject} ({method}): visit {visit!r} has two scan dates "
                                 f"({_d(d0)} and {_d(date)}); give each scan its own visit label")
            if not (pd.isna(k0) and pd.isna(k)) and (pd.isna(k0) != pd.isna(k) or k0 != k):
                raise InputError(f"subject {subject} ({method}): visit {visit!r} has two courses ({k0} and {k}); "
                                 "give one course per visit")
        rows[visit] = (date, k)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["date", "course"])


def _baseline_visit(visits: pd.DataFrame, start, subject, method) -> str | None:
    zero = [v for v, k in visits["course"].items() if not pd.isna(k) and int(k) == 0]
    if len(zero) > 1:
        raise InputError(f"subject {subject} ({method}): visits {zero} are all marked course 0; one baseline per subject")
    if zero:
        return zero[0]
    if visits["course"].notna().any() and visits["course"].notna().all():
        return None  # explicit follow-up courses only: no baseline scan given
    free = visits[visits["course"].isna()]
    labelled = [v for v in free.index if v.strip().lower() == BASELINE_LABEL]
    if labelled:
        return labelled[0]
    dated = free.dropna(subset=["date"]).sort_values("date", kind="stable")
    if dated.empty:
        return None
    if start is not None:
        before = dated[dated["date"] <= start]
        if not before.empty:
            return str(before.index[-1])
        log.warning("subject %s (%s): no scan on or before the treatment start %s; the earliest scan is the baseline",
                    subject, method, start.date())
    return str(dated.index[0])


def _flag_repeats(per_visit: dict[str, tuple[Any, Any, list[str]]], schedule: CourseSchedule) -> None:
    by_course: dict[int, list[str]] = {}
    for visit, (k, _, _) in per_visit.items():
        if k is not None and k > 0:
            by_course.setdefault(k, []).append(visit)
    for k, visits in by_course.items():
        if len(visits) < 2:
            continue
        target = schedule.target_day(k)
        keep = min(visits, key=lambda v: (abs(per_visit[v][1] - target) if per_visit[v][1] is not None else 10**9, v))
        for v in visits:
            if v != keep:
                per_visit[v][2].append("repeat-in-course")


def _d(x) -> str:
    return "no date" if pd.isna(x) else str(pd.Timestamp(x).date())


def reference_assess_series(s: pd.DataFrame, criteria: ResponseCriteria, *, confirm: bool = False,
                  new_lesion: bool = False) -> pd.DataFrame:
    """Assess the scans of one series (subject × lesion × method, or a total).

    Parameters
    ----------
    s : pandas.DataFrame
        Rows with ``volume_ml``, ``status``, ``reason``, ``flags`` (lists),
        ``course``, ``days_from_baseline``, ``is_baseline`` and optionally
        ``new_lesion_pd`` (bool: a new lesion elsewhere makes this scan PD).
    criteria : ResponseCriteria
    confirm : bool
        Require confirmation of CR/PR by the next evaluable scan.
    new_lesion : bool
        The series is a lesion absent at baseline.

    Returns
    -------
    pandas.DataFrame
        A copy with ``baseline_volume_ml``, ``percent_change``,
        ``nadir_volume_ml``, ``percent_change_from_nadir``, ``response``,
        ``response_confirmed``, ``best_response``; ``status``, ``reason`` and
        ``flags`` updated.
    """
    s = s.copy()
    s["flags"] = [list(f) for f in s["flags"]]
    for col in ("baseline_volume_ml", "percent_change", "nadir_volume_ml", "percent_change_from_nadir"):
        s[col] = np.nan
    s["response"] = None
    s["response_confirmed"] = None
    s["best_response"] = None
    if "new_lesion_pd" not in s:
        s["new_lesion_pd"] = False

    order_key = s["days_from_baseline"].astype("Float64")
    nominal = s["course"].astype("Float64") * 84  # explicit course without a date: its scheduled day (12-week courses)
    key = order_key.fillna(nominal)
    follow = s[(~s["is_baseline"].astype(bool)) & key.notna() & (key > 0)]
    # scans on the same day in visit-label order (tests/test_audit_longitudinal_order.py)
    follow_idx = list(follow.assign(_k=key[follow.index], _v=follow["visit"].astype(str))
                      .sort_values(["_k", "_v"], kind="stable").index)

    def add_flag(idx, flag):
        if flag not in s.at[idx, "flags"]:
            s.at[idx, "flags"] = s.at[idx, "flags"] + [flag]

    base = s[s["is_baseline"].astype(bool)]
    if new_lesion:
        for idx in list(base.index) + follow_idx:
            add_flag(idx, "new-lesion")
        for idx in follow_idx:
            st = s.at[idx, "status"]
            if st == "empty":
                continue  # the new lesion is not there (anymore) at this scan
            s.at[idx, "response"] = PD if criteria.new_lesion_is_progression else (NE if st != "ok" else None)
        _finish(s, follow_idx, confirm)
        return s

    problem = None
    if base.empty:
        problem = ("no-baseline", "no baseline scan for this series")
    else:
        b = base.index[0]
        bst, bvol = s.at[b, "status"], s.at[b, "volume_ml"]
        if bst not in ("ok",):
            why = s.at[b, "reason"]
            problem = ("no-baseline", f"baseline measurement {bst}" + (f": {why}" if isinstance(why, str) and why else ""))
        elif not (bvol > 0):
            problem = ("baseline-zero", f"baseline volume is {bvol:g} mL: percent change is undefined "
                                        "(check the baseline mask; a lesion absent at baseline is a new lesion)")
            s.at[b, "status"], s.at[b, "reason"] = problem
    if problem is not None:
        for idx in follow_idx:
            if s.at[idx, "status"] in EVALUABLE:
                s.at[idx, "status"], s.at[idx, "reason"] = problem
            s.at[idx, "response"] = PD if bool(s.at[idx, "new_lesion_pd"]) and criteria.new_lesion_is_progression else NE
        _finish(s, follow_idx, confirm)
        return s

    b = base.index[0]
    bvol = float(s.at[b, "volume_ml"])
    s["baseline_volume_ml"] = bvol
    s.at[b, "nadir_volume_ml"] = bvol
    nadir = bvol
    for idx in follow_idx:
        st = s.at[idx, "status"]
        s.at[idx, "nadir_volume_ml"] = nadir
        if st == "ok":
            v = float(s.at[idx, "volume_ml"])
            empty = False
        elif st == "empty":
            v, empty = 0.0, True
            add_flag(idx, "no-measurable-lesion")
        else:
            s.at[idx, "response"] = PD if bool(s.at[idx, "new_lesion_pd"]) and criteria.new_lesion_is_progression else NE
            continue
        pct = percent_change(v, bvol)
        pct_n = percent_change(v, nadir) if nadir > 0 else math.nan
        if nadir <= 0:
            add_flag(idx, "nadir-zero")
        s.at[idx, "percent_change"] = pct
        s.at[idx, "percent_change_from_nadir"] = pct_n
        resp = criteria.classify(None if empty else v, pct, pct_n, nadir_ml=nadir, no_measurable_lesion=empty)
        if bool(s.at[idx, "new_lesion_pd"]) and criteria.new_lesion_is_progression:
            resp = PD
        s.at[idx, "response"] = resp
        nadir = min(nadir, v)
    _finish(s, follow_idx, confirm)
    return s


def _finish(s: pd.DataFrame, follow_idx: list, confirm: bool) -> None:
    responses = [s.at[i, "response"] for i in follow_idx]
    if confirm:
        effective, confirmed = confirm_responses(responses)
        for i, c in zip(follow_idx, confirmed):
            s.at[i, "response_confirmed"] = c
    else:
        effective = responses
    s["best_response"] = best_overall_response(effective)


def reference_conform(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` with exactly the schema's columns, in order, with their dtypes.

    Missing optional columns are added empty; ``flags`` given as lists are
    joined with ``;``. Extra columns are dropped (logged at debug level).

    Raises
    ------
    InputError
        If a required column is missing or a value cannot be converted.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"the volume table lacks the column(s) {', '.join(missing)}; "
                         f"every row needs {', '.join(REQUIRED)}")
    extra = [c for c in df.columns if c not in _BY_NAME]
    if extra:
        log.debug("dropping columns outside the table schema: %s", extra)
    out = {}
    n = len(df)
    for col in COLUMNS:
        values = df[col.name] if col.name in df.columns else pd.Series([None] * n, index=df.index, dtype=object)
        try:
            out[col.name] = _reference_coerce(values, col)
        except (ValueError, TypeError) as exc:
            raise InputError(f"column {col.name!r}: cannot convert to {col.dtype} ({exc})") from exc
    return pd.DataFrame(out).reset_index(drop=True)


def _reference_coerce(values: pd.Series, col: Column) -> pd.Series:
    if col.name == "flags":
        values = values.map(_join_flags)
        return values.astype("string")
    if col.dtype == "string":
        return values.map(lambda v: None if _isna(v) else str(v)).astype("string")
    if col.dtype == "Int64":
        num = pd.to_numeric(values, errors="raise")
        if ((num.dropna() % 1) != 0).any():
            raise ValueError("non-integer value")
        return num.astype("Float64").astype("Int64")
    if col.dtype == "float64":
        return pd.to_numeric(values, errors="raise").astype("float64")
    if col.dtype == "boolean":
        return values.map(_bool).astype("boolean")
    if col.dtype == "datetime64[ns]":
        return pd.to_datetime(values, errors="raise").astype("datetime64[ns]").dt.normalize()
    if col.dtype == "datetime64[ns, UTC]":
        return pd.to_datetime(values, errors="raise", utc=True).astype("datetime64[ns, UTC]")
    raise AssertionError(col.dtype)  # pragma: no cover
