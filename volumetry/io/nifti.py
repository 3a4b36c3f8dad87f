"""NIfTI, NRRD and MHA/MHD files <-> :class:`~volumetry.image.Volume`.

This is the RAS/LPS edge for NIfTI: a NIfTI affine maps voxel indices to RAS
mm; :data:`volumetry.image.LPS_TO_RAS` flips it to LPS here, and nowhere else.
NRRD and MetaImage go through SimpleITK, whose geometry is already LPS.

Affine choice for NIfTI (``affine_source``):

``"auto"`` (default)
    the sform when its code is set; the qform when only it is set; when both
    are set and disagree by more than :data:`SFORM_QFORM_TOL_MM` (any voxel
    corner of the grid moves by more than that), :class:`ImageFormatError`
    asks the user to choose. With neither set, the pixdim-only ("Analyze")
    affine is used and a warning is recorded in ``meta["warnings"]``.
``"sform"`` / ``"qform"``
    use that one (its code must be set).

Spatial units: the header's ``xyz_units`` (metre, mm, micron) are converted to
mm; an unset unit is read as mm (as ITK does). A 2D file is read as one slice.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from ..errors import ImageFormatError, InputError
from ..image import LPS_TO_RAS, Volume


class AmbiguousOrientationError(ImageFormatError):
    """The file's sform and qform disagree (``shift_mm``: how far a grid corner moves between them)."""

    def __init__(self, message: str, shift_mm: float | None = None) -> None:
        super().__init__(message)
        self.shift_mm = shift_mm


class SeveralVolumesError(ImageFormatError):
    """A 4D file was read without choosing one of its ``n_volumes`` volumes."""

    def __init__(self, message: str, n_volumes: int | None = None) -> None:
        super().__init__(message)
        self.n_volumes = n_volumes

log = logging.getLogger(__name__)

#: Largest displacement (mm) of a grid corner between sform and qform accepted as "agreeing".
SFORM_QFORM_TOL_MM = 1e-3

#: File name endings read as NIfTI.
NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".img.gz")
#: File name endings read through SimpleITK (NRRD, MetaImage).
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")

_FLIP4 = np.diag([*np.diag(LPS_TO_RAS), 1.0])

#: Millimetres per NIfTI spatial unit (``xyzt_units``); "unknown" is read as mm, as ITK does.
_MM_PER_UNIT = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3, "unknown": 1.0}


def has_suffix(path: str | Path, suffixes: tuple[str, ...]) -> bool:
    """True when the file name ends with one of ``suffixes`` (case-insensitive)."""
    name = Path(path).name.lower()
    return any(name.endswith(s) for s in suffixes)


def ras_to_lps_affine(affine_ras: np.ndarray) -> np.ndarray:
    """Convert a 4×4 voxel→RAS affine to voxel→LPS (flip the x and y rows)."""
    return _FLIP4 @ np.asarray(affine_ras, dtype=float)


def lps_to_ras_affine(affine_lps: np.ndarray) -> np.ndarray:
    """Convert a 4×4 voxel→LPS affine to voxel→RAS (the flip is its own inverse)."""
    return _FLIP4 @ np.asarray(affine_lps, dtype=float)


def _corner_shift_mm(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...]) -> float:
    """Largest distance (mm) between the positions of the grid's corners under two affines."""
    n = np.array((tuple(shape[:3]) + (1, 1, 1))[:3]) - 1  # a 2D file is one slice
    corners = np.array([[i, j, k, 1] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])], float)
    return float(np.linalg.norm((corners @ a.T - corners @ b.T)[:, :3], axis=1).max())


def _mm_per_unit(hdr, path: Path) -> float:
    """Millimetres per spatial unit of the header (``xyzt_units``; unknown counts as mm, like ITK)."""
    try:
        unit = hdr.get_xyzt_units()[0]
    except (KeyError, ValueError):
        unit = "unknown"
    factor = _MM_PER_UNIT.get(unit, 1.0)
    if factor != 1.0:
        log.info("%s: spatial unit %s converted to mm (x%g)", path, unit, factor)
    return factor


