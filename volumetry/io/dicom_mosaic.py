"""Frames of a Siemens mosaic: the slices of one volume tiled in one image.

* Number of slices: (0019,100A) NumberOfImagesInMosaic, else the CSA image
  header's ``NumberOfImagesInMosaic``. The tiles form a ``m × m`` grid with
  ``m = ceil(sqrt(n))``, filled row by row.
* ImagePositionPatient of a mosaic is the corner of the *whole* mosaic; the
  first slice's position is shifted by half the difference between the
  mosaic and tile matrices along the row and column directions (the
  correction nibabel and dcm2niix apply).
* Tile ``s`` lies at ``first + s · spacing · normal`` where ``normal`` is the
  CSA ``SliceNormalVector`` (the order of the tiles; it may be opposite to
  the cross product of the orientation cosines) and ``spacing`` (mm) comes
  from the slice centres of the protocol (CSA series header,
  MrPhoenixProtocol ``sSliceArray.asSlice[*].sPosition``, LPS) projected on
  the normal, checked evenly spaced; only when the protocol cannot be read
  is it SpacingBetweenSlices. The loader records which in the warnings.
"""
from __future__ import annotations

import logging
import math
import warnings

import numpy as np

from ..errors import DicomReadError, SeriesGeometryError
from .dicom_frames import PHILIPS_SCALE_SLOPE, Frame, PixelSource
from .dicom_geometry import SLICE_SPACING_TOL_MM
from .dicom_values import philips_value as _philips_value

log = logging.getLogger(__name__)

_N_MOSAIC_TAG = (0x0019, 0x100A)


def is_mosaic(ds) -> bool:
    """True when the data set is a Siemens mosaic (ImageType contains MOSAIC)."""
    from .dicom_values import num as _num

    image_type = _num(ds, "ImageType")
    if isinstance(image_type, str):
        image_type = [image_type]
    if not image_type:
        return False
    return "MOSAIC" in [str(v).upper() for v in image_type]


