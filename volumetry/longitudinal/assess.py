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
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from ..tables import COLUMN_NAMES, TOTAL, conform
from .courses import CourseSchedule, assign_courses
from .criteria import ResponseCriteria, get_criteria
from .response import assess_series

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
        Missing columns, duplicate rows, negative volumes, an ``ok`` row without
        a volume, a reserved lesion id, inconsistent visit dates or courses.
    ConfigError
        Unknown criteria.
    """
    crit = get_criteria(criteria)
    data = _validate(df)
    data = assign_courses(data, schedule=schedule, treatment_start=treatment_start)

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
            pieces.append(assess_series(s, crit, confirm=confirm, new_lesion=is_new))
        total = _total_series(g, lesion_frames, new_ids, subject, method)
        pieces.append(assess_series(total, crit, confirm=confirm))
    out = pd.concat(pieces, ignore_index=True) if pieces else data.iloc[0:0]
    out["criteria"] = crit.name
    out["_total"] = out["lesion_id"] == TOTAL
    out["_key"] = out["days_from_baseline"].astype("Float64").fillna(out["course"].astype("Float64") * 1e6)
    out = out.sort_values(["subject_id", "method", "_total", "lesion_id", "_key", "visit"],
                          kind="stable", na_position="last")
    return conform(out[[c for c in out.columns if c in COLUMN_NAMES]])


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