def _choose_affine(img, path: Path, affine_source: str, warnings: list[str]) -> np.ndarray:
    hdr = img.header
    if not hasattr(hdr, "get_sform"):  # Analyze 7.5: no orientation in the header
        if affine_source != "auto":
            raise ImageFormatError(f"{path}: an Analyze file has no {affine_source}; use affine_source='auto'")
        warnings.append("Analyze file (no sform/qform): geometry from pixdim only (orientation unknown)")
        log.warning("%s: Analyze header; using pixdim-only affine", path)
        return hdr.get_base_affine()
    s_aff, s_code = hdr.get_sform(coded=True)
    q_aff, q_code = hdr.get_qform(coded=True)
    s_code, q_code = int(s_code or 0), int(q_code or 0)
    # NIfTI's xyz_units apply to pixdim, the qform offsets and the sform: bring all to mm
    to_mm = np.diag([_mm_per_unit(hdr, path)] * 3 + [1.0])
    s_aff = None if s_aff is None else to_mm @ s_aff
    q_aff = None if q_aff is None else to_mm @ q_aff
    if affine_source == "sform":
        if not s_code:
            raise ImageFormatError(f"{path}: sform requested but its sform_code is 0 (unset); use affine_source='qform' or 'auto'")
        return s_aff
    if affine_source == "qform":
        if not q_code:
            raise ImageFormatError(f"{path}: qform requested but its qform_code is 0 (unset); use affine_source='sform' or 'auto'")
        return q_aff
    if affine_source != "auto":
        raise InputError(f"affine_source must be 'auto', 'sform' or 'qform', got {affine_source!r}")
    if s_code and q_code:
        shift = _corner_shift_mm(s_aff, q_aff, img.shape)
        if shift > SFORM_QFORM_TOL_MM:
            raise AmbiguousOrientationError(
                f"{path}: sform (code {s_code}) and qform (code {q_code}) disagree: a corner of the grid "
                f"moves by {shift:.3g} mm (tolerance {SFORM_QFORM_TOL_MM} mm). The file's orientation is ambiguous; "
                "check which one the scanner/converter wrote (usually the sform) and choose it explicitly: "
                "affine_source='sform' or 'qform' (CLI: --affine sform|qform), or fix the header", shift
            )
    if s_code:
        return s_aff
    if q_code:
        return q_aff
    warnings.append("NIfTI has neither sform nor qform set: geometry from pixdim only (orientation unknown)")
    log.warning("%s: no sform/qform; using pixdim-only affine", path)
    return to_mm @ img.header.get_base_affine()


def read_nifti(path: str | Path, *, volume_index: int | None = None, affine_source: str = "auto") -> Volume:
    """Read a NIfTI-1/2 (or Analyze) file as a :class:`Volume` in LPS.

    Scaling (``scl_slope``/``scl_inter``) is applied; the result is float32
    when scaling is set, else the stored integer or float type.

    Parameters
    ----------
    path : str or Path
        ``.nii``, ``.nii.gz`` or ``.hdr``/``.img``.
    volume_index : int, optional
        For a 4D file, the 0-based index of the volume to read.
    affine_source : {"auto", "sform", "qform"}
        Which header affine gives the geometry (see module docstring).

    Returns
    -------
    Volume

    Raises
    ------
    ImageFormatError
        Unreadable file, sform/qform disagreement, a 4D file without
        ``volume_index`` (the message lists the volumes), more than 4
        dimensions, or NaN/infinite voxels (the message gives their count).
    """
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path (relative paths are resolved from the current folder)")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for a bad file
        raise ImageFormatError(f"{path}: not a readable NIfTI file ({exc}); re-export it or check that it is not truncated") from exc
    warnings: list[str] = []
    affine_ras = _choose_affine(img, path, affine_source, warnings)
    shape = img.shape
    if volume_index not in (None, 0) and not (len(shape) == 4 and shape[3] > 1):
        raise ImageFormatError(f"{path}: volume {volume_index} requested but the file holds one volume; "
                               "omit --volume / volume_index")
    slicer: tuple = ()
    if len(shape) == 4 and shape[3] == 1:
        slicer = (slice(None), slice(None), slice(None), 0)
    elif len(shape) == 4:
        if volume_index is None:
            raise SeveralVolumesError(
                f"{path}: a 4D file with {shape[3]} volumes (0..{shape[3] - 1}, each {shape[:3]}); "
                "select one with volume_index=N (CLI: --volume N)", int(shape[3])
            )
        if not 0 <= volume_index < shape[3]:
            raise ImageFormatError(f"{path}: volume {volume_index} requested but the file has volumes 0..{shape[3] - 1}")
        slicer = (slice(None), slice(None), slice(None), volume_index)
    elif len(shape) == 2:
        slicer = (slice(None), slice(None), None)
    elif len(shape) != 3:
        raise ImageFormatError(f"{path}: {len(shape)}D image of shape {shape}; volumetry reads 3D (or one volume of 4D) images")
    try:
        data = np.asanyarray(img.dataobj[slicer] if slicer else img.dataobj)
    except Exception as exc:
        raise ImageFormatError(f"{path}: cannot read the voxel data ({exc}); the file may be truncated") from exc
    if data.dtype == np.float64 and img.get_data_dtype() != np.float64:
        data = data.astype(np.float32)  # scaled integers: float32 is exact enough and half the memory
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise ImageFormatError(
                f"{path}: {bad} voxel(s) are NaN or infinite; fix the file (e.g. replace them with 0 in the tool that wrote it) — "
                "volumetry does not guess values"
            )
    # nibabel's array is [i, j, k] (Fortran order on disk): the transpose is a C-ordered view.
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    meta = {
        "source": str(path),
        "files": [str(path)],
        "format": "nifti",
        "description": _descrip(img),
        "modality": None,
        "series_uid": None,
        "warnings": warnings,
    }
    try:
        vol = Volume.from_affine(array, ras_to_lps_affine(affine_ras), meta)
    except InputError as exc:
        raise ImageFormatError(f"{path}: unusable affine: {exc}") from exc
    return _note_one_slice(vol)


