"""Record a benchmark's section in ``benchmarks/RESULTS.md`` (shared by the benchmark scripts).

Each script owns one ``## <heading>`` section; writing it replaces that section (up to the next
``## `` heading) and leaves every other section as it is, or appends it when absent.
"""
from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section ``heading`` (a ``## …`` line) of ``path`` with ``body``.

    Parameters
    ----------
    heading : str
        The section's heading line, e.g. ``"## Pipeline (benchmarks/pipeline.py)"``.
    body : str
        The section's text below the heading (Markdown).
    path : Path
        The results file (created with a ``# Benchmark results`` title when absent).
    """
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    section = [heading, "", body.strip("\n"), ""]
    out, skip, done = [], False, False
    for line in old.splitlines():
        if line.strip() == heading.strip():
            skip, done = True, True
            out.extend(section)
            continue
        if skip and line.startswith("## "):
            skip = False
        if not skip:
            out.append(line)
    if not done:
        if out and out[-1].strip():
            out.append("")
        out.extend(section)
    path.write_text("\n".join(out).rstrip("\n") + "\n")
