"""The study page of the QC report, as one HTML string.

Every text that comes from the data (DICOM tags, the manifest, table cells,
failure messages) goes through :func:`esc` (``html.escape`` with quotes), so a
series description of ``<script>alert(1)</script>`` is shown as text, never run.
The page loads nothing from the network: styles are inline, plots are an
inline SVG (waterfall) and images linked relatively or embedded as ``data:``
URIs, and a Content-Security-Policy forbids scripts, remote fonts and remote
images altogether.

This module only formats values it is given; :mod:`volumetry.report.build`
reads the output folder.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

#: Columns of the tidy table shown per subject, in this order when present.
MEASUREMENT_COLUMNS = (
    "lesion_id", "visit", "course", "scan_date", "days_from_baseline", "method", "series_description",
    "volume_ml", "volume_low_ml", "volume_high_ml", "baseline_volume_ml", "percent_change", "nadir_volume_ml",
    "percent_change_from_nadir", "response", "response_confirmed", "best_response", "d1_mm", "d2_mm", "d3_mm",
    "status", "reason", "flags",
)

#: Digits shown for floating-point columns (by suffix).
_DIGITS = {"_ml": 2, "percent_change": 1, "_mm": 1, "days_from_baseline": 0}

_CSP = ("default-src 'none'; img-src 'self' data: file:; style-src 'unsafe-inline'; "
        "script-src 'none'; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1400px;padding:0 16px 40px;
color:#1d1d1f;background:#fff}
h1{font-size:1.5em;margin:18px 0 4px}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
h3{font-size:1.05em;margin:18px 0 6px}h4{font-size:.95em;margin:12px 0 4px}
table{border-collapse:collapse;font-size:.82em;margin:6px 0 12px}
th,td{border:1px solid #d0d0d0;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#555;font-size:.85em}.flag{color:#9a3412}.fail{color:#b91c1c}
.plots{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.plots figure{margin:0}.plots svg{max-width:100%;height:auto}
figure.overlay{margin:6px 0 14px}figure.overlay img{max-width:100%;image-rendering:pixelated;display:block}
figcaption{font-size:.8em;color:#444}.empty{color:#666;font-style:italic}
nav a{margin-right:10px;font-size:.85em}summary{cursor:pointer;font-size:.85em;color:#333}.scroll{overflow-x:auto}
.resp{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:4px;vertical-align:-1px}
"""


def esc(value: Any) -> str:
    """Text of a value for HTML (escaped, quotes too); NaN/None become an empty string."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return html.escape(str(value), quote=True)


def fmt_cell(column: str, value: Any) -> tuple[str, bool]:
    """Escaped text of one table cell and whether it is numeric."""
    if value is None:
        return "", False
    if isinstance(value, bool):
        return esc(value), False
    if isinstance(value, (int, float)) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iuf"):
        v = float(value)
        if math.isnan(v):
            return "", True
        digits = next((d for suffix, d in _DIGITS.items() if column.endswith(suffix)), None)
        if digits is None:
            text = f"{int(v)}" if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
        else:
            text = f"{v:.{digits}f}"
        return esc(text), True
    if column == "flags":
        return esc(str(value).replace(";", "; ")), False
    return esc(value), False


def table_html(rows: Sequence[dict], columns: Sequence[str], *, css_class: str = "", table_id: str = "") -> str:
    """An HTML table of ``rows`` (dicts) over ``columns``; every cell escaped."""
    if not rows:
        return '<p class="empty">none</p>'
    attrs = (f' class="{esc(css_class)}"' if css_class else "") + (f' id="{esc(table_id)}"' if table_id else "")
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            text, num = fmt_cell(c, r.get(c))
            cells.append(f'<td class="num">{text}</td>' if num else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


@dataclass
class OverlayView:
    """One overlay montage of a subject's visit (src relative to the page, or a data: URI)."""

    visit: str
    lesion_id: str
    src: str | None
    captions: list[str] = field(default_factory=list)
    note: str = ""
    heading: str = ""
    series: str = ""  #: series description (from the image's DICOM tags; escaped when shown)
    warning: str = ""  #: shown above the picture (e.g. mask outside the zoomed views)


