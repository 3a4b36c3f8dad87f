"""Ultrasound diameters (CSV) → volume rows with method ``ellipsoid-us``.

The CSV has a header and the columns ``subject_id, lesion_id, visit, scan_date,
d1_mm, d2_mm, d3_mm`` and optionally ``course`` (other columns are ignored).
Each row becomes a row of the tidy table with
``volume_ml = π/6 · d1 · d2 · d3 / 1000`` (diameters in mm).

* All three diameters blank: the lesion was not measured at that visit: status
  ``failed``, reason "no ultrasound diameters recorded", volume empty.
* A diameter of 0 mm: the lesion is not seen: status ``empty`` (no measurable
  lesion), volume empty.
* Anything else that is not a finite number ≥ 0, a partly blank triple, a bad
  date or course, a missing column or a duplicate row is a
  :class:`~volumetry.errors.ManifestError` naming the file, the line and the column.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from .errors import ManifestError

#: Columns the CSV must have.
REQUIRED_COLUMNS = ("subject_id", "lesion_id", "visit", "scan_date", "d1_mm", "d2_mm", "d3_mm")

#: Method written on every row.
METHOD = "ellipsoid-us"


def ellipsoid_volume_ml(d1_mm: float, d2_mm: float, d3_mm: float) -> float:
    """Ellipsoid volume π/6·d1·d2·d3 from three orthogonal diameters in mm, in mL."""
    return math.pi / 6.0 * d1_mm * d2_mm * d3_mm / 1000.0


def read_ultrasound_csv(path: str | Path) -> pd.DataFrame:
    """Read ultrasound diameters and return volume rows (method ``ellipsoid-us``).

    Parameters
    ----------
    path : str or Path
        The CSV file (UTF-8, comma-separated, header row).

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id, lesion_id, visit, scan_date, course, method,
        d1_mm, d2_mm, d3_mm, volume_ml, status, reason, flags`` — ready for
        :func:`volumetry.longitudinal.assess`.

    Raises
    ------
    ManifestError
        If the file is missing or unreadable, a column is missing, or a value is
        invalid (the message names the file, the line number and the column).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}; the ultrasound CSV needs "
                                    f"{', '.join(REQUIRED_COLUMNS)} (course optional)")
            reader.fieldnames = header
            records = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file; check the ultrasound CSV path") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{path}: not a readable UTF-8 CSV ({exc})") from None

    rows = []
    seen: dict[tuple, int] = {}
    for line, rec in records:
        if all((v or "").strip() == "" for k, v in rec.items() if k is not None):
            continue  # blank line
        rows.append(_row(path, line, rec, seen))
    cols = ["subject_id", "lesion_id", "visit", "scan_date", "course", "method", "d1_mm", "d2_mm", "d3_mm",
            "volume_ml", "status", "reason", "flags"]
    df = pd.DataFrame(rows, columns=cols)
    df["scan_date"] = pd.to_datetime(df["scan_date"]).astype("datetime64[ns]")
    df["course"] = df["course"].astype("Int64")
    for c in ("d1_mm", "d2_mm", "d3_mm", "volume_ml"):
        df[c] = df[c].astype(float)
    return df


def _row(path: Path, line: int, rec: dict, seen: dict) -> dict:
    def err(col: str, msg: str) -> ManifestError:
        return ManifestError(f"{path}, line {line}, column {col}: {msg}")

    out: dict = {}
    for col in ("subject_id", "lesion_id", "visit"):
        v = (rec.get(col) or "").strip()
        if not v:
            raise err(col, "empty; every row needs subject_id, lesion_id and visit")
        out[col] = v
    raw_date = (rec.get("scan_date") or "").strip()
    try:
        out["scan_date"] = pd.Timestamp(raw_date).normalize() if raw_date else pd.NaT
    except ValueError:
        raise err("scan_date", f"{raw_date!r} is not a date; write YYYY-MM-DD") from None
    raw_course = (rec.get("course") or "").strip()
    if raw_course:
        try:
            c = float(raw_course)
            if c != int(c) or c < 0:
                raise ValueError
            out["course"] = int(c)
        except ValueError:
            raise err("course", f"{raw_course!r} is not a course number (0 = baseline, 1, 2, ...)") from None
    else:
        out["course"] = None
    if not raw_date and out["course"] is None:
        raise err("scan_date", "empty and no course given; give the scan date (YYYY-MM-DD) or the course")
    raws = {c: (rec.get(c) or "").strip() for c in ("d1_mm", "d2_mm", "d3_mm")}
    out["method"] = METHOD
    out["flags"] = []
    if all(v == "" for v in raws.values()):
        out.update(d1_mm=math.nan, d2_mm=math.nan, d3_mm=math.nan, volume_ml=math.nan,
                   status="failed", reason="no ultrasound diameters recorded")
    else:
        ds = []
        for col, v in raws.items():
            if v == "":
                raise err(col, "empty while the other diameters are given; give all three or none")
            try:
                x = float(v)
            except ValueError:
                raise err(col, f"{v!r} is not a number (mm)") from None
            if not math.isfinite(x) or x < 0:
                raise err(col, f"{v!r} must be a finite diameter >= 0 mm")
            ds.append(x)
        out.update(d1_mm=ds[0], d2_mm=ds[1], d3_mm=ds[2])
        if min(ds) == 0:
            out.update(volume_ml=math.nan, status="empty", reason="lesion not measurable on ultrasound (a diameter of 0 mm)")
        else:
            out.update(volume_ml=ellipsoid_volume_ml(*ds), status="ok", reason=None)
    key = (out["subject_id"], out["lesion_id"], out["visit"])
    if key in seen:
        raise err("visit", f"subject {key[0]} lesion {key[1]} visit {key[2]} already given on line {seen[key]}")
    seen[key] = line
    return out
