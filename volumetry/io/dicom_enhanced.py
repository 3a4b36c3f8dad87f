"""Frames of an enhanced multi-frame image (Enhanced MR, and the like).

Geometry and scaling come from the functional groups: each attribute is
looked up in the frame's PerFrameFunctionalGroupsSequence item first, then in
the SharedFunctionalGroupsSequence, then at the top level of the data set:

* PlanePositionSequence > ImagePositionPatient (LPS mm);
* PlaneOrientationSequence > ImageOrientationPatient;
* PixelMeasuresSequence > PixelSpacing (mm);
* PixelValueTransformationSequence > RescaleSlope / RescaleIntercept;
* FrameContentSequence > TemporalPositionIndex, DimensionIndexValues: the
  dimensions other than the slice position order the frames into volumes;
* MREchoSequence > EffectiveEchoTime (ms);
* Philips private (2005,140F) > (2005,100E) scale slope.
"""
from __future__ import annotations

from ..errors import DicomReadError
from .dicom_frames import PHILIPS_LABEL_TYPE, PHILIPS_SCALE_SLOPE, Frame, PixelSource
from .dicom_values import philips_value as _philips_value

#: Dimension index pointers that encode the slice position, not the volume.
_SPATIAL_DIMENSIONS = frozenset({0x00209057, 0x00200032, 0x00209056})
_PHILIPS_PER_FRAME = (0x2005, 0x140F)


def _item(group, keyword):
    """First item of a functional-group sequence in one group item, or None."""
    if group is None:
        return None
    seq = group.get(keyword)
    if not seq:
        return None
    return seq[0]


def _lookup(per_frame, shared, keyword):
    item = _item(per_frame, keyword)
    return item if item is not None else _item(shared, keyword)


def enhanced_frames(ds, source: PixelSource) -> list[Frame]:
    """Describe every frame of an enhanced multi-frame data set.

    Parameters
    ----------
    ds : pydicom.Dataset
        Header (without pixels) of the file.
    source : PixelSource
        Where its pixels are.

    Returns
    -------
    list of Frame
        One per frame, in file order.

    Raises
    ------
    DicomReadError
        If a frame has no position, orientation or pixel spacing, or the
        number of functional-group items differs from NumberOfFrames.
    """
    path = source.path
    per_frame = ds.PerFrameFunctionalGroupsSequence
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    if len(per_frame) != source.n_frames:
        raise DicomReadError(
            f"DICOM file {path}: PerFrameFunctionalGroupsSequence has {len(per_frame)} items but "
            f"NumberOfFrames is {source.n_frames}; the file is inconsistent, export it again"
        )
    keep_dims = None
    dim_seq = ds.get("DimensionIndexSequence")
    if dim_seq:
        keep_dims = [i for i, d in enumerate(dim_seq)
                     if int(d.get("DimensionIndexPointer", 0) or 0) not in _SPATIAL_DIMENSIONS]
    instance = int(ds.get("InstanceNumber", 0) or 0)
    top_slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    top_intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    shared_philips = _item(shared, _PHILIPS_PER_FRAME) if shared is not None else None
    frames = []
    for n, pf in enumerate(per_frame):
        pos_item = _lookup(pf, shared, "PlanePositionSequence")
        ori_item = _lookup(pf, shared, "PlaneOrientationSequence")
        pix_item = _lookup(pf, shared, "PixelMeasuresSequence")
        ipp = pos_item.get("ImagePositionPatient") if pos_item is not None else None
        iop = ori_item.get("ImageOrientationPatient") if ori_item is not None else ds.get("ImageOrientationPatient")
        ps = pix_item.get("PixelSpacing") if pix_item is not None else ds.get("PixelSpacing")
        if not ipp or not iop or not ps:
            raise DicomReadError(
                f"DICOM file {path}, frame {n + 1}: missing "
                + ", ".join(name for name, v in (("ImagePositionPatient", ipp), ("ImageOrientationPatient", iop),
                                                  ("PixelSpacing", ps)) if not v)
                + " in the per-frame and shared functional groups; the frame cannot be placed in space"
            )
        rescale = _lookup(pf, shared, "PixelValueTransformationSequence")
        slope = float(rescale.get("RescaleSlope", top_slope)) if rescale is not None else top_slope
        intercept = float(rescale.get("RescaleIntercept", top_intercept)) if rescale is not None else top_intercept
        philips = _item(pf, _PHILIPS_PER_FRAME) or shared_philips
        ss = _philips_value(philips.get(PHILIPS_SCALE_SLOPE)) if philips is not None else None
        if ss is None:
            ss = _philips_value(ds.get(PHILIPS_SCALE_SLOPE))
        content = _item(pf, "FrameContentSequence")
        temporal = 0
        dims: tuple = ()
        if content is not None:
            temporal = int(content.get("TemporalPositionIndex", 0) or 0)
            dv = content.get("DimensionIndexValues")
            if dv is not None and keep_dims is not None:
                dv = list(dv) if isinstance(dv, (list, tuple)) or hasattr(dv, "__iter__") else [dv]
                dims = tuple(int(dv[i]) for i in keep_dims if i < len(dv))
        echo = _lookup(pf, shared, "MREchoSequence")
        te = echo.get("EffectiveEchoTime") if echo is not None else None
        label_el = philips.get(PHILIPS_LABEL_TYPE) if philips is not None else None
        label_parts = []
        if temporal:
            label_parts.append(f"temporal position {temporal}")
        if te is not None:
            label_parts.append(f"TE {float(te):g} ms")
        if label_el is not None:
            label_parts.append(str(label_el.value))
        frames.append(Frame(
            source=source,
            frame_index=n,
            tile_index=-1,
            rows=source.rows,
            cols=source.cols,
            position=tuple(float(v) for v in ipp),
            orientation=tuple(float(v) for v in iop),
            pixel_spacing=(float(ps[0]), float(ps[1])),
            slope=slope,
            intercept=intercept,
            philips_scale_slope=ss,
            volume_key=(dims, temporal, float(te) if te is not None else 0.0,
                        str(label_el.value) if label_el is not None else "", instance, n),
            volume_label=", ".join(label_parts),
        ))
    return frames
