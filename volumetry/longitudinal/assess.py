"""Longitudinal assessment of a study: values in, the tidy table out.

:func:`assess` takes one row per subject × lesion × visit × method (volumes
measured by :func:`volumetry.measure.measure` or imported from ultrasound), assigns
scans to courses, computes percent change against baseline and nadir, the
response per scan and the best overall response, for every lesion and for the
subject's total (``lesion_id == "total"``).

The subject's total at a visit is the sum of the lesions present at baseline
(an empty mask counts as 0 mL: the lesion is gone). When one of them is missing
or failed at that visit, the total is ``incomplete`` with a reason and no
number: a failed measurement is never taken as 0 mL. New lesions are not added
to the total; their presence (a row whose status is not ``empty``) is flagged
``new-lesion`` on the total and makes it PD when the criteria say so.
Lesions whose masks share voxels at a visit (rows flagged :data:`OVERLAP_FLAG`,
set by the pipeline) would count that tissue twice: the total is then
``incomplete`` too, with a reason naming them.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from ..tables import TOTAL, _is_conformed, table_from_rows
from ._values import missing as _missing
from .courses import CourseSchedule, course_columns, course_lists
from .criteria import ResponseCriteria, get_criteria
from .response import assess_rows, order_day

#: Flag of a lesion row whose mask shares voxels with another lesion's at the same visit: the
#: visit's total is incomplete (a sum would count the shared voxels twice).
OVERLAP_FLAG = "overlapping-lesions"

log = logging.getLogger(__name__)

#: Statuses a measurement row may have on input.
INPUT_STATUSES = ("ok", "empty", "failed")

_PROVENANCE = ("series_uid", "input_hash", "config_hash", "software_version", "computed_at")


def assess(df: pd.DataFrame, *, criteria: str | ResponseCriteria | None = None, confirm: bool = False,
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
        Missing columns, duplicate rows, negative or infinite volumes, an ``ok`` row without
        a volume, a reserved lesion id, inconsistent visit dates or courses.
    ConfigError
        Unknown criteria.
    """
    crit = get_criteria(criteria)
    coursed = _coursed_conformed(df, schedule, treatment_start) if _is_conformed(df) else None
    if coursed is None:
        data = _validate(df)
        data, course, days, is_base = course_columns(data, schedule=schedule, treatment_start=treatment_start)
        values = {c: data[c].tolist() for c in data.columns}
        dtypes = data.dtypes
    else:
        values, course, days, is_base = coursed
        dtypes = df.dtypes
    names = [c for c in values if c not in ("course", "days_from_baseline", "is_baseline")]
    rows = [dict(zip(names, row)) for row in zip(*(values[c] for c in names))] if names else []
    for r, k, d, b in zip(rows, course, days, is_base):
        r["course"], r["days_from_baseline"], r["is_baseline"] = k, d, b
    bands = tuple(b for b in ("volume_low_ml", "volume_high_ml") if b in values)
    provenance = tuple(p for p in _PROVENANCE if p in values)
    band_dtypes = {b: dtypes[b] for b in bands}

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["subject_id"], r["method"]), []).append(r)
    out: list[dict] = []
    for key in sorted(groups):
        g = groups[key]
        base_visits = {r["visit"] for r in g if r["is_baseline"]}
        lesions: dict[str, list[dict]] = {}
        for r in g:
            lesions.setdefault(r["lesion_id"], []).append(r)
        lesions = {lid: lesions[lid] for lid in sorted(lesions)}
        new_ids = set()
        for lesion, s in lesions.items():
            b = [r for r in s if r["is_baseline"]]
            is_new = bool(base_visits) and (not b or all(r["status"] == "empty" for r in b))
            if is_new:
                new_ids.add(lesion)
            out.extend(assess_rows(s, crit, confirm=confirm, new_lesion=is_new, schedule=schedule))
        total = _total_rows(g, lesions, new_ids, bands, band_dtypes, provenance)
        out.extend(assess_rows(total, crit, confirm=confirm, schedule=schedule))
    for r in out:
        r["criteria"] = crit.name
    sched = schedule or CourseSchedule()
    out.sort(key=lambda r: _row_order(r, sched))
    return table_from_rows(out)


