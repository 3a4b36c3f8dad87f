"""Segment a lesion from one or more seed points (and optionally a box) and write its mask.

Coordinates are in the space named by --seed-space (default lps): LPS or RAS
millimetres, or voxel indices i j k (column, row, slice) of IMAGE. Several
--seed options mark one lesion with several parts (multifocal); a box (two
opposite corners, same space) limits the lesion to it.

A seed that lies outside the image is an error (exit 2). A seed that is not on
lesion-like tissue, or an empty result, is a failed segmentation: no mask is
written, the reason is printed, and the exit status is 1 — never a 0 mL volume.

examples:
  volumetry segment t2.nii.gz --seed -12.5 30 41 --out lesion.nii.gz
  volumetry segment dicom/ --series 1.2.3 --seed 120 88 14 --seed-space voxel --out lesion.nii.gz --json
  volumetry segment t2.nii.gz --seed 10 -20 5 --box 0 -35 -5 25 -5 20 --method levelset --out m.nii.gz
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_image_arguments, print_json, read_image_from_args

HELP = "segment a lesion from seed points / a box and write its mask (NIfTI)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``volumetry segment``."""
    parser.add_argument("image", metavar="IMAGE", help="DICOM folder/file, NIfTI, NRRD or MHA")
    parser.add_argument("--seed", metavar=("X", "Y", "Z"), nargs=3, type=float, action="append", required=True,
                        help="a seed point inside the lesion (repeat for several parts of one lesion)")
    parser.add_argument("--seed-space", choices=("lps", "ras", "voxel"), default="lps",
                        help="space of --seed and --box: LPS mm, RAS mm or voxel i j k (default: lps)")
    parser.add_argument("--box", metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"), nargs=6, type=float,
                        help="two opposite corners X0 Y0 Z0 X1 Y1 Z1 of a box holding the lesion")
    parser.add_argument("--method", default="default",
                        help="region_growing (default), threshold or levelset")
    parser.add_argument("--lesion-id", default="1", help="identifier of the lesion (default: 1)")
    parser.add_argument("--out", metavar="MASK", required=True, help="output mask, .nii or .nii.gz")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Read IMAGE, segment, write the mask; 0 on success, 1 when the segmentation failed."""
    from ..errors import InputError
    from ..io.nifti import write_nifti
    from ..segment import Prompt, segment

    out = Path(args.out)
    if not (out.name.endswith(".nii") or out.name.endswith(".nii.gz")):
        raise InputError(f"--out {out}: the mask is written as NIfTI; give a name ending in .nii or .nii.gz")
    _refuse_input_as_output(Path(args.image), out)
    image = read_image_from_args(args.image, args)
    box = None if args.box is None else [args.box[:3], args.box[3:]]
    prompt = Prompt.from_points(args.seed, args.seed_space, image, box=box, lesion_id=args.lesion_id)
    res = segment(image, prompt, method=args.method)
    written = None
    if res.ok:
        out.parent.mkdir(parents=True, exist_ok=True)
        written = write_nifti(res.mask, out, description=f"volumetry {res.method} lesion {res.lesion_id}")
    if args.json:
        print_json({"image": str(args.image), "out": None if written is None else str(written), **res.to_json(),
                    "prompt": prompt.to_json()})
    elif res.ok:
        print(f"lesion {res.lesion_id}: {res.volume_ml:.3f} mL ({res.method}) -> {written}"
              + (f"\nflags: {', '.join(res.flags)}" if res.flags else ""))
    else:
        print(f"lesion {res.lesion_id}: segmentation failed ({res.method}): {res.reason}")
    return 0 if res.ok else 1


def _refuse_input_as_output(image: Path, out: Path) -> None:
    """``--out`` naming the input image (or a link to it) would overwrite the image with the mask.

    Raises
    ------
    InputError
        Naming both paths and the fix.
    """
    from ..errors import InputError

    try:
        same = out.exists() and image.exists() and out.samefile(image)
    except OSError:
        same = False
    if same:
        raise InputError(f"--out {out} is the input image {image}: writing the mask there would destroy it; "
                         "give another file name")
