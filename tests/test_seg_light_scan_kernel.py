"""The SEG writer's light header scan, its element walk compiled, decides every buffer as before.

:func:`volumetry.io.seg_fast._scan_light` walks a source file's top-level elements in a numba
kernel (:func:`volumetry.io.seg_fast._light_walk`) instead of Python. The Python walk it replaces
is the frozen ``_scan_light`` of ``tests/seg_frozen_write/seg_fast.py`` (the same code as before
this change); for every buffer both must give the same dict of ``tag -> (VR, value bytes)``, None,
or the same exception: every sample-trial file (its first read and whole), the real scanner exports
when ``../shared/data`` is present, every prefix of sample headers (short buffers), randomly
corrupted headers, and files the kernel hands to the Python walk (undefined-length sequences) or
refuses (enhanced groups, a sequence in a wanted tag, an item tag at the top level, implicit VR,
mosaics, other character sets), real headers' undefined-length sequences at every prefix and
corrupted, and nesting deeper than the compiled walk's stack. Then the headers read with it equal
those of the frozen reader.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from seg_frozen_write import seg_fast as old_seg_fast

from volumetry.io import seg_fast

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
REAL = ROOT.parent / "shared" / "data"


def _outcome(scan, buf: bytes):
    """What ``scan(buf)`` gives: ("ok", dict or None) or ("raises", exception class name)."""
    try:
        return "ok", scan(buf)
    except Exception as exc:  # noqa: BLE001 -- the kind of failure is what is compared
        return "raises", type(exc).__name__


def _assert_same(buf: bytes) -> tuple:
    new, old = _outcome(seg_fast._scan_light, buf), _outcome(old_seg_fast._scan_light, buf)
    assert new == old
    if new[0] == "ok" and new[1] is not None:  # the values are bytes, as the Python walk made them
        assert all(type(vr) is bytes and type(v) is bytes for vr, v in new[1].values())
    return new


def _sample_files() -> list[Path]:
    files = sorted(SAMPLE.glob("*/*/dicom/*.dcm"))
    assert len(files) == 294
    return files


def test_every_sample_file_first_read_and_whole():
    kinds = set()
    for path in _sample_files():
        data = path.read_bytes()
        first = _assert_same(data[:8192])
        whole = _assert_same(data)
        assert whole[0] == "ok" and whole[1] is not None  # every sample file is a light header
        assert 0x00200032 in whole[1] and 0x00080018 in whole[1]
        kinds.add(first[0])
    assert kinds == {"ok"}


@pytest.mark.skipif(not REAL.is_dir(), reason="the real scanner exports (../shared/data) are absent")
def test_every_real_scanner_file():
    files = sorted(p for p in REAL.rglob("*") if p.is_file() and p.suffix not in (".txt", ".json", ".md", ".gz",
                                                                                  ".nrrd", ".nii"))
    assert len(files) > 400
    outcomes = {}
    for path in files:
        data = path.read_bytes()
        for size in (8192, 32768, len(data)):
            kind, value = _assert_same(data[:size])
            outcomes[(kind, value is None if kind == "ok" else value)] = True
    assert ("ok", False) in outcomes  # some are light headers


def _header_end(data: bytes) -> int:
    return data.index(b"\xe0\x7f\x10\x00") + 12


def test_every_prefix_of_sample_headers():
    """Short buffers at every length: the same _Short (read more), None or dict."""
    for path in _sample_files()[::60]:
        data = path.read_bytes()
        seen = set()
        for size in range(0, _header_end(data) + 16):
            kind, value = _assert_same(data[:size])
            seen.add(value if kind == "raises" else ("none" if value is None else "dict"))
        assert {"_Short", "none", "dict"} <= seen


def test_randomly_corrupted_headers():
    rng = np.random.default_rng(20261206)
    files = _sample_files()
    seen = set()
    for _ in range(3000):
        data = bytearray(files[int(rng.integers(len(files)))].read_bytes()[:8192])
        end = _header_end(bytes(data))
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(128, end))
            data[at] = int(rng.integers(256)) if rng.random() < 0.7 else (0xFF if rng.random() < 0.5 else 0xFE)
        kind, value = _assert_same(bytes(data[:int(rng.integers(end - 40, len(data) + 1))]))
        seen.add(kind if kind == "raises" else ("none" if value is None else "dict"))
    assert seen == {"raises", "none", "dict"}


def _file(tmp_path: Path, name: str, *, implicit: bool = False, charset: str | None = None,
          extra=None) -> bytes:
    """A small MR header (explicit VR unless ``implicit``), written by pydicom, with ``extra(ds)`` applied."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "1.2.3", "1.2.3.1", "1.2.3.9"
    ds.ImagePositionPatient = ["-12.50", "3.25", "40"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.Rows, ds.Columns, ds.PixelSpacing = 4, 4, [0.5, 0.5]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    if extra is not None:
        extra(ds)
    ds.PixelData = b"\0" * 32
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return path.read_bytes()


def _undefined_sequence(ds):
    item = Dataset()
    item.CodeValue = "X"
    inner = Dataset()
    inner.CodeMeaning = "nested"
    item.ConceptCodeSequence = Sequence([inner])
    ds.ProcedureCodeSequence = Sequence([item])
    ds.ProcedureCodeSequence.is_undefined_length = True
    ds.ProcedureCodeSequence[0].is_undefined_length_sequence_item = True
    ds[0x00081032][0].ConceptCodeSequence.is_undefined_length = True


@pytest.mark.parametrize("case", ["plain", "undefined-sequence", "enhanced", "implicit", "mosaic", "charset-latin1",
                                  "charset-other", "duplicate-wanted", "no-transfer-syntax"])
def test_special_files(tmp_path, case):
    if case == "plain":
        data = _file(tmp_path, case)
    elif case == "undefined-sequence":
        data = _file(tmp_path, case, extra=_undefined_sequence)
        assert b"\xff\xff\xff\xff" in data[:_header_end(data)]  # the kernel hands it to the Python walk
    elif case == "enhanced":
        data = _file(tmp_path, case, extra=lambda ds: setattr(ds, "SharedFunctionalGroupsSequence",
                                                              Sequence([Dataset()])))
    elif case == "implicit":
        data = _file(tmp_path, case, implicit=True)
    elif case == "mosaic":
        data = _file(tmp_path, case, extra=lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "M", "MOSAIC"]))
    elif case == "charset-latin1":
        data = _file(tmp_path, case, charset="ISO_IR 100")
    elif case == "charset-other":
        data = _file(tmp_path, case, charset="ISO_IR 144")
    elif case == "duplicate-wanted":  # SOPInstanceUID written a second time, out of order, after Rows
        data = _file(tmp_path, case)
        at = data.index(b"\x28\x00\x10\x00")
        dup = struct.pack("<HH2sH", 0x0008, 0x0018, b"UI", 6) + b"9.8.7\0"
        data = data[:at] + dup + data[at:]
    else:  # the file meta without a transfer syntax
        data = _file(tmp_path, case)
        at = data.index(b"\x02\x00\x10\x00")
        (length,) = struct.unpack_from("<H", data, at + 6)
        data = data[:at] + struct.pack("<HH2sH", 0x0002, 0x0011, b"UI", length) + data[at + 8:]
    kind, value = _assert_same(data)
    expect_dict = case in ("plain", "undefined-sequence", "charset-latin1", "duplicate-wanted")
    assert kind == "ok" and (value is not None) == expect_dict
    if case == "duplicate-wanted":
        assert value[0x00080018][1] == b"9.8.7\0"  # the later one, as the Python walk keeps it
    for size in range(100, len(data), 7):
        _assert_same(data[:size])


