"""Phantom generator: speed and truth accuracy.

Prints (and with --record, writes to benchmarks/RESULTS.md, section "## Phantoms"):
* the time to generate the whole sample trial (24 scans, DICOM + NIfTI writing included);
* per-phantom generation time over the 48-case phantom suite;
* the voxelised truth mask's error against the analytic / Monte-Carlo truth, grouped by
  slice geometry (contiguous <= 3 mm, thicker, with a gap) and size.

Run: python benchmarks/phantoms.py [--record]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from volumetry.phantoms import make_lesion_phantom, phantom_suite
from volumetry.phantoms.trial import write_trial

from _results import write_section  # benchmarks/_results.py (the script's folder is on sys.path)

SECTION = "## Phantoms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", action="store_true", help="write the section into benchmarks/RESULTS.md")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = write_trial(Path(tmp) / "trial")
        trial_s = time.perf_counter() - t
    rows = []
    for spec in phantom_suite():
        t = time.perf_counter()
        ph = make_lesion_phantom(spec)
        dt = time.perf_counter() - t
        tr = ph.truth
        err = (tr["mask_volume_ml"] - tr["true_volume_ml"]) / tr["true_volume_ml"] * 100
        rows.append((spec, dt, err, ph.image.array.size, tr["true_volume_se_ml"] / tr["true_volume_ml"] * 100))
    load1 = os.getloadavg()[0]

    def group(name, sel):
        sub = [r for r in rows if sel(r[0])]
        e = np.array([r[2] for r in sub])
        return (f"| {name} | {len(sub)} | {np.mean(e):+.3f} | {np.mean(np.abs(e)):.3f} | {np.max(np.abs(e)):.3f} |")

    times = np.array([r[1] for r in rows])
    vox = np.array([r[3] for r in rows])
    lines = [
        SECTION,
        "",
        f"`python benchmarks/phantoms.py` — run {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}); 1-min load average {load0:.1f} / {load1:.1f} "
        "before/after (machine shared with other engineers: times are upper bounds).",
        "",
        f"* Whole sample trial (`volumetry phantom --trial`): {res['scans']} scans, {len(res['files'])} files, "
        f"**{trial_s:.1f} s** including DICOM and NIfTI writing.",
        f"* Phantom suite (48 specs, 0.5–200 mL, {vox.min() / 1e6:.2f}–{vox.max() / 1e6:.2f} M voxels): "
        f"median {np.median(times):.2f} s, max {times.max():.2f} s, total {times.sum():.1f} s per phantom "
        "(generation only, Monte-Carlo truth included).",
        "",
        "Voxelised truth mask vs true volume (%, mask = voxel count × voxel volume from the geometry):",
        "",
        "| group | cases | mean error | mean abs error | max abs error |",
        "|---|---|---|---|---|",
        group("≥ 1 mL, contiguous slices ≤ 3 mm (acceptance: ≤ 1 %)",
              lambda s: s.volume_ml >= 1 and s.slice_gap == 0 and s.slice_thickness <= 3),
        group("< 1 mL, contiguous", lambda s: s.volume_ml < 1 and s.slice_gap == 0),
        group("slices > 3 mm, contiguous", lambda s: s.slice_thickness > 3 and s.slice_gap == 0),
        group("slice gap (mask from the acquired slabs only)", lambda s: s.slice_gap > 0),
        "",
        f"Largest Monte-Carlo standard error of a truth: {max(r[4] for r in rows):.3f} % of the volume.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        write_section(SECTION, text[len(SECTION):])


if __name__ == "__main__":
    main()
