"""Build the QC report of a pipeline output folder.

Reads what ``volumetry run`` wrote (``volumes.csv``, ``summary.csv``,
``results.sqlite`` read-only, the masks and the images they were made on) and
writes ``<out_dir>/report/index.html`` with its pictures in
``<out_dir>/report/img/`` (linked relatively, so the folder opens from disk and
can be copied as a whole), or one self-contained HTML file with
``embed_images=True``.

The report shows only identifiers that the tables carry (subject, visit and
lesion ids, series descriptions from the table); file paths of images, which
may hold names, are never written into it. Picture files are numbered, never
named after subjects.
"""
from __future__ import annotations

import base64
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._version import __version__
from ..errors import InputError, VolumetryError
from ..image import Volume
from ..paths import safe_join
from . import html as page_html
from .overlays import ViewPlan, plan_views, render_montage, save_montage
from .plots import primary_method, spider_png, subject_series, waterfall_svg

log = logging.getLogger(__name__)

#: Folder of the report inside the output folder.
REPORT_DIRNAME = "report"
#: Page written inside :data:`REPORT_DIRNAME`.
REPORT_PAGE = "index.html"
#: Tidy table and summary written by the pipeline.
VOLUMES_CSV = "volumes.csv"
SUMMARY_CSV = "summary.csv"
DB_NAME = "results.sqlite"
#: Row statuses that are results, not failures ("empty": the mask has no voxel).
OK_STATUSES = ("ok", "empty")
#: String columns that must not be parsed as numbers or NaN ("NA" is a valid id).
_ID_COLUMNS = ("subject_id", "lesion_id", "visit", "course", "method", "response", "best_response", "status",
               "flags", "series_uid", "series_description", "reason", "scan_date")


@dataclass
class _ScanFiles:
    image: str | None = None
    mask: str | None = None
    series_uid: str | None = None
    registration: dict | None = None  #: baseline -> this scan (matrix, translation_mm, fixed_parameters)
    #: 0-based volume of a multi-volume DICOM series or 4D NIfTI that was measured (None: the only one)
    volume_index: int | None = None
    #: False in a pseudonymised folder: the UIDs it records are pseudo UIDs, which select no series
    recorded_uid_selects: bool = True


def _read_csv(path: Path):
    import pandas as pd

    try:
        head = pd.read_csv(path, nrows=0)
    except Exception as exc:  # pandas raises several types
        raise InputError(f"{path}: unreadable CSV ({exc}); re-run 'volumetry run' to rewrite it") from exc
    dtypes = {c: str for c in head.columns if c in _ID_COLUMNS}
    return pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])


def _records(df) -> list[dict]:
    """Rows as dicts with NaN turned into None."""
    out = []
    for rec in df.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()})
    return out