def _real_files_with_sequences() -> list[bytes]:
    out = []
    for path in sorted(REAL.rglob("*.dcm")):
        data = path.read_bytes()
        try:
            end = _header_end(data)
        except ValueError:
            continue
        if b"\xff\xff\xff\xff" in data[:end] and _assert_same(data)[1]:
            out.append(data[:end + 16])
    return out


@pytest.mark.skipif(not REAL.is_dir(), reason="the real scanner exports (../shared/data) are absent")
def test_real_headers_with_sequences_every_prefix_and_corrupted():
    """Undefined-length sequences (nested, items of both kinds) skipped by the compiled walk: the same
    outcome at every prefix (short inside a sequence) and with bytes changed inside them."""
    files = _real_files_with_sequences()
    assert len(files) >= 50
    rng = np.random.default_rng(6122026)
    picked = [files[int(i)] for i in rng.choice(len(files), size=4, replace=False)]
    seen = set()
    for data in picked:
        for size in range(0, len(data), 3):
            kind, value = _assert_same(data[:size])
            seen.add(value if kind == "raises" else ("none" if value is None else "dict"))
    assert {"_Short", "none", "dict"} <= seen
    starts = []
    for data in files[:40]:
        at = data.index(b"\xff\xff\xff\xff")
        starts.append((data, at))
    for _ in range(2500):
        data, at = starts[int(rng.integers(len(starts)))]
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 3))):
            pos = int(rng.integers(at - 8, min(len(buf), at + 400)))
            buf[pos] = int(rng.integers(256)) if rng.random() < 0.6 else int(rng.choice([0xFF, 0xFE, 0xE0, 0xDD, 0x0D]))
        kind, value = _assert_same(bytes(buf))
        seen.add(kind if kind == "raises" else ("none" if value is None else "dict"))
    assert "raises" in seen


