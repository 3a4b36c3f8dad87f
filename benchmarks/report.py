"""Benchmark of the review report's per-scan work on a clinical-size series.

* ``render_montage``: 5 zoomed tiles of a 512×512×200 image (0.45×0.45×1 mm) with a
  30 mL lesion, with and without a far leak (whole-slice tile);
* ``write_seg`` / ``read_seg``: the same mask as a DICOM SEG on a 512×512×200 single-frame
  MR series written with pydicom (headers read from disk, every frame kept).

Prints a Markdown table (median of 3 warm runs, seconds) for benchmarks/RESULTS.md.
Run: ``python benchmarks/report.py``.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from volumetry.image import Volume  # noqa: E402
from volumetry.io.seg import read_seg, write_seg  # noqa: E402
from volumetry.report.overlays import plan_views, render_montage  # noqa: E402

SHAPE = (200, 512, 512)
SPACING = (0.45, 0.45, 1.0)


def timed(fn, n: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from test_seg import write_mr_series  # the test suite's pydicom series writer

    rng = np.random.default_rng(0)
    grid = Volume(np.zeros(SHAPE, np.int16), SPACING, (-115.0, -115.0, -100.0), np.eye(3))
    kk, jj, ii = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    r2 = (((ii - 256) * SPACING[0] / 24.0) ** 2 + ((jj - 256) * SPACING[1] / 16.0) ** 2
          + ((kk - 100) * SPACING[2] / 12.0) ** 2)
    lesion = r2 <= 1.0
    image = grid.with_array((300 + 40 * rng.standard_normal(SHAPE) + 600 * lesion).astype(np.int16))
    mask = grid.with_array(lesion)
    leak = lesion.copy()
    leak[20:40, 10:200, 10:200] = True
    leaky = grid.with_array(leak)
    plan = plan_views(mask, 5)
    rows = [
        ("render_montage, 5 tiles", timed(lambda: render_montage(image, mask, plan).png)),
        ("render_montage, 5 tiles + whole-slice tile (leak)", timed(lambda: render_montage(image, leaky, plan).png)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        files = write_mr_series(Path(tmp) / "series", image.array.clip(0).astype(np.uint16), SPACING,
                                grid.origin, grid.direction)
        out = Path(tmp) / "seg.dcm"
        rows.append(("write_seg (200 frames of 512×512)", timed(lambda: write_seg(mask, files, out))))
        rows.append(("read_seg without the image", timed(lambda: read_seg(out))))
        rows.append(("read_seg onto the image", timed(lambda: read_seg(out, image=image))))
        size_mb = out.stat().st_size / 1e6
    load = os.getloadavg()[0]
    print(f"512×512×200 int16, 30 mL lesion; median of 3 warm runs; 1-min load average {load:.1f}; "
          f"SEG size {size_mb:.1f} MB\n")
    print("| step | time (s) |")
    print("|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} |")


if __name__ == "__main__":
    main()
