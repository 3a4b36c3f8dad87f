"""Attribute values of a DICOM header, decoded directly from raw bytes where that is safe.

pydicom's general value conversion is the slowest part of reading a header;
the few attributes the index needs (numbers, UIDs, code strings) are decoded
here from the raw element bytes; text with a character set and anything
unusual is left to pydicom.
"""
from __future__ import annotations

import struct
from typing import Any

_NUMERIC_VR = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_ASCII_VR = frozenset({"UI", "CS", "DA", "TM", "DT", "AS"})
_TAGS: dict[str, tuple[int, str]] = {}


def tag_vr(keyword: str) -> tuple[int, str]:
    """Tag (int) and dictionary VR of a keyword, cached."""
    tv = _TAGS.get(keyword)
    if tv is None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        tag = tag_for_keyword(keyword)
        tv = _TAGS[keyword] = (tag, dictionary_VR(tag))
    return tv


def decode_raw(elem, vr: str) -> Any:
    """Value of a raw element for the VRs read in the hot path, without pydicom's conversion.

    Returns NotImplemented for the VRs left to pydicom (text with a character set, sequences).
    """
    raw = elem.value
    if raw is None or raw == b"":
        return None
    if vr in ("DS", "IS"):
        parts = raw.decode("ascii").strip(" \0").split("\\")
        conv = float if vr == "DS" else (lambda x: int(float(x)))
        vals = [conv(x) for x in parts]
        return vals[0] if len(vals) == 1 else vals
    if vr in _ASCII_VR:
        parts = [p.strip(" \0") for p in raw.decode("ascii").split("\\")]
        return parts[0] if len(parts) == 1 else parts
    fmt = _NUMERIC_VR.get(vr)
    if fmt is not None:
        n = len(raw) // struct.calcsize(fmt)
        vals = struct.unpack(("<" if elem.is_little_endian else ">") + fmt * n, raw[: n * struct.calcsize(fmt)])
        return vals[0] if n == 1 else list(vals)
    return NotImplemented


def num(ds, keyword: str, default: Any = None) -> Any:
    """Value of a top-level attribute, decoded directly from the raw bytes when it is
    a number, UID or code string (pydicom's general conversion is the slow part of
    reading a header); ``default`` when absent or empty."""
    tag, vr = tag_vr(keyword)
    try:
        elem = ds.get_item(tag)
    except KeyError:
        elem = None
    if elem is None:
        return default
    v = NotImplemented
    if getattr(elem, "is_raw", False):
        try:
            v = decode_raw(elem, elem.VR or vr)
        except (UnicodeDecodeError, ValueError, struct.error):
            v = NotImplemented
    if v is NotImplemented:
        v = ds[tag].value
    if v is None or v == "":
        return default
    return v


def float_or_none(v) -> float | None:
    """``float(v)``, or None when absent or not a number."""
    try:
        return None if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return None


def as_list(v) -> list | None:
    """A multi-valued attribute as a list (a single value as a one-item list)."""
    if v is None:
        return None
    return list(v) if isinstance(v, (list, tuple)) or hasattr(v, "__len__") and not isinstance(v, str) else [v]


def philips_value(elem) -> float | None:
    """A positive float from a Philips private FL element (raw bytes when read implicit VR)."""
    if elem is None:
        return None
    v = elem.value
    if isinstance(v, bytes):  # implicit VR: raw bytes of an FL
        if len(v) != 4:
            return None
        v = struct.unpack("<f", v)[0]
    try:
        v = float(v[0] if isinstance(v, (list, tuple)) else v)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None