def _nested(depth: int, all_undefined: bool):
    def extra(ds):
        inner = Dataset()
        inner.CodeValue = "0"
        for level in range(depth):
            outer = Dataset()
            outer.CodeValue = str(level + 1)
            outer.ConceptCodeSequence = Sequence([inner])
            outer["ConceptCodeSequence"].is_undefined_length = True
            outer.is_undefined_length_sequence_item = bool(level % 2) or all_undefined
            inner = outer
        ds.ProcedureCodeSequence = Sequence([inner])
        ds["ProcedureCodeSequence"].is_undefined_length = True
    return extra


@pytest.mark.parametrize("depth, all_undefined", [(1, False), (5, True), (30, False), (20, True), (40, True)])
def test_nested_undefined_length_sequences(tmp_path, depth, all_undefined):
    """Nesting within the compiled walk's stack (skipped there) and beyond it (more than 64 levels of
    sequences and undefined-length items: walked in Python)."""
    data = _file(tmp_path, f"nested{depth}", extra=_nested(depth, all_undefined))
    walk, _, wanted, long_vrs = seg_fast._light_walk_kernel()
    state = walk(np.frombuffer(data, dtype=np.uint8), wanted, long_vrs)[0]
    assert state == (seg_fast._WALK_DECLINE if 2 * (depth + 1) > 64 else seg_fast._WALK_OK)
    assert data.count(b"\xfe\xff\xdd\xe0") >= depth  # sequence delimiters: undefined lengths written
    kind, value = _assert_same(data)
    assert kind == "ok" and value is not None and value[0x00200032][1].startswith(b"-12.50")
    for size in range(100, len(data), 5):
        _assert_same(data[:size])


def test_headers_read_with_it_equal_the_frozen_reader():
    """read_light_header of every sample file: the values, stored position strings and raw header
    of the frozen reader (which walks in Python)."""
    for folder in sorted(SAMPLE.glob("*/*/dicom")):
        shared_new, shared_old = {}, {}
        for path in sorted(folder.glob("*.dcm")):
            new = seg_fast.read_light_header(str(path), shared_new)
            old = old_seg_fast.read_light_header(str(path), shared_old)
            assert (new._raw is None) == (old._raw is None)
            assert new._strings == old._strings
            assert {k: v for k, v in new._cache.items() if v is not seg_fast._MISSING} == \
                {k: v for k, v in old._cache.items() if v is not old_seg_fast._MISSING}
            assert {k for k, v in new._cache.items() if v is seg_fast._MISSING} == \
                {k for k, v in old._cache.items() if v is old_seg_fast._MISSING}


def test_a_changed_walk_is_caught(monkeypatch):
    """The comparison fails when the walk finds another value (a check that can fail)."""
    real = seg_fast._scan_light

    def off_by_one(buf):
        out = real(buf)
        if out:
            vr, value = out[0x00200032]
            out[0x00200032] = (vr, value[:-1] + b"1")
        return out

    monkeypatch.setattr(seg_fast, "_scan_light", off_by_one)
    with pytest.raises(AssertionError):
        _assert_same(_sample_files()[0].read_bytes())
