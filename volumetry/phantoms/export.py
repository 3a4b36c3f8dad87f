"""Write a :class:`~volumetry.phantoms.Phantom` to a folder: the image as a DICOM
series or NIfTI, the ground-truth mask as NIfTI, and ``truth.json``."""
from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

from ..errors import InputError
from .lesion import Phantom

log = logging.getLogger(__name__)

#: Case names usable as folder names (no separators, no "..").
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")

#: Columns of the index written by :func:`write_suite`.
SUITE_COLUMNS = ("case", "shape", "plane", "slice_thickness_mm", "slice_gap_mm", "snr", "image", "mask",
                 "true_volume_ml", "true_volume_se_ml", "mask_volume_ml", "seed_x", "seed_y", "seed_z", "seed_space")

#: Image formats :func:`write_phantom` accepts.
FORMATS = ("dicom", "nifti")


def write_phantom(phantom: Phantom, out_dir: str | Path, *, image_format: str = "nifti",
                  uid_seed: str | None = None) -> dict[str, Path]:
    """Write ``phantom`` into ``out_dir``.

    Parameters
    ----------
    phantom : Phantom
    out_dir : str or Path
        Folder (created). Files: ``image/IM*.dcm`` (dicom) or ``image.nii.gz``
        (nifti), ``mask.nii.gz`` (uint8 focus labels, 0 background) and
        ``truth.json``.
    image_format : {"dicom", "nifti"}
    uid_seed : str, optional
        Seed of the DICOM UIDs; default derived from the phantom's seed and spec,
        so the same phantom always gets the same UIDs.

    Returns
    -------
    dict
        ``{"image": path, "mask": path, "truth": path}``.

    Raises
    ------
    InputError
        If the format is unknown.
    """
    from ..io.dicom_write import SeriesInfo, write_dicom_series
    from ..io.nifti import write_nifti

    if image_format not in FORMATS:
        raise InputError(f"unknown phantom image format {image_format!r}; choose dicom or nifti")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = phantom.truth
    if image_format == "dicom":
        image = out / "image"
        for stale in image.glob("IM*.dcm") if image.is_dir() else ():
            stale.unlink()
        plane = {"axial": "AX", "coronal": "COR", "sagittal": "SAG", "oblique": "OBL"}[truth["plane"]]
        seed = uid_seed or f"volumetry-phantom-{truth.get('seed')}-{json.dumps(truth.get('spec'), sort_keys=True)}"
        write_dicom_series(phantom.image, image, SeriesInfo(
            series_description=f"T2 FS {plane}", slice_thickness_mm=truth["slice_thickness_mm"], uid_seed=seed))
    else:
        image = write_nifti(phantom.image, out / "image.nii.gz", description="T2 FS phantom")
    mask = write_nifti(phantom.labels, out / "mask.nii.gz", description="truth labels")
    tpath = out / "truth.json"
    tpath.write_text(json.dumps({**truth, "image": image.name, "mask": mask.name, "format": image_format},
                                indent=1) + "\n")
    return {"image": image, "mask": mask, "truth": tpath}


def write_suite(specs, out_dir: str | Path, *, image_format: str = "dicom") -> Path:
    """Write every phantom of ``specs`` to ``out_dir/<case>/`` and an index ``suite.csv``.

    The index (:data:`SUITE_COLUMNS`) gives, per case, the image and mask paths
    (relative to ``out_dir``), the true volume and the suggested seed (LPS mm):
    what another tool needs to be benchmarked on the suite.

    Returns
    -------
    Path
        The index file.

    Raises
    ------
    InputError
        If the format is unknown, or a case name is not a plain folder name
        (nothing is written outside ``out_dir``).
    """
    from .lesion import make_lesion_phantom

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in specs:
        if not spec.name or not _SAFE_NAME.fullmatch(spec.name):
            raise InputError(f"phantom case name {spec.name!r} cannot be a folder name; use letters, digits, '.', '_', '-'")
        ph = make_lesion_phantom(spec)
        paths = write_phantom(ph, out / spec.name, image_format=image_format)
        t = ph.truth
        seed = t["seed_point_lps_mm"] or ["", "", ""]
        rows.append({
            "case": spec.name, "shape": spec.shape, "plane": spec.plane, "slice_thickness_mm": spec.slice_thickness,
            "slice_gap_mm": spec.slice_gap, "snr": spec.snr,
            "image": paths["image"].relative_to(out).as_posix(), "mask": paths["mask"].relative_to(out).as_posix(),
            "true_volume_ml": t["true_volume_ml"], "true_volume_se_ml": t["true_volume_se_ml"],
            "mask_volume_ml": t["mask_volume_ml"], "seed_x": seed[0], "seed_y": seed[1], "seed_z": seed[2],
            "seed_space": "lps",
        })
        log.info("%s: %s", spec.name, paths["image"])
    index = out / "suite.csv"
    with open(index, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SUITE_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return index
