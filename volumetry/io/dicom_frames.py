"""One DICOM file's header turned into 2D frames with their geometry.

A *frame* is one 2D image of a series: one classic single-frame file, one
frame of an enhanced multi-frame file, or one tile of a Siemens mosaic. Each
:class:`Frame` carries everything needed to place it in space (LPS mm) and to
read its pixels later without parsing the header again (the byte offset of
the uncompressed pixel data).

This module reads headers only; :mod:`volumetry.io.dicom_enhanced` and
:mod:`volumetry.io.dicom_mosaic` add the multi-frame and mosaic cases.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import struct
import warnings
from pathlib import Path

from ..errors import DicomReadError
from .dicom_rawheader import read_raw_header
from .dicom_values import as_list as _as_list
from .dicom_values import float_or_none as _float_or_none
from .dicom_values import num as _num
from .dicom_values import philips_value as _philips_value

log = logging.getLogger(__name__)

#: Transfer syntaxes whose pixel bytes are read directly with numpy (little endian, native).
UNCOMPRESSED_LE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
#: Explicit VR little endian (element header of PixelData is 12 bytes, not 8).
EXPLICIT_LE = "1.2.840.10008.1.2.1"
_PIXEL_TAG = b"\xe0\x7f\x10\x00"
#: FloatPixelData (7FE0,0008) and DoubleFloatPixelData (7FE0,0009), little endian.
_FLOAT_PIXEL_TAGS = (b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
#: Deflated explicit VR little endian: the whole data set is zlib-compressed.
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
#: Philips private "scale slope" / "scale intercept" (the floating-point scaling).
PHILIPS_SCALE_SLOPE = (0x2005, 0x100E)
PHILIPS_SCALE_INTERCEPT = (0x2005, 0x100D)
#: Philips private label type (ASL CONTROL / LABEL), a volume dimension.
PHILIPS_LABEL_TYPE = (0x2005, 0x1429)


@dataclasses.dataclass(frozen=True)
class PixelSource:
    """Where and how a file stores its pixels.

    Attributes
    ----------
    path : str
        The file.
    transfer_syntax : str
        Transfer syntax UID.
    value_offset : int or None
        Byte offset of the first pixel byte when the pixels are stored
        uncompressed little endian, else None (decoded by pydicom).
    rows, cols, n_frames : int
        Stored image matrix (for a mosaic: the whole mosaic) and frame count.
    bits_allocated, bits_stored, pixel_representation, samples_per_pixel : int
        Pixel format (PixelRepresentation 1 = signed).
    """

    path: str
    transfer_syntax: str
    value_offset: int | None
    rows: int
    cols: int
    n_frames: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int

    @property
    def dtype(self) -> str:
        """Little-endian numpy dtype string of one stored pixel."""
        kind = "i" if self.pixel_representation == 1 else "u"
        return f"<{kind}{self.bits_allocated // 8}"

    @property
    def frame_bytes(self) -> int:
        """Bytes of one stored frame."""
        return self.rows * self.cols * self.samples_per_pixel * self.bits_allocated // 8


@dataclasses.dataclass(frozen=True)
class Frame:
    """One 2D image of a series with its geometry and pixel location.

    Attributes
    ----------
    source : PixelSource
        File and pixel format.
    frame_index : int
        Frame number inside the file (0 for classic files).
    tile_index : int
        Tile number inside a Siemens mosaic, -1 otherwise.
    rows, cols : int
        Size of this 2D image (a mosaic tile's size for a mosaic).
    position : tuple of float
        ImagePositionPatient of the centre of the first pixel, LPS mm.
    orientation : tuple of float
        ImageOrientationPatient: row cosines then column cosines (LPS).
    pixel_spacing : tuple of float
        PixelSpacing (between rows, between columns) in mm.
    slope, intercept : float
        RescaleSlope / RescaleIntercept (1, 0 when absent).
    philips_scale_slope : float or None
        Philips private scale slope (2005,100E), None when absent.
    volume_key : tuple
        Sort key ordering the frames that share one slice position into
        volumes: (enhanced dimension indices, temporal position, echo,
        label, instance number, frame), the same types for every kind.
    volume_label : str
        Human-readable description of that volume ("temporal 2, echo 1").
    """

    source: PixelSource
    frame_index: int
    tile_index: int
    rows: int
    cols: int
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    slope: float
    intercept: float
    philips_scale_slope: float | None
    volume_key: tuple
    volume_label: str


@dataclasses.dataclass(frozen=True)
class FileHeader:
    """Series-level attributes of one file plus its frames."""

    path: str
    series_uid: str
    study_uid: str
    patient_id: str
    study_date: str
    series_number: int | None
    description: str
    modality: str
    manufacturer: str
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None
    kind: str  # "classic", "enhanced" or "mosaic"
    frames: tuple[Frame, ...]
    sop_uid: str = ""
    notes: tuple[str, ...] = ()  # facts to record in the volume's warnings (e.g. mosaic spacing source)


def _text(ds, keyword: str) -> str:
    """A text attribute as written: the values of a multi-valued one (a backslash inside a PatientID,
    which DICOM reads as a value separator) joined by the backslash again, not a Python list's repr."""
    v = _num(ds, keyword, "")
    if not isinstance(v, (str, bytes)) and hasattr(v, "__iter__"):
        return "\\".join(str(x) for x in v)
    return str(v)


def read_header(path: str | Path, *, fast: bool = True) -> FileHeader | None:
    """Read one file's header (no pixels) and describe its frames.

    Parameters
    ----------
    path : str or Path
        Any file; non-DICOM files are skipped.
    fast : bool
        Parse classic little-endian headers with
        :mod:`volumetry.io.dicom_rawheader` (pydicom otherwise, and for
        whatever that parser leaves aside). Both give the same result.

    Returns
    -------
    FileHeader or None
        None when the file is not DICOM, or is DICOM without an image that
        has a patient geometry (reports, presentation states, DICOMDIR...).

    Raises
    ------
    DicomReadError
        If the file is DICOM but truncated or unreadable.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = str(path)
    try:
        fp = open(path, "rb")
    except OSError as exc:
        raise DicomReadError(f"cannot open {path}: {exc.strerror}; check the path and its permissions") from exc
    with fp:
        head = fp.read(132)
        is_part10 = len(head) == 132 and head[128:132] == b"DICM"
        if not is_part10 and not (len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00")):
            log.debug("skipping %s: not a DICOM file (no DICM preamble)", path)
            return None
        file_size = os.fstat(fp.fileno()).st_size
        raw = read_raw_header(fp, file_size) if is_part10 and fast else None
        if raw is not None:
            ds, pixel_pos, elem_head = raw
            return _describe_checked(ds, path, pixel_pos, elem_head, file_size, is_part10)
        fp.seek(0)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=not is_part10)
            for w in caught:
                log.debug("%s: pydicom: %s", path, w.message)
            pixel_pos = fp.tell()
            elem_head = fp.read(12)
        except InvalidDicomError:
            log.debug("skipping %s: not a DICOM file", path)
            return None
        except Exception as exc:  # pydicom raises many kinds on a broken file
            raise DicomReadError(
                f"cannot read DICOM file {path}: {type(exc).__name__}: {exc}; "
                "the file is truncated or corrupt: export it again or remove it from the folder"
            ) from exc
    return _describe_checked(ds, path, pixel_pos, elem_head, file_size, is_part10)


def _describe_checked(ds, path: str, pixel_pos: int, elem_head: bytes, file_size: int,
                      is_part10: bool) -> FileHeader | None:
    """:func:`_describe`, with the error of a file whose header was read but whose pixel data
    is truncated or invalid carrying that header's ``series_uid`` (the index then fails only
    that series, see :func:`volumetry.io.dicom_index.read_headers`)."""
    try:
        return _describe_unchecked_series(ds, path, pixel_pos, elem_head, file_size, is_part10)
    except DicomReadError as exc:
        exc.series_uid = str(_num(ds, "SeriesInstanceUID", "") or "")
        raise


def _describe_unchecked_series(ds, path: str, pixel_pos: int, elem_head: bytes, file_size: int,
                               is_part10: bool) -> FileHeader | None:
    meta = getattr(ds, "file_meta", None)
    deflated = meta is not None and meta.get("TransferSyntaxUID") == DEFLATED_LE
    if deflated:  # the stream pydicom read is inflated: file offsets mean nothing, pydicom decodes later
        elem_head = _PIXEL_TAG if _is_image(ds) else b""
    if elem_head[:4] in _FLOAT_PIXEL_TAGS or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise DicomReadError(
            f"DICOM file {path} holds float pixel data (FloatPixelData or DoubleFloatPixelData: a parametric "
            "map or another computed image), which volumetry does not read; give the scanner's original "
            "series, or convert this one to NIfTI and give that file")
    if "PixelData" not in ds and elem_head[:4] != _PIXEL_TAG:
        if not elem_head and _is_image(ds):
            raise DicomReadError(
                f"DICOM file {path} ends before its pixel data (the header stops after {pixel_pos} bytes); "
                "it is truncated: export it again or remove it from the folder"
            )
        if not is_part10 and "SOPClassUID" not in ds:
            log.debug("skipping %s: not a DICOM file", path)
        else:
            log.debug("skipping %s: DICOM without pixel data (%s)", path, ds.get("SOPClassUID", "?"))
        return None
    try:
        return _describe(ds, path, pixel_pos, elem_head, file_size)
    except DicomReadError:
        raise
    except (KeyError, AttributeError, ValueError, TypeError, IndexError) as exc:
        raise DicomReadError(
            f"cannot read DICOM file {path}: a required attribute is missing or invalid "
            f"({type(exc).__name__}: {exc}); the file cannot be placed in space"
        ) from exc


def _is_image(ds) -> bool:
    """True when the data set claims to be an image (image SOP class or a matrix size)."""
    if "Rows" in ds:
        return True
    meta = getattr(ds, "file_meta", None)
    sop = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    name = getattr(sop, "name", "") if sop is not None else ""
    return "Image Storage" in str(name)


def _pixel_value_offset(path: str, ts: str, ds, pixel_pos: int, elem_head: bytes, file_size: int,
                        expected: int) -> int | None:
    """Offset of the first pixel byte for uncompressed little-endian files.

    Raises DicomReadError when the file ends before the pixels do.
    """
    if elem_head[:4] != _PIXEL_TAG:
        if len(elem_head) < 4:
            raise DicomReadError(
                f"DICOM file {path} ends before its pixel data (file is {file_size} bytes); "
                "it is truncated: export it again or remove it from the folder"
            )
        return None
    if ts not in UNCOMPRESSED_LE:
        return None
    if ts == EXPLICIT_LE:
        (length,) = struct.unpack("<I", elem_head[8:12])
        start = pixel_pos + 12
    else:
        (length,) = struct.unpack("<I", elem_head[4:8])
        start = pixel_pos + 8
    if length == 0xFFFFFFFF:
        return None
    if length < expected or start + expected > file_size:
        raise DicomReadError(
            f"DICOM file {path} is truncated: its pixel data needs {expected} bytes but the file holds "
            f"{max(0, file_size - start)} after the header (declared length {length}); "
            "export it again or remove it from the folder"
        )
    return start


def _describe(ds, path: str, pixel_pos: int, elem_head: bytes, file_size: int) -> FileHeader | None:
    from . import dicom_enhanced, dicom_mosaic

    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not ts:  # no file meta (raw data set): the encoding pydicom found
        implicit = (getattr(ds, "original_encoding", None) or (True, True))[0]
        ts = "1.2.840.10008.1.2" if implicit else EXPLICIT_LE
    rows = int(_num(ds, "Rows"))
    cols = int(_num(ds, "Columns"))
    n_frames = int(_num(ds, "NumberOfFrames", 1) or 1)
    bits_allocated = int(_num(ds, "BitsAllocated"))
    source_args = dict(
        path=path,
        transfer_syntax=ts,
        rows=rows,
        cols=cols,
        n_frames=n_frames,
        bits_allocated=bits_allocated,
        bits_stored=int(_num(ds, "BitsStored", bits_allocated)),
        pixel_representation=int(_num(ds, "PixelRepresentation", 0)),
        samples_per_pixel=int(_num(ds, "SamplesPerPixel", 1)),
    )
    expected = rows * cols * n_frames * source_args["samples_per_pixel"] * bits_allocated // 8
    offset = _pixel_value_offset(path, ts, ds, pixel_pos, elem_head, file_size, expected)
    source = PixelSource(value_offset=offset, **source_args)

    notes: tuple[str, ...] = ()
    if "PerFrameFunctionalGroupsSequence" in ds:
        kind = "enhanced"
        frames = dicom_enhanced.enhanced_frames(ds, source)
    elif dicom_mosaic.is_mosaic(ds):
        kind = "mosaic"
        frames, note = dicom_mosaic.mosaic_frames(ds, source, classic_volume_key(ds), classic_volume_label(ds))
        notes = (note,)
    else:
        kind = "classic"
        frame = classic_frame(ds, source)
        if frame is None:
            log.debug("skipping %s: image without ImagePositionPatient/ImageOrientationPatient", path)
            return None
        frames = (frame,)
    if not frames:
        log.debug("skipping %s: no frame with a patient geometry", path)
        return None
    series_number = _num(ds, "SeriesNumber")
    return FileHeader(
        path=path,
        series_uid=str(_num(ds, "SeriesInstanceUID", "")),
        sop_uid=str(_num(ds, "SOPInstanceUID", "")),
        study_uid=str(_num(ds, "StudyInstanceUID", "")),
        patient_id=_text(ds, "PatientID"),
        study_date=str(_num(ds, "StudyDate", "")),
        series_number=int(series_number) if series_number is not None else None,
        description=_text(ds, "SeriesDescription"),
        modality=str(_num(ds, "Modality", "")),
        manufacturer=_text(ds, "Manufacturer"),
        slice_thickness_mm=_float_or_none(_num(ds, "SliceThickness")),
        spacing_between_slices_mm=_float_or_none(_num(ds, "SpacingBetweenSlices")),
        kind=kind,
        frames=tuple(frames),
        notes=notes,
    )


def classic_volume_key(ds) -> tuple:
    """Sort key of a classic file among the files sharing its slice position.

    Temporal position, then echo number, then the Philips ASL label type, then
    InstanceNumber: the frames at one position are dealt to volumes in that order.
    """
    label = ds.get(PHILIPS_LABEL_TYPE) if PHILIPS_LABEL_TYPE in ds else None
    echo = _num(ds, "EchoNumbers", 0)
    return (
        (),
        int(_num(ds, "TemporalPositionIdentifier", 0) or 0),
        float(echo[0] if isinstance(echo, list) else echo or 0),
        str(label.value) if label is not None else "",
        int(_num(ds, "InstanceNumber", 0) or 0),
        0,
    )


def classic_volume_label(ds) -> str:
    """Readable description of the volume a classic file belongs to."""
    parts = []
    t = _num(ds, "TemporalPositionIdentifier")
    if t is not None:
        parts.append(f"temporal position {t}")
    te = _num(ds, "EchoTime")
    if te is not None:
        parts.append(f"TE {float(te):g} ms")
    label = ds.get(PHILIPS_LABEL_TYPE) if PHILIPS_LABEL_TYPE in ds else None
    if label is not None:
        parts.append(str(label.value))
    trig = _num(ds, "TriggerTime")
    if trig is not None and float(trig) != 0:
        parts.append(f"trigger {float(trig):g} ms")
    return ", ".join(parts)


def classic_frame(ds, source: PixelSource) -> Frame | None:
    """The one frame of a classic single-frame image, None without geometry."""
    ipp = _as_list(_num(ds, "ImagePositionPatient"))
    iop = _as_list(_num(ds, "ImageOrientationPatient"))
    ps = _as_list(_num(ds, "PixelSpacing"))
    if not ipp or not iop or len(ipp) != 3 or len(iop) != 6:
        return None
    if not ps or len(ps) != 2:
        raise DicomReadError(
            f"DICOM file {source.path} has no valid PixelSpacing (0028,0030): {ps!r}; "
            "the in-plane voxel size is unknown"
        )
    ss = ds.get(PHILIPS_SCALE_SLOPE) if PHILIPS_SCALE_SLOPE in ds else None
    return Frame(
        source=source,
        frame_index=0,
        tile_index=-1,
        rows=source.rows,
        cols=source.cols,
        position=tuple(float(v) for v in ipp),
        orientation=tuple(float(v) for v in iop),
        pixel_spacing=(float(ps[0]), float(ps[1])),
        slope=float(_num(ds, "RescaleSlope", 1.0)),
        intercept=float(_num(ds, "RescaleIntercept", 0.0)),
        philips_scale_slope=_philips_value(ss),
        volume_key=classic_volume_key(ds),
        volume_label=classic_volume_label(ds),
    )
