"""Import lesion masks drawn in other tools (ITK-SNAP, 3D Slicer, ...) onto an image's grid.

A mask file (NIfTI, NRRD, MHA; DICOM SEG through :mod:`volumetry.io.seg`) must be
strictly binary (values 0 and 1, or booleans) unless a ``label`` is chosen in a
label map. Its geometry must match the image's within the ``MASK_*_TOL``
constants; otherwise it is resampled onto the image's grid by nearest neighbour
and flagged ``"mask-resampled"`` (volumes of a resampled mask carry that flag).
A mask that does not overlap the image at all is an error.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from ..errors import GeometryMismatchError, ImageFormatError, InputError
from ..image import Volume

log = logging.getLogger(__name__)

#: Largest origin difference (mm) between mask and image accepted as "same grid".
MASK_ORIGIN_TOL_MM = 0.01
#: Largest voxel-size difference (mm) accepted as "same grid".
MASK_SPACING_TOL_MM = 0.001
#: Largest direction-cosine difference (dimensionless) accepted as "same grid".
MASK_DIRECTION_TOL = 1e-3

#: Suffixes read as DICOM SEG (or a file whose header says Modality SEG).
SEG_SUFFIXES = (".dcm", ".seg")


@dataclasses.dataclass
class ImportedMask:
    """A mask brought onto an image's grid.

    Attributes
    ----------
    mask : Volume
        Boolean mask on the image's grid.
    flags : list of str
        ``"mask-resampled"`` when the geometry differed and nearest-neighbour
        resampling was needed; ``"mask-cropped"`` when part of the mask lay outside
        the image.
    label : int or None
        The label value taken from a label map (None for a binary mask).
    source : str
        The file (or ``"<array>"``).
    geometry_note : str
        How the mask's grid differed from the image's ('' when it matched).
    """

    mask: Volume
    flags: list[str]
    label: int | None
    source: str
    geometry_note: str = ""


def same_grid_within(mask: Volume, image: Volume) -> bool:
    """True when ``mask`` and ``image`` share size and geometry within the ``MASK_*_TOL`` constants."""
    return (
        mask.size == image.size
        and np.allclose(mask.spacing, image.spacing, rtol=0, atol=MASK_SPACING_TOL_MM)
        and np.allclose(mask.origin, image.origin, rtol=0, atol=MASK_ORIGIN_TOL_MM)
        and np.allclose(mask.direction, image.direction, rtol=0, atol=MASK_DIRECTION_TOL)
    )


def binarize(mask: Volume, label: int | None = None, source: str = "<array>") -> np.ndarray:
    """Boolean array of a strictly binary mask, or of one label of a label map.

    Raises
    ------
    InputError
        If the mask is not strictly binary and no label is chosen (the message
        lists the values found), or the chosen label is absent, or values are
        not integers, or the label is 0 (the background of a label map).
    """
    if label is not None and label == 0:
        raise InputError(f"{source}: label 0 is the background of a label map, not a lesion; "
                         "give the lesion's label (1 or more), or omit the label for a 0/1 mask")
    arr = mask.array
    if arr.dtype == bool:
        if label not in (None, 1):
            raise InputError(f"{source}: the mask is binary (true/false); label {label} does not exist in it, "
                             "omit the label")
        return arr.copy()
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{source}: the mask holds NaN or infinite values; export it as an integer label map")
        if not np.all(arr == np.round(arr)):
            raise InputError(f"{source}: the mask holds non-integer values (e.g. a probability map); threshold it "
                             "into a binary mask or export a label map")
    values = np.unique(arr)
    if label is None:
        if not set(values.tolist()) <= {0, 1}:
            shown = ", ".join(f"{v:g}" for v in values[:12]) + (" ..." if len(values) > 12 else "")
            raise InputError(f"{source}: the mask is not binary (values {shown}); choose the lesion's label "
                             "(--label N / label=N) or export a 0/1 mask")
        return arr == 1
    if label not in values.tolist():
        shown = ", ".join(f"{v:g}" for v in values[values != 0][:12])
        raise InputError(f"{source}: label {label} is not in the mask; its labels are {shown or 'none (empty)'}")
    return arr == label


def import_mask(mask: Volume, image: Volume, *, label: int | None = None, source: str = "<array>") -> ImportedMask:
    """Bring a mask (already read) onto ``image``'s grid.

    Parameters
    ----------
    mask : Volume
        Binary mask or label map, on any grid.
    image : Volume
        The image the mask belongs to.
    label : int, optional
        Label of the lesion in a label map (required when the mask is not binary).
    source : str
        Name of the mask in messages.

    Returns
    -------
    ImportedMask

    Raises
    ------
    InputError
        Not binary without a label, missing label (see :func:`binarize`).
    GeometryMismatchError
        If the mask, once on the image's grid, is empty although the file was
        not (the mask does not overlap the image), or the mask is not on the
        image's grid and has no orientation (a NIfTI without sform and qform).
    """
    binary = binarize(mask, label, source)
    meta = {"kind": "mask", "source": source, "label": label, "series_uid": image.meta.get("series_uid")}
    if same_grid_within(mask, image):
        out = Volume(binary, image.spacing, image.origin, image.direction, meta)
        return ImportedMask(out, [], label, source)
    import SimpleITK as sitk

    from .reader import geometry_flags

    note = (f"mask grid size {mask.size}, spacing {_fmt(mask.spacing)} mm, origin {_fmt(mask.origin)} mm vs image "
            f"size {image.size}, spacing {_fmt(image.spacing)} mm, origin {_fmt(image.origin)} mm, max direction "
            f"difference {np.abs(mask.direction - image.direction).max():.2e}")
    if "orientation-unknown" in geometry_flags(mask.meta.get("warnings")):
        # its affine is invented (pixdim only): resampling through it would move and mirror the mask
        raise GeometryMismatchError(
            f"{source}: the mask has neither sform nor qform (orientation unknown) and is not on the image's "
            f"grid ({note}), so where it lies cannot be known; write the mask with the image's affine (sform) "
            "or export it again from the tool it was drawn in")
    src = mask.with_array(binary.astype(np.uint8)).to_sitk()
    ref = image.with_array(np.zeros(image.array.shape, np.uint8)).to_sitk()
    res = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    arr = sitk.GetArrayFromImage(res).astype(bool)
    flags = ["mask-resampled"]
    if binary.any() and not arr.any():
        raise GeometryMismatchError(f"{source}: the mask does not overlap the image ({note}); is it the mask of "
                                    "this image/series?")
    # voxels of the mask whose centres fall outside the image's extent were lost
    ijk = np.argwhere(binary)[:, ::-1].astype(float)
    if len(ijk):
        inside = np.all((image.lps_to_index(mask.index_to_lps(ijk)) >= -0.5)
                        & (image.lps_to_index(mask.index_to_lps(ijk)) <= np.asarray(image.size) - 0.5), axis=1)
        if not inside.all():
            flags.append("mask-cropped")
    log.warning("%s: mask resampled onto the image grid by nearest neighbour (%s)", source, note)
    out = Volume(arr, image.spacing, image.origin, image.direction, {**meta, "flags": list(flags)})
    return ImportedMask(out, flags, label, source, note)


def read_mask(path: str | Path, image: Volume, *, label: int | None = None) -> ImportedMask:
    """Read a mask file and bring it onto ``image``'s grid.

    NIfTI, NRRD and MHA go through :func:`volumetry.io.reader.read_image`; DICOM SEG
    (``.dcm``/``.seg`` or a file whose Modality is SEG) through
    :func:`volumetry.io.seg.read_seg` with ``segment_number = label`` (1 when absent) — that
    reader places the frames on the image's grid itself.

    Parameters
    ----------
    path : str or Path
        The mask file.
    image : Volume
        The image the mask belongs to.
    label : int, optional
        Label value in a label map (segment number for a DICOM SEG).

    Returns
    -------
    ImportedMask

    Raises
    ------
    InputError
        Missing/unreadable file, not binary without a label, missing label.
    GeometryMismatchError
        The mask does not overlap the image, or is off the image's grid without an
        orientation (neither sform nor qform).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: mask file not found")
    if _is_seg(path):
        from .seg import read_seg

        vol = read_seg(path, image, segment_number=1 if label is None else label)
        return ImportedMask(vol.with_array(vol.array.astype(bool), kind="mask", source=str(path)), [], label,
                            str(path))
    from .nifti import AmbiguousOrientationError, SeveralVolumesError
    from .reader import read_image

    try:
        vol = read_image(path)
    except AmbiguousOrientationError as exc:  # the image reader's advice (--affine) is for images
        shift = exc.shift_mm if exc.shift_mm is not None else float("nan")
        raise ImageFormatError(
            f"{path}: the mask's sform and qform disagree (a corner of the grid moves by {shift:.3g} mm), "
            "so where it lies is ambiguous; save the mask again from the tool that drew it, with the "
            "image's geometry in one affine (or the same sform and qform)") from None
    except SeveralVolumesError as exc:  # ... and so is --volume
        raise ImageFormatError(
            f"{path}: the mask file holds {exc.n_volumes or 'several'} volumes; a mask is one 3D volume: save each "
            "lesion's mask alone, or one 3D label map and give the lesion's label") from None
    return import_mask(vol, image, label=label, source=str(path))


def is_seg_file(path: str | Path) -> bool:
    """True when ``path`` is read as a DICOM SEG: a ``.dcm``/``.seg`` file, or a file
    that is not NIfTI/NRRD/MHA and has a DICOM preamble."""
    return _is_seg(Path(path))


def _is_seg(path: Path) -> bool:
    if path.is_dir():
        return False
    if path.suffix.lower() in SEG_SUFFIXES:
        return True
    name = path.name.lower()
    if any(name.endswith(s) for s in (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _fmt(v) -> str:
    return "(" + ", ".join(f"{float(x):.4g}" for x in v) + ")"
