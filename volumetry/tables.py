"""The statisticians' tables: tidy schema, CSV/Parquet writers, per-course summary.

One row per subject × lesion × visit × method (``lesion_id == "total"`` is the
subject's total of its baseline lesions). Every column, its unit and its allowed
values are listed in :data:`COLUMNS` and documented in ``docs/tables.md``.
Missing numbers stay missing (empty in CSV, null in Parquet), never 0.

Public API
----------
:data:`COLUMNS`, :func:`conform` (coerce a frame to the schema),
:func:`measurement_rows` (rows of one :class:`~volumetry.measure.Measurement`),
:func:`write_tables` (``volumes.csv``, ``volumes.parquet``, ``summary.csv``),
:func:`course_summary`, :func:`wilson_interval`.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .errors import InputError
from .paths import safe_join

log = logging.getLogger(__name__)

#: Response categories, best first.
RESPONSES = ("CR", "PR", "SD", "PD", "NE")

#: Measurement methods a row can carry.
METHODS = ("voxel", "mesh", "ellipsoid-mri", "ellipsoid-us")

#: Row statuses (see docs/tables.md for their meaning).
STATUSES = ("ok", "empty", "failed", "no-baseline", "baseline-zero", "incomplete")

#: The lesion_id of a subject's total.
TOTAL = "total"

#: Two-sided confidence level of the Wilson intervals in :func:`course_summary`.
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the tidy table: name, pandas dtype, unit, allowed values, meaning."""

    name: str
    dtype: str
    unit: str
    allowed: str
    description: str


