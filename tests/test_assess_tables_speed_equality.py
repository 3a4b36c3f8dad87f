"""The assess stage's longitudinal assessment and the table writing do less work, with the same
results: each function changed is kept here as it was (``_former_*``, verbatim but renamed and
without docstrings; the former ``_validate`` is test_assess_stage_speed_equality's, shared) and the new code must give equal frames (``check_exact``, dtypes, order), the
same CSV and Parquet bytes, and for bad input the same error with the same message.

* ``longitudinal.assess`` of a table conformed by ``volumetry.tables`` takes its columns' Python values
  (``_coursed_conformed``): no validated frame and no copy of it in ``course_columns`` (whose loop is now
  ``courses.course_lists``, shared by both paths);
* ``tables._coerce`` of an object column of text dates / UTC times passes the format pandas would guess
  from the first value, and of ``pandas.Timestamp`` values skips pandas' memo of unique values
  (``tables._to_datetime``; on any error the former call runs);
* ``tables.course_summary`` filters and groups the rows from the columns' Python values (no frame
  selection, no ``groupby``) and takes both quartiles from one ``np.percentile`` call.

Inputs: the sample trial's real rows and tables (collected by wrapping the functions during a
pipeline run), random studies (raw and conformed), and edge cases (one subject, no baseline, an
empty volume with a reason, a missing scan date, several lesions, 4 courses, NaN, explicit courses,
treatment starts, non-ASCII ids), dates as text, Timestamps, mixed and bad values.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pytest
from test_assess_stage_speed_equality import _assess_module, _former_validate
from test_longitudinal_equivalence import SETTINGS, random_study

from volumetry import tables
from volumetry.errors import InputError
from volumetry.longitudinal import CourseSchedule, assess, assign_courses
from volumetry.longitudinal.assess import _PROVENANCE, OVERLAP_FLAG, _row_order, _total_rows
from volumetry.longitudinal.courses import _baseline_visit, _flag_repeats, _group_key, _visit_table, course_columns
from volumetry.longitudinal._values import missing as _missing
from volumetry.longitudinal.criteria import ResponseCriteria, get_criteria
from volumetry.longitudinal.response import assess_rows
from volumetry.paths import safe_join
from volumetry.tables import (
    _BY_NAME,
    _EXACT_INT,
    _ISO_DATE,
    _ISO_TIME,
    COLUMNS,
    REQUIRED,
    RESPONSES,
    TOTAL,
    _bool,
    _empty,
    _frame,
    _is_conformed,
    _isna,
    _join_flags,
    _known_format,
    _string_dtype,
    arrow_schema,
    split_flags,
    wilson_interval,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


# ------------------------------------------------------------------------------ the former code
def _former_coerce(values: pd.Series, col: Column) -> pd.Series:
    dtype = values.dtype
    if col.name == "flags":
        if isinstance(dtype, pd.StringDtype):  # already joined: only missing -> ""
            if dtype == _string_dtype() and not values.hasnans:
                return values  # nothing to convert
            return values.fillna("").astype("string")
        values = values.map(_join_flags)
        return values.astype("string")
    if col.dtype == "string":
        if isinstance(dtype, pd.StringDtype):  # str() of a str is itself
            return values if dtype == _string_dtype() else values.astype("string")
        return values.map(lambda v: None if _isna(v) else str(v)).astype("string")
    if col.dtype == "Int64":
        if dtype == "Int64":
            return values
        num = pd.to_numeric(values, errors="raise")
        if ((num.dropna() % 1) != 0).any():
            raise ValueError("non-integer value")
        return num.astype("Float64").astype("Int64")
    if col.dtype == "float64":
        if dtype == np.float64:
            return values
        return pd.to_numeric(values, errors="raise").astype("float64")
    if col.dtype == "boolean":
        if dtype == "boolean":
            return values
        return values.map(_bool).astype("boolean")
    if col.dtype == "datetime64[ns]":
        if dtype == "datetime64[ns]":
            return values.dt.normalize()
        fmt = _known_format(values, _ISO_DATE, "%Y-%m-%d")
        return pd.to_datetime(values, errors="raise", format=fmt).astype("datetime64[ns]").dt.normalize()
    if col.dtype == "datetime64[ns, UTC]":
        if dtype == "datetime64[ns, UTC]":
            return values
        fmt = _known_format(values, _ISO_TIME, "%Y-%m-%dT%H:%M:%S%z")
        return pd.to_datetime(values, errors="raise", utc=True, format=fmt).astype("datetime64[ns, UTC]")
    raise AssertionError(col.dtype)  # pragma: no cover


def _former_table_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    out = {}
    for col in COLUMNS:
        values = [r.get(col.name) for r in rows]
        try:
            if col.name == "flags":
                out[col.name] = pd.array([_join_flags(v) for v in values], dtype="string")
            elif col.dtype == "string":
                out[col.name] = pd.array([None if _isna(v) else str(v) for v in values], dtype="string")
            elif col.dtype == "float64" and all(v is None or type(v) is float for v in values):
                out[col.name] = np.array(values, dtype=np.float64)
            elif col.dtype == "Int64" and all(v is None or (type(v) is int and -_EXACT_INT <= v <= _EXACT_INT)
                                              for v in values):
                # what _coerce makes of them (numbers, through Float64: exact up to 2**53), directly
                out[col.name] = pd.array(values, dtype="Int64")
            elif col.dtype == "boolean" and all(v is None or type(v) is bool for v in values):
                out[col.name] = pd.array(values, dtype="boolean")
            else:
                out[col.name] = _former_coerce(pd.Series(values, dtype=object), col)
        except (ValueError, TypeError) as exc:
            raise InputError(f"column {col.name!r}: cannot convert to {col.dtype} ({exc})") from exc
    return _frame(out, len(rows))


def _former_conform(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"the volume table lacks the column(s) {', '.join(missing)}; "
                         f"every row needs {', '.join(REQUIRED)}")
    extra = [c for c in df.columns if c not in _BY_NAME]
    out = {}
    for col in COLUMNS:
        if col.name not in df.columns:
            out[col.name] = _empty(col, df.index)
            continue
        try:
            out[col.name] = _former_coerce(df[col.name], col)
        except (ValueError, TypeError) as exc:
            raise InputError(f"column {col.name!r}: cannot convert to {col.dtype} ({exc})") from exc
    return _frame(out, len(df))


def _former_write_tables(df: pd.DataFrame, out_dir: str | Path, *, summary: bool = True) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; give an output folder")
    out.mkdir(parents=True, exist_ok=True)
    table = df if _is_conformed(df) else _former_conform(df)  # conformed already: the same table (only read here)
    names = {"volumes_csv": "volumes.csv", "volumes_parquet": "volumes.parquet", "summary_csv": "summary.csv"}
    for name in names.values():
        safe_join(out, name)  # a link to a file outside the output folder is refused, never written through
    paths = {"volumes_csv": out / "volumes.csv", "volumes_parquet": out / "volumes.parquet"}
    csv = table.copy()
    csv["scan_date"] = csv["scan_date"].dt.strftime("%Y-%m-%d")
    csv["computed_at"] = csv["computed_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    csv.to_csv(paths["volumes_csv"], index=False, float_format="%.12g", na_rep="")
    arrow = pa.Table.from_pandas(table, schema=arrow_schema(), preserve_index=False)
    pq.write_table(arrow, paths["volumes_parquet"])
    if summary:
        paths["summary_csv"] = out / "summary.csv"
        _former_course_summary(table).to_csv(paths["summary_csv"], index=False, float_format="%.12g", na_rep="")
    return paths


def _former_course_summary(df: pd.DataFrame, *, lesion_id: str | None = TOTAL) -> pd.DataFrame:
    t = df if _is_conformed(df) else _former_conform(df)
    # the rows the former three filters kept (a missing comparison drops the row), in one mask,
    # taken from the four columns used only
    keep = (t["course"].notna() & (t["course"] >= 1)).to_numpy(dtype=bool, na_value=False)
    if lesion_id is not None:
        keep &= (t["lesion_id"] == lesion_id).to_numpy(dtype=bool, na_value=False)
    flags = t["flags"].to_numpy(dtype=object, na_value="")
    keep &= np.array(["repeat-in-course" not in split_flags(f) for f in flags], dtype=bool)
    t = t[["method", "course", "percent_change", "response"]][keep]
    rows = []
    # plain arrays per group (pandas' per-group Series calls cost ~1 ms a group); the same
    # numbers: pandas' median and linear quantile of the non-missing values are numpy's
    pct_all = t["percent_change"].to_numpy(dtype="float64", na_value=np.nan)
    resp_all = t["response"].to_numpy(dtype=object, na_value=None)
    groups = t.groupby(["method", "course"], sort=True).indices
    for (method, course), idx in sorted(groups.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
        pct = pct_all[idx]
        pct = pct[~np.isnan(pct)]
        resp = [r for r in resp_all[idx] if r is not None]
        row: dict[str, Any] = {
            "method": method, "course": int(course), "n": int(len(pct)),
            "median_percent_change": float(np.median(pct)) if len(pct) else math.nan,
            "q1_percent_change": float(np.percentile(pct, 25.0)) if len(pct) else math.nan,
            "q3_percent_change": float(np.percentile(pct, 75.0)) if len(pct) else math.nan,
            "n_assessed": int(len(resp)),
        }
        counts = {c: resp.count(c) for c in RESPONSES}
        counts["ORR"] = counts["CR"] + counts["PR"]
        for cat, k in counts.items():
            lo, hi = wilson_interval(k, len(resp))
            key = cat.lower()
            row[f"{key}_n"] = k
            row[f"{key}_rate"] = k / len(resp) if len(resp) else math.nan
            row[f"{key}_ci_low"] = lo
            row[f"{key}_ci_high"] = hi
        rows.append(row)
    cols = ["method", "course", "n", "median_percent_change", "q1_percent_change", "q3_percent_change", "n_assessed"]
    cols += [f"{c.lower()}_{s}" for c in (*RESPONSES, "ORR") for s in ("n", "rate", "ci_low", "ci_high")]
    if not rows:
        return pd.DataFrame(rows, columns=cols)
    out = pd.DataFrame({c: [r[c] for r in rows] for c in cols}, columns=cols)
    cast = {c: "int64" for c in ("course", "n", "n_assessed") if out[c].dtype != np.int64}
    return out.astype(cast) if cast else out


def _former_course_columns(df: pd.DataFrame, *, schedule: CourseSchedule | None = None,
                   treatment_start: Mapping[str, Any] | None = None
                   ) -> tuple[pd.DataFrame, list[int | None], list[int | None], list[bool]]:
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
    starts = {str(k): pd.Timestamp(v).normalize() for k, v in (treatment_start or {}).items() if v is not None and not pd.isna(v)}

    n = len(out)
    course: list[int | None] = [None] * n
    days: list[int | None] = [None] * n
    is_base = [False] * n
    flags_out = flags_in
    visits_all = [str(v) for v in out["visit"].tolist()]
    dates_all = out["scan_date"].tolist()
    explicit_all = explicit.tolist()
    groups: dict[tuple, list[int]] = {}
    names: dict[tuple, tuple] = {}
    for pos, (subject, method) in enumerate(zip(out["subject_id"].tolist(), out["method"].tolist())):
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
    out["flags"] = flags_out
    return out, course, days, is_base


def _former_assess(df: pd.DataFrame, *, criteria: str | ResponseCriteria | None = None, confirm: bool = False,
           schedule: CourseSchedule | None = None,
           treatment_start: Mapping[str, Any] | None = None) -> pd.DataFrame:
    crit = get_criteria(criteria)
    data = _former_validate(df)
    data, course, days, is_base = _former_course_columns(data, schedule=schedule, treatment_start=treatment_start)
    names = [c for c in data.columns if c not in ("course", "days_from_baseline", "is_baseline")]
    rows = [dict(zip(names, values)) for values in zip(*(data[c].tolist() for c in names))] if names else []
    for r, k, d, b in zip(rows, course, days, is_base):
        r["course"], r["days_from_baseline"], r["is_baseline"] = k, d, b
    bands = tuple(b for b in ("volume_low_ml", "volume_high_ml") if b in data.columns)
    provenance = tuple(p for p in _PROVENANCE if p in data.columns)
    band_dtypes = {b: data[b].dtype for b in bands}

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
    return _former_table_from_rows(out)


# ---- tests
def _same_frame(new: pd.DataFrame, old: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert list(new.columns) == list(old.columns) and new.dtypes.equals(old.dtypes)
    assert type(new.index) is type(old.index)
    # the Python values too (an int is not a float, None is not NA)
    assert [[type(v) for v in new[c].tolist()] for c in new.columns] == \
        [[type(v) for v in old[c].tolist()] for c in old.columns]


def _both(fast, former, *args, **kwargs):
    """Equal frames, or the same error with the same message; returns the frame (None on error)."""
    try:
        expected = former(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- the former code's error is the expected behaviour
        with pytest.raises(type(exc)) as info:
            fast(*args, **kwargs)
        assert str(info.value) == str(exc)
        return None
    got = fast(*args, **kwargs)
    _same_frame(got, expected)
    return got


def _same_files(table: pd.DataFrame, tmp_path: Path, summary: bool = True) -> None:
    """write_tables writes the bytes the former writer wrote (CSV, Parquet, summary)."""
    new, old = tmp_path / "new", tmp_path / "old"
    a = tables.write_tables(table, new, summary=summary)
    b = _former_write_tables(table, old, summary=summary)
    assert sorted(a) == sorted(b)
    for key in a:
        assert Path(a[key]).read_bytes() == Path(b[key]).read_bytes(), key


# ------------------------------------------------------------------------------ the sample trial
@pytest.fixture(scope="module")
def sample_calls(tmp_path_factory):
    """What the pipeline hands to the changed functions on the sample trial: the rows of each
    table_from_rows call, the table and settings of each assessment, the table written."""
    import volumetry.longitudinal as longitudinal
    from volumetry.config import load_pipeline
    from volumetry.longitudinal import assess as assess_module  # noqa: F401 -- the function
    from volumetry.pipeline import run_study

    if not SAMPLE.is_dir():
        pytest.skip(f"the sample trial is not at {SAMPLE}")
    import sys

    module = sys.modules["volumetry.longitudinal.assess"]
    cfg = load_pipeline(ROOT / "pipelines/vascular-anomalies-rapamycin.yaml")
    cfg = dataclasses.replace(cfg, outputs={**cfg.outputs, "report": False})
    seen: dict[str, list] = {"rows": [], "assess": [], "write": []}
    real_rows, real_assess, real_write = tables.table_from_rows, longitudinal.assess, tables.write_tables

    def rows_spy(rows):
        seen["rows"].append([dict(r) for r in rows])
        return real_rows(rows)

    def assess_spy(df, **kwargs):
        seen["assess"].append((df.copy(), dict(kwargs)))
        return real_assess(df, **kwargs)

    def write_spy(df, out_dir, **kwargs):
        seen["write"].append(df.copy())
        return real_write(df, out_dir, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tables, "table_from_rows", rows_spy)
        mp.setattr(module, "table_from_rows", rows_spy)
        mp.setattr(longitudinal, "assess", assess_spy)
        mp.setattr(tables, "write_tables", write_spy)
        out = tmp_path_factory.mktemp("sample") / "out"
        summary = run_study(SAMPLE, cfg, out, jobs=1, progress=False)
    assert summary.n_scans == 29
    assert len(seen["assess"]) == 1 and len(seen["write"]) == 1 and len(seen["rows"]) == 2
    return seen


def test_sample_trial_assessment_equals_former(sample_calls):
    (df, kwargs), = sample_calls["assess"]
    assert _is_conformed(df) and len(df) == 87
    assert _assess_module()._coursed_conformed(df, kwargs.get("schedule"), None) is not None  # the new path
    got = _both(assess, _former_assess, df, **kwargs)
    assert got is not None and len(got) > len(df)
    before = df.copy()
    runs = [dict(), dict(confirm=True), dict(criteria="recist-volumetric", confirm=True),
            dict(schedule=CourseSchedule(course_weeks=8, max_courses=4, window_days=14)),
            dict(treatment_start={s: pd.Timestamp("2024-01-20") for s in df["subject_id"].unique()})]
    subsets = [df, df.iloc[::-1].reset_index(drop=True), df.iloc[:1].reset_index(drop=True),
               df[df["subject_id"] == df["subject_id"].iloc[0]].reset_index(drop=True),  # one subject
               df[df["visit"] != df["visit"].iloc[0]].reset_index(drop=True)]  # a visit left out
    for sub in subsets:
        for kw in runs:
            _both(assess, _former_assess, sub, **kw)
    pd.testing.assert_frame_equal(df, before, check_exact=True)  # the input is not changed


def test_sample_trial_tables_from_rows_equal_former(sample_calls):
    store_rows, assessed_rows = sample_calls["rows"]
    assert isinstance(store_rows[0]["scan_date"], str) and isinstance(assessed_rows[0]["scan_date"], pd.Timestamp)
    for rows in (store_rows, assessed_rows):  # the new paths are the ones compared
        for name, pattern, fmt, utc in (("scan_date", _ISO_DATE, "%Y-%m-%d", False),
                                        ("computed_at", _ISO_TIME, "%Y-%m-%dT%H:%M:%S%z", True)):
            values = pd.Series([r.get(name) for r in rows], dtype=object)
            assert tables._quick_datetime_args(values, pattern, fmt, utc) is not None
    for rows in (store_rows, assessed_rows, store_rows[::-1], assessed_rows[:1], assessed_rows[::7]):
        _both(tables.table_from_rows, _former_table_from_rows, rows)
        _both(tables.conform, _former_conform, pd.DataFrame(rows))


def test_sample_trial_written_files_equal_former(sample_calls, tmp_path):
    table, = sample_calls["write"]
    _both(tables.course_summary, _former_course_summary, table)
    for lesion_id in (None, "1", "2", 1, pd.NA):
        _both(tables.course_summary, _former_course_summary, table, lesion_id=lesion_id)
    _same_files(table, tmp_path / "a")
    _same_files(table.iloc[::-1].reset_index(drop=True), tmp_path / "b")
    _same_files(table.astype({"course": "float64"}), tmp_path / "c")  # not conformed: conform first
    _same_files(table.iloc[:0], tmp_path / "d")
    _same_files(table, tmp_path / "e", summary=False)


# ------------------------------------------------------------------------------ random studies
@pytest.mark.parametrize("seed", range(24))
def test_random_studies_assess_as_former(seed):
    for conformed in (True, False):
        df = random_study(7000 + seed, conformed=conformed)
        if df.empty:
            continue
        for kw in SETTINGS:
            _both(assess, _former_assess, df, **kw)
        subjects = sorted(df["subject_id"].unique())
        starts = {s: pd.Timestamp("2025-03-03") + pd.Timedelta(days=int(d)) for s, d in
                  zip(subjects, np.random.default_rng(seed).integers(-10, 120, len(subjects)))}
        _both(assess, _former_assess, df, treatment_start=starts)


@pytest.mark.parametrize("seed", range(12))
def test_random_studies_tables_and_files_as_former(seed, tmp_path):
    df = random_study(7100 + seed, conformed=False)
    if df.empty:
        return
    rows = df.to_dict("records")
    _both(tables.table_from_rows, _former_table_from_rows, rows)
    _both(tables.conform, _former_conform, df)
    text = df.assign(scan_date=df["scan_date"].map(lambda v: None if pd.isna(v) else str(v.date())),
                     computed_at=df["computed_at"].map(lambda v: v.strftime("%Y-%m-%dT%H:%M:%S+00:00")))
    _both(tables.table_from_rows, _former_table_from_rows, text.to_dict("records"))
    _both(tables.conform, _former_conform, text)
    table = assess(df, **SETTINGS[seed % len(SETTINGS)])
    _same_files(table, tmp_path / "t")
    for lesion_id in ("total", "L1", None):
        _both(tables.course_summary, _former_course_summary, table, lesion_id=lesion_id)
        flagged = table.copy()
        flagged.loc[flagged.index[::4], "flags"] = "repeat-in-course"
        flagged.loc[flagged.index[1::5], "method"] = pd.NA
        flagged.loc[flagged.index[2::6], "lesion_id"] = pd.NA
        _both(tables.course_summary, _former_course_summary, flagged, lesion_id=lesion_id)


@pytest.mark.parametrize("seed", range(12))
def test_course_columns_as_former(seed):
    df = random_study(7200 + seed, conformed=seed % 2 == 0)
    if df.empty:
        return
    data = _former_validate(df)
    for kw in (dict(), dict(schedule=CourseSchedule(course_weeks=6, max_courses=2, window_days=10)),
               dict(treatment_start={s: "2025-04-01" for s in data["subject_id"].unique()})):
        try:
            old = _former_course_columns(data, **kw)
        except InputError as exc:
            with pytest.raises(InputError) as info:
                course_columns(data, **kw)
            assert str(info.value) == str(exc)
            continue
        new = course_columns(data, **kw)
        pd.testing.assert_frame_equal(new[0], old[0], check_exact=True)
        assert new[1:] == old[1:]
        old_frame = old[0].assign(course=pd.Series(old[1], index=old[0].index, dtype="Int64"),
                                  days_from_baseline=pd.Series(old[2], index=old[0].index, dtype="Int64"),
                                  is_baseline=pd.Series(old[3], index=old[0].index, dtype=bool))
        pd.testing.assert_frame_equal(assign_courses(data, **kw), old_frame, check_exact=True)


def test_percentile_pair_equals_two_calls():
    rng = np.random.default_rng(11)
    for n in list(range(1, 40)) + [100, 257]:
        for x in (rng.normal(0, 50, n), np.round(rng.uniform(-100, 300, n), 1), np.full(n, -100.0),
                  rng.uniform(-1e-9, 1e-9, n), rng.choice([-100.0, 0.0, 20.0, -20.0], n)):
            pair = np.percentile(x, [25.0, 75.0])
            assert pair[0] == np.percentile(x, 25.0) and pair[1] == np.percentile(x, 75.0)
            assert [type(float(q)) for q in pair] == [float, float]


# ------------------------------------------------------------------------------ edge cases
BASE = pd.Timestamp("2025-01-06")


def _rows(volumes, *, subject="S1", lesion="L1", method="voxel", days=None, statuses=None, flags=None,
          reasons=None):
    days = days if days is not None else [84 * k for k in range(len(volumes))]
    out = []
    for k, (v, d) in enumerate(zip(volumes, days)):
        st = statuses[k] if statuses else ("ok" if v is not None else "failed")
        out.append(dict(subject_id=subject, lesion_id=lesion, visit="baseline" if k == 0 else f"V{k}",
                        scan_date=None if d is None else BASE + pd.Timedelta(days=d), method=method,
                        volume_ml=v, status=st,
                        reason=(reasons or {}).get(k, {"failed": "segmentation failed", "empty": "no lesion left"}.get(st)),
                        flags=(flags or {}).get(k, []), series_uid=f"1.2.{subject}.{k}", input_hash="ab" * 8,
                        config_hash="cd" * 8, software_version="0.3.0",
                        volume_low_ml=None if v is None else v * 0.9, volume_high_ml=None if v is None else v * 1.1,
                        computed_at=pd.Timestamp("2026-12-06T10:11:10", tz="UTC") + pd.Timedelta(seconds=k)))
    return out


def _edge_studies() -> list[list[dict]]:
    nan = float("nan")
    undated = _rows([6.0, 5.0, 4.0], subject="S5", days=[0, None, None])
    for k, r in enumerate(undated):
        r["course"] = k
    explicit_follow = _rows([6.0, 5.0], subject="S6", days=[84, 168])
    for k, r in enumerate(explicit_follow):
        r["course"] = k + 1  # follow-up courses only: no baseline
    return [
        _rows([10.0, 8.0, 7.9, 12.5, 3.0]),  # one subject, 4 courses
        _rows([10.0, 8.0, None, 6.0]) + _rows([5.0, 4.0, 3.0, 2.5], lesion="L2"),  # several lesions, a failed scan
        _rows([None, 4.0, 5.0], statuses=["failed", "ok", "ok"]),  # no baseline measurement
        _rows([4.0, 5.0], days=[None, 84]),  # missing baseline date
        _rows([4.0, 5.0, 6.0], days=[0, None, 170]),  # missing follow-up date
        _rows([10.0, None, None], statuses=["ok", "empty", "empty"], reasons={1: "no voxel left", 2: None}),
        _rows([10.0, nan, 2.0], statuses=["ok", "failed", "ok"], reasons={1: None}),  # NaN volume, no reason
        _rows([0.0, 1.0]),  # 0 mL baseline
        _rows([None, 1.0, 1.5], lesion="L9", statuses=["empty", "ok", "ok"]) + _rows([3.0, 2.0, 2.5]),  # new lesion
        _rows([3.0, 2.0], flags={1: [OVERLAP_FLAG]}) + _rows([1.0, 0.9], lesion="L2", flags={1: [OVERLAP_FLAG]}),
        _rows([3.0, 2.0, 2.5, 2.6], days=[0, 84, 90, 130]),  # a repeat in a course, a scan outside every window
        _rows([3.0, 2.0], days=[0, -30]),  # before baseline
        undated, explicit_follow,
        _rows([1.0, 2.0], lesion="Łesion é"),  # a non-ASCII id: the frames' path
        [dict(r, status=None) for r in _rows([1.0, 2.0, 3.0])],  # status missing: ok
        _rows([2.0, 1.0], method="mesh") + _rows([2.0, 3.0], method="voxel") + _rows([2.0, 1.0], subject="S2"),
        _rows([10.0, 8.0])[:1],  # one row
    ]


def _bad_studies() -> list[list[dict]]:
    one = _rows([1.0, 2.0, 3.0, 4.0])
    course = [dict(r, course=k) for k, r in enumerate(one)]
    return [
        [dict(one[0], subject_id=None)] + one[1:], [dict(one[0], lesion_id="Total")] + one[1:],
        one + [dict(one[0])], [dict(one[0], volume_ml=float("inf"))] + one[1:], [dict(one[0], volume_ml=-1.0)] + one[1:],
        [dict(one[0], status="gone")] + one[1:], [dict(one[0], volume_ml=None, status="ok")] + one[1:],
        [dict(course[0], course=7)] + course[1:], [dict(course[0], course=-1)] + course[1:],  # out of range
        [dict(course[1], course=0)] + course[:1] + course[2:],  # two baselines
        one + [dict(one[1], lesion_id="L2", scan_date=BASE + pd.Timedelta(days=3))],  # a visit with two dates
        course + [dict(course[1], lesion_id="L2", course=2)],  # a visit with two courses
    ]


def test_edge_cases_assess_as_former(tmp_path):
    for n, rows in enumerate(_edge_studies()):
        conformed = tables.table_from_rows(rows)
        hours = pd.to_timedelta((np.arange(len(conformed)) * 7 + n) % 24, unit="h")
        timed = conformed.assign(scan_date=conformed["scan_date"] + hours.to_numpy())
        assert _is_conformed(timed)  # the dtypes only: a time of day the assessment normalises
        for df in (conformed, pd.DataFrame(rows), timed):
            for kw in SETTINGS:
                got = _both(assess, _former_assess, df, **kw)
                if got is not None and n < 3:
                    _same_files(got, tmp_path / f"{n}-{len(df.columns)}")
    study = tables.table_from_rows(  # one study of the cases (a subject per case)
        [dict(r, subject_id=f"{r['subject_id']}-{i}") for i, rows in enumerate(_edge_studies()[:12]) for r in rows])
    got = _both(assess, _former_assess, study, confirm=True)
    _same_files(got, tmp_path / "study")


def test_bad_input_raises_as_former():
    for rows in _bad_studies():
        for df in (tables.table_from_rows(rows), pd.DataFrame(rows)):
            with pytest.raises(InputError) as old:
                _former_assess(df)
            with pytest.raises(InputError) as new:
                assess(df)
            assert str(new.value) == str(old.value)


# ------------------------------------------------------------------------------ dates and times
def _date_columns() -> list[tuple[str, list]]:
    """scan_date / computed_at values as row dicts give them, good and bad."""
    day = pd.Timestamp("2025-02-03")
    utc = pd.Timestamp("2025-02-03T10:11:12", tz="UTC")
    many = ["2025-01-06"] * 40 + ["2025-04-01"] * 30
    times = ["2026-12-06T11:44:27+00:00"] * 60 + ["2026-12-06T11:45:00+00:00"] * 5
    return [
        ("scan_date", many), ("scan_date", many + [None, float("nan"), pd.NA, pd.NaT]),
        ("scan_date", [None, "2025-01-06", "2025-13-01"]),  # a bad month
        ("scan_date", many + ["not a date"]), ("scan_date", many + ["2025-02-30"] + many),  # errors after repeats
        ("scan_date", ["", "2025-01-06"]), ("scan_date", ["NaT", "2025-01-06"]), ("scan_date", ["2025-1-6", "2025-01-06"]),
        ("scan_date", ["2025-01-06", "06/01/2025"]), ("scan_date", ["2025-01-06", day, None]),
        ("scan_date", ["2025-01-06T10:00:00", "2025-01-07"]), ("scan_date", ["2400-01-01"] * 60),  # beyond ns
        ("scan_date", [day] * 60 + [None, pd.NaT]), ("scan_date", [day + pd.Timedelta(hours=5), day]),  # a time of day
        ("scan_date", [day.as_unit("s"), day.as_unit("us"), day]), ("scan_date", [utc, day]),  # tz-aware in naive
        ("scan_date", [utc] * 60), ("scan_date", [np.datetime64("2025-01-06"), day]),
        ("scan_date", [day.to_pydatetime().date(), day]), ("scan_date", [day, "2025-01-06"]), ("scan_date", [1, 2]),
        ("computed_at", times), ("computed_at", times + [None, "2026-12-06T11:44:27+01:00"]),
        ("computed_at", times + ["2026-12-06 11:44:27"]), ("computed_at", [None, "2026-12-06T11:44:27Z"]),
        ("computed_at", [utc] * 70 + [None]), ("computed_at", [utc.tz_convert("Europe/Paris"), utc]),
        ("computed_at", [utc.tz_localize(None), utc]), ("computed_at", [utc.as_unit("s"), utc]),
        ("computed_at", [utc.to_pydatetime(), utc]), ("computed_at", [utc, "2026-12-06T11:44:27+00:00"]),
        ("computed_at", [pd.Timestamp("2026-12-06T11:44:27", tz="UTC")] * 3),
    ]


def test_dates_and_times_convert_as_former():
    import warnings

    base = {"subject_id": "S", "lesion_id": "L", "visit": "v", "method": "voxel"}
    for name, values in _date_columns():
        rows = [dict(base, visit=f"v{k}", **{name: v}) for k, v in enumerate(values)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' "could not infer format" for the mixed values
            _both(tables.table_from_rows, _former_table_from_rows, rows)
            frame = pd.DataFrame(rows)
            _both(tables.conform, _former_conform, frame)
            if name == "scan_date":
                text = frame.astype({name: "string"}) if all(isinstance(v, str) or v is None for v in values) else frame
                _both(tables.conform, _former_conform, text)
