"""Run a study through the pipeline: every volume, percent change and failure in one run.

STUDY is a manifest CSV, a folder holding manifest.csv, or a DICOM tree (with a
seeds.csv side file); default: ./sample_data. The pipeline file defaults to
./pipelines/vascular-anomalies-rapamycin.yaml (else the copy shipped with the
package). Results go to --out (default ./volumetry-out): volumes.csv,
volumes.parquet, summary.csv, results.sqlite and the masks in a BIDS-derivatives
layout. Re-running recomputes only the scans whose inputs changed.

Exit status: 0 when every scan was measured, 1 when any scan failed (the
summary lists them), 2 for bad input (study, manifest or pipeline file).
"""
from __future__ import annotations

import argparse
import sys

HELP = "run a study (manifest or DICOM tree) through the pipeline into an output folder"

#: Study used when none is given (relative to the current folder).
DEFAULT_STUDY = "sample_data"
#: Output folder used when none is given.
DEFAULT_OUT = "volumetry-out"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", nargs="?", default=None, metavar="STUDY",
                        help=f"manifest CSV, folder with manifest.csv, or DICOM tree (default: ./{DEFAULT_STUDY})")
    parser.add_argument("--pipeline", metavar="FILE", help="pipeline YAML (default: the trial's, see above)")
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    parser.add_argument("--jobs", metavar="N", type=_positive_int, default=None,
                        help="local worker processes (default: all cores)")
    parser.add_argument("--dask", metavar="ADDRESS", default=None,
                        help="run the scans on an existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--pseudonymize", action="store_true",
                        help="replace subject identifiers in every output by keyed hashes and move each "
                             "subject's dates back by a keyed number of days, intervals kept "
                             "(key: $VOLUMETRY_PSEUDONYM_KEY or <out>/pseudonym.key)")
    parser.add_argument("--keep-dates", action="store_true",
                        help="with --pseudonymize: show the real scan dates (they identify the patient)")
    parser.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import find_default_pipeline, load_pipeline
    from ..errors import InputError
    from ..pipeline import run_study

    if args.study is None:
        study = Path(DEFAULT_STUDY)
        if not study.exists():
            raise InputError(
                f"no STUDY given and ./{DEFAULT_STUDY} does not exist in {Path.cwd()}; give a manifest or study "
                f"folder, or make the sample trial with 'volumetry phantom --trial {DEFAULT_STUDY}'")
    else:
        study = Path(args.study)
    if args.keep_dates and not args.pseudonymize:
        raise InputError("--keep-dates applies only with --pseudonymize (without it every date is shown as given); "
                         "add --pseudonymize, or leave --keep-dates out")
    pipeline = Path(args.pipeline) if args.pipeline else find_default_pipeline()
    cfg = load_pipeline(pipeline)
    summary = run_study(study, cfg, args.out, jobs=args.jobs, dask_address=args.dask,
                        pseudonymize=args.pseudonymize, keep_dates=args.keep_dates,
                        progress=False if args.no_progress else None,
                        argv=sys.argv[1:])
    out = sys.stdout
    if summary.n_computed == 0:
        print(f"Nothing recomputed: all {summary.n_scans} scans unchanged since the last run "
              f"({summary.n_cached} from the results database).", file=out)
    else:
        print(f"Processed {summary.n_scans} scans: {summary.n_computed} computed, {summary.n_cached} unchanged "
              f"(cached), {summary.n_failed} failed; {len(summary.assessed)} subject(s) re-assessed "
              f"in {summary.elapsed_s:.1f} s.", file=out)
    print(f"Results in {summary.out_dir}:", file=out)
    for name in ("volumes_csv", "volumes_parquet", "summary_csv", "database"):
        if name in summary.outputs:
            print(f"  {Path(summary.outputs[name]).name}", file=out)
    if "masks" in summary.outputs:
        print("  sub-*/ses-*/anat/*_desc-lesion_mask.nii.gz", file=out)
        if next(summary.out_dir.glob("sub-*/ses-*/anat/*_desc-lesion_mask.dcm"), None) is not None:
            print("  sub-*/ses-*/anat/*_desc-lesion_mask.dcm (DICOM SEG)", file=out)
    if "report" in summary.outputs:
        print(f"  {Path(summary.outputs['report']).relative_to(summary.out_dir)}", file=out)
    if summary.failures:
        print(f"{summary.n_failed} scan(s) FAILED:", file=sys.stderr)
        for f in summary.failures:
            print(f"  {f.line()}", file=sys.stderr)
        return 1
    return 0