def _row_order(r: dict, schedule: CourseSchedule) -> tuple:
    """Sort key of the output: subject, method, lesions before the total, lesion, time, visit
    (time as :func:`~.response.order_day`: an undated scan with a course at its scheduled day)."""
    t = order_day(r["days_from_baseline"], r["course"], schedule)
    return (r["subject_id"], r["method"], r["lesion_id"] == TOTAL, r["lesion_id"],
            t is None, 0.0 if t is None else t, r["visit"])


def _validate(df: pd.DataFrame) -> pd.DataFrame:
    """The measurements checked, with the key columns as text, ``status`` filled (``ok``), no volume
    unless ``ok`` and a reason for each failed row (:func:`assess` takes a conformed table that
    passes :func:`_checked_conformed` past this frame, see :func:`_coursed_conformed`)."""
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
    infinite = np.isposinf(d["volume_ml"].to_numpy())
    if infinite.any():  # would be a +inf % change (PD), or a baseline nothing can be divided by
        r = d[infinite].iloc[0]
        raise InputError(f"subject {r['subject_id']} lesion {r['lesion_id']} visit {r['visit']}: volume {r['volume_ml']} mL "
                         "is not a finite number; give the measured volume, or status failed with a reason")
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


#: The columns every row needs, turned to text by :func:`_validate`.
_KEYS = ("subject_id", "lesion_id", "visit", "method")


def _checked_conformed(df: pd.DataFrame) -> tuple[list[list], np.ndarray, list, list] | None:
    """The checks of :func:`_validate` on a conformed table's Python values: its key columns
    (:data:`_KEYS`, as lists of str), ``volume_ml`` (NaN unless ``ok``), ``status`` and ``reason``
    as :func:`_validate` makes them; None when a value fails a check."""
    n = len(df)
    keys = [df[c].tolist() for c in _KEYS]
    if any(v is pd.NA for values in keys for v in values):
        return None  # an empty key
    if any(not v.isascii() or v.lower() == TOTAL for v in keys[1]):
        return None  # the reserved lesion id (or a lesion id that str.lower may read otherwise)
    if len(set(zip(*keys))) != n:
        return None  # a duplicate row
    volume = df["volume_ml"].to_numpy()
    if np.isposinf(volume).any() or (volume < 0).any():
        return None
    status = ["ok" if v is pd.NA else v for v in df["status"].tolist()]
    if any(s not in INPUT_STATUSES for s in status):
        return None
    measured = np.array([s == "ok" for s in status], dtype=bool)
    if (measured & np.isnan(volume)).any():
        return None  # ok without a volume
    reason = ["no volume given" if (r is pd.NA and s == "failed") else (None if r is pd.NA else r)
              for r, s in zip(df["reason"].tolist(), status)]
    return keys, np.where(measured, volume, np.nan), status, reason


def _coursed_conformed(df: pd.DataFrame, schedule: CourseSchedule | None, treatment_start: Mapping[str, Any] | None
                       ) -> tuple[dict[str, list], list, list, list] | None:
    """What :func:`course_columns` of :func:`_validate` gives for a conformed table, made from its
    columns' Python values without the two frames: each column's values (``.tolist()`` of the frame
    ``course_columns`` returns), course, days from baseline and is-baseline per row. None when a value
    fails a check (the frames' code then raises its error).

    Raises
    ------
    InputError
        As :func:`~.courses.course_lists`.
    """
    checked = _checked_conformed(df)
    if checked is None:
        return None
    keys, volume, status, reason = checked
    schedule = schedule or CourseSchedule()
    explicit = df["course"].tolist()  # Int64: what to_numeric gives back
    if any(not _missing(k) and not 0 <= k <= schedule.max_courses for k in explicit):
        return None  # a course out of range
    dates = df["scan_date"].dt.normalize().tolist()
    flags = [[] if _missing(f) or f == "" else str(f).split(";") for f in df["flags"].tolist()]
    course, days, is_base, flags = course_lists(keys[0], keys[3], keys[2], dates, explicit, flags,
                                                schedule=schedule, treatment_start=treatment_start)
    values: dict[str, list] = {}
    for c in df.columns:
        if c in _KEYS:
            values[c] = keys[_KEYS.index(c)]
        elif c == "volume_ml":
            values[c] = volume.tolist()
        elif c == "status":
            values[c] = status
        elif c == "reason":
            values[c] = reason
        elif c == "scan_date":
            values[c] = dates
        elif c == "flags":
            values[c] = flags
        else:
            values[c] = df[c].tolist()
    return values, course, days, is_base


