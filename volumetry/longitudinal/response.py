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
    nominal = s["course"].astype("Float64") * 1e6  # explicit course without a date: order by course
    key = order_key.fillna(nominal)
    follow = s[(~s["is_baseline"].astype(bool)) & key.notna() & (key > 0)]
    follow_idx = list(follow.assign(_k=key[follow.index]).sort_values("_k", kind="stable").index)

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
