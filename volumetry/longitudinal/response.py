"""Percent change, nadir, response per scan, confirmation and best overall response.

Everything here works on one *series*: the scans of one subject × lesion × method
(or the subject's total), ordered in time.

* Percent change is ``100·(v − ref)/ref`` rounded to :data:`PCT_DECIMALS`
  decimals, so that a scan exactly on a threshold (e.g. 8 mL against 10 mL,
  −20 %) lands exactly on it and the inclusive boundary applies. A reference of
  0 mL (or not finite) raises :class:`~volumetry.errors.MeasurementError`; it
  is never divided by.
* The nadir of a scan is the smallest volume among the baseline and every
  *earlier* evaluable follow-up (a lesion that disappeared counts as 0 mL).
* A follow-up whose mask is empty (no measurable lesion) is CR with a percent
  change of −100 %; its ``volume_ml`` stays empty, because nothing was measured.
* A follow-up that could not be measured is NE, with empty percent changes; it
  does not enter the nadir.
* Confirmation (optional): a CR is confirmed when the next evaluable scan is CR;
  a PR (or CR) is confirmed as PR when the next evaluable scan is CR or PR;
  otherwise it is unconfirmed and counts as SD in the best overall response.
  With no later evaluable scan the confirmation is pending (empty) and counts as
  unconfirmed.
* The best overall response is the best category (CR > PR > SD > PD > NE) over
  the follow-up scans (after confirmation when it is required).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import MeasurementError
from ._values import missing as _missing
from .courses import CourseSchedule
from .criteria import CR, NE, ORDER, PD, PR, SD, ResponseCriteria

#: Percent changes are rounded to this many decimals (1e-9 %) before any comparison.
PCT_DECIMALS = 9

#: Statuses whose row carries a usable value (``empty`` = no measurable lesion).
EVALUABLE = ("ok", "empty")


def percent_change(volume_ml: float, reference_ml: float) -> float:
    """Percent change of ``volume_ml`` against ``reference_ml``, rounded to 1e-9 %.

    Parameters
    ----------
    volume_ml : float
        Volume in mL (≥ 0). NaN gives NaN.
    reference_ml : float
        Baseline or nadir volume in mL, > 0.

    Returns
    -------
    float
        ``100·(volume − reference)/reference`` in %.

    Raises
    ------
    MeasurementError
        If the reference is 0 mL, negative or not finite (never divided by).
    """
    if reference_ml is None or not math.isfinite(reference_ml) or reference_ml <= 0:
        raise MeasurementError(
            f"cannot compute a percent change against a reference volume of {reference_ml} mL; "
            "a baseline (or nadir) must be a positive volume")
    if volume_ml is None or math.isnan(volume_ml):
        return math.nan
    return round((volume_ml - reference_ml) * 100.0 / reference_ml, PCT_DECIMALS) + 0.0


def rank(category: str | None) -> int:
    """Position of a category in :data:`~volumetry.longitudinal.criteria.ORDER` (smaller is better)."""
    return ORDER.index(category) if category in ORDER else len(ORDER)


def best_overall_response(responses: Sequence[str | None]) -> str | None:
    """Best category among ``responses`` (CR > PR > SD > PD > NE); None when there is none."""
    present = [r for r in responses if r in ORDER]
    return min(present, key=rank) if present else None


def confirm_responses(responses: Sequence[str | None]) -> tuple[list[str | None], list[bool | None]]:
    """Apply the confirmation rule to a time-ordered list of responses.

    Returns
    -------
    effective : list
        The category each scan contributes to the best overall response:
        confirmed CR → CR, CR confirmed only as PR → PR, confirmed PR → PR,
        unconfirmed CR/PR → SD; other categories unchanged.
    confirmed : list
        For CR/PR scans: True / False, or None while no later evaluable scan
        exists; None for other categories.
    """
    effective: list[str | None] = list(responses)
    confirmed: list[bool | None] = [None] * len(responses)
    for i, r in enumerate(responses):
        if r not in (CR, PR):
            continue
        nxt = next((x for x in responses[i + 1:] if x in (CR, PR, SD, PD)), None)
        if nxt is None:
            effective[i], confirmed[i] = SD, None
        elif r == CR and nxt == CR:
            effective[i], confirmed[i] = CR, True
        elif nxt in (CR, PR):
            effective[i], confirmed[i] = PR, r == PR
        else:
            effective[i], confirmed[i] = SD, False
    return effective, confirmed


def assess_series(s: pd.DataFrame, criteria: ResponseCriteria, *, confirm: bool = False,
                  new_lesion: bool = False, schedule: CourseSchedule | None = None) -> pd.DataFrame:
    """Assess the scans of one series (subject × lesion × method, or a total).

    A DataFrame front end of :func:`assess_rows` (same rules).

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
    schedule : CourseSchedule, optional
        Places a scan with an explicit course but no date at its course's
        scheduled day (default 12-week courses).

    Returns
    -------
    pandas.DataFrame
        A copy with ``baseline_volume_ml``, ``percent_change``,
        ``nadir_volume_ml``, ``percent_change_from_nadir``, ``response``,
        ``response_confirmed``, ``best_response``; ``status``, ``reason`` and
        ``flags`` updated.

    Raises
    ------
    MeasurementError
        Never for valid rows (a 0 mL reference is reported as ``baseline-zero``).
    """
    names = list(s.columns)
    rows = [dict(zip(names, values)) for values in zip(*(s[c].tolist() for c in names))] if names else []
    done = assess_rows(rows, criteria, confirm=confirm, new_lesion=new_lesion, schedule=schedule)
    out = s.copy()
    out["flags"] = [r["flags"] for r in done]
    for col in ("baseline_volume_ml", "percent_change", "nadir_volume_ml", "percent_change_from_nadir"):
        out[col] = np.array([r[col] for r in done], dtype=float)
    for col in ("response", "response_confirmed"):
        out[col] = pd.Series([r[col] for r in done], index=s.index, dtype=object)
    out["best_response"] = done[0]["best_response"] if done else None  # one value for the series
    if "new_lesion_pd" not in out:
        out["new_lesion_pd"] = False
    for col in ("status", "reason"):  # changed in place: the column keeps its dtype
        if col in out:
            out[col] = pd.Series([r[col] for r in done], index=s.index, dtype=out[col].dtype)
    return out


def assess_rows(rows: list[dict], criteria: ResponseCriteria, *, confirm: bool = False,
                new_lesion: bool = False, schedule: CourseSchedule | None = None) -> list[dict]:
    """Assess the scans of one series given as row dicts (the engine of :func:`assess_series`).

    Parameters
    ----------
    rows : list of dict
        One dict per scan with ``volume_ml`` (mL, float), ``status``,
        ``reason``, ``flags`` (list), ``course`` and ``days_from_baseline``
        (int or missing), ``is_baseline`` and optionally ``new_lesion_pd``.
        Not modified.
    criteria : ResponseCriteria
    confirm : bool
        Require confirmation of CR/PR by the next evaluable scan.
    new_lesion : bool
        The series is a lesion absent at baseline.
    schedule : CourseSchedule, optional
        Places a scan with an explicit course but no date at its course's
        scheduled day (default 12-week courses).

    Returns
    -------
    list of dict
        Copies of ``rows`` (same order) with ``baseline_volume_ml``,
        ``percent_change``, ``nadir_volume_ml``, ``percent_change_from_nadir``
        (mL, %, NaN when not computed), ``response``, ``response_confirmed``,
        ``best_response``, ``new_lesion_pd``; ``status``, ``reason`` and
        ``flags`` updated.

    Raises
    ------
    MeasurementError
        Never for valid rows (a 0 mL reference is reported as ``baseline-zero``).
    """
    nan = math.nan
    s = []
    for r in rows:
        r = dict(r)
        r["flags"] = list(r["flags"])
        r["baseline_volume_ml"] = r["percent_change"] = r["nadir_volume_ml"] = r["percent_change_from_nadir"] = nan
        r["response"] = r["response_confirmed"] = r["best_response"] = None
        if "new_lesion_pd" not in r:
            r["new_lesion_pd"] = False
        s.append(r)

    schedule = schedule or CourseSchedule()
    keyed = []
    for r in s:
        key = order_day(r["days_from_baseline"], r["course"], schedule)
        if not bool(r["is_baseline"]) and key is not None and key > 0:
            keyed.append((key, str(r["visit"]), r))
    keyed.sort(key=lambda kr: kr[:2])  # scans on the same day in visit-label order, whatever the row order
    follow = [r for _, _, r in keyed]
    base = [r for r in s if bool(r["is_baseline"])]

    def add_flag(r, flag):
        if flag not in r["flags"]:
            r["flags"] = r["flags"] + [flag]

    if new_lesion:
        for r in base + follow:
            add_flag(r, "new-lesion")
        for r in follow:
            st = r["status"]
            if st == "empty":
                continue  # the new lesion is not there (anymore) at this scan
            r["response"] = PD if criteria.new_lesion_is_progression else (NE if st != "ok" else None)
        _finish_rows(s, follow, confirm)
        return s

    problem = None
    if not base:
        problem = ("no-baseline", "no baseline scan for this series")
    else:
        b = base[0]
        bst, bvol = b["status"], b["volume_ml"]
        if bst not in ("ok",):
            why = b["reason"]
            problem = ("no-baseline", f"baseline measurement {bst}" + (f": {why}" if isinstance(why, str) and why else ""))
        elif not (bvol > 0):
            problem = ("baseline-zero", f"baseline volume is {bvol:g} mL: percent change is undefined "
                                        "(check the baseline mask; a lesion absent at baseline is a new lesion)")
            b["status"], b["reason"] = problem
    if problem is not None:
        for r in follow:
            if r["status"] in EVALUABLE:
                r["status"], r["reason"] = problem
            r["response"] = PD if bool(r["new_lesion_pd"]) and criteria.new_lesion_is_progression else NE
        _finish_rows(s, follow, confirm)
        return s

    b = base[0]
    bvol = float(b["volume_ml"])
    for r in s:
        r["baseline_volume_ml"] = bvol
    b["nadir_volume_ml"] = bvol
    nadir = bvol
    for r in follow:
        st = r["status"]
        r["nadir_volume_ml"] = nadir
        if st == "ok":
            v = float(r["volume_ml"])
            empty = False
        elif st == "empty":
            v, empty = 0.0, True
            add_flag(r, "no-measurable-lesion")
        else:
            r["response"] = PD if bool(r["new_lesion_pd"]) and criteria.new_lesion_is_progression else NE
            continue
        pct = percent_change(v, bvol)
        pct_n = percent_change(v, nadir) if nadir > 0 else math.nan
        if nadir <= 0:
            add_flag(r, "nadir-zero")
        r["percent_change"] = pct
        r["percent_change_from_nadir"] = pct_n
        resp = criteria.classify(None if empty else v, pct, pct_n, nadir_ml=nadir, no_measurable_lesion=empty)
        if bool(r["new_lesion_pd"]) and criteria.new_lesion_is_progression:
            resp = PD
        r["response"] = resp
        nadir = min(nadir, v)
    _finish_rows(s, follow, confirm)
    return s


def order_day(days, course, schedule: CourseSchedule) -> float | None:
    """Time order of a scan (days after baseline): its days from baseline, else the scheduled day of
    its explicit course (a scan without a date sits where its course is due, among the dated
    scans); None when neither."""
    if not _missing(days):
        return float(days)
    if not _missing(course):
        return float(schedule.target_day(int(course)))
    return None


def _finish_rows(s: list[dict], follow: list[dict], confirm: bool) -> None:
    responses = [r["response"] for r in follow]
    if confirm:
        effective, confirmed = confirm_responses(responses)
        for r, c in zip(follow, confirmed):
            r["response_confirmed"] = c
    else:
        effective = responses
    best = best_overall_response(effective)
    for r in s:
        r["best_response"] = best
