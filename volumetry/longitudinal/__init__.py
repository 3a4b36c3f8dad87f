"""Longitudinal response: courses, percent change, nadir, response categories.

Values in, DataFrame out; no file access. Inside, every series is worked on as plain
Python row dicts (one per scan) and the table is built once at the end: pandas indexing
row by row cost ~15 ms per scan.

Public API
----------
:func:`assess` (df, *, criteria="vascular-anomaly", confirm=False, schedule=None, treatment_start=None)
    the whole engine: the tidy table of :mod:`volumetry.tables`.
:func:`assign_courses`, :class:`CourseSchedule`
    visit → course (``courses.py``; :func:`~.courses.course_columns` gives the columns as lists,
    :func:`~.courses.course_lists` works from the columns' Python values).
:class:`ResponseCriteria`, :data:`CRITERIA`, :func:`get_criteria`
    named criteria sets and user thresholds (``criteria.py``).
:func:`percent_change`, :func:`best_overall_response`, :func:`confirm_responses`,
:func:`assess_series`
    the per-series arithmetic (``response.py``; :func:`~.response.assess_rows` on row dicts).
"""
from .assess import assess
from .courses import CourseSchedule, assign_courses
from .criteria import CR, CRITERIA, DEFAULT_CRITERIA, NE, ORDER, PD, PR, SD, ResponseCriteria, get_criteria
from .response import PCT_DECIMALS, assess_series, best_overall_response, confirm_responses, percent_change

__all__ = [
    "CR", "CRITERIA", "DEFAULT_CRITERIA", "NE", "ORDER", "PCT_DECIMALS", "PD", "PR", "SD",
    "CourseSchedule", "ResponseCriteria", "assess", "assess_series", "assign_courses",
    "best_overall_response", "confirm_responses", "get_criteria", "percent_change",
]
