"""Trial plots: waterfall of each subject's best percent change, spider plot over weeks.

Input is the tidy table of :mod:`volumetry.tables` (one row per subject ×
lesion × visit × method). Each subject contributes one series: its
``"total"`` lesion rows when the table has them (the sum over a subject's
lesions), its only lesion otherwise, or else the sum of its lesions' volumes
at every visit where all of them were measured.

Plots are drawn with matplotlib's object API (no pyplot state, so safe in
threads and workers): the waterfall as an inline SVG whose bars carry
``class="bar"`` and ``data-subject`` / ``data-percent-change`` /
``data-response`` attributes (the page and its tests read the plot itself),
the spider plot as a PNG (Agg).
"""
from __future__ import annotations

import html
import io
import logging
import re
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Colours by response category (matched on lower-case words / abbreviations).
RESPONSE_COLOURS = {
    "cr": "#1a9850", "complete": "#1a9850",
    "pr": "#66bd63", "partial": "#66bd63",
    "mr": "#a6d96a", "minor": "#a6d96a",
    "sd": "#9e9e9e", "stable": "#9e9e9e",
    "pd": "#d73027", "progress": "#d73027",
    "ne": "#d9d9d9", "not evaluable": "#d9d9d9",
}
#: Colour of a response the table does not name.
OTHER_COLOUR = "#5e3c99"
#: Lesion ids that mean "all lesions of the subject together" (volumetry.tables.TOTAL is "total").
TOTAL_LESION_IDS = ("total", "all", "sum")
#: Methods preferred for the plots, in order (volumetry.tables.METHODS).
PREFERRED_METHODS = ("voxel", "mesh", "ellipsoid-mri", "ellipsoid-us")
#: Row statuses whose percent change is plotted ("empty": the lesion is gone, -100 %).
PLOTTED_STATUSES = ("ok", "empty")


def response_colour(response: object) -> str:
    """Hex colour for a response label (``"PR"``, ``"partial response"`` ...)."""
    text = str(response or "").strip().lower()
    if text in RESPONSE_COLOURS:
        return RESPONSE_COLOURS[text]
    for key, colour in RESPONSE_COLOURS.items():
        if len(key) > 2 and key in text:
            return colour
    return OTHER_COLOUR


@dataclass(frozen=True)
class SubjectSeries:
    """One subject's percent change (%) over weeks from baseline, and its best response."""

    subject_id: str
    weeks: np.ndarray
    percent_change: np.ndarray
    best_percent_change: float
    best_response: str


def primary_method(df) -> str | None:
    """The method plotted: the first of :data:`PREFERRED_METHODS` in the table,
    else the most frequent one (ties: first in order)."""
    if "method" not in df.columns or df.empty:
        return None
    methods = df["method"].dropna().astype(str)
    for m in PREFERRED_METHODS:
        if (methods == m).any():
            return m
    counts = methods.value_counts(sort=False)
    return str(counts.idxmax()) if len(counts) else None


def subject_series(df, method: str | None = None) -> list[SubjectSeries]:
    """Per-subject percent change series from the tidy table.

    Parameters
    ----------
    df : pandas.DataFrame
        Tidy table with ``subject_id, lesion_id, visit, days_from_baseline,
        method, volume_ml, baseline_volume_ml, percent_change, response,
        best_response, status``.
    method : str, optional
        Method to plot (default :func:`primary_method`).

    Returns
    -------
    list of SubjectSeries
        Subjects with at least one evaluable follow-up (a finite percent
        change at ``days_from_baseline > 0``), in subject order.
    """
    import pandas as pd

    if df.empty:
        return []
    method = method or primary_method(df)
    d = df[df["method"].astype(str) == method] if method is not None and "method" in df.columns else df
    if "status" in d.columns:
        d = d[d["status"].fillna("ok").astype(str).str.lower().isin(PLOTTED_STATUSES)]
    out: list[SubjectSeries] = []
    for subject, g in d.groupby(d["subject_id"].astype(str), sort=True):
        lesions = g["lesion_id"].astype(str) if "lesion_id" in g.columns else pd.Series(["1"] * len(g), g.index)
        total = g[lesions.str.lower().isin(TOTAL_LESION_IDS)]
        if not total.empty:
            rows = total.assign(pc=pd.to_numeric(total["percent_change"], errors="coerce"))
        elif lesions.nunique() == 1:
            rows = g.assign(pc=pd.to_numeric(g["percent_change"], errors="coerce"))
        else:
            rows = _sum_lesions(g, lesions.nunique())
        rows = rows.assign(days=pd.to_numeric(rows["days_from_baseline"], errors="coerce"))
        rows = rows[np.isfinite(rows["days"])].sort_values("days")
        follow = rows[(rows["days"] > 0) & np.isfinite(rows["pc"])]
        if follow.empty:
            continue
        best_idx = follow["pc"].idxmin()
        best_resp = ""
        if "best_response" in follow.columns and follow["best_response"].notna().any():
            best_resp = str(follow["best_response"].dropna().iloc[-1])
        elif "response" in follow.columns:
            best_resp = str(follow.loc[best_idx, "response"])
        base = rows[rows["days"] <= 0]
        weeks = np.r_[[0.0] if not base.empty else [], follow["days"].to_numpy(float) / 7.0]
        pcs = np.r_[[0.0] if not base.empty else [], follow["pc"].to_numpy(float)]
        out.append(SubjectSeries(str(subject), weeks, pcs, float(follow.loc[best_idx, "pc"]), best_resp))
    return out


