"""A minimal reader of classic DICOM headers, for speed.

pydicom's general parser is the largest cost of indexing a folder of
single-frame files. This module parses a Part-10 file encoded in implicit or
explicit VR little endian up to its PixelData, keeping the raw bytes of the
top-level elements and skipping sequences (defined or undefined length)
without reading them. It returns None for anything it does not handle
(no preamble, another transfer syntax, an enhanced multi-frame or mosaic
image, an unusual character set, a file ending early): the caller then uses
pydicom, which reports problems with the file's name.

The returned :class:`RawHeader` offers the small part of pydicom's
``Dataset`` interface that :mod:`volumetry.io.dicom_frames` uses.
"""
from __future__ import annotations

import struct
from typing import Any

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"})
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
#: Tags whose presence sends the file to pydicom (enhanced multi-frame).
_PYDICOM_ONLY = frozenset({0x52009230, 0x52009229})
#: Character sets decoded here (others go to pydicom).
_CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
_TEXT_VRS = frozenset({"LO", "SH", "PN", "ST", "LT", "UT", "UC"})
_FIRST_READ = 8192

_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_group_elem = struct.Struct("<HH").unpack_from


class _NeedMore(Exception):
    pass


class _Unsupported(Exception):
    pass


class RawElement:
    """A raw element: its VR (str), bytes, little endian."""

    __slots__ = ("VR", "value")
    is_raw = True
    is_little_endian = True

    def __init__(self, vr: str, value: bytes):
        self.VR = vr
        self.value = value


class _Converted:
    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class _FileMeta(dict):
    pass


class RawHeader:
    """Top-level elements of a classic header, raw, with a Dataset-like interface."""

    def __init__(self, elems: dict[int, RawElement], transfer_syntax: str, encoding: str):
        self._elems = elems
        self._encoding = encoding
        self.file_meta = _FileMeta(TransferSyntaxUID=transfer_syntax)

    @staticmethod
    def _tag(key) -> int:
        if key.__class__ is int:
            return key
        if isinstance(key, tuple):
            return (key[0] << 16) | key[1]
        if isinstance(key, str):
            from pydicom.datadict import tag_for_keyword

            return tag_for_keyword(key)
        return int(key)

    def __contains__(self, key) -> bool:
        return self._tag(key) in self._elems

    def get_item(self, key):
        return self._elems.get(self._tag(key))

    def _convert(self, tag: int, elem: RawElement) -> Any:
        from pydicom.datadict import dictionary_VR

        from .dicom_values import decode_raw as _decode_raw

        vr = elem.VR
        if not vr:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                return elem.value
        if vr in _TEXT_VRS:
            text = elem.value.decode(self._encoding, "replace").rstrip(" \0")
            return text if vr in ("ST", "LT", "UT") else (text.split("\\")[0] if "\\" not in text else text.split("\\"))
        v = _decode_raw(elem, vr)
        return elem.value if v is NotImplemented else v

    def __getitem__(self, key):
        tag = self._tag(key)
        return _Converted(self._convert(tag, self._elems[tag]))

    def get(self, key, default=None):
        tag = self._tag(key)
        elem = self._elems.get(tag)
        if elem is None:
            return default
        if isinstance(key, tuple):  # pydicom returns the element for a tag key
            return _Converted(self._convert(tag, elem))
        return self._convert(tag, elem)


def _skip_sequence(buf: bytes, pos: int, explicit: bool) -> int:
    """Position after an undefined-length sequence starting at ``pos`` (its first item)."""
    n = len(buf)
    while True:
        if pos + 8 > n:
            raise _NeedMore
        tag = (_u16(buf, pos)[0] << 16) | _u16(buf, pos + 2)[0]
        (length,) = _u32(buf, pos + 4)
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Unsupported
        if length != _UNDEFINED:
            pos += length
        else:
            pos = _parse(buf, pos, explicit, None, item=True)[0]


