"""Describe an image input: the DICOM stacks found under PATH (series, size,
spacing, origin and direction in LPS, files, warnings), or an image file.

PATH is a DICOM folder (searched recursively), a DICOM file, or a NIfTI,
NRRD or MetaImage file. DICOM is described from its headers only (no pixels
are read); the geometry checks of loading are applied, and a stack whose
slices do not form a regular grid is reported with its error.

examples:
  volumetry info /data/exam1
  volumetry info /data/exam1 --json --series 1.3.12.2.1107.5.2.43.67060.2022
  volumetry info t2.nii.gz --json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import print_json

HELP = "list the series/stacks of a DICOM folder or describe an image file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``volumetry info``."""
    parser.add_argument("path", metavar="PATH", help="DICOM folder or file, or a NIfTI/NRRD/MHA file")
    parser.add_argument("--json", action="store_true",
                        help="print JSON: one object for one stack (or --series), else a list of objects")
    parser.add_argument("--series", metavar="UID", help="describe only this SeriesInstanceUID (or stack id)")
    parser.add_argument("--volume", metavar="N", type=int,
                        help="0-based volume of a multi-volume series or 4D image whose geometry is shown")
    parser.add_argument("--affine", choices=("auto", "sform", "qform"), default="auto",
                        help="NIfTI only: which header affine to trust (default: sform when set; error when they disagree)")


def _is_image_file(path: Path) -> bool:
    from ..io import nifti

    return path.is_file() and (nifti.has_suffix(path, nifti.NIFTI_SUFFIXES)
                               or nifti.has_suffix(path, nifti.ITK_SUFFIXES))


def _describe_image_file(path: Path, args: argparse.Namespace) -> dict:
    from ..errors import InputError
    from ..io.reader import read_image

    if args.series is not None:
        raise InputError(f"{path}: --series applies to DICOM input only")
    vol = read_image(path, volume_index=args.volume, affine_source=args.affine)
    meta = vol.meta
    return {
        **vol.describe(),
        "series_uid": meta.get("series_uid"),
        "description": meta.get("description", ""),
        "modality": meta.get("modality", ""),
        "files": [str(path)],
        "warnings": list(meta.get("warnings", [])),
    }


def _describe_dicom(path: Path, args: argparse.Namespace) -> dict | list[dict]:
    from ..errors import SeriesGeometryError
    from ..io.dicom import describe_stack, select_stack, stacks_for_path

    stacks = stacks_for_path(path)
    if args.series is not None or len(stacks) <= 1:
        stack = select_stack(stacks, args.series, str(path))
        d = describe_stack(stack, volume_index=args.volume)
        if d.get("error"):
            raise SeriesGeometryError(d["error"])
        return d
    return [describe_stack(s) for s in stacks]


def _fmt(v, digits=4) -> str:
    return "(" + ", ".join(f"{x:.{digits}g}" for x in v) + ")"


def _print_text(d: dict) -> None:
    out = sys.stdout
    vols = f" x {d['n_volumes']} volumes" if d.get("n_volumes", 1) > 1 else ""
    head = d.get("stack_id") or d["files"][0]
    print(f"{head}", file=out)
    if d.get("description") or d.get("modality"):
        extra = ", ".join(x for x in (
            f"series {d['series_number']}" if d.get("series_number") is not None else "",
            f"patient {d['patient_id']}" if d.get("patient_id") else "",
            f"study date {d['study_date']}" if d.get("study_date") else "",
        ) if x)
        print(f"  '{d.get('description', '')}'  {d.get('modality', '')}  {extra}".rstrip(), file=out)
    if d.get("error"):
        print(f"  ERROR: {d['error']}", file=out)
    else:
        print(f"  size {d['size'][0]}x{d['size'][1]}x{d['size'][2]}{vols}  spacing {_fmt(d['spacing'])} mm", file=out)
        print(f"  origin {_fmt(d['origin'], 6)} mm (LPS)  direction {_fmt(d['direction'], 4)}", file=out)
    if d.get("volumes") and d.get("n_volumes", 1) > 1:
        for i, label in enumerate(d["volumes"]):
            print(f"    volume {i}: {label}", file=out)
    print(f"  {len(d['files'])} file(s)", file=out)
    for w in d.get("warnings", []):
        print(f"  warning: {w}", file=out)


def run(args: argparse.Namespace) -> int:
    """Describe PATH; returns 0 (bad input raises an InputError: exit 2)."""
    from ..errors import InputError

    path = Path(args.path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    result = _describe_image_file(path, args) if _is_image_file(path) else _describe_dicom(path, args)
    if args.json:
        print_json(result)
    else:
        for d in (result if isinstance(result, list) else [result]):
            _print_text(d)
    return 0
