"""Pixel data of a list of frames, read as fast as the format allows.

* Uncompressed little-endian files: the bytes are read straight into the
  output array at the offset the index recorded (one ``readinto`` per frame,
  no second header parse, no copy).
* Everything else (JPEG lossless, JPEG-LS, JPEG 2000, RLE, deflate, big
  endian): pydicom decodes the file (``pixel_array``) with the pylibjpeg
  plugins declared as dependencies.

Then :func:`apply_rescale` maps stored values to output values.
"""
from __future__ import annotations

import logging

import numpy as np

from ..errors import DicomReadError
from .dicom_frames import Frame, PixelSource
from .dicom_mosaic import tile

log = logging.getLogger(__name__)

#: How Philips scale factors are applied (see docs/loading.md):
#: ``"display"`` applies RescaleSlope/RescaleIntercept only (the DICOM standard,
#: what viewers, SimpleITK and PACS show); ``"precise"`` further divides by
#: RescaleSlope × private scale slope (2005,100E), giving Philips' floating-point
#: values, which is what dcm2niix stores by default (``-p y``).
PHILIPS_SCALINGS = ("display", "precise")


def _decode_with_pydicom(src: PixelSource) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(src.path)
        arr = ds.pixel_array
    except Exception as exc:  # decoder errors come in many types
        raise DicomReadError(
            f"cannot decode the pixels of {src.path} (transfer syntax {src.transfer_syntax}): "
            f"{type(exc).__name__}: {exc}; the file is truncated or corrupt, or its decoder "
            "(pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle) is not installed"
        ) from exc
    if src.samples_per_pixel != 1:
        raise DicomReadError(f"{src.path}: colour images (SamplesPerPixel {src.samples_per_pixel}) are not supported")
    return arr.reshape(src.n_frames, src.rows, src.cols)


def _fix_bits(arr: np.ndarray, src: PixelSource) -> np.ndarray:
    """Values stored in fewer bits than allocated: sign-extend signed ones, clear the unused
    high bits of unsigned ones (they may hold other data, e.g. retired overlays; pydicom clears them)."""
    if src.bits_stored < src.bits_allocated:
        if src.pixel_representation == 1:
            shift = src.bits_allocated - src.bits_stored
            arr <<= shift
            arr >>= shift
        else:
            arr &= arr.dtype.type((1 << src.bits_stored) - 1)
    return arr


def read_frames(frames: list[Frame] | tuple[Frame, ...]) -> np.ndarray:
    """Stored pixel values of the frames, stacked ``[k, row, column]``.

    Parameters
    ----------
    frames : sequence of Frame
        Frames of one volume, in slice order; all of the same size.

    Returns
    -------
    numpy.ndarray
        Stored values (no rescale), shape ``(len(frames), rows, cols)``.

    Raises
    ------
    DicomReadError
        If a file is shorter than its header says, cannot be decoded, or is a
        colour image.
    """
    rows, cols = frames[0].rows, frames[0].cols
    for f in frames:
        if f.source.bits_allocated not in (8, 16, 32, 64):
            raise DicomReadError(
                f"{f.source.path}: BitsAllocated {f.source.bits_allocated}: a binary image such as a DICOM "
                "Segmentation is a mask, not an image to load; give the series it was drawn on as the image "
                "and the SEG with --mask")
    dtypes = {f.source.dtype for f in frames}
    dtype = np.result_type(*[np.dtype(d) for d in dtypes])
    out = np.empty((len(frames), rows, cols), dtype=dtype.newbyteorder("="))
    decoded: dict[str, np.ndarray] = {}
    fp = None
    fp_path = None
    try:
        for k, f in enumerate(frames):
            src = f.source
            if src.samples_per_pixel != 1:
                raise DicomReadError(
                    f"{src.path}: colour images (SamplesPerPixel {src.samples_per_pixel}) are not supported")
            direct = src.value_offset is not None and f.tile_index < 0 and np.dtype(src.dtype) == out.dtype
            if direct:
                if fp_path != src.path:
                    if fp is not None:
                        fp.close()
                    try:
                        fp = open(src.path, "rb", buffering=0)
                    except OSError as exc:
                        raise DicomReadError(f"cannot open {src.path}: {exc.strerror}") from exc
                    fp_path = src.path
                fp.seek(src.value_offset + f.frame_index * src.frame_bytes)
                got = fp.readinto(memoryview(out[k]).cast("B"))
                if got != src.frame_bytes:
                    raise DicomReadError(
                        f"DICOM file {src.path} is truncated: frame {f.frame_index + 1} needs {src.frame_bytes} "
                        f"bytes, the file holds {got}; export it again or remove it from the folder"
                    )
                if src.bits_stored < src.bits_allocated:
                    _fix_bits(out[k], src)
                continue
            arr = decoded.get(src.path)
            if arr is None:
                if src.value_offset is not None:
                    arr = _read_all(src)
                else:
                    arr = _decode_with_pydicom(src)
                arr = _fix_bits(np.array(arr, copy=True), src) if src.bits_stored < src.bits_allocated else arr
                decoded.clear()  # keep one decoded file in memory
                decoded[src.path] = arr
            img = arr[f.frame_index]
            if f.tile_index >= 0:
                img = tile(img, f.tile_index, rows, cols)
            if img.shape != (rows, cols):
                raise DicomReadError(f"{src.path}: frame of size {img.shape} in a stack of {rows}x{cols} images")
            out[k] = img
    finally:
        if fp is not None:
            fp.close()
    return out


