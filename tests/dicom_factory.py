"""Build synthetic DICOM MR series with pydicom, with known geometry, for tests and benchmarks.

Geometry convention (DICOM): ``row`` and ``col`` are the LPS unit vectors of
ImageOrientationPatient (row direction = increasing column index ``i``),
``pixel_spacing`` is DICOM's (between rows, between columns) in mm, slice
``k`` is at ``origin + k * slice_step * cross(row, col)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

_UID_PREFIX = "1.2.826.0.1.3680043.10.1453."


def uid(rng: np.random.Generator) -> str:
    """A deterministic UID from the generator."""
    return _UID_PREFIX + ".".join(str(int(x)) for x in rng.integers(1, 10**9, size=3))


def rotation(deg_x: float, deg_y: float, deg_z: float = 0.0) -> np.ndarray:
    """Rotation matrix (3×3) of successive rotations about x, y, z (degrees)."""
    ax, ay, az = np.radians([deg_x, deg_y, deg_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def base_dataset(*, rows: int, cols: int, series_uid: str, study_uid: str, description: str,
                 series_number: int = 1, signed: bool = False, patient_id: str = "SYN-001") -> Dataset:
    """Common attributes of one MR image (no geometry, no pixels)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = "volumetry-tests"
    ds.PatientID = patient_id
    ds.PatientName = "Synthetic^Phantom"
    ds.StudyDate = "20240102"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = study_uid + ".1"
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    return ds