COLUMNS: tuple[Column, ...] = (
    Column("subject_id", "string", "", "non-empty text", "subject (pseudonymised by the pipeline when asked)"),
    Column("lesion_id", "string", "", "text; 'total' is reserved", "lesion; 'total' = sum of the subject's baseline lesions"),
    Column("visit", "string", "", "text", "visit label as given (e.g. baseline, C1, week12)"),
    Column("course", "Int64", "course", "0 (baseline) .. max courses (4), empty",
           "treatment course the scan closes; empty when the scan is outside every course window"),
    Column("scan_date", "datetime64[ns]", "date", "YYYY-MM-DD, empty", "date of the scan"),
    Column("days_from_baseline", "Int64", "days", "integer, empty", "scan_date minus the baseline scan's date"),
    Column("method", "string", "", " | ".join(METHODS), "how volume_ml was obtained"),
    Column("volume_ml", "float64", "mL", "≥ 0, empty", "lesion volume; empty when not measured (status says why)"),
    Column("volume_low_ml", "float64", "mL", "≥ 0, empty", "voxel volume of the mask eroded by one voxel (voxel method)"),
    Column("volume_high_ml", "float64", "mL", "≥ 0, empty", "voxel volume of the mask dilated by one voxel (voxel method)"),
    Column("d1_mm", "float64", "mm", "≥ 0, empty", "first diameter: longest (MRI) or first ultrasound diameter"),
    Column("d2_mm", "float64", "mm", "≥ 0, empty", "second diameter: longest perpendicular to d1 (MRI) or ultrasound"),
    Column("d3_mm", "float64", "mm", "≥ 0, empty", "third diameter: perpendicular to both (MRI) or ultrasound"),
    Column("baseline_volume_ml", "float64", "mL", "> 0, empty", "volume at the baseline scan (same lesion and method)"),
    Column("percent_change", "float64", "%", "≥ -100, empty", "100·(volume − baseline)/baseline, rounded to 1e-9 %"),
    Column("nadir_volume_ml", "float64", "mL", "≥ 0, empty", "smallest volume at baseline or any earlier follow-up"),
    Column("percent_change_from_nadir", "float64", "%", "empty when the nadir is 0",
           "100·(volume − nadir)/nadir, rounded to 1e-9 %"),
    Column("response", "string", "", "CR | PR | SD | PD | NE, empty at baseline", "response category of this scan"),
    Column("response_confirmed", "boolean", "", "true | false | empty",
           "CR/PR confirmed by the next evaluable scan (only with the confirmation rule; empty = no later scan yet)"),
    Column("best_response", "string", "", "CR | PR | SD | PD | NE, empty", "best overall response of this lesion and method"),
    Column("criteria", "string", "", "vascular-anomaly | recist-volumetric | user name", "criteria set used"),
    Column("status", "string", "", " | ".join(STATUSES), "row status; with anything but ok/empty the percent changes are empty and the response NE"),
    Column("reason", "string", "", "text, empty", "why the status is not ok"),
    Column("flags", "string", "", "';'-joined flags, empty", "warnings (touches-border, outside-course-window, new-lesion, ...)"),
    Column("series_uid", "string", "", "DICOM UID, empty", "provenance: SeriesInstanceUID of the image"),
    Column("input_hash", "string", "", "hex, empty", "provenance: content hash of the inputs"),
    Column("config_hash", "string", "", "hex, empty", "provenance: hash of the pipeline configuration"),
    Column("software_version", "string", "", "text, empty", "provenance: volumetry version"),
    Column("computed_at", "datetime64[ns, UTC]", "UTC time", "ISO 8601, empty", "provenance: when the row was computed"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
_BY_NAME = {c.name: c for c in COLUMNS}

#: Columns a frame must have before :func:`conform` fills the rest with empties.
REQUIRED = ("subject_id", "lesion_id", "visit", "method")


def conform(df: pd.DataFrame) -> pd.DataFrame:
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
    for col in COLUMNS:
        if col.name not in df.columns:
            out[col.name] = _empty(col, df.index)
            continue
        try:
            out[col.name] = _coerce(df[col.name], col)
        except (ValueError, TypeError) as exc:
            raise InputError(f"column {col.name!r}: cannot convert to {col.dtype} ({exc})") from exc
    return _frame(out, len(df))


def _frame(columns: dict, n: int) -> pd.DataFrame:
    """``pandas.DataFrame(columns).reset_index(drop=True)`` of Series sharing one index (or of
    arrays), all of length ``n``: built from their arrays on a ``RangeIndex``, without aligning
    the indexes (the same frame, faster)."""
    return pd.DataFrame({name: getattr(v, "array", v) for name, v in columns.items()}, index=pd.RangeIndex(n))


def _empty(col: Column, index: pd.Index) -> pd.Series:
    """An absent column: every value empty in the column's dtype (``""`` for flags)."""
    if col.name == "flags":
        return pd.Series([""] * len(index), index=index, dtype="string")
    if col.dtype == "float64":
        return pd.Series(np.full(len(index), np.nan), index=index)
    if col.dtype == "datetime64[ns]":
        return pd.Series(np.full(len(index), np.datetime64("NaT", "ns")), index=index)
    return pd.Series([None] * len(index), index=index, dtype=col.dtype)


def _coerce(values: pd.Series, col: Column) -> pd.Series:
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
        return _to_datetime(values, _ISO_DATE, "%Y-%m-%d", utc=False).astype("datetime64[ns]").dt.normalize()
    if col.dtype == "datetime64[ns, UTC]":
        if dtype == "datetime64[ns, UTC]":
            return values
        return _to_datetime(values, _ISO_TIME, "%Y-%m-%dT%H:%M:%S%z", utc=True).astype("datetime64[ns, UTC]")
    raise AssertionError(col.dtype)  # pragma: no cover


def _to_datetime(values: pd.Series, pattern: re.Pattern, fmt: str, *, utc: bool) -> pd.Series:
    """``pandas.to_datetime(values, errors="raise", utc=utc, format=_known_format(...))``, with less work
    for the Python objects of a column made from row dicts (:func:`table_from_rows`).

    Text whose first value matches ``pattern`` is parsed with ``fmt``, the format pandas
    would guess from it (as :func:`_known_format` does for a string column), and
    ``pandas.Timestamp`` values of the column's kind are converted without pandas'
    memo of unique values (built for repeated text; for these it only costs). Should
    that fail, the former call runs, so a bad value gets the same error as before.
    """
    quick = _quick_datetime_args(values, pattern, fmt, utc) if values.dtype == object else None
    if quick is not None:
        try:
            return pd.to_datetime(values, errors="raise", utc=utc, **quick)
        except Exception:  # noqa: BLE001 -- the former call below raises its own error for these values
            pass
    return pd.to_datetime(values, errors="raise", utc=utc, format=_known_format(values, pattern, fmt))


def _quick_datetime_args(values: pd.Series, pattern: re.Pattern, fmt: str, utc: bool) -> dict | None:
    """Arguments of :func:`pandas.to_datetime` giving its result with less work for an object column:
    ``format`` when the first present value is text matching ``pattern`` (the value pandas guesses
    its format from: missing values before it are skipped by both), ``cache=False`` when every
    present value is a ``pandas.Timestamp`` (naive, or in UTC with ``utc``); else None."""
    items = values.tolist()
    first = next((v for v in items if not _isna(v)), None)
    if type(first) is str:
        return {"format": fmt} if pattern.fullmatch(first) else None
    want = "UTC" if utc else None
    if all(_isna(v) or (type(v) is pd.Timestamp and str(v.tz) == str(want)) for v in items):
        return {"cache": False}
    return None


def _string_dtype():
    """The dtype ``astype("string")`` gives (pandas' default string storage, missing = ``pd.NA``)."""
    return pd.api.types.pandas_dtype("string")


#: Text dates and UTC times as the pipeline's store writes them, and the format pandas guesses for them.
_ISO_DATE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
_ISO_TIME = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\+00:00")


def _known_format(values: pd.Series, pattern: re.Pattern, fmt: str) -> str | None:
    """``fmt`` when the first non-empty value is text matching ``pattern``, else None.

    ``pandas.to_datetime`` parses a text column with the format it guesses from
    its first non-empty value; for these values the guess is ``fmt``, so passing
    it gives the same dates (and the same errors) without the guess.
    """
    if not isinstance(values.dtype, pd.StringDtype) or not len(values):
        return None
    present = values.dropna()
    return fmt if len(present) and pattern.fullmatch(str(present.iloc[0])) else None


def table_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The conformed table of a list of row dicts (a missing key is an empty value).

    Same result as ``conform(pandas.DataFrame(rows))`` (keys outside the
    schema are ignored), built column by column from the Python values.

    Raises
    ------
    InputError
        If a value cannot be converted to its column's dtype.
    """
    out = {}
    string = _string_dtype()  # the dtype "string" names, looked up once (not once per column)
    for col in COLUMNS:
        values = [r.get(col.name) for r in rows]
        try:
            if col.name == "flags":
                out[col.name] = pd.array([_join_flags(v) for v in values], dtype=string)
            elif col.dtype == "string":
                # a str is itself (not missing, and str() of it the same): no call for the common case
                out[col.name] = pd.array([v if type(v) is str else (None if _isna(v) else str(v)) for v in values],
                                         dtype=string)
            elif col.dtype == "float64" and all(v is None or type(v) is float for v in values):
                out[col.name] = np.array(values, dtype=np.float64)
            elif col.dtype == "Int64" and all(v is None or (type(v) is int and -_EXACT_INT <= v <= _EXACT_INT)
                                              for v in values):
                # what _coerce makes of them (numbers, through Float64: exact up to 2**53), directly
                out[col.name] = pd.array(values, dtype="Int64")
            elif col.dtype == "boolean" and all(v is None or type(v) is bool for v in values):
                out[col.name] = pd.array(values, dtype="boolean")
            else:
                out[col.name] = _coerce(pd.Series(values, dtype=object), col)
        except (ValueError, TypeError) as exc:
            raise InputError(f"column {col.name!r}: cannot convert to {col.dtype} ({exc})") from exc
    return _frame(out, len(rows))


#: Integers that a float64 holds exactly (``_coerce`` passes Int64 values through Float64).
_EXACT_INT = 2 ** 53


def _isna(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _bool(v: Any) -> bool | None:
    """True/False/None from a bool, a 0/1 number or the text ``True``/``False`` (any case)."""
    if _isna(v):
        return None
    if isinstance(v, str):
        t = v.strip().lower()
        if t in ("true", "1", "yes"):
            return True
        if t in ("false", "0", "no"):
            return False
        if t == "":
            return None
        raise ValueError(f"{v!r} is not a boolean (True/False)")
    return bool(v)


def _join_flags(v: Any) -> str:
    if isinstance(v, (list, tuple, set, np.ndarray)):
        seen: list[str] = []
        for f in v:
            if f and f not in seen:
                seen.append(str(f))
        return ";".join(seen)
    return "" if _isna(v) else str(v)


def split_flags(value: Any) -> list[str]:
    """The list of flags of a ``flags`` cell (``;``-joined text, list or empty)."""
    if isinstance(value, (list, tuple)):
        return [str(f) for f in value if f]
    return [] if _isna(value) or value == "" else [f for f in str(value).split(";") if f]


# --------------------------------------------------------------------------- rows
def measurement_rows(measurement, *, subject_id: str, lesion_id: str, visit: str,
                     scan_date: Any = None, course: int | None = None,
                     methods: Iterable[str] = ("voxel", "mesh", "ellipsoid-mri"),
                     **provenance: Any) -> list[dict[str, Any]]:
    """Rows (one per method) of the tidy table for one :class:`~volumetry.measure.Measurement`.

    Parameters
    ----------
    measurement : Measurement
    subject_id, lesion_id, visit : str
    scan_date : date-like, optional
    course : int, optional
        Explicit course (0 = baseline); otherwise assigned from dates later.
    methods : iterable of str
        Any of ``voxel`` (voxel count, with the ±1-voxel band), ``mesh``,
        ``ellipsoid-mri`` (π/6·L·W·H).
    **provenance
        ``series_uid``, ``input_hash``, ``config_hash``, ``software_version``, ``computed_at``.

    Returns
    -------
    list of dict

    Raises
    ------
    InputError
        On an unknown method or provenance key.
    """
    m = measurement
    bad = [k for k in provenance if k not in ("series_uid", "input_hash", "config_hash", "software_version", "computed_at")]
    if bad:
        raise InputError(f"unknown provenance column(s) {bad}")
    values = {"voxel": m.volume_ml, "mesh": m.mesh_volume_ml, "ellipsoid-mri": m.ellipsoid_volume_ml}
    d = m.diameters_mm or (None, None, None)
    rows = []
    for method in methods:
        if method not in values:
            raise InputError(f"unknown MRI method {method!r}; choose from {', '.join(values)}")
        vol = values[method] if m.status == "ok" else None
        status, reason = m.status, m.reason
        if m.status == "ok" and vol is None:
            status, reason = "failed", f"{method} volume could not be computed ({', '.join(m.flags)})"
        rows.append({
            "subject_id": subject_id, "lesion_id": lesion_id, "visit": visit, "course": course,
            "scan_date": scan_date, "method": method, "volume_ml": vol,
            "volume_low_ml": m.volume_low_ml if method == "voxel" else None,
            "volume_high_ml": m.volume_high_ml if method == "voxel" else None,
            "d1_mm": d[0], "d2_mm": d[1], "d3_mm": d[2],
            "status": status, "reason": reason, "flags": list(m.flags), **provenance,
        })
    return rows


# -------------------------------------------------------------------------- write
def write_tables(df: pd.DataFrame, out_dir: str | Path, *, summary: bool = True) -> dict[str, Path]:
    """Write ``volumes.csv`` and ``volumes.parquet`` (and ``summary.csv``) into ``out_dir``.

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy table (e.g. from :func:`volumetry.longitudinal.assess`);
        coerced with :func:`conform`.
    out_dir : str or Path
        Output folder (created if needed). Nothing is written elsewhere.
    summary : bool
        Also write :func:`course_summary` as ``summary.csv``.

    Returns
    -------
    dict
        ``{"volumes_csv": path, "volumes_parquet": path, "summary_csv": path}``.

    Raises
    ------
    InputError
        If ``out_dir`` exists and is not a folder, or ``df`` does not fit the schema.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; give an output folder")
    out.mkdir(parents=True, exist_ok=True)
    table = df if _is_conformed(df) else conform(df)  # conformed already: the same table (only read here)
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
        course_summary(table).to_csv(paths["summary_csv"], index=False, float_format="%.12g", na_rep="")
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


def arrow_schema():
    """The Parquet (Arrow) schema of ``volumes.parquet``: dates as date32, times as UTC timestamps."""
    import pyarrow as pa

    types = {"string": pa.string(), "Int64": pa.int64(), "float64": pa.float64(), "boolean": pa.bool_(),
             "datetime64[ns]": pa.date32(), "datetime64[ns, UTC]": pa.timestamp("us", tz="UTC")}
    fields = [pa.field(c.name, types[c.dtype], nullable=True,
                       metadata={"unit": c.unit, "allowed": c.allowed, "description": c.description})
              for c in COLUMNS]
    return pa.schema(fields)


def read_tables(path: str | Path) -> pd.DataFrame:
    """Read ``volumes.csv`` or ``volumes.parquet`` back with the schema's dtypes."""
    path = Path(path)
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        df["flags"] = df["flags"].fillna("")
    return conform(df)


# ------------------------------------------------------------------------ summary
def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Parameters
    ----------
    successes, n : int
        Count and denominator, ``0 ≤ successes ≤ n``.
    confidence : float
        Two-sided level (0.95 → z = 1.95996...).

    Returns
    -------
    (low, high) : tuple of float
        Bounds in [0, 1] (exactly 0 for 0 successes, exactly 1 for n); ``(nan, nan)`` when ``n == 0``.

    Raises
    ------
    ValueError
        If the counts are inconsistent.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return (math.nan, math.nan)
    z = _z_score(confidence)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # 0 successes: the low bound is exactly 0 (centre == half in exact arithmetic), n successes: the
    # high bound is exactly 1; in floating point they came out as e.g. 2.8e-17 and 0.9999999999999999
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


@functools.lru_cache(maxsize=8)
def _z_score(confidence: float) -> float:
    """Two-sided normal quantile of ``confidence`` (0.95 → 1.95996...), computed once per level.

    ``scipy.special.ndtri`` is what ``scipy.stats.norm.ppf`` evaluates (the same number,
    tests/test_tables_fast.py), without importing ``scipy.stats`` (about 0.4 s per process).
    """
    from scipy.special import ndtri

    return float(ndtri(0.5 + confidence / 2))


def _is_conformed(df: pd.DataFrame) -> bool:
    """True when ``df`` has the schema's columns, in order, in the dtypes :func:`conform` gives
    (conforming it again changes nothing); a table read back from CSV has the columns only."""
    return list(df.columns) == list(COLUMN_NAMES) and df.dtypes.equals(_conformed_dtypes())


@functools.lru_cache(maxsize=1)
def _conformed_dtypes() -> pd.Series:
    return conform(pd.DataFrame(columns=list(COLUMN_NAMES))).dtypes


def course_summary(df: pd.DataFrame, *, lesion_id: str | None = TOTAL) -> pd.DataFrame:
    """Per method and course (≥ 1): percent change distribution and response rates.

    Parameters
    ----------
    df : pandas.DataFrame
        The tidy table.
    lesion_id : str or None
        Rows summarised: ``"total"`` (default: one row per subject, the
        subject-level outcome), a lesion id, or None for every row.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, course, n`` (rows with a percent change),
        ``median_percent_change, q1_percent_change, q3_percent_change`` (%),
        ``n_assessed`` (rows with a response, NE included: the denominator),
        and for each of ``cr, pr, sd, pd, ne`` and ``orr`` (CR + PR):
        ``<x>_n, <x>_rate, <x>_ci_low, <x>_ci_high`` (95 % Wilson score).
        Rows flagged ``repeat-in-course`` are left out (one scan per course).
    """
    t = df if _is_conformed(df) else conform(df)
    # the rows the former filters kept (a missing comparison drops the row), grouped by method and
    # course as groupby(sort=True).indices groups them (a missing method drops the row), from the
    # columns' Python values: plain arrays per group (pandas' per-group Series calls cost ~1 ms a
    # group); the same numbers: pandas' median and linear quantile of the non-missing values are numpy's
    methods = t["method"].tolist()
    courses = t["course"].tolist()
    if lesion_id is None:
        lesion = None
    elif isinstance(lesion_id, str):
        lesion = [isinstance(v, str) and v == lesion_id for v in t["lesion_id"].tolist()]
    else:
        lesion = (t["lesion_id"] == lesion_id).to_numpy(dtype=bool, na_value=False).tolist()
    flags = t["flags"].to_numpy(dtype=object, na_value="")
    groups: dict[tuple, list[int]] = {}
    for i, (method, course) in enumerate(zip(methods, courses)):
        if _isna(course) or not course >= 1 or _isna(method) or (lesion is not None and not lesion[i]):
            continue
        if "repeat-in-course" in split_flags(flags[i]):
            continue
        groups.setdefault((method, course), []).append(i)
    rows = []
    pct_all = t["percent_change"].to_numpy(dtype="float64", na_value=np.nan)
    resp_all = t["response"].to_numpy(dtype=object, na_value=None)
    for (method, course), idx in sorted(groups.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
        pct = pct_all[idx]
        pct = pct[~np.isnan(pct)]
        resp = [r for r in resp_all[idx] if r is not None]
        q1, q3 = (float(q) for q in np.percentile(pct, [25.0, 75.0])) if len(pct) else (math.nan, math.nan)
        row: dict[str, Any] = {
            "method": method, "course": int(course), "n": int(len(pct)),
            "median_percent_change": float(np.median(pct)) if len(pct) else math.nan,
            "q1_percent_change": q1, "q3_percent_change": q3, "n_assessed": int(len(resp)),
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