def _note_one_slice(vol: Volume) -> Volume:
    """Record, as a one-slice DICOM series does, that a one-slice image's slice spacing is the header's."""
    if vol.size[2] == 1:
        vol.meta["warnings"].append(f"one slice only: slice spacing {vol.spacing[2]:g} mm taken from the header")
    return vol


def _descrip(img) -> str:
    try:
        d = img.header["descrip"]
        return bytes(d).split(b"\0", 1)[0].decode("ascii", "replace").strip()
    except (KeyError, TypeError, ValueError):
        return ""


def write_nifti(volume: Volume, path: str | Path, *, description: str = "") -> Path:
    """Write a :class:`Volume` as NIfTI-1 (gzip when the name ends in ``.gz``).

    The LPS affine is converted to RAS and stored as both sform and qform with
    code 1 (scanner); units are mm. When the direction is not orthonormal enough for
    the qform (a rotation) to hold it exactly, the qform is left unset (code 0). Boolean masks are stored as uint8 0/1.
    Gzip output is deterministic (no time stamp), so equal inputs give equal bytes.

    Parameters
    ----------
    volume : Volume
        Image or mask.
    path : str or Path
        Destination; parent folders are created.
    description : str
        Up to 79 ASCII characters for the header's ``descrip`` field.

    Returns
    -------
    Path
        The written path.
    """
    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    if arr.dtype == np.uint8 and arr.ndim == 3 and path.name.lower().endswith((".nii", ".nii.gz")):
        path.write_bytes(nifti_mask_bytes(volume, description=description, gzip=path.name.lower().endswith(".gz")))
        return path
    data = arr.transpose(2, 1, 0)  # [k, j, i] C-order -> [i, j, k] F-order view, no copy
    affine_ras = lps_to_ras_affine(volume.affine)
    img = nib.Nifti1Image(data, affine_ras)
    img.set_sform(affine_ras, code=1)
    img.set_qform(affine_ras, code=1)
    # The qform is a rotation: it cannot hold a direction that is orthonormal only within
    # ORTHONORMAL_TOL (DICOM cosines of few decimals). Rather than a qform that contradicts
    # the sform (read_nifti refuses such a file), store the sform alone.
    q_aff = img.header.get_qform()
    if _corner_shift_mm(affine_ras, q_aff, data.shape) > SFORM_QFORM_TOL_MM / 2:
        img.set_qform(affine_ras, code=0)
        log.info("%s: direction not exactly orthonormal; qform left unset, the sform holds the geometry", path)
    img.header.set_xyzt_units("mm")
    if description:
        img.header["descrip"] = description.encode("ascii", "replace")[:79]
    nib.save(img, str(path))
    return path


#: gzip header nibabel writes (no file name, mtime 0, "fastest" flag, OS unknown) at its level 1.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
_GZIP_LEVEL = 1


def _raw_deflate(chunks) -> bytes:
    """One raw deflate stream (RFC 1951) of the concatenated ``chunks`` (bytes-like), at ISA-L's
    fastest level (``isal``, igzip): on the sample trial's masks about 15× faster than zlib's
    level 1 and half its size, single-threaded."""
    from isal import isal_zlib

    co = isal_zlib.compressobj(_GZIP_LEVEL, isal_zlib.DEFLATED, -15, 8, 0)
    return b"".join([co.compress(c) for c in chunks] + [co.flush()])


def gzip_member(head: bytes, data) -> bytes:
    """A gzip file (RFC 1952) of ``head`` followed by ``data``: nibabel's 10-byte gzip header
    (mtime 0, no file name), the :func:`_raw_deflate` stream, the CRC-32 (computed by ISA-L) and the size.

    Parameters
    ----------
    head : bytes
    data : bytes-like

    Returns
    -------
    bytes
    """
    import struct

    from isal import isal_zlib

    # the CRC-32 of RFC 1952 (zlib's crc32, the same value), by ISA-L's folding code: ~70x zlib's here
    crc = isal_zlib.crc32(data, isal_zlib.crc32(head))
    size = (len(head) + memoryview(data).nbytes) & 0xFFFFFFFF
    return _GZIP_HEADER + _raw_deflate((head, data)) + struct.pack("<II", crc, size)