def write_series(
    folder: str | Path,
    array: np.ndarray,
    *,
    pixel_spacing: Sequence[float] = (1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    row: Sequence[float] = (1.0, 0.0, 0.0),
    col: Sequence[float] = (0.0, 1.0, 0.0),
    slice_step: float = 1.0,
    positions: np.ndarray | None = None,
    slice_thickness: float | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    series_number: int = 1,
    description: str = "synthetic",
    slope: float | None = None,
    intercept: float | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    shuffle_names: bool = False,
    name_prefix: str = "",
    seed: int = 0,
    temporal_position: int | None = None,
    instance_offset: int = 0,
) -> list[Path]:
    """Write ``array`` (``[k, row, column]``, int16 or uint16) as one classic file per slice.

    Returns
    -------
    list of Path
        File of slice ``k`` at index ``k``. With ``shuffle_names`` the file
        names are random, unrelated to slice order or InstanceNumber order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    array = np.asarray(array)
    if array.dtype not in (np.int16, np.uint16):
        raise ValueError("write_series takes int16 or uint16 arrays")
    nk, rows, cols = array.shape
    row = np.asarray(row, float)
    col = np.asarray(col, float)
    normal = np.cross(row, col)
    if positions is None:
        positions = np.asarray(origin, float) + np.outer(np.arange(nk) * slice_step, normal)
    series_uid = series_uid or uid(rng)
    study_uid = study_uid or uid(rng)
    names = [f"{name_prefix}IM{k + 1:04d}.dcm" for k in range(nk)]
    if shuffle_names:
        names = [f"{name_prefix}{x:08x}" for x in rng.choice(16**7, size=nk, replace=False)]
    instance = rng.permutation(nk) + 1 + instance_offset if shuffle_names else np.arange(nk) + 1 + instance_offset
    paths = []
    for k in range(nk):
        ds = base_dataset(rows=rows, cols=cols, series_uid=series_uid, study_uid=study_uid,
                          description=description, series_number=series_number,
                          signed=array.dtype == np.int16)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPInstanceUID = generate_uid(prefix=_UID_PREFIX, entropy_srcs=[series_uid, str(k), name_prefix])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = int(instance[k])
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([row, col])]
        ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
        ds.SliceThickness = f"{slice_thickness if slice_thickness is not None else abs(slice_step):g}"
        ds.SliceLocation = f"{positions[k] @ normal:.6f}"
        if temporal_position is not None:
            ds.TemporalPositionIdentifier = temporal_position
        if slope is not None:
            ds.RescaleSlope = f"{slope:g}"
        if intercept is not None:
            ds.RescaleIntercept = f"{intercept:g}"
        ds.PixelData = np.ascontiguousarray(array[k]).astype(array.dtype.newbyteorder("<")).tobytes()
        if transfer_syntax != ExplicitVRLittleEndian:
            if transfer_syntax in (pydicom.uid.DeflatedExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian):
                ds.file_meta.TransferSyntaxUID = transfer_syntax
            else:
                ds.compress(transfer_syntax)
        path = folder / names[k]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def phantom(shape: tuple[int, int, int], *, signed: bool = False, seed: int = 0) -> np.ndarray:
    """A ``[k, row, column]`` test array whose every slice is distinct (seeded)."""
    rng = np.random.default_rng(seed)
    nk, rows, cols = shape
    lo, hi = (-2000, 2000) if signed else (0, 4000)
    arr = rng.integers(lo, hi, size=shape)
    arr[:, 0, 0] = np.arange(nk)  # slice signature in a corner
    return arr.astype(np.int16 if signed else np.uint16)


def write_enhanced(
    path: str | Path,
    volumes: np.ndarray,
    *,
    pixel_spacing: Sequence[float] = (1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    row: Sequence[float] = (1.0, 0.0, 0.0),
    col: Sequence[float] = (0.0, 1.0, 0.0),
    slice_step: float = 1.0,
    slopes: np.ndarray | None = None,
    intercept: float = 0.0,
    description: str = "synthetic enhanced",
    seed: int = 0,
) -> Path:
    """Write ``volumes`` (``[volume, k, row, column]``, uint16) as one Enhanced MR file.

    Orientation and pixel measures are in the *shared* functional group; position, frame
    content (temporal position, in-stack position) and rescale (``slopes[v, k]``) per frame.
    The frames are stored in a seeded random order.
    """
    rng = np.random.default_rng(seed)
    volumes = np.asarray(volumes)
    nv, nk, rows, cols = volumes.shape
    row = np.asarray(row, float)
    col = np.asarray(col, float)
    normal = np.cross(row, col)
    series_uid = uid(rng)
    ds = base_dataset(rows=rows, cols=cols, series_uid=series_uid, study_uid=uid(rng), description=description)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = series_uid + ".1"
    ds.InstanceNumber = 1
    ds.NumberOfFrames = nv * nk
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    pm.SliceThickness = f"{abs(slice_step):g}"
    shared.PixelMeasuresSequence = [pm]
    po = Dataset()
    po.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([row, col])]
    shared.PlaneOrientationSequence = [po]
    ds.SharedFunctionalGroupsSequence = [shared]
    dims = []
    for tag in (0x00209057, 0x00209128):
        d = Dataset()
        d.DimensionIndexPointer = tag
        d.FunctionalGroupPointer = 0x00209111
        dims.append(d)
    ds.DimensionIndexSequence = dims
    order = [(v, k) for v in range(nv) for k in range(nk)]
    order = [order[i] for i in rng.permutation(len(order))]
    per_frame = []
    for v, k in order:
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [f"{x:.6f}" for x in np.asarray(origin, float) + k * slice_step * normal]
        item.PlanePositionSequence = [pp]
        fc = Dataset()
        fc.StackID = "1"
        fc.InStackPositionNumber = k + 1
        fc.TemporalPositionIndex = v + 1
        fc.DimensionIndexValues = [k + 1, v + 1]
        item.FrameContentSequence = [fc]
        pv = Dataset()
        pv.RescaleSlope = f"{(slopes[v, k] if slopes is not None else 1.0):g}"
        pv.RescaleIntercept = f"{intercept:g}"
        pv.RescaleType = "US"
        item.PixelValueTransformationSequence = [pv]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = np.stack([volumes[v, k] for v, k in order]).astype("<u2").tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