def _read_all(src: PixelSource) -> np.ndarray:
    nbytes = src.frame_bytes * src.n_frames
    with open(src.path, "rb") as fp:
        fp.seek(src.value_offset)
        buf = fp.read(nbytes)
    if len(buf) != nbytes:
        raise DicomReadError(
            f"DICOM file {src.path} is truncated: its pixel data needs {nbytes} bytes, the file holds {len(buf)}; "
            "export it again or remove it from the folder"
        )
    return np.frombuffer(buf, dtype=src.dtype).reshape(src.n_frames, src.rows, src.cols)


def _int_dtype_for(lo: float, hi: float) -> np.dtype | None:
    for dt in (np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return None


def scale_factors(frames, philips_scaling: str = "display") -> tuple[np.ndarray, np.ndarray]:
    """Per-slice slope and intercept mapping stored values to output values.

    Raises
    ------
    ValueError
        If ``philips_scaling`` is not one of :data:`PHILIPS_SCALINGS`.
    """
    if philips_scaling not in PHILIPS_SCALINGS:
        raise ValueError(f"philips_scaling must be one of {PHILIPS_SCALINGS}, got {philips_scaling!r}")
    slope = np.array([f.slope for f in frames], dtype=float)
    intercept = np.array([f.intercept for f in frames], dtype=float)
    if philips_scaling == "precise":
        ss = np.array([f.philips_scale_slope or np.nan for f in frames], dtype=float)
        have = np.isfinite(ss)
        # FP = (PV * RS + RI) / (RS * SS)
        denom = np.where(have, slope * ss, 1.0)
        slope = slope / denom
        intercept = intercept / denom
    return slope, intercept


def apply_rescale(raw: np.ndarray, slope: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Apply per-slice ``value = stored * slope + intercept``.

    Identity scaling keeps the stored array and type. Integer slopes and
    intercepts give the narrowest signed integer type that holds every value
    the stored type allows; otherwise float32.

    Parameters
    ----------
    raw : numpy.ndarray
        Stored values, ``[k, row, column]``.
    slope, intercept : numpy.ndarray
        One value per slice.
    """
    if np.all(slope == 1) and np.all(intercept == 0):
        return raw
    if raw.dtype.kind in "iu" and np.all(slope == np.round(slope)) and np.all(intercept == np.round(intercept)):
        info = np.iinfo(raw.dtype)
        ends = np.concatenate([info.min * slope + intercept, info.max * slope + intercept])
        dt = _int_dtype_for(ends.min(), ends.max())
        if dt is not None:
            if np.all(slope == slope[0]) and np.all(intercept == intercept[0]):
                out = raw.astype(dt)
                if slope[0] != 1:
                    out *= dt.type(slope[0])
                if intercept[0] != 0:
                    out += dt.type(intercept[0])
                return out
            return raw.astype(dt) * slope.astype(dt)[:, None, None] + intercept.astype(dt)[:, None, None]
    out = raw.astype(np.float32)
    if np.all(slope == slope[0]) and np.all(intercept == intercept[0]):
        out *= np.float32(slope[0])
        out += np.float32(intercept[0])
        return out
    out *= slope.astype(np.float32)[:, None, None]
    out += intercept.astype(np.float32)[:, None, None]
    return out
