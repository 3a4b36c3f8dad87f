"""Write a :class:`~volumetry.image.Volume` as a classic MR Image Storage series.

One file per slice (``IM0001.dcm`` ...), Explicit VR Little Endian, with the
tags real scanner exports carry: patient and study identity, study / series /
SOP / frame-of-reference UIDs, dates and times, series description and
number, ImagePositionPatient / ImageOrientationPatient / PixelSpacing (the
geometry, LPS as DICOM defines it), SliceThickness, SpacingBetweenSlices,
SliceLocation, RescaleSlope / RescaleIntercept, window, and MR acquisition
attributes (fat-saturated T2 spin echo by default).

Everything written is a pure function of the arguments: the UIDs are derived
from ``uid_seed`` (name-based UUIDs under ``2.25``), nothing
reads the clock, so equal calls write equal bytes. Identity fields are
whatever the caller passes; the defaults are synthetic (``PHANTOM^...``).
"""
from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..image import Volume

log = logging.getLogger(__name__)

#: SOP Class UID of MR Image Storage.
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
#: Largest |stored value| error (in stored units) accepted when the array
#: is written without rescaling: values must be integers.
_INTEGER_TOL = 1e-6


@dataclasses.dataclass(frozen=True)
class SeriesInfo:
    """Identity and acquisition attributes of a written series.

    All text is synthetic by default; never put real patient data here
    unless the user asked for it.
    """

    patient_name: str = "PHANTOM^001"
    patient_id: str = "PHANTOM-001"
    patient_birth_date: str = ""
    patient_sex: str = "O"
    study_date: str = "20240101"  # YYYYMMDD
    study_time: str = "090000"
    study_description: str = "VOLUMETRY PHANTOM"
    study_id: str = "1"
    accession_number: str = ""
    series_description: str = "T2 FS AX"
    series_number: int = 1
    series_time: str = "091500"
    body_part: str = "EXTREMITY"
    manufacturer: str = "volumetry"
    model: str = "digital phantom"
    institution: str = "SYNTHETIC"
    field_strength_t: float = 1.5
    repetition_time_ms: float = 4000.0
    echo_time_ms: float = 85.0
    slice_thickness_mm: float | None = None  # default: the volume's slice spacing
    uid_seed: str = "volumetry-phantom"
    study_uid: str | None = None  # default: derived from uid_seed
    frame_of_reference_uid: str | None = None


#: Namespace of the name-based (version 5) UUIDs behind the derived UIDs.
_UID_NAMESPACE = uuid.UUID("6f1c5bde-2d0b-5a63-9c1e-7f6b0c3e4a21")


def derived_uid(*parts: object) -> str:
    """A deterministic UID ``2.25.<int>`` from any strings/numbers.

    The integer is a name-based (version 5) UUID of the parts, the form
    DICOM PS3.5 §B.2 allows under the ``2.25`` root; equal parts give equal UIDs.
    """
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def _ds(x: float) -> str:
    """A decimal string (≤ 16 characters) with as many significant digits as fit."""
    for digits in range(12, 3, -1):
        s = f"{x:.{digits}g}"
        if "e" in s:
            s = f"{x:.{max(digits - 4, 1)}f}".rstrip("0").rstrip(".")
        if len(s) <= 16:
            return "0" if s in ("-0", "") else s
    raise ValueError(f"cannot write {x} as a DICOM decimal string")


def _stored(array: np.ndarray, slope: float | None, intercept: float) -> tuple[np.ndarray, float, float, int]:
    """Stored pixel values, slope, intercept and PixelRepresentation."""
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if slope is None:
        if np.issubdtype(a.dtype, np.integer) or np.all(np.abs(a - np.rint(a)) <= _INTEGER_TOL):
            slope, intercept = 1.0, 0.0
        else:
            lo, hi = float(a.min()), float(a.max())
            intercept = lo
            slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    values = (a.astype(float) - intercept) / slope
    v = np.rint(values)
    if v.min() >= -32768 and v.max() <= 32767:
        return v.astype(np.int16), float(slope), float(intercept), 1
    if v.min() >= 0 and v.max() <= 65535:
        return v.astype(np.uint16), float(slope), float(intercept), 0
    raise InputError(
        f"values {a.min():g}..{a.max():g} do not fit 16 bits with slope {slope} and intercept {intercept}; "
        "pass rescale_slope=None to choose a slope automatically"
    )


