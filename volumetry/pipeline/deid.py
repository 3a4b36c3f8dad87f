"""What a run's outputs show of a scan's identifiers and dates.

Without pseudonymisation the outputs show the study's own subject ids, visit
labels and scan dates. With it (``volumetry run --pseudonymize``) subject ids
become keyed pseudonyms and, unless the dates are kept (``--keep-dates``), every
date of a subject moves back by that subject's keyed shift
(:meth:`volumetry.pseudonym.Pseudonymizer.date_shift_days`): scan dates, and
visit labels that are dates (``YYYY-MM-DD`` or ``YYYYMMDD``: the StudyDates
naming the visits of a DICOM tree read without a manifest, or a manifest's
labels written as dates), shown as ``YYYY-MM-DD``. Intervals within a subject
— days from baseline, course windows, responses — are unchanged. Other visit
labels (``baseline``, ``w12``) are shown as written, except that a date written
inside one (``V2_20240628``, ``08/01/2024``, ``2024.01.08``, ``course3 (2024-09-13)``:
:data:`_DATE_TOKEN`'s forms, and ``8 Jan 2024``, ``08-JAN-2024``, ``Jan 8, 2024``:
:data:`_NAMED_DATE`'s) moves with the subject's dates in the form it was written in; failure messages move such dates too (an image folder named by date).
"""
from __future__ import annotations

import datetime as _dt
import re

from ..manifest import ScanRow

#: A visit label that is a date (and is shifted with the scan dates).
_DATE_LABEL = re.compile(r"\d{4}-?\d{2}-?\d{2}")
#: A date written inside a text, not part of a longer number: year first (``2024-01-08``,
#: ``2024.01.08``, ``2024/01/08``, ``2024_01_08``, ``20240108``), or day and month first with a
#: four-digit year (``08/01/2024``, ``08.01.2024``, ``08-01-2024``, ``08012024``) or a two-digit one
#: after a separator (``08.01.24``); years 1900-2099.
_DATE_TOKEN = re.compile(
    r"(?<![\d.])(?:"
    r"(?P<y>(?:19|20)\d{2})(?P<s1>[-./_]?)(?P<m>\d{2})(?P=s1)(?P<d>\d{2})"
    r"|(?P<a>\d{1,2})(?P<s2>[-./_]?)(?P<b>\d{1,2})(?P=s2)(?P<yy>(?:19|20)\d{2})"
    r"|(?P<a2>\d{1,2})(?P<s3>[-./])(?P<b2>\d{1,2})(?P=s3)(?P<y2>\d{2})"
    r")(?![\d])(?!\.\d)")
#: An English month name or abbreviation (``Jan``, ``January``, ``Sept``), any case.
_MONTH = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
#: A date written with the month's name: day first (``8 Jan 2024``, ``08-JAN-2024``, ``08Jan2024``),
#: month first (``Jan 8, 2024``, ``January 08 2024``) or year first (``2024-Jan-08``); years 1900-2099.
_NAMED_DATE = re.compile(
    r"(?<![A-Za-z\d])(?:"
    rf"(?P<d1>\d{{1,2}})(?P<p1>[-./_ ]?)(?P<m1>{_MONTH})(?P<q1>, |[-./_ ]?)(?P<y1>(?:19|20)\d{{2}})"
    rf"|(?P<m2>{_MONTH})(?P<p2>[-./_ ]?)(?P<d2>\d{{1,2}})(?P<q2>, ?|[-./_ ])(?P<y2>(?:19|20)\d{{2}})"
    rf"|(?P<y3>(?:19|20)\d{{2}})(?P<p3>[-./_ ]?)(?P<m3>{_MONTH})(?P<q3>[-./_ ]?)(?P<d3>\d{{1,2}})"
    r")(?![A-Za-z\d])", re.IGNORECASE)