class _Db:
    """Read-only view of ``results.sqlite`` (absent or partial databases give empty answers)."""

    def __init__(self, path: Path) -> None:
        self.conn = None
        if path.is_file():
            try:
                self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                self.conn.row_factory = sqlite3.Row
                self.conn.execute("SELECT name FROM sqlite_master").fetchall()
            except sqlite3.DatabaseError as exc:
                log.warning("%s: cannot read the results database (%s); report built from the tables only",
                            path, exc)
                self.conn = None

    def columns(self, table: str) -> set[str]:
        if self.conn is None:
            return set()
        return {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})").fetchall()}

    def rows(self, table: str, wanted: tuple[str, ...], order: str = "") -> list[dict]:
        have = self.columns(table)
        cols = [c for c in wanted if c in have]
        if not cols:
            return []
        sql = f"SELECT {', '.join(cols)} FROM {table}" + (f" ORDER BY {order}" if order and order in have else "")
        return [dict(r) for r in self.conn.execute(sql).fetchall()]

    def scan_files(self) -> dict[tuple[str, str, str], _ScanFiles]:
        """Image and mask path of each ``(subject_id, visit, lesion_id)``."""
        out: dict[tuple[str, str, str], _ScanFiles] = {}
        if not {"subject_id", "visit", "lesion_id"} <= self.columns("scans"):
            return out
        masks = {}
        if {"task_key", "path"} <= self.columns("masks"):
            masks = {r["task_key"]: r["path"] for r in self.rows("masks", ("task_key", "path"))}
        registrations, volumes = {}, {}
        if {"task_key", "data"} <= self.columns("measurements"):
            for r in self.rows("measurements", ("task_key", "data")):
                try:
                    data = json.loads(r["data"] or "{}")
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                reg = data.get("registration")
                if isinstance(reg, dict) and reg.get("matrix") is not None:
                    registrations[r["task_key"]] = reg
                volumes[r["task_key"]] = _volume_index(data.get("image"))
        for r in self.rows("scans", ("subject_id", "visit", "lesion_id", "image", "task_key", "series_uid")):
            key = (str(r["subject_id"]), str(r["visit"]), str(r["lesion_id"]))
            task = r.get("task_key")
            out[key] = _ScanFiles(r.get("image"), masks.get(task), r.get("series_uid"),
                                  registrations.get(task), volumes.get(task))
        return out

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _volume_index(image_info: Any) -> int | None:
    """The volume the pipeline read (``volume_index`` of the measurement's ``image`` data), or None.

    A multi-volume DICOM series or 4D NIfTI is measured on one volume; its overlay must be
    drawn on that volume (re-reading the image without it fails, or shows another volume).
    """
    if not isinstance(image_info, dict):
        return None
    v = image_info.get("volume_index")
    if v is None:
        return None
    try:
        if not isinstance(v, bool) and int(v) == float(v):
            return int(v)
    except (TypeError, ValueError, OverflowError):
        pass
    log.warning("measurement data holds an unusable volume_index %r; the image is read without one", v)
    return None


def _resolve(path: str | None, out_dir: Path) -> Path | None:
    if not path:
        return None
    p = Path(path)
    for cand in ((p,) if p.is_absolute() else (out_dir / p, p)):
        if cand.exists():
            return cand
    return None


class _ImageCache:
    """The last few images and masks read (lesions of one visit share an image)."""

    def __init__(self) -> None:
        self.items: dict[tuple, Volume] = {}

    def get(self, path: Path, series_uid: str | None, volume_index: int | None = None) -> Volume:
        """The image at ``path`` (its series ``series_uid``, its volume ``volume_index``)."""
        from ..io.reader import read_image

        key = (str(path), series_uid, volume_index)
        if key not in self.items:
            if len(self.items) >= 4:
                self.items.pop(next(iter(self.items)))
            kwargs = {"series_uid": series_uid} if series_uid else {}
            if volume_index is not None:
                kwargs["volume_index"] = volume_index
            self.items[key] = read_image(path, **kwargs)
        return self.items[key]


def _load_mask(path: Path, cache: _ImageCache) -> Volume:
    vol = cache.get(path, None)
    arr = np.asarray(vol.array)
    return vol.with_array(arr > 0) if arr.dtype != bool else vol


