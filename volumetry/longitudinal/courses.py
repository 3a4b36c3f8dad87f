"""Assign scans to treatment courses: baseline = course 0, end of course k = course k.

Rules, per subject and method (MRI and ultrasound are scheduled independently):

1. An explicit ``course`` on a row wins (0 = baseline, 1 .. ``max_courses``).
2. Otherwise the baseline scan is the visit labelled ``baseline`` (any case); or,
   when a treatment start date is given, the last scan on or before it; or else
   the earliest scan.
3. A later scan belongs to course k when its date falls within
   ``± window_days`` of baseline + ``course_weeks``·k weeks (bounds inclusive).
   With the defaults (12 weeks, ±28 days) the windows are days 56–112, 140–196,
   224–280 and 308–364 after baseline.
4. A scan outside every window is kept with ``course`` empty and the flag
   ``outside-course-window``; a scan before the baseline is flagged
   ``before-baseline`` (also when its course is given) and not assessed; a scan without date (and without explicit course) is
   flagged ``no-scan-date``. Nothing is dropped.
5. When two scans land in the same course, the one closest to the course's
   target day keeps it cleanly; the others keep the course number but are
   flagged ``repeat-in-course`` (left out of :func:`volumetry.tables.course_summary`).
   A second scan on the baseline day is course 0, flagged ``repeat-in-course``
   and not assessed (the baseline visit is the reference).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from ._values import missing as _missing

log = logging.getLogger(__name__)

#: Visit label that marks the baseline scan (compared case-insensitively).
BASELINE_LABEL = "baseline"


@dataclasses.dataclass(frozen=True)
class CourseSchedule:
    """When the scans of a trial are due.

    Parameters
    ----------
    course_weeks : int
        Length of one treatment course in weeks (12).
    max_courses : int
        Number of courses with a scheduled scan (4).
    window_days : int
        Half-width of the window around each scheduled scan, in days (28 =
        ±4 weeks: tolerant of treatment holds, yet a scan half-way between two
        courses is flagged rather than guessed). Must be less than half a course.

    Raises
    ------
    ConfigError
        If a value is out of range.
    """

    course_weeks: int = 12
    max_courses: int = 4
    window_days: int = 28

    def __post_init__(self) -> None:
        if self.course_weeks <= 0 or self.max_courses <= 0 or self.window_days < 0:
            raise ConfigError(f"course schedule needs positive course_weeks and max_courses and window_days >= 0, got {self}")
        if 2 * self.window_days >= 7 * self.course_weeks:
            raise ConfigError(
                f"course window ±{self.window_days} days overlaps the next course ({self.course_weeks} weeks); "
                f"use window_days < {7 * self.course_weeks / 2:g}"
            )

    def target_day(self, course: int) -> int:
        """Scheduled day (after baseline) of the scan closing ``course``."""
        return 7 * self.course_weeks * course

    def course_of_day(self, day: int) -> int | None:
        """Course whose window holds ``day`` (days after baseline), or None."""
        if day == 0:
            return 0
        period = 7 * self.course_weeks
        k = int(round(day / period))
        if 1 <= k <= self.max_courses and abs(day - k * period) <= self.window_days:
            return k
        return None


def assign_courses(df: pd.DataFrame, *, schedule: CourseSchedule | None = None,
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
    out, course, days, is_base = course_columns(df, schedule=schedule, treatment_start=treatment_start)
    out["course"] = pd.Series(course, index=out.index, dtype="Int64")
    out["days_from_baseline"] = pd.Series(days, index=out.index, dtype="Int64")
    out["is_baseline"] = pd.Series(is_base, index=out.index, dtype=bool)
    return out


def course_columns(df: pd.DataFrame, *, schedule: CourseSchedule | None = None,
                   treatment_start: Mapping[str, Any] | None = None
                   ) -> tuple[pd.DataFrame, list[int | None], list[int | None], list[bool]]:
    """The work of :func:`assign_courses`, with the new columns as plain lists.

    Returns
    -------
    out : pandas.DataFrame
        A copy of ``df`` with ``scan_date`` normalised (datetime64, NaT when
        absent) and ``flags`` as lists of str (course flags appended).
    course, days : list of int or None
        Course (0 = baseline) and days from the baseline scan of each row.
    is_baseline : list of bool

    Raises
    ------
    InputError
        As :func:`assign_courses`.
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
        flags_in: list[list[str]] = [[] for _ in range(len(out))]
    else:
        flags_in = [list(f) if isinstance(f, (list, tuple)) else ([] if pd.isna(f) or f == "" else str(f).split(";"))
                    for f in out["flags"]]
    course, days, is_base, flags_out = course_lists(
        out["subject_id"].tolist(), out["method"].tolist(), out["visit"].tolist(), out["scan_date"].tolist(),
        explicit.tolist(), flags_in, schedule=schedule, treatment_start=treatment_start)
    out["flags"] = flags_out
    return out, course, days, is_base