@dataclass
class SubjectSection:
    """Everything shown for one subject."""

    subject_id: str
    anchor: str
    measurements: list[dict]
    columns: list[str]
    overlays: list[OverlayView] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    method: str | None = None  #: when set, ``measurements`` hold this method only ...
    all_measurements: list[dict] = field(default_factory=list)  #: ... and these every method


@dataclass
class StudyPage:
    """Everything shown on the study page."""

    title: str
    run_info: dict
    summary_rows: list[dict]
    summary_columns: list[str]
    waterfall_svg: str
    spider_src: str | None
    failures: list[dict]
    failure_columns: list[str]
    flag_rows: list[dict]
    flag_columns: list[str]
    subjects: list[SubjectSection]
    method: str | None = None
    not_evaluable: list[str] = field(default_factory=list)  #: subjects without a bar


def _overlay_html(ov: OverlayView) -> str:
    series = f' <span class="meta">series: <span class="series">{esc(ov.series)}</span></span>' if ov.series else ""
    head = f"<h4>{esc(ov.heading)}{series}</h4>" if ov.heading or series else ""
    if ov.src is None:
        return f'{head}<p class="empty">{esc(ov.note or "no overlay")}</p>'
    caption = " · ".join(esc(c) for c in ov.captions)
    if ov.note:
        caption = (caption + " — " if caption else "") + esc(ov.note)
    if ov.warning:
        head += f'<p class="flag overlay-warning">{esc(ov.warning)}</p>'
    alt = esc(f"mask contour on visit {ov.visit}, lesion {ov.lesion_id}")
    return (f'{head}<figure class="overlay"><img src="{esc(ov.src)}" alt="{alt}" loading="eager">'
            f"<figcaption>{caption}</figcaption></figure>")


def _subject_html(s: SubjectSection) -> str:
    parts = [f'<section class="subject" id="{esc(s.anchor)}" data-subject="{esc(s.subject_id)}">',
             f"<h3>Subject {esc(s.subject_id)}</h3>"]
    if s.flags:
        parts.append('<p class="flag">QC flags: ' + ", ".join(esc(f) for f in s.flags) + "</p>")
    if s.method:
        parts.append(f'<p class="meta">Measurements by the {esc(s.method)} method:</p>')
    parts.append(table_html(s.measurements, s.columns, css_class="measurements"))
    if s.all_measurements:
        parts.append("<details><summary>every method</summary>"
                     + table_html(s.all_measurements, s.columns, css_class="measurements-all") + "</details>")
    parts.extend(_overlay_html(ov) for ov in s.overlays)
    parts.append("</section>")
    return "\n".join(parts)


def render_page(page: StudyPage) -> str:
    """The whole report page (UTF-8 HTML5 string)."""
    info = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in page.run_info.items() if v not in (None, ""))
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.subject_id)}</a>' for s in page.subjects)
    spider = (f'<figure><img id="spider" src="{esc(page.spider_src)}" alt="spider plot of percent change over '
              'weeks from baseline"></figure>' if page.spider_src else
              '<p class="empty">No spider plot: no subject has an evaluable follow-up.</p>')
    method = f" (method: {esc(page.method)})" if page.method else ""
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(page.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(page.title)}</h1>",
        f'<p class="meta">{info}</p>' if info else "",
        f"<nav>{nav}</nav>" if nav else "",
        '<h2 id="summary">Per-course summary</h2>',
        table_html(page.summary_rows, page.summary_columns, table_id="summary-table"),
        f'<h2 id="plots">Response{method}</h2>',
        f'<div class="plots"><figure>{page.waterfall_svg}</figure>{spider}</div>',
        (f'<p class="meta" id="not-evaluable">No evaluable follow-up (no bar): '
         f'{", ".join(esc(s) for s in page.not_evaluable)}</p>' if page.not_evaluable else ""),
        '<h2 id="failures">Failed scans</h2>',
        table_html(page.failures, page.failure_columns, css_class="fail", table_id="failures-table"),
        '<h2 id="flags">QC flags</h2>',
        table_html(page.flag_rows, page.flag_columns, table_id="flags-table"),
        '<h2 id="subjects">Subjects</h2>',
        "\n".join(_subject_html(s) for s in page.subjects) or '<p class="empty">no subject</p>',
        "</body></html>",
    ]
    return "\n".join(p for p in body if p) + "\n"
