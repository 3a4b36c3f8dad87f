"""Header index: the fast raw-header parser agrees with pydicom; stacks and their description."""
from __future__ import annotations

import numpy as np
import pytest
from dicom_factory import phantom, write_series
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from volumetry.io.dicom import index_dicom, load_dicom
from volumetry.io.dicom_frames import read_header
from volumetry.io.dicom_rawheader import read_raw_header


def _same_headers(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    n = 0
    for p in files:
        a = read_header(p, fast=True)
        b = read_header(p, fast=False)
        assert (a is None) == (b is None), p
        if a is not None:
            assert a == b, p
            n += 1
    return n


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"])
def test_fast_header_parser_equals_pydicom_synthetic(tmp_path, ts):
    arr = phantom((4, 8, 10), signed=True, seed=40)
    write_series(tmp_path, arr, slope=0.5, intercept=2, transfer_syntax=ts, description="Ünïcode T2",
                 temporal_position=3)
    assert _same_headers(tmp_path) == 4
    vol = load_dicom(tmp_path)
    np.testing.assert_allclose(vol.array, arr * 0.5 + 2)
    assert vol.meta["description"] == "Ünïcode T2"


@pytest.mark.shared_data
def test_fast_header_parser_equals_pydicom_real(shared_data):
    n = 0
    for item in sorted((shared_data / "dicom").iterdir()):
        n += _same_headers(item / "dicom")
    assert n == 150 + 240 + 1 + 2 + 35 + 4


def test_stack_description(tmp_path):
    arr = phantom((6, 8, 10), seed=41)
    write_series(tmp_path, arr, description="T2 cor", series_number=7, slice_step=3.0, slice_thickness=2.5,
                 row=(1, 0, 0), col=(0, 0, -1), pixel_spacing=(0.6, 0.7))
    (s,) = index_dicom(tmp_path)
    d = s.describe()
    assert d["description"] == "T2 cor" and d["series_number"] == 7 and d["modality"] == "MR"
    assert d["patient_id"] == "SYN-001" and d["study_date"] == "20240102"
    assert d["matrix"] == [10, 8] and d["n_slices"] == 6 and d["n_volumes"] == 1
    assert d["orientation"] == [1, 0, 0, 0, 0, -1]
    assert d["pixel_spacing"] == [0.6, 0.7] and d["slice_thickness_mm"] == 2.5
    assert len(d["files"]) == 6 and d["kind"] == "classic"
    assert s.stack_id == s.series_uid


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"])
@pytest.mark.parametrize("undefined", [True, False], ids=["undefined-length", "defined-length"])
def test_fast_parser_skips_nested_sequences(tmp_path, ts, undefined):
    import pydicom
    from pydicom.dataset import Dataset

    arr = phantom((3, 8, 8), seed=42)
    paths = write_series(tmp_path, arr, transfer_syntax=ts, slope=2, intercept=1)
    for p in paths:
        ds = pydicom.dcmread(p)
        inner = Dataset()
        inner.CodeValue = "X"
        inner.CodeMeaning = "nested"
        item = Dataset()
        item.ReferencedSOPInstanceUID = "1.2.3.4"
        item.PurposeOfReferenceCodeSequence = [inner]
        ds.ReferencedImageSequence = [item, item]
        ds.add_new((0x0029, 0x0010), "LO", "TEST PRIVATE")
        ds.add_new((0x0029, 0x1010), "OB", b"\x01\x02" * 50)
        for elem in (ds["ReferencedImageSequence"], item["PurposeOfReferenceCodeSequence"]):
            elem.is_undefined_length = undefined
        ds.ReferencedImageSequence[0].is_undefined_length_sequence_item = undefined
        ds.save_as(p, implicit_vr=ts == ImplicitVRLittleEndian, little_endian=True)
    for p in paths:  # the raw parser handles these files itself (no fallback to pydicom)
        with open(p, "rb") as fp:
            assert read_raw_header(fp, p.stat().st_size) is not None
    assert _same_headers(tmp_path) == 3
    np.testing.assert_array_equal(load_dicom(tmp_path).array, arr.astype(np.int64) * 2 + 1)
