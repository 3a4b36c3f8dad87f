"""Write a :class:`~volumetry.phantoms.Phantom` to a folder: the image as a DICOM
series or NIfTI, the ground-truth mask as NIfTI, and ``truth.json``."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from .lesion import Phantom

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