class Shown:
    """Maps a scan's real identifiers and dates to those its outputs show.

    Parameters
    ----------
    pseudonymizer : volumetry.pseudonym.Pseudonymizer or None
        None: show everything as given.
    shift_dates : bool
        With a pseudonymizer: move each subject's dates back by its keyed shift.
    """

    def __init__(self, pseudonymizer=None, *, shift_dates: bool = True) -> None:
        self._pz = pseudonymizer
        self._shift = pseudonymizer is not None and shift_dates

    @property
    def shifts_dates(self) -> bool:
        """Whether dates are moved."""
        return self._shift

    def __call__(self, subject_id: str) -> str:
        """The subject id shown (the pseudonym, or the id itself)."""
        return subject_id if self._pz is None else self._pz(subject_id)

    def shift_days(self, subject_id: str) -> int:
        """Days by which the dates of the (real) subject ``subject_id`` move back (0: not moved)."""
        return self._pz.date_shift_days(subject_id) if self._shift else 0

    def date(self, subject_id: str, day: _dt.date | None) -> _dt.date | None:
        """The date shown for ``day`` of the (real) subject ``subject_id``."""
        if day is None or not self._shift:
            return day
        return day - _dt.timedelta(days=self.shift_days(subject_id))

    def visit(self, row: ScanRow) -> str:
        """The visit label shown for ``row``: a date label moved with the subject's dates (as
        ``YYYY-MM-DD``), any other label with the dates written inside it moved
        (:meth:`shift_text`)."""
        day = _maybe_date(row.visit) if self._shift else None
        if day is not None:
            return self.date(row.subject_id, day).isoformat()
        return self.shift_text(row.subject_id, row.visit, hint=row.scan_date)

    def shift_text(self, subject_id: str, text: str, *, hint: _dt.date | None = None) -> str:
        """``text`` with every date written in it (:data:`_DATE_TOKEN`) moved back by the subject's
        shift, each in the form it was written in (unchanged when dates are not moved).

        Parameters
        ----------
        subject_id : str
            The real subject identifier (its shift moves the dates).
        text : str
            A visit label, a failure message, ...
        hint : datetime.date, optional
            The scan's date: a day/month order that is ambiguous (``08/01/2024``) is read as the
            scan's date when one reading is; otherwise day first.
        """
        if not self._shift or not isinstance(text, str):
            return text
        days = _dt.timedelta(days=self.shift_days(subject_id))
        text = _DATE_TOKEN.sub(lambda m: _moved_token(m, days, hint), text)
        return _NAMED_DATE.sub(lambda m: _moved_named(m, days), text)

    def replacements(self, row: ScanRow) -> list[tuple[str, str]]:
        """``(real, shown)`` texts of ``row`` that a message for the outputs must not show as they are:
        its subject id, and with shifted dates its visit label and its scan date (ISO and ``YYYYMMDD``)."""
        out = []
        shown = self(row.subject_id)
        if row.subject_id and shown != row.subject_id:
            out.append((row.subject_id, shown))
        if self._shift:
            visit = self.visit(row)
            if visit != row.visit:
                out.append((row.visit, visit))
            for day in {row.scan_date, _maybe_date(row.visit)} - {None}:
                moved = self.date(row.subject_id, day)
                out += [(day.isoformat(), moved.isoformat()), (day.strftime("%Y%m%d"), moved.strftime("%Y%m%d"))]
        return out


def _maybe_date(text: str) -> _dt.date | None:
    """The date a visit label writes (``YYYY-MM-DD`` or ``YYYYMMDD``), or None."""
    if not isinstance(text, str) or not _DATE_LABEL.fullmatch(text):
        return None
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        return None


def _moved_token(m: "re.Match", days: _dt.timedelta, hint: _dt.date | None) -> str:
    """The date token ``m`` (of :data:`_DATE_TOKEN`) moved back by ``days`` in its own form, or
    the token unchanged when it is not a valid date."""
    g = m.groupdict()
    try:
        if g["y"] is not None:
            day = _dt.date(int(g["y"]), int(g["m"]), int(g["d"]))
            return (day - days).strftime(f"%Y{g['s1']}%m{g['s1']}%d")
        a, b, sep, year, width = ((g["a"], g["b"], g["s2"], int(g["yy"]), 4) if g["a"] is not None
                                  else (g["a2"], g["b2"], g["s3"], 2000 + int(g["y2"]), 2))
        if not sep and (len(a), len(b)) != (2, 2):
            return m.group(0)
        readings = []
        for day_first in (True, False):
            dd, mm = (a, b) if day_first else (b, a)
            try:
                readings.append((day_first, _dt.date(year, int(mm), int(dd))))
            except ValueError:
                pass
        if not readings:
            return m.group(0)
        day_first, day = next((r for r in readings if r[1] == hint), readings[0])
        moved = day - days
        first, second = (moved.day, moved.month) if day_first else (moved.month, moved.day)
        # keep the writer's zero padding (8/1/2024 stays unpadded)
        fmt = (lambda v, w: f"{v:0{w}d}")
        year_text = f"{moved.year:04d}" if width == 4 else f"{moved.year % 100:02d}"
        return f"{fmt(first, len(a))}{sep}{fmt(second, len(b))}{sep}{year_text}"
    except ValueError:
        return m.group(0)


def _moved_named(m: "re.Match", days: _dt.timedelta) -> str:
    """The month-name date ``m`` (of :data:`_NAMED_DATE`) moved back by ``days`` in its own form
    (order, separators, day padding, the month's length and case), or unchanged when it is not a
    valid date."""
    g = m.groupdict()
    n = next(i for i in (1, 2, 3) if g[f"m{i}"] is not None)
    day_text, month_text, year_text = g[f"d{n}"], g[f"m{n}"], g[f"y{n}"]
    month = next(i for i, name in enumerate(_MONTHS, 1) if name.startswith(month_text[:3].lower()))
    try:
        moved = _dt.date(int(year_text), month, int(day_text)) - days
    except ValueError:
        return m.group(0)
    name = _MONTHS[moved.month - 1]
    if len(month_text) <= 3 or month_text.lower() != _MONTHS[month - 1]:  # an abbreviation ("May" too)
        name = "sept" if month_text.lower() == "sept" and moved.month == 9 else name[:3]
    if month_text.isupper():
        name = name.upper()
    elif month_text[0].isupper():
        name = name.capitalize()
    day = f"{moved.day:0{len(day_text)}d}"
    parts = {"d": day, "m": name, "y": f"{moved.year:04d}", "p": g[f"p{n}"], "q": g[f"q{n}"]}
    order = {1: "dpmqy", 2: "mpdqy", 3: "ypmqd"}[n]
    return "".join(parts[c] for c in order)
