"""Measure a lesion mask on its image: voxel and mesh volume (mL), the ±1-voxel band,
three orthogonal diameters and the ellipsoid volume π/6·L·W·H, the longest in-plane
diameter, components, border contact and intensity statistics.

IMAGE and MASK are anything ``volumetry`` reads (DICOM folder, NIfTI, NRRD, MHA); the
mask must be on the image's grid. A label map needs ``--label``. A DICOM SEG mask
(``.dcm``/``.seg``) is placed on the image's grid by its frames' geometry; ``--label``
then chooses the segment number (default 1).

examples:
  volumetry measure t2.nii.gz --mask lesion.nii.gz
  volumetry measure t2.nii.gz --mask labels.nrrd --label 2 --json
"""
from __future__ import annotations

import argparse

from ._common import add_image_arguments, print_json, read_image_from_args

HELP = "measure a lesion mask: volumes (mL), diameters (mm), flags"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``volumetry measure``."""
    parser.add_argument("image", metavar="IMAGE", help="the image the mask was drawn on")
    parser.add_argument("--mask", metavar="MASK", required=True, help="binary mask or label map on IMAGE's grid")
    parser.add_argument("--label", metavar="N", type=int,
                        help="label value of the lesion in a label map (segment number of a DICOM SEG mask)")
    parser.add_argument("--json", action="store_true", help="print every value as JSON on stdout")
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Read IMAGE and MASK, measure, print. Returns 0 (an empty mask is a result:
    ``status: empty`` with its reason, never 0 mL)."""
    from ..errors import InputError
    from ..io.masks import is_seg_file
    from ..io.reader import read_image
    from ..io.seg import read_seg
    from ..measure import measure

    image = read_image_from_args(args.image, args)
    label = args.label
    if is_seg_file(args.mask):  # a DICOM SEG: its frames are placed on the image's grid by geometry
        mask = read_seg(args.mask, image, segment_number=1 if label is None else label)
        label = None
    else:
        mask = read_image(args.mask, affine_source=getattr(args, "affine", "auto"))
    try:
        m = measure(mask, image, label=label)
    except InputError as exc:  # name the mask file in the one-line error
        raise type(exc)(f"{args.mask}: {exc}") from exc
    if args.json:
        print_json({"image": str(args.image), "mask": str(args.mask), **m.to_dict()})
    else:
        print(_text(m))
    return 0


def _fmt(v, unit: str, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f} {unit}"


def _text(m) -> str:
    if m.status != "ok":
        return f"status: {m.status}\nreason: {m.reason}\nflags: {', '.join(m.flags) or 'none'}"
    d = m.diameters_mm
    lines = [
        f"volume (voxels):     {_fmt(m.volume_ml, 'mL', 4)}  ({m.n_voxels} voxels of {m.voxel_volume_mm3:.4g} mm³)",
        f"volume (mesh):       {_fmt(m.mesh_volume_ml, 'mL', 4)}",
        f"band (-1/+1 voxel):  {_fmt(m.volume_low_ml, 'mL', 4)} – {_fmt(m.volume_high_ml, 'mL', 4)}",
        "diameters L×W×H:     " + ("—" if d is None else " × ".join(f"{x:.1f}" for x in d) + " mm"),
        f"ellipsoid volume:    {_fmt(m.ellipsoid_volume_ml, 'mL', 4)}",
        f"longest in-plane:    {_fmt(m.longest_inplane_diameter_mm, 'mm', 1)} (slice k={m.longest_inplane_slice})",
        f"components:          {m.n_components}",
        f"touches border:      {'yes' if m.touches_border else 'no'}",
    ]
    if m.intensity_mean is not None:
        lines.append(f"intensity:           mean {m.intensity_mean:.4g}, sd {m.intensity_sd:.4g}, "
                     f"median {m.intensity_median:.4g}, p5 {m.intensity_p5:.4g}, p95 {m.intensity_p95:.4g}")
    lines.append(f"flags:               {', '.join(m.flags) or 'none'}")
    return "\n".join(lines)
