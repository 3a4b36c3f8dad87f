"""Study input: a manifest CSV, or a DICOM tree without one.

Manifest columns (documented in ``docs/pipeline.md``):

======================  ========  ===================================================
column                  required  meaning
======================  ========  ===================================================
``subject_id``          yes       the subject (patient) identifier
``visit``               yes       the visit label (e.g. ``baseline``, ``w12``)
``image``               yes       DICOM folder or file, NIfTI/NRRD/MHA, relative to
                                  the manifest's folder
``lesion_id``           no        lesion name (default ``1``); one row per lesion
``course``              no        treatment course number (0 = baseline)
``scan_date``           no        ISO date ``YYYY-MM-DD``
``series_uid``          no        SeriesInstanceUID to take from a DICOM folder
``volume``              no        0-based volume of a multi-volume DICOM series
                                  (echoes, dynamics) or of a 4D NIfTI
``seed_x/_y/_z``        no        a seed point inside the lesion
``seed_space``          no        ``lps`` or ``ras`` (mm) or ``voxel`` (indices i, j, k);
                                  default ``lps``
``box``                 no        6 numbers ``x0 y0 z0 x1 y1 z1`` (two corners, in
                                  ``seed_space``), separated by spaces or ``;``
``mask``                no        an imported mask file (relative), used instead of
                                  segmenting
======================  ========  ===================================================

Columns whose name starts with ``x_`` are free (ignored); any other unknown
column is an error (a misspelt ``seed_X`` must not silently drop a seed).
The file is read as CSV proper: a quoted cell may hold commas and line breaks
(messages give the line a row starts on); a line break or control character
in any other than an ``x_`` column is an error.

A seed or box given on one row of a subject's lesion (its baseline) alone is
propagated to the rows of that lesion that have neither seed, box nor mask.

A folder without ``manifest.csv`` is read as a DICOM tree: one subject per
PatientID, one visit per StudyDate, the series chosen by the pipeline's
``series`` rule, and seeds or masks from the side file ``seeds.csv`` (columns
``subject_id`` (PatientID), optional ``visit`` (StudyDate, ``YYYYMMDD`` or
ISO), and the prompt columns above; a row naming a PatientID or StudyDate
not in the tree is an error). A series holding several volumes
(echoes, dynamics) gives the pipeline's ``series.volume``.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import difflib
import logging
import io
import re
import unicodedata
from pathlib import Path

from .errors import InputError, ManifestError

log = logging.getLogger(__name__)

#: File name looked for in a study folder.
MANIFEST_NAME = "manifest.csv"
#: Side file of seeds/masks for a DICOM tree without manifest.
SIDE_FILE_NAME = "seeds.csv"
REQUIRED_COLUMNS = ("subject_id", "visit", "image")
OPTIONAL_COLUMNS = (
    "lesion_id", "course", "scan_date", "series_uid", "volume", "seed_x", "seed_y", "seed_z",
    "seed_space", "box", "mask",
)
#: Accepted ``seed_space`` values and what they mean.
SEED_SPACES = {"lps": "lps", "ras": "ras", "voxel": "voxel", "ijk": "voxel", "index": "voxel"}
#: Default lesion name when ``lesion_id`` is absent or empty.
DEFAULT_LESION = "1"


@dataclasses.dataclass(frozen=True)
class ScanRow:
    """One scan to process: one row of the manifest (one lesion on one image).

    Attributes
    ----------
    subject_id, visit, lesion_id : str
        Identity as given (never sanitised here; see :mod:`volumetry.paths`).
    image : pathlib.Path
        Absolute path of the image (file or DICOM folder).
    course : int or None
        Treatment course (0 = baseline) when given.
    scan_date : datetime.date or None
    series_uid : str or None
    volume : int or None
        0-based volume of a multi-volume DICOM series or a 4D NIfTI; None
        reads the image's only volume (several are then an error of the scan).
    seed : tuple of float or None
        ``(x, y, z)`` in ``seed_space``.
    seed_space : str
        ``lps``, ``ras`` or ``voxel``.
    box : tuple of float or None
        ``(x0, y0, z0, x1, y1, z1)`` in ``seed_space``.
    mask : pathlib.Path or None
        Absolute path of an imported mask.
    propagate_from : int or None
        Index (in :attr:`Study.rows`) of the row whose seed/box this row
        inherits by registration; None when the row has its own prompt.
    files : tuple of pathlib.Path
        The exact input files (a DICOM series found in a tree); empty when
        ``image`` is read as given.
    where : str
        ``"<manifest> line N"`` for messages.
    """

    subject_id: str
    visit: str
    image: Path
    lesion_id: str = DEFAULT_LESION
    course: int | None = None
    scan_date: _dt.date | None = None
    series_uid: str | None = None
    volume: int | None = None
    seed: tuple[float, float, float] | None = None
    seed_space: str = "lps"
    box: tuple[float, ...] | None = None
    mask: Path | None = None
    propagate_from: int | None = None
    files: tuple[Path, ...] = ()
    where: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """``(subject_id, visit, lesion_id)``: unique within a study."""
        return (self.subject_id, self.visit, self.lesion_id)

    @property
    def has_prompt(self) -> bool:
        """True when the row has its own seed, box or mask."""
        return self.seed is not None or self.box is not None or self.mask is not None


@dataclasses.dataclass(frozen=True)
class Study:
    """The scans of a study, in manifest order.

    Attributes
    ----------
    rows : tuple of ScanRow
    source : pathlib.Path
        The manifest file, or the DICOM folder.
    root : pathlib.Path
        Folder that relative paths are resolved from.
    """

    rows: tuple[ScanRow, ...]
    source: Path
    root: Path


def _err(source: Path, line: int | None, column: str | None, msg: str) -> ManifestError:
    where = str(source)
    if line is not None:
        where += f" line {line}"
    if column:
        where += f", column '{column}'"
    return ManifestError(f"{where}: {msg}")


def _float(source, line, column, text) -> float:
    try:
        # Python's float() reads '1_0' as 10: a digit separator is a typo here, not a number
        if "_" in text:
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise _err(source, line, column, f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _err(source, line, column, f"{text!r} is not a finite number")
    return value


def _parse_prompt(source: Path, line: int, cells: dict[str, str]) -> dict:
    """Parse seed_x/_y/_z, seed_space and box of one row."""
    out: dict = {}
    seed_cells = [cells.get(c, "") for c in ("seed_x", "seed_y", "seed_z")]
    if any(seed_cells):
        if not all(seed_cells):
            missing = [c for c, v in zip(("seed_x", "seed_y", "seed_z"), seed_cells) if not v]
            raise _err(source, line, missing[0], "a seed needs all of seed_x, seed_y and seed_z")
        out["seed"] = tuple(_float(source, line, c, v) for c, v in zip(("seed_x", "seed_y", "seed_z"), seed_cells))
    space = cells.get("seed_space", "").strip().lower()
    if space:
        if space not in SEED_SPACES:
            raise _err(source, line, "seed_space", f"{space!r} is not one of {', '.join(SEED_SPACES)}")
        out["seed_space"] = SEED_SPACES[space]
    box = cells.get("box", "").strip()
    if box:
        parts = [p for p in re.split(r"[\s;,]+", box) if p]
        if len(parts) != 6:
            raise _err(source, line, "box", f"{box!r}: a box is 6 numbers 'x0 y0 z0 x1 y1 z1'")
        out["box"] = tuple(_float(source, line, "box", p) for p in parts)
    return out


def _check_columns(source: Path, header: list[str], required: tuple[str, ...], optional: tuple[str, ...],
                   line: int = 1) -> None:
    valid = list(required) + list(optional)
    seen = set()
    for number, col in enumerate(header, 1):
        if not col:
            raise _err(source, line, None, f"column {number} has an empty column name (trailing comma?); remove "
                                        "the extra comma at the end of the header (and of the rows), or name "
                                        "the column (free columns start with 'x_')")
        if col in seen:
            raise _err(source, line, col, "the column appears twice")
        seen.add(col)
        if col in valid or col.startswith("x_"):
            continue
        close = [col.lower()] if col.lower() in valid else difflib.get_close_matches(col, valid, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise _err(source, line, col, f"unknown column.{hint} Valid columns: {', '.join(valid)} "
                                   "(extra free columns must start with 'x_')")
    missing = [c for c in required if c not in seen]
    if missing:
        raise _err(source, line, None, f"missing required column(s) {', '.join(missing)}; "
                                    f"the header is {','.join(header)}")


#: What :mod:`csv` says (strict mode) and what the user should read instead.
_CSV_PROBLEMS = (
    ("unexpected end of data", "a quoted cell is never closed (a '\"' that opens a cell on this line has no "
                               "closing '\"' before the end of the file); close it, and write a quote inside a "
                               "quoted cell as '\"\"'"),
    ("expected after", "badly quoted cell: a cell that starts with '\"' must end with '\"' right before the next "
                       "comma; write a quote inside a quoted cell as '\"\"'"),
    ("field larger than field limit", "a cell is longer than the CSV field limit (an unclosed quote?)"),
)


def _csv_problem(exc: csv.Error) -> str:
    text = str(exc)
    for needle, say in _CSV_PROBLEMS:
        if needle in text:
            return say
    return f"not valid CSV ({text})"


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]], int]:
    """Read a CSV file as a header, ``(line, {column: cell})`` rows and the header's line.

    The file is parsed by :mod:`csv` as a whole (``newline=''``), so a quoted
    cell keeps its commas and line breaks; ``line`` is the physical line a row
    starts on. Cells and column names are stripped of surrounding blanks; blank
    rows (also before the header) are skipped.

    Raises
    ------
    ManifestError
        Not UTF-8, unreadable, empty, separated by ';' or tabs, malformed quoting, a row whose cell count
        differs from the header's, or a line break or control character in a
        cell of any column not starting with ``x_``; naming the file and line.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise _err(path, None, None, f"not UTF-8 text ({exc}); save the manifest as UTF-8 CSV") from None
    except OSError as exc:
        raise _err(path, None, None, f"cannot be read: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _err(path, start, None, _csv_problem(exc)) from None
        records.append((start, cells))
        start = reader.line_num + 1
    while records and not any(c.strip() for c in records[0][1]):  # blank lines before the header
        records.pop(0)
    if not records:
        raise _err(path, None, None, "the file is empty; it needs a header line")
    header_line, header = records[0][0], [h.strip() for h in records[0][1]]
    if len(header) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs")):
            if sep in header[0]:
                raise _err(path, header_line, None, f"the columns are separated by {name}, not commas; save the "
                                                    "file as comma-separated CSV (in a spreadsheet: CSV UTF-8, "
                                                    "comma-delimited)")
    rows = []
    for line, cells in records[1:]:
        if not any(c.strip() for c in cells):
            continue
        if [c.strip() for c in cells] == header:
            raise _err(path, line, None, f"this line repeats the header of line {header_line} (two manifests "
                                         "pasted together?); delete it")
        if len(cells) != len(header):
            hint = (" (trailing comma?)" if len(cells) > len(header) and not any(c.strip() for c in cells[len(header):])
                    else "")
            raise _err(path, line, None, f"{len(cells)} cells but the header has {len(header)} columns{hint}")
        row = {h: c.strip() for h, c in zip(header, cells)}
        for col, value in row.items():
            if not col.startswith("x_") and any(unicodedata.category(ch) == "Cc" for ch in value):
                raise _err(path, line, col, f"{value!r} holds a line break or control character; a cell of this "
                                            "column is one line of text (only free 'x_' columns may hold several)")
        rows.append((line, row))
    return header, rows, header_line


def _volume_index(source: Path, line: int, text: str) -> int:
    """The ``volume`` cell: a whole number 0 or more (ASCII digits only).

    Raises
    ------
    ManifestError
        Anything else, naming the line and the column.
    """
    if re.fullmatch(r"[0-9]+", text, flags=re.ASCII):
        return int(text)
    shown = text if re.fullmatch(r"-[0-9]+", text) else repr(text)
    raise _err(source, line, "volume", f"{shown} is not a volume index: give a whole number 0 or more "
                                       "(0 is the image's first volume, echo or dynamic)")


def _iso_date(text: str) -> _dt.date:
    """A calendar date ``YYYY-MM-DD`` (or ``YYYYMMDD``).

    ``date.fromisoformat`` also reads ISO week dates (``2024-W03`` is Monday 2024-01-15):
    a week is not a scan date, so it is refused rather than moved to its Monday.

    Raises
    ------
    ValueError
        Anything else.
    """
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8}", text, flags=re.ASCII):
        raise ValueError(text)
    return _dt.date.fromisoformat(text)


