"""One entry point for every supported image input: :func:`read_image`."""
from __future__ import annotations

from pathlib import Path

from ..errors import ImageFormatError, InputError
from ..image import Volume
from .nifti import ITK_SUFFIXES, NIFTI_SUFFIXES, has_suffix, read_itk, read_nifti

#: Loader warnings (``Volume.meta["warnings"]``) that qualify a volume or a location,
#: as (text the warning contains, flag carried into the results table).
GEOMETRY_WARNING_FLAGS = (
    ("one slice only", "single-slice"),
    ("1 mm assumed", "slice-spacing-assumed"),
    ("pixdim only", "orientation-unknown"),
)


def geometry_flags(warnings) -> list[str]:
    """Table flags for the loader warnings that qualify a measurement.

    A single-slice series' slice spacing comes from its header (or is assumed
    to be 1 mm when the header has none), and a NIfTI without sform/qform has no
    orientation: the volume or location measured on such an image is flagged,
    never silently reported.

    Parameters
    ----------
    warnings : iterable of str
        ``Volume.meta["warnings"]`` of the loaded image.

    Returns
    -------
    list of str
        Flags in :data:`GEOMETRY_WARNING_FLAGS` order, without repeats.
    """
    text = list(warnings or [])
    return [flag for needle, flag in GEOMETRY_WARNING_FLAGS if any(needle in w for w in text)]


def read_image(
    path: str | Path,
    *,
    series_uid: str | None = None,
    volume_index: int | None = None,
    affine_source: str = "auto",
) -> Volume:
    """Read a DICOM folder or file, NIfTI, NRRD or MetaImage as a :class:`Volume` (LPS).

    Parameters
    ----------
    path : str or Path
        A folder (read as a DICOM tree), a ``.nii``/``.nii.gz``/``.nrrd``/
        ``.mha``/``.mhd`` file, or a single DICOM file (any other name).
    series_uid : str, optional
        DICOM only: the SeriesInstanceUID to load when a folder holds several.
    volume_index : int, optional
        The 0-based volume of a 4D NIfTI or of a multi-volume DICOM series.
    affine_source : {"auto", "sform", "qform"}
        NIfTI only: which header affine to trust (see :mod:`volumetry.io.nifti`).

    Returns
    -------
    Volume

    Raises
    ------
    InputError
        Missing path, or any subclass raised by the format's reader (the
        message names the file and the fix).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path (relative paths are resolved from the current folder)")
    if path.is_dir() or not (has_suffix(path, NIFTI_SUFFIXES) or has_suffix(path, ITK_SUFFIXES)):
        from .dicom import load_dicom

        return load_dicom(path, series_uid=series_uid, volume_index=volume_index)
    if series_uid is not None:
        raise InputError(f"{path}: --series/series_uid applies to DICOM input only")
    if has_suffix(path, NIFTI_SUFFIXES):
        return read_nifti(path, volume_index=volume_index, affine_source=affine_source)
    if volume_index not in (None, 0):
        raise ImageFormatError(f"{path}: volume_index applies to 4D NIfTI or multi-volume DICOM only")
    return read_itk(path)