def nifti_mask_bytes(volume: Volume, *, description: str = "", gzip: bool = True) -> bytes:
    """The bytes :func:`write_nifti` writes for a uint8/boolean volume, made without nibabel's writer.

    The header is nibabel's (``Nifti1Header`` filled exactly as ``nib.save`` fills it for
    unscaled uint8 data: sform and qform code 1, or the qform unset as in
    :func:`write_nifti`; units mm; ``scl_slope`` 1, ``scl_inter`` 0; data at byte 352), the
    data is the array in NIfTI (Fortran) order: the uncompressed file is byte for byte
    nibabel's, in a fraction of the time (no image object, no array writer). ``.nii.gz`` is
    compressed by :func:`gzip_member` (nibabel's gzip header; ISA-L's fastest deflate instead
    of zlib's, so the compressed bytes are not nibabel's: the file decompresses to the same bytes).

    Parameters
    ----------
    volume : Volume
        Boolean or uint8 image, 3D.
    description : str
        Up to 79 ASCII characters for ``descrip``.
    gzip : bool
        Compress (``.nii.gz``) or not (``.nii``).

    Returns
    -------
    bytes

    Raises
    ------
    InputError
        If the volume is not boolean/uint8 3D.
    """
    arr = volume.array
    if arr.dtype == bool:
        arr = arr.view(np.uint8)  # numpy booleans are bytes 0/1: no copy ...
        if arr.size and arr.max() > 1:  # ... unless made from raw bytes (np.frombuffer, a view)
            arr = arr != 0
            arr = arr.view(np.uint8)
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise InputError(f"nifti_mask_bytes writes 3D uint8/boolean volumes, got {arr.dtype} {arr.shape}")
    shape = arr.shape[::-1]  # (ni, nj, nk)
    affine_ras = np.ascontiguousarray(lps_to_ras_affine(volume.affine))
    head = _mask_header(shape, affine_ras.dtype.str, affine_ras.shape, affine_ras.tobytes(), description)
    data = memoryview(np.ascontiguousarray(arr)).cast("B")  # [k, j, i] C order = [i, j, k] Fortran order
    if not gzip:
        return head + data.tobytes()
    return gzip_member(head, data)


@functools.lru_cache(maxsize=32)
def _mask_header(shape: tuple, dtype: str, affine_shape: tuple, affine_bytes: bytes, description: str) -> bytes:
    """The 352 bytes before the data of :func:`nifti_mask_bytes` (the header and an empty extension
    flag) for a grid: made once per grid (the lesions of one scan share it), from the affine's bytes
    (the same array, so the same header)."""
    import nibabel as nib

    affine_ras = np.frombuffer(affine_bytes, dtype=np.dtype(dtype)).reshape(affine_shape)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.uint8)
    hdr.set_sform(affine_ras, code=1)
    hdr.set_qform(affine_ras, code=1)
    if _corner_shift_mm(affine_ras, hdr.get_qform(), shape) > SFORM_QFORM_TOL_MM / 2:
        hdr.set_qform(affine_ras, code=0)
    hdr.set_xyzt_units("mm")
    if description:
        hdr["descrip"] = description.encode("ascii", "replace")[:79]
    hdr["vox_offset"] = 352
    hdr["scl_slope"] = 1.0
    hdr["scl_inter"] = 0.0
    return hdr.binaryblock + b"\0\0\0\0"


def read_itk(path: str | Path) -> Volume:
    """Read NRRD or MetaImage (``.mha``/``.mhd``) through SimpleITK (geometry already LPS).

    Raises
    ------
    ImageFormatError
        Unreadable file, not 3D scalar, an unusable geometry (spacing not
        positive, direction not orthonormal), or NaN/infinite voxels.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise ImageFormatError(f"{path}: not a readable NRRD/MetaImage file ({first}); re-export it") from exc
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise ImageFormatError(
            f"{path}: {img.GetDimension()}D image with {img.GetNumberOfComponentsPerPixel()} component(s); "
            "volumetry reads 3D scalar images"
        )
    try:
        vol = Volume.from_sitk(img, {"source": str(path), "files": [str(path)], "format": "itk",
                                     "description": "", "modality": None, "series_uid": None, "warnings": []})
    except InputError as exc:
        raise ImageFormatError(f"{path}: unusable geometry: {exc}") from exc
    if vol.array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(vol.array)))
        if bad:
            raise ImageFormatError(f"{path}: {bad} voxel(s) are NaN or infinite; fix the file — volumetry does not guess values")
    return _note_one_slice(vol)
