"""Regression check on phantoms: measure a phantom suite with its ground-truth masks
and compare each volume with the truth and with the expected table stored with the
package. Exit status 1 and a per-case diff when any volume moved beyond its tolerance.

Examples::

    volumetry regress                       # quick set (16 cases), stored table
    volumetry regress --cases full --report regress.csv
    volumetry regress --cases full --write-expected my_expected.csv
"""
from __future__ import annotations

import argparse
import logging

HELP = "check measured phantom volumes against the truth and a stored expected table"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", choices=("quick", "full"), default="quick",
                        help="quick: 16 cases (default); full: the 48-case phantom suite")
    parser.add_argument("--case", action="append", metavar="NAME",
                        help="run only this case of the full suite (repeatable; names as in the expected table)")
    parser.add_argument("--expected", metavar="CSV", help="expected table (default: the one in the package)")
    parser.add_argument("--no-io", action="store_true",
                        help="measure the masks in memory (skip the DICOM/NIfTI write-read round trip)")
    parser.add_argument("--report", metavar="CSV", help="write every case's numbers to this CSV")
    parser.add_argument("--write-expected", metavar="CSV",
                        help="store this run's volumes as a new expected table (then exit 0)")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..regression import regression_cases, run_case, run_regression, write_expected

    cases = regression_cases(args.cases)
    if args.case:  # any case of the full suite
        full = regression_cases("full")
        unknown = sorted(set(args.case) - {c.name for c in full})
        if unknown:
            raise InputError(f"unknown regression case(s) {', '.join(unknown)}; "
                             f"e.g. {full[0].name} (the names are in the expected table)")
        cases = [c for c in full if c.name in set(args.case)]
    if args.write_expected:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="volumetry-regress-") as tmp:
            results = [run_case(s, io_roundtrip=not args.no_io, workdir=Path(tmp)) for s in cases]
        path = write_expected(results, args.write_expected)
        print(f"wrote {len(results)} expected volumes to {path}")
        return 0
    report = run_regression(cases=cases, expected=args.expected, io_roundtrip=not args.no_io,
                            progress=lambda name: log.info("case %s", name))
    if args.report:
        report.write_csv(args.report)
    print(report.table())
    if report.passed:
        print(f"regression check passed: {len(report.results)} cases within tolerance")
        return 0
    print()
    print(report.diff())
    print(f"regression check FAILED: {len(report.failures)} of {len(report.results)} cases beyond tolerance")
    return 1