def _resolve(root: Path, text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else (root / p)


def read_manifest(path: str | Path) -> Study:
    """Read and check a manifest CSV (see the module docstring for the columns).

    Missing image or mask files are *not* errors here: the runner records them
    as failures of their scan (naming the manifest line and column) and goes on.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    Study

    Raises
    ------
    ManifestError
        Unknown or missing column, empty required cell, a number or date that
        does not parse, duplicated ``(subject_id, visit, lesion_id)``, a visit
        whose rows disagree on ``scan_date`` or ``course``, two baseline
        (course 0) visits of one subject, or a seed-less lesion with nothing
        to propagate from. The message names the
        file, the line and the column.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    header, raw_rows, header_line = _read_csv(path)
    _check_columns(path, header, REQUIRED_COLUMNS, OPTIONAL_COLUMNS, header_line)
    if not raw_rows:
        raise _err(path, None, None, "the manifest has a header but no scans")
    root = path.parent
    rows: list[ScanRow] = []
    seen: dict[tuple, int] = {}
    for line, cells in raw_rows:
        for col in REQUIRED_COLUMNS:
            if not cells.get(col):
                raise _err(path, line, col, "empty; every row needs subject_id, visit and image")
        kw: dict = {}
        if cells.get("course"):
            try:
                if "_" in cells["course"]:  # int('1_0') is 10
                    raise ValueError(cells["course"])
                kw["course"] = int(cells["course"])
            except ValueError:
                raise _err(path, line, "course", f"{cells['course']!r} is not a whole number") from None
            if kw["course"] < 0:
                raise _err(path, line, "course", "must be 0 (baseline) or more")
        if cells.get("scan_date"):
            try:
                kw["scan_date"] = _iso_date(cells["scan_date"])
            except ValueError:
                raise _err(path, line, "scan_date", f"{cells['scan_date']!r} is not an ISO date YYYY-MM-DD") from None
        if cells.get("series_uid"):
            kw["series_uid"] = cells["series_uid"]
        if cells.get("volume"):
            kw["volume"] = _volume_index(path, line, cells["volume"])
        if cells.get("mask"):
            kw["mask"] = _resolve(root, cells["mask"])
        kw.update(_parse_prompt(path, line, cells))
        row = ScanRow(
            subject_id=cells["subject_id"], visit=cells["visit"], image=_resolve(root, cells["image"]),
            lesion_id=cells.get("lesion_id") or DEFAULT_LESION, where=f"{path} line {line}", **kw,
        )
        if row.key in seen:
            raise _err(path, line, None, f"subject {row.subject_id!r} visit {row.visit!r} lesion "
                                         f"{row.lesion_id!r} is already on line {seen[row.key]}")
        seen[row.key] = line
        rows.append(row)
    _check_visits(path, rows, [line for line, _ in raw_rows])
    _check_case_collisions(path, rows, [line for line, _ in raw_rows])
    return Study(rows=tuple(link_propagation(rows, path)), source=path, root=root)


def _check_visits(source: Path, rows: list[ScanRow], lines: list[int]) -> None:
    """One scan date and one course per visit (its rows are the lesions of one scan),
    and one baseline (course 0) visit per subject: checked here, before any scan runs,
    rather than found by the longitudinal assessment after every scan was computed.

    Raises
    ------
    ManifestError
        Naming the file, both lines and the column.
    """
    first: dict[tuple[str, str], tuple[int, ScanRow]] = {}
    baseline: dict[str, tuple[int, str]] = {}
    for line, row in zip(lines, rows):
        prev = first.setdefault((row.subject_id, row.visit), (line, row))
        if prev[1] is not row:
            for col in ("scan_date", "course"):
                a, b = getattr(prev[1], col), getattr(row, col)
                if a != b:
                    show = lambda v: "empty" if v is None else repr(str(v))  # noqa: E731
                    raise _err(source, line, col, f"subject {row.subject_id!r} visit {row.visit!r} has {col} "
                                                  f"{show(b)} here but {show(a)} on line {prev[0]}; the rows of "
                                                  f"one visit are one scan: give them the same {col}, or give "
                                                  "each scan its own visit label")
        if row.course == 0:
            other = baseline.setdefault(row.subject_id, (line, row.visit))
            if other[1] != row.visit:
                raise _err(source, line, "course", f"subject {row.subject_id!r} has course 0 (baseline) on visit "
                                                   f"{row.visit!r} here and on visit {other[1]!r} on line "
                                                   f"{other[0]}; one baseline per subject: give the other "
                                                   "visit its course number (or leave it empty)")


def _check_case_collisions(source: Path, rows: list[ScanRow], lines: list[int] | None) -> None:
    """Subjects, a subject's visits or a subject's lesions whose names differ only in letter case
    (``S01``/``s01``) have output files whose names differ only in case (``sub-S01``/``sub-s01``):
    one file on a case-insensitive disk (macOS, Windows), where one would overwrite the other.
    ``lines``: the manifest line of each row, or None for the rows of a DICOM tree (its
    PatientIDs, named by the row's ``where``).

    Raises
    ------
    ManifestError
        Naming the file, both lines (both series) and both names.
    """
    from .paths import safe_label

    first: dict[tuple, tuple[str, object]] = {}
    for n, row in enumerate(rows):
        here = lines[n] if lines is not None else row.where
        for what, scope, name in (("subject", (), row.subject_id), ("visit", (row.subject_id,), row.visit),
                                  ("lesion", (row.subject_id,), row.lesion_id)):
            key = (what, *scope, safe_label(name).casefold())
            other, there = first.setdefault(key, (name, here))
            if other == name:
                continue
            tail = ("and their output files would be one file on a macOS or Windows disk; ")
            if lines is not None:
                raise _err(source, here, None, f"{what} {name!r} and {what} {other!r} of line {there} differ only in "
                                               f"letter case, {tail}spell them the same way, or make them differ in "
                                               "more than case")
            label = "PatientID" if what == "subject" else what
            raise ManifestError(f"{here}: {label} {name!r} and {label} {other!r} ({there}) differ only in letter "
                                f"case, {tail}give the study as a {MANIFEST_NAME} with {what} ids that differ in "
                                "more than case (see docs/pipeline.md)")


def _order_key(row: ScanRow, position: int):
    # baseline first: course 0, then the earliest date, then file order
    return (row.course if row.course is not None else 10**6,
            row.scan_date or _dt.date.max, position)


def link_propagation(rows: list[ScanRow], source: Path) -> list[ScanRow]:
    """Point every prompt-less row to the row of the same subject and lesion
    whose seed or box it inherits (the earliest such row: lowest course, then
    earliest date, then manifest order).

    Raises
    ------
    ManifestError
        A lesion has rows without any seed, box or mask and no row to inherit from.
    """
    out = list(rows)
    groups: dict[tuple[str, str], list[int]] = {}
    for n, row in enumerate(rows):
        groups.setdefault((row.subject_id, row.lesion_id), []).append(n)
    for (subject, lesion), idx in groups.items():
        donors = sorted((n for n in idx if rows[n].seed is not None or rows[n].box is not None),
                        key=lambda n: _order_key(rows[n], n))
        for n in idx:
            if rows[n].has_prompt:
                continue
            if not donors:
                masked = ["line " + rows[m].where.rsplit(" line ", 1)[-1] if " line " in rows[m].where
                          else rows[m].where for m in idx if rows[m].mask is not None]
                if masked:  # a mask is measured as given, never propagated: say so, not "no mask"
                    raise ManifestError(
                        f"{rows[n].where}: this row has no seed, box or mask, and subject {subject!r} lesion "
                        f"{lesion!r} has no seed or box to propagate from ({', '.join(masked)}: a mask only, "
                        "which is measured as given, not propagated); give seed_x/seed_y/seed_z (or box) on "
                        "the baseline row as well as its mask, or a mask on this row"
                    )
                raise ManifestError(
                    f"{rows[n].where}: subject {subject!r} lesion {lesion!r} has no seed, box or mask on any "
                    "row; give seed_x/seed_y/seed_z (or box, or mask) on its baseline row"
                )
            out[n] = dataclasses.replace(rows[n], propagate_from=donors[0], seed_space=rows[donors[0]].seed_space)
    return out


# ---------------------------------------------------------------------------------------- DICOM trees
def _stack_attr(stack, name, default=None):
    return getattr(stack, name, default)


def select_series(stacks: list, series_rule: dict) -> object | None:
    """Choose the series of one study by the pipeline's ``series`` rule.

    Parameters
    ----------
    stacks : list of SeriesStack
        The series of one study (``modality``, ``description``, ``files``...).
    series_rule : dict
        ``modality``, ``description_regex`` (searched, case-insensitive) and
        ``prefer`` (``most_slices``, ``latest`` or ``first``).

    Returns
    -------
    SeriesStack or None
        None when no series matches.
    """
    pattern = re.compile(series_rule.get("description_regex", ".*"), re.IGNORECASE)
    modality = (series_rule.get("modality") or "").upper()
    matching = [
        s for s in stacks
        if (not modality or (str(_stack_attr(s, "modality", "") or "").upper() == modality))
        and pattern.search(str(_stack_attr(s, "description", "") or ""))
    ]
    if not matching:
        return None
    prefer = series_rule.get("prefer", "most_slices")
    if prefer == "first":
        return matching[0]
    if prefer == "latest":
        return max(matching, key=lambda s: (str(_stack_attr(s, "series_time", "") or ""),
                                            int(_stack_attr(s, "series_number", 0) or 0)))
    return max(matching, key=lambda s: len(_stack_attr(s, "files", ()) or ()))


def _iso_from_dicom_date(text: str) -> _dt.date | None:
    text = (text or "").strip()
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    return None


def read_dicom_tree(root: str | Path, series_rule: dict) -> Study:
    """Read a folder without manifest as a DICOM tree.

    Subjects are PatientIDs, visits StudyDates (label ``YYYY-MM-DD``), the
    series of each study is chosen by :func:`select_series` (and, when it holds
    several volumes, the volume by the rule's ``volume``); seeds, boxes or
    masks come from ``seeds.csv`` in ``root``.

    Raises
    ------
    InputError
        No DICOM file in the folder, no series matching the rule, or no side file.
    ManifestError
        The side file is invalid (named with its line and column), or one of
        its rows names a PatientID or StudyDate that is not in the tree (a typo
        must not silently drop a seed).
    """
    from .io.dicom import index_dicom

    root = Path(root).resolve()
    _refuse_linked_folders(root)
    stacks = index_dicom(root)
    if not stacks:
        raise InputError(
            f"{root}: no {MANIFEST_NAME} and no DICOM series found; give a folder holding {MANIFEST_NAME} "
            "(see docs/pipeline.md) or a DICOM tree"
        )
    studies: dict[tuple[str, str], list] = {}
    for s in stacks:
        pid = str(_stack_attr(s, "patient_id", "") or "")
        date = str(_stack_attr(s, "study_date", "") or "")
        studies.setdefault((pid, date), []).append(s)
    side = root / SIDE_FILE_NAME
    if not side.is_file():
        raise InputError(
            f"{root}: a DICOM tree needs the side file {SIDE_FILE_NAME} with a seed, box or mask per subject "
            "(columns subject_id, visit, seed_x, seed_y, seed_z, seed_space, box, mask; see docs/pipeline.md), "
            f"or write a {MANIFEST_NAME}"
        )
    header, side_rows, header_line = _read_csv(side)
    _check_columns(side, header, ("subject_id",),
                   ("visit", "lesion_id", "seed_x", "seed_y", "seed_z", "seed_space", "box", "mask"), header_line)
    prompts: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    dates: dict[str, set[str]] = {}
    for pid, date in studies:
        day = _iso_from_dicom_date(date)
        dates.setdefault(pid, set()).add(day.isoformat() if day else (date or "unknown"))
    for line, cells in side_rows:
        if not cells.get("subject_id"):
            raise _err(side, line, "subject_id", "empty")
        if cells["subject_id"] not in dates:
            raise _err(side, line, "subject_id", f"PatientID {cells['subject_id']!r} is not in the tree "
                                                 f"(PatientIDs found: {_listing(dates)}); fix the side file")
        visit = cells.get("visit", "")
        if visit:
            date = _iso_from_dicom_date(visit)
            if date is None:
                raise _err(side, line, "visit", f"{visit!r} is not a StudyDate (YYYYMMDD or YYYY-MM-DD)")
            visit = date.isoformat()
            if visit not in dates[cells["subject_id"]]:
                raise _err(side, line, "visit", f"{cells['subject_id']} has no study on {visit} (StudyDates "
                                                f"found: {_listing(dates[cells['subject_id']])}); fix the date, "
                                                "or leave visit empty for the subject's first study")
        kw = _parse_prompt(side, line, cells)
        if cells.get("mask"):
            kw["mask"] = _resolve(root, cells["mask"])
        prompts.setdefault((cells["subject_id"], visit), []).append((cells.get("lesion_id") or DEFAULT_LESION, kw))
    rows: list[ScanRow] = []
    skipped = []
    first_visit: dict[str, str] = {}
    for (pid, date), group in sorted(studies.items(), key=lambda kv: (kv[0][0], _iso_from_dicom_date(kv[0][1]) or _dt.date.max)):
        stack = select_series(group, series_rule)
        if stack is None:
            skipped.append(f"{pid or '?'} {date or '?'}")
            continue
        day = _iso_from_dicom_date(date)
        visit = day.isoformat() if day else (date or "unknown")
        first_visit.setdefault(pid, visit)
        files = tuple(Path(f) for f in (_stack_attr(stack, "files", ()) or ()))
        # a side-file row without visit is the baseline's (the subject's first StudyDate)
        entries = dict(prompts.get((pid, visit), []))
        if visit == first_visit[pid]:
            entries = {**dict(prompts.get((pid, ""), [])), **entries}
        lesion_ids = sorted({lid for key, found in prompts.items() if key[0] == pid for lid, _ in found})
        # the rule's volume applies to a series holding several (out of range: the scan fails with the list)
        volume = series_rule.get("volume") if int(_stack_attr(stack, "n_volumes", 1) or 1) > 1 else None
        for lesion in lesion_ids or [DEFAULT_LESION]:
            rows.append(ScanRow(
                subject_id=pid, visit=visit, image=Path(_common_dir(files)) if files else root,
                lesion_id=lesion, scan_date=day,
                series_uid=str(_stack_attr(stack, "series_uid", "") or "") or None, files=files, volume=volume,
                where=f"{root} PatientID {pid!r} StudyDate {date!r}", **entries.get(lesion, {}),
            ))
    if skipped:
        log.warning("%s: no series matching %s in %d studies: %s", root, series_rule, len(skipped), "; ".join(skipped))
    if not rows:
        raise InputError(
            f"{root}: no series matches the pipeline's series rule (modality {series_rule.get('modality')}, "
            f"description /{series_rule.get('description_regex')}/); found: "
            + "; ".join(sorted({f"{_stack_attr(s, 'modality', '?')} '{_stack_attr(s, 'description', '')}'" for s in stacks}))
        )
    _check_case_collisions(root, rows, None)
    return Study(rows=tuple(link_propagation(rows, side)), source=root, root=root)


def _refuse_linked_folders(root: Path) -> None:
    """A DICOM tree is indexed without following symbolic links to folders (a link may loop):
    a subject or visit folder that is such a link would silently be left out of the batch.

    Raises
    ------
    InputError
        Naming the links (relative to ``root``) and the fix.
    """
    import os

    links = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        links += [os.path.relpath(os.path.join(dirpath, d), root) for d in dirnames
                  if os.path.islink(os.path.join(dirpath, d))]
    if links:
        raise InputError(f"{root}: {_listing(links)} {'is a symbolic link' if len(links) == 1 else 'are symbolic links'} "
                         "to a folder, which a DICOM tree does not follow (its series would be left out); "
                         "replace the link by the folder itself, or give the scans in a manifest.csv "
                         "(its image column may name linked folders)")


def _listing(names, limit: int = 10) -> str:
    """``a, b, c`` (sorted; at most ``limit`` names, then how many more)."""
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _common_dir(files) -> str:
    import os

    return os.path.commonpath([str(Path(f).parent) for f in files])


def read_study(study: str | Path, series_rule: dict | None = None) -> Study:
    """Read a study: a manifest CSV, a folder holding ``manifest.csv``, or a DICOM tree.

    Raises
    ------
    InputError
        The path does not exist, or a folder is neither a manifest folder nor a DICOM tree.
    ManifestError
        The manifest or side file is invalid.
    """
    path = Path(study)
    if not path.exists():
        raise InputError(f"study {path} does not exist; give a manifest CSV or a study folder")
    if path.is_file():
        return read_manifest(path)
    if (path / MANIFEST_NAME).is_file():
        return read_manifest(path / MANIFEST_NAME)
    return read_dicom_tree(path, series_rule or {})