def _parse(buf: bytes, pos: int, explicit: bool, out: dict | None, item: bool = False) -> tuple[int, int | None]:
    """Walk elements from ``pos``; store top-level ones in ``out``.

    Returns (position, pixel_pos): for the data set, the position of the
    PixelData element; for an undefined-length item, the position after it.
    """
    n = len(buf)
    while True:
        if pos + 8 > n:
            if item or out is None:
                raise _NeedMore
            raise _NeedMore
        group, elem_no = _group_elem(buf, pos)
        tag = (group << 16) | elem_no
        if item and tag == _ITEM_END:
            return pos + 8, None
        if out is not None and tag == _PIXEL_DATA:
            return pos, pos
        if out is not None and tag in _PYDICOM_ONLY:
            raise _Unsupported
        if explicit and group != 0xFFFE:
            vr = buf[pos + 4:pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > n:
                    raise _NeedMore
                (length,) = _u32(buf, pos + 8)
                start = pos + 12
            else:
                (length,) = _u16(buf, pos + 6)
                start = pos + 8
            vr_s = vr.decode("latin-1")
        else:
            vr = b""
            (length,) = _u32(buf, pos + 4)
            start = pos + 8
            vr_s = ""
        if length == _UNDEFINED:
            # a sequence (or UN holding one, encoded implicit VR)
            pos = _skip_sequence(buf, start, explicit and vr != b"UN")
            continue
        end = start + length
        if end > n:
            raise _NeedMore
        if out is not None and vr != b"SQ":
            out[tag] = RawElement(vr_s, buf[start:end])
        pos = end


def read_raw_header(fp, file_size: int) -> tuple[RawHeader, int, bytes] | None:
    """Parse a classic header from the open file ``fp`` (at offset 0).

    Returns
    -------
    (header, pixel_pos, element_head) or None
        ``pixel_pos`` is the offset of the PixelData element and
        ``element_head`` its first 12 bytes; None when the file is left to pydicom.
    """
    size = min(_FIRST_READ, file_size)
    while True:
        fp.seek(0)
        buf = fp.read(size)
        try:
            return _read(buf)
        except _NeedMore:
            if size >= file_size:
                return None
            size = min(size * 4, file_size)
        except (_Unsupported, struct.error, UnicodeDecodeError, ValueError):
            return None


def _read(buf: bytes):
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise _Unsupported
    # file meta: explicit VR little endian, group 0002
    meta: dict[int, RawElement] = {}
    pos = 132
    while True:
        if pos + 8 > len(buf):
            raise _NeedMore
        if _u16(buf, pos)[0] != 0x0002:
            break
        tag = (0x0002 << 16) | _u16(buf, pos + 2)[0]
        vr = buf[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            (length,) = _u32(buf, pos + 8)
            start = pos + 12
        else:
            (length,) = _u16(buf, pos + 6)
            start = pos + 8
        if length == _UNDEFINED or start + length > len(buf):
            raise _NeedMore if length != _UNDEFINED else _Unsupported
        meta[tag] = RawElement(vr.decode("latin-1"), buf[start:start + length])
        pos = start + length
    ts_el = meta.get(0x00020010)
    ts = ts_el.value.decode("ascii").strip(" \0") if ts_el is not None else ""
    if ts not in (_IMPLICIT_LE, _EXPLICIT_LE):
        raise _Unsupported
    elems: dict[int, RawElement] = {}
    pos, pixel_pos = _parse(buf, pos, ts == _EXPLICIT_LE, elems)
    if pixel_pos + 12 > len(buf):
        raise _NeedMore
    cs = elems.get(0x00080005)
    charset = cs.value.decode("ascii").strip(" \0") if cs is not None else ""
    if charset not in _CHARSETS:
        raise _Unsupported
    image_type = elems.get(0x00080008)
    if image_type is not None and b"MOSAIC" in image_type.value.upper():
        raise _Unsupported
    return RawHeader(elems, ts, _CHARSETS[charset]), pixel_pos, buf[pixel_pos:pixel_pos + 12]