def _sum_lesions(g, n_lesions: int):
    """Rows per visit with the sum of all lesions' volumes (only visits where all were measured)."""
    import pandas as pd

    rows = []
    for _, v in g.groupby(g["visit"].astype(str), sort=False):
        vol = pd.to_numeric(v["volume_ml"], errors="coerce")
        base = pd.to_numeric(v["baseline_volume_ml"], errors="coerce")
        ok = len(v) == n_lesions and np.isfinite(vol).all() and np.isfinite(base).all() and base.sum() > 0
        pc = 100.0 * (vol.sum() / base.sum() - 1.0) if ok else np.nan
        rows.append({"days_from_baseline": v["days_from_baseline"].iloc[0], "pc": pc,
                     "response": "", "best_response": np.nan})
    return pd.DataFrame(rows)


def _svg_text(fig) -> str:
    """SVG markup of a figure without XML prolog (for inlining in HTML)."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "volumetry"}):
        FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None, "Creator": "volumetry"})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # RDF boilerplate with URLs
    return text[text.index("<svg"):]


def waterfall_svg(series: list[SubjectSeries], *, title: str = "Best percent change from baseline") -> str:
    """Waterfall plot as inline SVG markup: one ``<g class="bar">`` per subject.

    Bars are sorted from the largest increase to the largest decrease; each
    bar's ``<g>`` carries ``data-subject`` (escaped), ``data-percent-change``
    (%, one decimal) and ``data-response``.

    Parameters
    ----------
    series : list of SubjectSeries
        From :func:`subject_series`.
    title : str
        Plot title.

    Returns
    -------
    str
        ``<svg ...>...</svg>`` (no network resources), or a short paragraph
        when no subject is evaluable.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not series:
        return '<p class="empty" id="waterfall-empty">No subject has an evaluable follow-up yet.</p>'
    ordered = sorted(series, key=lambda s: -s.best_percent_change)
    values = [s.best_percent_change for s in ordered]
    fig = Figure(figsize=(max(5.0, 0.35 * len(ordered) + 2.0), 3.6), dpi=96)
    ax = fig.add_subplot()
    bars = ax.bar(range(len(ordered)), values, color=[response_colour(s.best_response) for s in ordered],
                  edgecolor="#333333", linewidth=0.5)
    for n, patch in enumerate(bars.patches):
        patch.set_gid(f"wf-bar-{n}")
    ax.axhline(0, color="#333333", linewidth=0.8)
    ax.set_xticks(range(len(ordered)), [s.subject_id for s in ordered], rotation=90, fontsize=7)
    ax.set_ylabel("best change from baseline (%)")
    ax.set_title(title, fontsize=10)
    lo, hi = min(values + [0.0]), max(values + [0.0])
    ax.set_ylim(min(lo * 1.1, -10), max(hi * 1.1, 10))
    labels = sorted({s.best_response for s in ordered})
    ax.legend(handles=[Patch(facecolor=response_colour(r), label=r or "not given") for r in labels],
              fontsize=7, loc="best", frameon=False)
    fig.tight_layout()
    svg = _svg_text(fig)
    for n, s in enumerate(ordered):
        attrs = (f'id="wf-bar-{n}" class="bar" data-subject="{html.escape(s.subject_id, quote=True)}" '
                 f'data-percent-change="{s.best_percent_change:.1f}" '
                 f'data-response="{html.escape(s.best_response, quote=True)}"')
        svg, count = re.subn(rf'<g id="wf-bar-{n}">', f"<g {attrs}>", svg, count=1)
        if count != 1:  # pragma: no cover - matplotlib changed its SVG writer
            raise RuntimeError(f"matplotlib's SVG has no group for waterfall bar {n}")
    svg = svg.replace("<svg ", '<svg id="waterfall" role="img" aria-label="waterfall plot" '
                      f'data-n-bars="{len(ordered)}" ', 1)
    return svg


def spider_png(series: list[SubjectSeries], *, title: str = "Percent change over time") -> bytes | None:
    """Spider plot (percent change vs weeks from baseline, one line per subject) as PNG bytes.

    Returns
    -------
    bytes or None
        PNG (Agg, 96 dpi), or None when no subject is evaluable.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if not series:
        return None
    fig = Figure(figsize=(6.4, 3.8), dpi=96)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for s in series:
        ax.plot(s.weeks, s.percent_change, marker="o", markersize=3, linewidth=1.2,
                color=response_colour(s.best_response), alpha=0.9)
    ax.axhline(0, color="#333333", linewidth=0.8)
    ax.set_xlabel("weeks from baseline")
    ax.set_ylabel("change from baseline (%)")
    ax.set_title(title, fontsize=10)
    labels = sorted({s.best_response for s in series})
    ax.legend(handles=[Line2D([], [], color=response_colour(r), label=r or "not given") for r in labels],
              fontsize=7, loc="best", frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": "volumetry"})
    return buf.getvalue()
