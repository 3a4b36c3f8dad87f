"""Arguments and helpers shared by the sub-commands that read one image."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--series``, ``--volume`` and ``--affine`` (how to pick one 3D image from PATH)."""
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to use when a DICOM folder holds several series")
    parser.add_argument("--volume", metavar="N", type=int, help="0-based volume of a 4D NIfTI or multi-volume DICOM series")
    parser.add_argument("--affine", choices=("auto", "sform", "qform"), default="auto",
                        help="NIfTI only: which header affine to trust (default: sform when set; error when they disagree)")


def read_image_from_args(path: str, args: argparse.Namespace):
    """Read ``path`` with the selection given by :func:`add_image_arguments`'s options."""
    from ..io.reader import read_image

    return read_image(path, series_uid=getattr(args, "series", None), volume_index=getattr(args, "volume", None),
                      affine_source=getattr(args, "affine", "auto"))


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout (NaN written as null)."""
    print(json.dumps(_clean(obj), indent=2, sort_keys=False), file=sys.stdout)


def _clean(obj: Any) -> Any:
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return _clean(obj.item())  # numpy scalar
    return obj