def course_lists(subjects: list, methods: list, visit_labels: list, dates: list, explicit: list,
                 flags_in: list[list[str]], *, schedule: CourseSchedule,
                 treatment_start: Mapping[str, Any] | None = None
                 ) -> tuple[list[int | None], list[int | None], list[bool], list[list[str]]]:
    """The courses of the rows from their columns' Python values (the work of :func:`course_columns`).

    Parameters
    ----------
    subjects, methods, visit_labels : list
        Per row (a missing subject or method is one group; visit labels are compared as text).
    dates : list
        Scan dates, normalised (``pandas.Timestamp``; ``NaT`` when absent).
    explicit : list
        Explicit courses, checked by the caller (integers 0 .. ``max_courses``, or missing).
    flags_in : list of list of str
        Each row's flags (the list is not modified).
    schedule : CourseSchedule
    treatment_start : mapping, optional

    Returns
    -------
    course, days : list of int or None
        Course (0 = baseline) and days from the baseline scan of each row.
    is_baseline : list of bool
    flags : list of list of str
        Each row's flags with the course flags appended.

    Raises
    ------
    InputError
        As :func:`assign_courses`.
    """
    starts = {str(k): pd.Timestamp(v).normalize() for k, v in (treatment_start or {}).items() if v is not None and not pd.isna(v)}

    n = len(visit_labels)
    course: list[int | None] = [None] * n
    days: list[int | None] = [None] * n
    is_base = [False] * n
    flags_out = list(flags_in)
    visits_all = [str(v) for v in visit_labels]
    dates_all = dates
    explicit_all = explicit
    groups: dict[tuple, list[int]] = {}
    names: dict[tuple, tuple] = {}
    for pos, (subject, method) in enumerate(zip(subjects, methods)):
        key = (_group_key(subject), _group_key(method))
        if key not in groups:
            groups[key] = []
            names[key] = (np.nan if _missing(subject) else subject, np.nan if _missing(method) else method)
        groups[key].append(pos)

    for key, positions in groups.items():
        subject, method = names[key]
        visits = _visit_table(positions, visits_all, dates_all, explicit_all, subject, method)
        base_visit = _baseline_visit(visits, starts.get(str(subject)), subject, method)
        base_date = visits[base_visit][0] if base_visit is not None else None
        per_visit: dict[str, tuple[Any, Any, list[str]]] = {}
        for visit, (date, explicit_k) in visits.items():
            flags: list[str] = []
            d = None if _missing(date) or base_date is None or _missing(base_date) else int((date - base_date).days)
            if not _missing(explicit_k):
                k = int(explicit_k)
                if k > 0 and d is not None and schedule.course_of_day(d) != k:
                    flags.append("course-date-mismatch")
                if k > 0 and d is not None and d < 0:
                    flags.append("before-baseline")  # not assessed: it precedes the baseline scan
            elif visit == base_visit:
                k = 0
            elif base_visit is None:
                k, flags = None, ["no-baseline-scan"]
            elif d is None:
                k, flags = None, ["no-scan-date" if _missing(date) else "no-baseline-date"]
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
        for pos in positions:
            visit = visits_all[pos]
            k, d, flags = per_visit[visit]
            course[pos] = k
            days[pos] = d
            is_base[pos] = visit == base_visit
            have = flags_out[pos]
            flags_out[pos] = have + [f for f in flags if f not in have]
    return course, days, is_base, flags_out


def _group_key(v: Any) -> Any:
    """Hashable group key: every missing value is one group (as ``groupby(dropna=False)``)."""
    return _MISSING_KEY if _missing(v) else v


_MISSING_KEY = ("<missing>",)


def _visit_table(positions: list[int], visits_all: list[str], dates_all: list, explicit_all: list,
                 subject, method) -> dict[str, tuple[Any, Any]]:
    """Visit label -> (date, explicit course), consistent across the lesions of one subject and method."""
    rows: dict[str, tuple[Any, Any]] = {}
    for pos in positions:
        visit = visits_all[pos]
        date, k = dates_all[pos], explicit_all[pos]
        if visit in rows:
            d0, k0 = rows[visit]
            if not (_missing(d0) and _missing(date)) and (_missing(d0) != _missing(date) or d0 != date):
                raise InputError(f"subject {subject} ({method}): visit {visit!r} has two scan dates "
                                 f"({_d(d0)} and {_d(date)}); give each scan its own visit label")
            if not (_missing(k0) and _missing(k)) and (_missing(k0) != _missing(k) or k0 != k):
                raise InputError(f"subject {subject} ({method}): visit {visit!r} has two courses ({k0} and {k}); "
                                 "give one course per visit")
        rows[visit] = (date, k)
    return rows


def _baseline_visit(visits: dict[str, tuple[Any, Any]], start, subject, method) -> str | None:
    zero = [v for v, (_, k) in visits.items() if not _missing(k) and int(k) == 0]
    if len(zero) > 1:
        raise InputError(f"subject {subject} ({method}): visits {zero} are all marked course 0; one baseline per subject")
    if zero:
        return zero[0]
    given = [not _missing(k) for _, k in visits.values()]
    if any(given) and all(given):
        return None  # explicit follow-up courses only: no baseline scan given
    free = [v for v, (_, k) in visits.items() if _missing(k)]
    labelled = [v for v in free if v.strip().lower() == BASELINE_LABEL]
    if labelled:
        return labelled[0]
    dated = sorted((v for v in free if not _missing(visits[v][0])), key=lambda v: visits[v][0])
    if not dated:
        return None
    if start is not None:
        before = [v for v in dated if visits[v][0] <= start]
        if before:
            return str(before[-1])
        log.warning("subject %s (%s): no scan on or before the treatment start %s; the earliest scan is the baseline",
                    subject, method, start.date())
    return str(dated[0])


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