def _overlap_reason(visit_rows: list[dict], base_set: set) -> str:
    """The total's reason for lesions of the visit whose masks share voxels (every flagged lesion
    named; a new lesion over a baseline lesion is not in the sum, but is probably part of it)."""
    ids = [r["lesion_id"] for r in visit_rows if r["status"] == "ok" and OVERLAP_FLAG in r["flags"]]
    new = [lid for lid in ids if lid not in base_set]
    text = f"the masks of lesions {', '.join(ids)} share voxels ({OVERLAP_FLAG}): "
    if new:
        return text + (f"{', '.join(new)} {'is' if len(new) == 1 else 'are'} not at baseline, and probably part of a "
                       "baseline lesion (check its new-lesion PD); merge them into one lesion or correct the masks")
    return text + "their sum would count them twice; merge them into one lesion or correct the masks"


def _total_rows(g: list[dict], lesions: dict[str, list[dict]], new_ids: set, bands: tuple, band_dtypes: dict,
                provenance: tuple) -> list[dict]:
    """Rows of the subject's total (one per visit, in order of first appearance) for one method."""
    base_ids = [lid for lid in lesions if lid not in new_ids and any(r["is_baseline"] for r in lesions[lid])]
    base_set = set(base_ids)
    by_visit: dict[str, list[dict]] = {}
    for r in g:
        by_visit.setdefault(r["visit"], []).append(r)
    rows = []
    for v in by_visit.values():
        first = v[0]
        row: dict[str, Any] = {c: first[c] for c in _VISIT_COLUMNS}
        row["lesion_id"] = TOTAL
        flags = [f for f in first["flags"] if f in _VISIT_FLAGS]
        comps = [r for r in v if r["lesion_id"] in base_set]
        present = {r["lesion_id"] for r in comps}
        missing = [lid for lid in base_ids if lid not in present]
        failed = [r for r in comps if r["status"] not in ("ok", "empty")]
        for r in comps:
            flags += [x for x in r["flags"] if x not in flags]
        ok = [r for r in comps if r["status"] == "ok"]
        overlap = [r["lesion_id"] for r in ok if OVERLAP_FLAG in r["flags"]]
        if not base_ids:
            status, reason, vol = ("no-baseline", "no lesion measured at baseline", np.nan)
        elif missing or failed or overlap:
            parts = [f"lesion {lid}: not measured at this visit" for lid in missing]
            parts += [f"lesion {r['lesion_id']}: {r['status']}" + (f" ({r['reason']})" if isinstance(r["reason"], str) else "")
                      for r in failed]
            if overlap:
                parts.append(_overlap_reason(v, base_set))
            status, reason, vol = "incomplete", "; ".join(parts), np.nan
        elif all(r["status"] == "empty" for r in comps):
            status, reason, vol = "empty", "no measurable lesion", np.nan
        else:
            status, reason = "ok", None
            vol = _sum([r["volume_ml"] for r in ok], np.dtype(float))
        row.update(status=status, reason=reason, volume_ml=vol)
        for band in bands:
            if status == "ok" and not any(_missing(r[band]) for r in ok):
                row[band] = _sum([r[band] for r in ok], band_dtypes[band])
        newv = any(r["lesion_id"] in new_ids and r["status"] != "empty" and not r["is_baseline"] for r in v)
        row["new_lesion_pd"] = newv
        if newv:
            flags.append("new-lesion")
        for p in provenance:
            values = [r[p] for r in v]
            if not any(_missing(x) for x in values) and len(set(values)) == 1:
                row[p] = values[0]
        row["flags"] = flags
        rows.append(row)
    return rows


def _sum(values: list, dtype) -> float:
    """``float(pandas.Series(values, dtype=dtype).sum())``, without building a Series for float64 values
    (numpy's pairwise summation in the same order: bit-identical)."""
    if dtype == np.float64:
        return float(np.asarray(values, dtype=np.float64).sum())
    return float(pd.Series(values, dtype=dtype).sum())


#: Columns of a visit copied from its first row onto the total.
_VISIT_COLUMNS = ("subject_id", "method", "visit", "scan_date", "course", "days_from_baseline", "is_baseline")


#: Flags that describe the scan (visit), copied onto the total.
_VISIT_FLAGS = ("outside-course-window", "before-baseline", "no-scan-date", "no-baseline-date",
                "repeat-in-course", "course-date-mismatch", "no-baseline-scan")