def build_report(out_dir: str | Path, *, method: str | None = None, n_levels: int = 5,
                 embed_images: bool = False, title: str = "volumetry QC report",
                 images: Mapping[tuple[str, str, str], Any] | None = None) -> Path:
    """Write the HTML QC report of a pipeline output folder.

    Parameters
    ----------
    out_dir : str or Path
        Output folder of ``volumetry run`` (holds ``volumes.csv``).
    method : str, optional
        Method shown in the waterfall and spider plots (default: the most
        frequent method of the table).
    n_levels : int
        Tiles per overlay montage (anatomical levels chosen on the baseline).
    embed_images : bool
        Embed every picture as a ``data:`` URI (one self-contained file)
        instead of linking ``img/*.png`` relatively.
    title : str
        Page title.
    images : mapping, optional
        Image of each scan, keyed by ``(subject_id, visit, lesion_id)`` as in
        the tables, valued ``path``, ``(path, series_uid)`` or
        ``(path, series_uid, volume_index)``. Overrides the ``scans.image``
        paths of the database (which a pseudonymised run withholds): the runner
        can pass the paths in-process so that overlays are drawn without
        storing any path. Without a ``volume_index`` here, the volume the
        measurement records (``measurements.data`` → ``image.volume_index``)
        is drawn.

    Returns
    -------
    Path
        ``<out_dir>/report/index.html``.

    Raises
    ------
    InputError
        If ``out_dir`` is not a folder or holds no ``volumes.csv``.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    volumes_csv = out_dir / VOLUMES_CSV
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: no such output folder; give the folder 'volumetry run --out' wrote")
    if not volumes_csv.is_file():
        raise InputError(f"{out_dir}: no {VOLUMES_CSV} in it; is this the output folder of 'volumetry run'? "
                         "run the pipeline first")
    df = _read_csv(volumes_csv)
    for col in ("subject_id", "visit"):
        if col not in df.columns:
            raise InputError(f"{volumes_csv}: column {col!r} is missing; the table was not written by "
                             "this volumetry (see docs/tables.md)")
    if "lesion_id" not in df.columns:
        df["lesion_id"] = "1"
    summary = _read_csv(out_dir / SUMMARY_CSV) if (out_dir / SUMMARY_CSV).is_file() else pd.DataFrame()

    report_dir = out_dir / REPORT_DIRNAME
    img_dir = report_dir / "img"
    for parts in ((REPORT_DIRNAME,), (REPORT_DIRNAME, "img"), (REPORT_DIRNAME, REPORT_PAGE)):
        safe_join(out_dir, *parts)  # a link to outside the output folder is refused, never written through
    img_dir.mkdir(parents=True, exist_ok=True)
    for old in list(img_dir.glob("ov-*.png")) + list(img_dir.glob("ov-*.json")) + list(img_dir.glob("spider.png")):
        old.unlink()

    def publish(png: bytes, name: str) -> str:
        if embed_images:
            return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        (img_dir / name).write_bytes(png)
        return f"img/{name}"

    method = method or primary_method(df)
    series = subject_series(df, method)
    wf = waterfall_svg(series)
    spider = spider_png(series)
    spider_src = publish(spider, "spider.png") if spider is not None else None

    db = _Db(out_dir / DB_NAME)
    try:
        run_rows = db.rows("runs", ("run_id", "started_at", "finished_at", "status", "package_version",
                                    "pipeline_hash", "n_scans", "n_computed", "n_cached", "n_failed",
                                    "pseudonymized"),
                           order="run_id")
        db_failures = db.rows("failures", ("subject_id", "visit", "lesion_id", "stage", "error_type", "message"))
        files = db.scan_files()
    finally:
        db.close()
    if run_rows and run_rows[-1].get("pseudonymized"):
        for sf in files.values():  # pseudo UIDs: a series is chosen by the images given in-process
            sf.series_uid, sf.recorded_uid_selects = None, False
    for key, value in (images or {}).items():
        path, uid, volume = (tuple(value) + (None, None))[:3] if isinstance(value, tuple) else (value, None, None)
        sf = files.setdefault(tuple(str(k) for k in key), _ScanFiles())
        sf.image = str(path)
        if uid:
            sf.series_uid = str(uid)
        if volume is not None:
            sf.volume_index = _volume_index({"volume_index": volume})
    run = run_rows[-1] if run_rows else {}
    running = run.get("status") == "running"  # the run builds its report before it closes its row
    run_info = {"run": run.get("run_id"), "started": run.get("started_at"),
                "finished": None if running else run.get("finished_at"),
                "status": None if running else run.get("status"), "scans": run.get("n_scans"), "failed": run.get("n_failed"),
                "pipeline": (run.get("pipeline_hash") or "")[:12], "volumetry": run.get("package_version"),
                "report by volumetry": __version__}

    failures, failure_cols = _failures(df, db_failures)
    flag_rows, flag_cols = _flag_rows(df)
    subjects = _subjects(df, files, out_dir, img_dir, publish, n_levels, embed_images, method)

    page = page_html.StudyPage(
        title=title, run_info=run_info,
        summary_rows=_records(summary), summary_columns=list(summary.columns),
        waterfall_svg=wf, spider_src=spider_src, failures=failures, failure_columns=failure_cols,
        flag_rows=flag_rows, flag_columns=flag_cols, subjects=subjects, method=method,
        not_evaluable=sorted(set(df["subject_id"].dropna().astype(str)) - {s.subject_id for s in series}),
    )
    out = report_dir / REPORT_PAGE
    out.write_text(page_html.render_page(page), encoding="utf-8")
    log.info("wrote the QC report %s (%d subjects, %d waterfall bars)", out, len(subjects), len(series))
    return out


def _failures(df, db_failures: list[dict]) -> tuple[list[dict], list[str]]:
    cols = ["subject_id", "visit", "lesion_id", "method", "stage", "status", "reason"]
    rows: list[dict] = []
    seen = set()
    for f in db_failures:
        key = (str(f.get("subject_id")), str(f.get("visit")), str(f.get("lesion_id")))
        seen.add(key)
        rows.append({"subject_id": f.get("subject_id"), "visit": f.get("visit"), "lesion_id": f.get("lesion_id"),
                     "stage": f.get("stage"), "status": f.get("error_type"), "reason": f.get("message")})
    if "status" in df.columns:
        bad = df[~df["status"].fillna("").astype(str).str.lower().isin(OK_STATUSES)]
        for r in _records(bad):
            key = (str(r.get("subject_id")), str(r.get("visit")), str(r.get("lesion_id")))
            if key in seen:  # the database's failure row says more (stage, error type)
                continue
            rows.append({"subject_id": r.get("subject_id"), "visit": r.get("visit"),
                         "lesion_id": r.get("lesion_id"), "method": r.get("method"), "stage": "",
                         "status": r.get("status"), "reason": r.get("reason") or r.get("status_reason")})
    return rows, cols


def _flag_rows(df) -> tuple[list[dict], list[str]]:
    """One row per subject × lesion × visit with the union of its flags over methods."""
    if "flags" not in df.columns:
        return [], []
    flagged = df[df["flags"].fillna("").astype(str).str.strip() != ""]
    keys = [c for c in ("subject_id", "lesion_id", "visit") if c in df.columns]
    rows = []
    for key, g in flagged.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        flags = sorted({f.strip() for v in g["flags"].astype(str) for f in v.split(";") if f.strip()})
        row = dict(zip(keys, key))
        if "method" in g.columns:
            row["methods"] = ", ".join(sorted(set(g["method"].dropna().astype(str))))
        row["flags"] = ";".join(flags)
        rows.append(row)
    cols = keys + (["methods"] if "method" in df.columns else []) + ["flags"]
    return rows, cols


def _subjects(df, files, out_dir: Path, img_dir: Path, publish, n_levels: int, embed: bool,
              method: str | None = None):
    import pandas as pd

    cols = [c for c in page_html.MEASUREMENT_COLUMNS if c in df.columns]
    d = df.assign(_days=pd.to_numeric(df["days_from_baseline"], errors="coerce")
                  if "days_from_baseline" in df.columns else 0.0)
    cache = _ImageCache()
    sections = []
    n_img = 0
    for s_idx, (subject, g) in enumerate(d.groupby(d["subject_id"].astype(str), sort=True)):
        g = g.sort_values(["lesion_id", "_days", "visit"], kind="stable")
        flags = sorted({f.strip() for v in g.get("flags", pd.Series(dtype=str)).fillna("").astype(str)
                        for f in v.split(";") if f.strip()})
        shown = g[g["method"].astype(str) == method] if method and "method" in g.columns else g
        section = page_html.SubjectSection(subject, f"subject-{s_idx + 1}", _records(shown[cols]), cols,
                                           flags=flags, method=method if len(shown) < len(g) else None,
                                           all_measurements=_records(g[cols]) if len(shown) < len(g) else [])
        for lesion, lg in g.groupby(g["lesion_id"].astype(str), sort=True):
            if lesion.lower() in ("total", "all", "sum"):
                continue
            visits = lg.drop_duplicates("visit").sort_values(["_days", "visit"], kind="stable")
            plan = None
            for v in _records(visits):
                visit = str(v["visit"])
                n_img += 1
                heading = f"lesion {lesion}, visit {visit}" + (f" (day {v['_days']:.0f})" if v.get("_days") is not None
                                                               and np.isfinite(v["_days"]) else "")
                view, plan = _overlay(files.get((subject, visit, lesion)), v, out_dir, img_dir, publish, cache,
                                      plan, n_levels, n_img, embed)
                view.heading = heading
                view.visit, view.lesion_id = visit, lesion
                section.overlays.append(view)
        sections.append(section)
    return sections


def _overlay(sf: _ScanFiles | None, row: dict, out_dir: Path, img_dir: Path, publish, cache: _ImageCache,
             plan: ViewPlan | None, n_levels: int, n: int, embed: bool
             ) -> tuple[page_html.OverlayView, ViewPlan | None]:
    """Render one visit's montage at the plan's levels (the plan is made on the first
    visit with a non-empty mask, i.e. the baseline when it has one); failures become a note."""
    view = page_html.OverlayView("", "", None)
    sf = sf or _ScanFiles()
    image_path = _resolve(sf.image or row.get("image_path") or row.get("image"), out_dir)
    mask_path = _resolve(row.get("mask_path") or sf.mask, out_dir)
    if image_path is None:
        view.note = "no overlay: the image of this scan is not available"
        return view, plan
    try:
        series_uid = sf.series_uid or (row.get("series_uid") if sf.recorded_uid_selects else None)
        if not (isinstance(series_uid, str) and series_uid and image_path.is_dir()):
            series_uid = None  # a series UID selects within a DICOM folder only
        image = cache.get(image_path, series_uid, sf.volume_index)
        mask = _load_mask(mask_path, cache) if mask_path is not None else None
        if mask is not None and not image.same_grid(mask):
            view.note = "mask not on the image's grid: contour not drawn"
            mask = None
        elif mask is None:
            view.note = "no mask for this scan: image only"
        if plan is None and mask is not None and mask.array.any():
            plan = plan_views(mask, n_levels)
            view_plan = plan
        else:
            view_plan = _carried(plan, sf.registration)
            if view_plan is not plan:
                view.note = (view.note + "; " if view.note else "") + \
                    "levels carried from the baseline by the registration"
        montage = render_montage(image, mask, view_plan, n_levels=n_levels)
    except (VolumetryError, OSError, ValueError) as exc:
        log.warning("overlay of %s / %s not drawn: %s", row.get("subject_id"), row.get("visit"), exc)
        view.note = f"no overlay: the image could not be read ({type(exc).__name__})"
        return view, plan
    if not embed:
        save_montage(montage, img_dir / f"ov-{n}.png")
        view.src = f"img/ov-{n}.png"
    else:
        view.src = publish(montage.png, f"ov-{n}.png")
    view.captions = [t.caption for t in montage.tiles]
    if montage.outside_fraction > 0:
        pct = 100 * montage.outside_fraction
        view.warning = (f"{'< 1' if pct < 1 else f'{pct:.0f}'} % of this mask lies outside the zoomed views "
                        "(last tile: the whole slice holding most of it)")
    description = image.meta.get("description")
    if description:
        view.series = str(description)
    return view, plan


def _carried(plan: ViewPlan | None, registration: dict | None) -> ViewPlan | None:
    """The baseline plan mapped by the scan's registration (baseline -> follow-up), when known."""
    if plan is None or not registration:
        return plan
    try:
        return plan.mapped(registration["matrix"], registration["translation_mm"],
                           registration["fixed_parameters"])
    except (KeyError, InputError) as exc:
        log.warning("registration of a scan unusable for its overlay (%s); scanner coordinates used", exc)
        return plan


def overlay_index(report_dir: str | Path) -> dict[str, Any]:
    """Tile captions of every montage in a report folder (for tools and tests)."""
    img = Path(report_dir) / "img"
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(img.glob("ov-*.json"))}