def _csa(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel warns that its DICOM readers are experimental
        from nibabel.nicom import csareader
    try:
        return csareader, csareader.get_csa_header(ds, "image")
    except Exception as exc:  # a damaged CSA header: fall back to the public tags
        log.debug("cannot parse the CSA image header: %s", exc)
        return csareader, None


def mosaic_frames(ds, source: PixelSource, volume_key: tuple, volume_label: str) -> tuple[list[Frame], str]:
    """Describe the tiles of a Siemens mosaic as frames.

    Parameters
    ----------
    ds : pydicom.Dataset
        Header of the mosaic file.
    source : PixelSource
        Its pixels (one stored frame holding all tiles).
    volume_key, volume_label
        Volume ordering key and description shared by all tiles.

    Returns
    -------
    frames : list of Frame
        One per slice, in tile order.
    note : str
        Where the slice spacing came from (recorded in the volume's warnings).

    Raises
    ------
    DicomReadError
        If the number of tiles is unknown or does not fit the matrix, or the
        slice spacing is missing.
    """
    path = source.path
    csareader, csa = _csa(ds)
    n = ds.get(_N_MOSAIC_TAG)
    n = int(n.value) if n is not None and not isinstance(n.value, bytes) else None
    if n is None and csa is not None:
        n = csareader.get_n_mosaic(csa)
    if not n:
        raise DicomReadError(
            f"Siemens mosaic {path}: the number of slices (0019,100A NumberOfImagesInMosaic) is missing; "
            "convert this series with the scanner's export as non-mosaic images"
        )
    m = math.ceil(math.sqrt(n))
    if source.rows % m or source.cols % m:
        raise DicomReadError(
            f"Siemens mosaic {path}: a {source.rows}x{source.cols} image cannot hold {m}x{m} tiles "
            f"for {n} slices"
        )
    tile_rows, tile_cols = source.rows // m, source.cols // m
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_cos, col_cos = iop[:3], iop[3:]
    ps = [float(v) for v in ds.PixelSpacing]
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    # corner of the whole mosaic -> first pixel of the first tile
    first = ipp + col_cos * ps[0] * (source.rows - tile_rows) / 2 + row_cos * ps[1] * (source.cols - tile_cols) / 2
    normal = None
    if csa is not None:
        try:
            normal = csareader.get_slice_normal(csa)
        except Exception:  # pragma: no cover - damaged CSA
            normal = None
    cross = np.cross(row_cos, col_cos)
    if normal is None:
        normal = cross
    normal = np.asarray(normal, dtype=float)
    normal = normal / np.linalg.norm(normal)
    if abs(abs(normal @ cross) - 1) > 1e-3:
        raise DicomReadError(
            f"Siemens mosaic {path}: the CSA SliceNormalVector {normal.round(5).tolist()} is not normal "
            f"to the image plane {cross.round(5).tolist()}"
        )
    header_spacing = ds.get("SpacingBetweenSlices")
    protocol_spacing = _protocol_spacing(ds, n, normal, csareader)
    if protocol_spacing is not None:
        spacing = protocol_spacing
        note = (f"Siemens mosaic: slice spacing {spacing:.4g} mm from the slice positions of the protocol "
                "(CSA MrPhoenixProtocol sSliceArray)")
        if header_spacing and abs(float(header_spacing) - spacing) > SLICE_SPACING_TOL_MM:
            note += f"; SpacingBetweenSlices says {float(header_spacing):g} mm"
    elif header_spacing:
        spacing = float(header_spacing)
        note = (f"Siemens mosaic: slice spacing {spacing:.4g} mm from SpacingBetweenSlices "
                "(the mosaic stores one position and its protocol could not be read)")
    else:
        raise DicomReadError(
            f"Siemens mosaic {path}: neither the protocol's slice positions nor SpacingBetweenSlices (0018,0088) "
            "are present, so the slice spacing of the tiles is unknown"
        )
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    ss = _philips_value(ds.get(PHILIPS_SCALE_SLOPE))
    frames = []
    for s in range(n):
        pos = first + s * spacing * normal
        frames.append(Frame(
            source=source,
            frame_index=0,
            tile_index=s,
            rows=tile_rows,
            cols=tile_cols,
            position=tuple(float(v) for v in pos),
            orientation=tuple(float(v) for v in iop),
            pixel_spacing=(ps[0], ps[1]),
            slope=slope,
            intercept=intercept,
            philips_scale_slope=ss,
            volume_key=volume_key,
            volume_label=volume_label,
        ))
    return frames, note


_PROTOCOL_CACHE: dict[tuple, float | None] = {}


def _protocol_spacing(ds, n: int, normal: np.ndarray, csareader) -> float | None:
    """Slice spacing (mm) from the slice centres in the CSA series header's MrPhoenixProtocol.

    Returns None when the protocol is absent or unreadable, or lists another
    number of slices. Cached per series (every volume of a series repeats it).

    Raises
    ------
    SeriesGeometryError
        If the protocol's slices are unevenly spaced along the normal.
    """
    key = (str(ds.get("SeriesInstanceUID", "")), n, tuple(np.round(normal, 6)))
    if key in _PROTOCOL_CACHE:
        return _PROTOCOL_CACHE[key]
    spacing = None
    try:
        from nibabel.nicom import ascconv

        csa = csareader.get_csa_header(ds, "series")
        text = csa["tags"]["MrPhoenixProtocol"]["items"][0] if csa else ""
        begin, end = text.find("### ASCCONV BEGIN"), text.find("### ASCCONV END ###")
        if begin >= 0 and end > begin:
            asc, _ = ascconv.parse_ascconv(text[begin:end + len("### ASCCONV END ###")], '""')
            slices = asc["sSliceArray"]["asSlice"]
            if len(slices) == n and n > 1:
                pos = np.array([[s["sPosition"].get(k, 0.0) for k in ("dSag", "dCor", "dTra")] for s in slices])
                d = pos @ normal  # Siemens patient coordinates are LPS
                steps = np.diff(d)
                spacing = float((d[-1] - d[0]) / (n - 1))
                if spacing <= 0 or np.abs(steps - spacing).max() > SLICE_SPACING_TOL_MM:
                    raise SeriesGeometryError(
                        f"Siemens mosaic series {key[0]}: the protocol's {n} slice positions are not evenly spaced "
                        f"along the normal (steps {np.round(steps, 3).tolist()} mm)"
                    )
    except SeriesGeometryError:
        raise
    except Exception as exc:  # an unreadable protocol: fall back to SpacingBetweenSlices
        log.debug("cannot read the slice positions of the mosaic protocol: %s", exc)
        spacing = None
    if len(_PROTOCOL_CACHE) > 256:
        _PROTOCOL_CACHE.clear()
    _PROTOCOL_CACHE[key] = spacing
    return spacing


def tile(mosaic: np.ndarray, index: int, tile_rows: int, tile_cols: int) -> np.ndarray:
    """Tile ``index`` (row-major in the tile grid) of a 2D mosaic array."""
    m = mosaic.shape[1] // tile_cols
    r, c = divmod(index, m)
    return mosaic[r * tile_rows:(r + 1) * tile_rows, c * tile_cols:(c + 1) * tile_cols]
