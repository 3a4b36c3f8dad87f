"""Make digital phantoms with known truth: one lesion phantom, or the synthetic trial.

Examples::

    volumetry phantom --shape lobulated --volume 12 --plane oblique --tilt 15 -10 \\
        --pixel 0.8 0.9 --thickness 3 --gap 1 --snr 15 --format dicom --out ph1
    volumetry phantom --trial sample_data
    volumetry phantom --suite suite_out --format dicom

A single phantom folder holds the image (``image/`` DICOM series or
``image.nii.gz``), the ground-truth mask ``mask.nii.gz`` and ``truth.json``.
"""
from __future__ import annotations

import argparse
import json

HELP = "make a phantom with known truth, or the synthetic sample trial"


def _finite(text: str) -> float:
    """A finite number (``nan`` and ``inf`` cannot make a phantom: its image would be NaN)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _at_least(low: int):
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more")
        return value
    return whole


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trial", metavar="DIR", help="write the synthetic sample trial into DIR (bit-for-bit)")
    parser.add_argument("--suite", metavar="DIR",
                        help="write the 48-case phantom suite into DIR with an index suite.csv (--format applies)")
    parser.add_argument("--seed", type=_at_least(0), default=None,
                        help="seed (default: 0 for a phantom, the committed trial's seed for --trial)")
    parser.add_argument("--out", metavar="DIR", help="output folder of a single phantom")
    parser.add_argument("--shape", default="lobulated",
                        help="sphere, ellipsoid, lobulated, infiltrative, cystic, septated or multifocal")
    parser.add_argument("--volume", type=_finite, default=10.0, help="true lesion volume, mL (default 10)")
    parser.add_argument("--plane", default="axial", help="axial, coronal, sagittal or oblique")
    parser.add_argument("--tilt", type=_finite, nargs=2, default=None, metavar=("A", "B"),
                        help="tilts (degrees) about the row and column axes (default 0 0; oblique: 15 -10)")
    parser.add_argument("--pixel", type=_finite, nargs=2, default=(1.0, 1.0), metavar=("SI", "SJ"),
                        help="pixel spacing along a row and down a column, mm")
    parser.add_argument("--thickness", type=_finite, default=3.0, help="slice thickness, mm")
    parser.add_argument("--gap", type=_finite, default=0.0, help="gap between slices, mm")
    parser.add_argument("--snr", type=_finite, default=20.0, help="lesion signal / noise sigma")
    parser.add_argument("--bias", type=_finite, default=0.15, help="bias field log-amplitude (0 = none)")
    parser.add_argument("--foci", type=_at_least(1), default=3, help="number of foci (multifocal)")
    parser.add_argument("--format", choices=("dicom", "nifti"), default="nifti", help="image format")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError

    if args.trial:
        from ..phantoms.trial import TRIAL_SEED, write_trial

        res = write_trial(args.trial, seed=TRIAL_SEED if args.seed is None else args.seed)
        print(json.dumps({"trial": str(args.trial), "subjects": res["subjects"], "scans": res["scans"],
                          "files": len(res["files"])}))
        return 0
    if args.suite:
        from ..phantoms import phantom_suite
        from ..phantoms.export import write_suite

        specs = phantom_suite()
        index = write_suite(specs, args.suite, image_format=args.format)
        print(json.dumps({"suite": str(args.suite), "cases": len(specs), "index": str(index)}))
        return 0
    if not args.out:
        raise InputError("give --out DIR for a single phantom, --trial DIR for the sample trial "
                         "or --suite DIR for the phantom suite")
    from ..phantoms import PhantomSpec, make_lesion_phantom
    from ..phantoms.export import write_phantom

    tilt = tuple(args.tilt) if args.tilt else ((15.0, -10.0) if args.plane == "oblique" else (0.0, 0.0))
    spec = PhantomSpec(shape=args.shape, volume_ml=args.volume, plane=args.plane, tilt_deg=tilt,
                       pixel_spacing=tuple(args.pixel), slice_thickness=args.thickness, slice_gap=args.gap,
                       snr=args.snr, bias=args.bias, n_foci=args.foci)
    phantom = make_lesion_phantom(spec, seed=0 if args.seed is None else args.seed)
    paths = write_phantom(phantom, args.out, image_format=args.format)
    t = phantom.truth
    print(json.dumps({"out": str(args.out), "image": str(paths["image"]), "mask": str(paths["mask"]),
                      "true_volume_ml": t["true_volume_ml"], "true_volume_se_ml": t["true_volume_se_ml"],
                      "mask_volume_ml": t["mask_volume_ml"], "seed_point_lps_mm": t["seed_point_lps_mm"]}))
    return 0
