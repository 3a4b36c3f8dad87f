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
labels (``baseline``, ``w12``) are shown as written.
"""
from __future__ import annotations

import datetime as _dt
import re

from ..manifest import ScanRow

#: A visit label that is a date (and is shifted with the scan dates).
_DATE_LABEL = re.compile(r"\d{4}-?\d{2}-?\d{2}")


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
        """The visit label shown for ``row`` (a date label moved with the subject's dates)."""
        day = _maybe_date(row.visit) if self._shift else None
        return row.visit if day is None else self.date(row.subject_id, day).isoformat()

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