def write_dicom_series(
    volume: Volume,
    out_dir: str | Path,
    info: SeriesInfo | None = None,
    *,
    rescale_slope: float | None = None,
    rescale_intercept: float = 0.0,
) -> list[Path]:
    """Write ``volume`` as one MR Image Storage file per slice in ``out_dir``.

    Parameters
    ----------
    volume : Volume
        Image (any real dtype). Slice ``k`` is written at
        ``ImagePositionPatient = origin + k·sk·direction[:, 2]``, with
        ImageOrientationPatient the i and j columns of ``direction``; the
        direction must be right-handed (k = i × j) as DICOM readers rebuild it.
    out_dir : str or Path
        Folder to write (created); files ``IM0001.dcm`` ... are overwritten.
    info : SeriesInfo, optional
        Identity, dates and acquisition attributes (synthetic defaults).
    rescale_slope, rescale_intercept : float
        Real value = stored·slope + intercept. ``None`` (default): slope 1 for
        integer-valued arrays, otherwise chosen to fill 16 bits.

    Returns
    -------
    list of Path
        The written files in slice order.

    Raises
    ------
    InputError
        If the direction is left-handed, or the values do not fit 16 bits.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    info = info or SeriesInfo()
    d = np.asarray(volume.direction)
    if np.dot(np.cross(d[:, 0], d[:, 1]), d[:, 2]) < 0.999:
        raise InputError(
            "cannot write a DICOM series whose k axis is not i × j (left-handed direction); "
            "flip the array along k and move the origin to the last slice first"
        )
    stored, slope, intercept, pixel_rep = _stored(volume.array, rescale_slope, rescale_intercept)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    si, sj, sk = volume.spacing
    thickness = info.slice_thickness_mm if info.slice_thickness_mm is not None else \
        float(volume.meta.get("slice_thickness_mm", sk))
    study_uid = info.study_uid or derived_uid(info.uid_seed, "study")
    series_uid = derived_uid(info.uid_seed, "series", info.series_number)
    for_uid = info.frame_of_reference_uid or derived_uid(info.uid_seed, "frame-of-reference", info.series_number)
    iop = [_ds(v) for v in (*d[:, 0], *d[:, 1])]
    real = stored.astype(float) * slope + intercept
    center = float(np.percentile(real, 99.5) / 2) if real.size else 0.0
    files = []
    nk = stored.shape[0]
    for k in range(nk):
        sop_uid = derived_uid(info.uid_seed, "sop", info.series_number, k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "VOLUMETRY"
        path = out / f"IM{k + 1:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = info.study_date
        ds.StudyTime = info.study_time
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = info.series_time
        ds.AccessionNumber = info.accession_number
        ds.Modality = "MR"
        ds.Manufacturer = info.manufacturer
        ds.InstitutionName = info.institution
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = info.study_description
        ds.SeriesDescription = info.series_description
        ds.ManufacturerModelName = info.model
        ds.PatientName = info.patient_name
        ds.PatientID = info.patient_id
        ds.PatientBirthDate = info.patient_birth_date
        ds.PatientSex = info.patient_sex
        ds.BodyPartExamined = info.body_part
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = ["SK", "SP"]
        ds.ScanOptions = "FS"
        ds.MRAcquisitionType = "2D"
        ds.SliceThickness = _ds(thickness)
        ds.RepetitionTime = _ds(info.repetition_time_ms)
        ds.EchoTime = _ds(info.echo_time_ms)
        ds.MagneticFieldStrength = _ds(info.field_strength_t)
        ds.SpacingBetweenSlices = _ds(sk)
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = info.study_id
        ds.SeriesNumber = int(info.series_number)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        pos = np.asarray(volume.origin) + k * sk * d[:, 2]
        ds.ImagePositionPatient = [_ds(v) for v in pos]
        ds.ImageOrientationPatient = iop
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(np.dot(pos, d[:, 2])))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        ds.PixelSpacing = [_ds(sj), _ds(si)]  # row spacing (between rows = j), column spacing (i)
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = pixel_rep
        ds.WindowCenter = _ds(center)
        ds.WindowWidth = _ds(max(2 * center, 1.0))
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = _ds(slope)
        ds.RescaleType = "US"
        ds.PixelData = np.ascontiguousarray(stored[k]).astype(stored.dtype.newbyteorder("<")).tobytes()
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    log.debug("wrote %d slices of series %s to %s", nk, series_uid, out)
    return files


def series_uid_for(info: SeriesInfo) -> str:
    """The SeriesInstanceUID :func:`write_dicom_series` writes for ``info``."""
    return derived_uid(info.uid_seed, "series", info.series_number)


__all__ = ["SeriesInfo", "write_dicom_series", "series_uid_for", "derived_uid", "MR_IMAGE_STORAGE"]
