"""The direct NIfTI mask writer gives nibabel's file byte for byte (``.nii``; ``.nii.gz``: once
decompressed, the compressor being ISA-L's), read back identically."""
from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from volumetry.errors import InputError
from volumetry.image import Volume
from volumetry.io.dicom import load_dicom
from volumetry.io.nifti import (SFORM_QFORM_TOL_MM, _corner_shift_mm, lps_to_ras_affine, nifti_mask_bytes,
                                read_nifti, write_nifti)

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def nibabel_reference(volume: Volume, path: Path, description: str = "") -> Path:
    """The writer before the direct path: a nibabel image saved by ``nib.save`` (slow, obviously nibabel's)."""
    arr = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    data = arr.transpose(2, 1, 0)
    affine_ras = lps_to_ras_affine(volume.affine)
    img = nib.Nifti1Image(data, affine_ras)
    img.set_sform(affine_ras, code=1)
    img.set_qform(affine_ras, code=1)
    if _corner_shift_mm(affine_ras, img.header.get_qform(), data.shape) > SFORM_QFORM_TOL_MM / 2:
        img.set_qform(affine_ras, code=0)
    img.header.set_xyzt_units("mm")
    if description:
        img.header["descrip"] = description.encode("ascii", "replace")[:79]
    nib.save(img, str(path))
    return path


def _file_bytes(path: Path) -> bytes:
    """A NIfTI file's bytes, decompressed for ``.nii.gz`` (gzip checks the CRC-32 and the size)."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _check_gzip_member(data: bytes) -> None:
    """One gzip member with nibabel's header (deflate, no name, mtime 0), its trailer right."""
    import struct
    import zlib

    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
    d = zlib.decompressobj(-15)
    payload = d.decompress(data[10:])
    assert d.eof and d.unused_data == data[-8:]
    assert struct.unpack("<II", data[-8:]) == (zlib.crc32(payload), len(payload) & 0xFFFFFFFF)


def test_masks_compress_smaller_than_zlib_and_decompress_exactly():
    """The ISA-L stream decompresses to the bytes given; on sample-trial-like masks it is no larger
    than zlib's level 1 (the reason for the switch besides speed)."""
    import zlib

    from volumetry.io.nifti import gzip_member

    rng = np.random.default_rng(5)
    for shape in [(1, 1, 1), (24, 128, 128), (7, 33, 65)]:
        mask = np.zeros(shape, np.uint8)
        k, j, i = (max(1, n // 4) for n in shape)
        mask[k:3 * k, j:3 * j, i:3 * i] = 1
        noisy = (rng.random(shape) < 0.01).astype(np.uint8)
        for arr in (mask, noisy, np.ones(shape, np.uint8), np.zeros(shape, np.uint8)):
            head = bytes(range(256)) + b"\0" * 96
            member = gzip_member(head, memoryview(arr).cast("B"))
            _check_gzip_member(member)
            assert gzip.decompress(member) == head + arr.tobytes()
            if arr is mask and arr.size > 1000:
                assert len(member) <= len(zlib.compress(head + arr.tobytes(), 1))


def _cases():
    rng = np.random.default_rng(11)
    for name in ("PH003/course1", "PH004/course1"):  # oblique; axial with a slice gap
        image = load_dicom(SAMPLE / name / "dicom")
        arr = np.zeros(image.array.shape, bool)
        arr[3:7, 30:60, 40:80] = rng.random((4, 30, 40)) < 0.6
        yield name, image.with_array(arr)
    theta = 0.3
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    labels = rng.integers(0, 3, size=(5, 7, 9)).astype(np.uint8)
    yield "uint8 labels, rotated", Volume(labels, (0.7, 0.8, 2.5), (10.0, -20.0, 5.5), rot)
    # cosines of few decimals: not orthonormal enough for a qform (left unset)
    skew = np.array([[1.0, 0.0006, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    yield "qform unset", Volume(np.ones((3, 4, 5), bool), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), skew)
    yield "empty mask", Volume(np.zeros((2, 3, 4), bool), (0.5, 0.5, 3.0), (1.0, 2.0, 3.0), np.eye(3))
    strided = (rng.random((6, 8, 10)) < 0.3)[::-1, :, ::2]  # a non-contiguous view
    yield "non-contiguous view", Volume(strided, (1.0, 1.2, 2.0), (0.0, 0.0, 0.0), np.eye(3))


@pytest.mark.parametrize("name,volume", list(_cases()), ids=[c[0] for c in _cases()])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_direct_writer_is_nibabels_file_and_reads_back(name, volume, suffix, tmp_path):
    ref = nibabel_reference(volume, tmp_path / f"ref{suffix}", description="volumetry lesion 1")
    new = write_nifti(volume, tmp_path / f"new{suffix}", description="volumetry lesion 1")
    assert _file_bytes(new) == _file_bytes(ref)
    if suffix == ".nii.gz":
        _check_gzip_member(new.read_bytes())
        assert len(gzip.decompress(new.read_bytes())) == 352 + volume.array.size
    back = read_nifti(new)
    np.testing.assert_array_equal(back.array, volume.array.astype(np.uint8))
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-4)
    img = nib.load(str(new))
    np.testing.assert_array_equal(np.asarray(img.dataobj), volume.array.astype(np.uint8).transpose(2, 1, 0))
    np.testing.assert_allclose(img.affine, lps_to_ras_affine(volume.affine), atol=1e-4)
    assert img.header.get_xyzt_units()[0] == "mm"


def test_qform_left_unset_when_the_direction_is_not_a_rotation(tmp_path):
    volume = dict(_cases())["qform unset"]
    hdr = nib.load(str(write_nifti(volume, tmp_path / "m.nii.gz"))).header
    assert (int(hdr["sform_code"]), int(hdr["qform_code"])) == (1, 0)


def test_other_types_still_written_by_nibabel_and_bad_input_refused(tmp_path):
    image = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    back = read_nifti(write_nifti(image, tmp_path / "i.nii.gz"))
    np.testing.assert_array_equal(back.array, image.array)
    with pytest.raises(InputError, match="uint8/boolean"):
        nifti_mask_bytes(image)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_boolean_array_with_bytes_other_than_0_1_is_written_as_0_1(suffix, tmp_path):
    """A numpy boolean array made from raw bytes (np.frombuffer, a view of uint8 labels) can hold
    bytes 2..255 that are True: the mask file must hold 1 there, as astype(uint8) and nibabel give."""
    labels = np.array([[[0, 2, 1], [0, 255, 1]], [[3, 0, 0], [1, 1, 0]]], dtype=np.uint8)
    volume = Volume(labels.view(bool), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    ref = nibabel_reference(volume, tmp_path / f"ref{suffix}")
    new = write_nifti(volume, tmp_path / f"new{suffix}")
    assert _file_bytes(new) == _file_bytes(ref)
    np.testing.assert_array_equal(read_nifti(new).array, (labels > 0).astype(np.uint8))
