"""Build the HTML QC report of an output folder of ``volumetry run``.

The report (``OUT_DIR/report/index.html`` with its pictures in
``OUT_DIR/report/img/``) shows the per-course summary, a waterfall plot of each
subject's best percent change, a spider plot over weeks, failed scans with their
reasons, QC flags, and per subject the overlay of the mask contour on the
lesion's slices at every visit (the same anatomical levels, chosen on the
baseline). It loads nothing from the network and opens from disk.

examples:
  volumetry report volumetry-out
  volumetry report volumetry-out --embed      # one self-contained HTML file
"""
from __future__ import annotations

import argparse

HELP = "build the HTML QC report (overlays, waterfall, spider) of an output folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``volumetry report``."""
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output folder written by 'volumetry run'")
    parser.add_argument("--method", help="segmentation method shown in the plots (default: the most frequent)")
    parser.add_argument("--levels", type=int, default=5, metavar="N",
                        help="slices per overlay montage (default: 5)")
    parser.add_argument("--embed", action="store_true",
                        help="embed the pictures in the HTML (one self-contained file)")


def run(args: argparse.Namespace) -> int:
    """Build the report and print its path. Returns 0."""
    from ..errors import InputError
    from ..report.build import build_report

    if args.levels < 1:
        raise InputError(f"--levels must be at least 1, got {args.levels}")
    path = build_report(args.out_dir, method=args.method, n_levels=args.levels, embed_images=args.embed)
    print(path)
    return 0
