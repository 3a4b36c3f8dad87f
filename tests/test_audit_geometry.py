"""Hostile-but-plausible inputs that were already handled: each gives the exact volume or a clear error.

Cases of the geometry audit not covered elsewhere (see also test_dicom_synthetic.py, test_nifti.py,
test_masks.py, test_measure.py and the test_audit_geometry_*.py files of the fixes).
"""
from __future__ import annotations

import struct

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import phantom, write_series

from volumetry.errors import GeometryMismatchError, ImageFormatError, InputError, SeriesGeometryError
from volumetry.io.dicom import load_dicom
from volumetry.io.masks import read_mask
from volumetry.io.nifti import read_nifti
from volumetry.measure import measure

# ----------------------------------------------------------------------------------- DICOM


def _edit(path, **attrs):
    ds = pydicom.dcmread(path)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.save_as(path)


def test_one_duplicated_slice_position_is_a_geometry_error(tmp_path):
    pos = np.array([[0.0, 0.0, 2.0 * k] for k in range(6)])
    pos[3] = pos[2]  # two files at 4 mm, none at 6 mm
    write_series(tmp_path, phantom((6, 8, 8)), positions=pos)
    with pytest.raises(SeriesGeometryError, match="do not all hold the same number of frames"):
        load_dicom(tmp_path)


def test_spacing_between_slices_disagreeing_with_positions_is_ignored(tmp_path):
    paths = write_series(tmp_path, phantom((6, 8, 8)), slice_step=2.0)
    for p in paths:
        _edit(p, SpacingBetweenSlices="3.0")
    vol = load_dicom(tmp_path)
    assert vol.spacing[2] == pytest.approx(2.0, abs=1e-9) and vol.voxel_volume_mm3 == pytest.approx(2.0)


def test_rescale_differing_per_classic_slice_is_applied_per_slice_and_recorded(tmp_path):
    arr = phantom((6, 8, 8))
    paths = write_series(tmp_path, arr, shuffle_names=True, seed=3)
    for k, p in enumerate(paths):
        _edit(p, RescaleSlope=f"{0.5 + k:g}", RescaleIntercept="-3")
    vol = load_dicom(tmp_path)
    expected = arr * (0.5 + np.arange(6))[:, None, None] - 3
    np.testing.assert_allclose(vol.array, expected, rtol=1e-6)
    assert any("differ between slices" in w for w in vol.meta["warnings"])


def test_orientation_rounded_to_4_decimals_keeps_the_voxel_volume(tmp_path):
    r = np.sqrt(0.5)
    paths = write_series(tmp_path, phantom((4, 8, 8)), row=(r, r, 0), col=(0, 0, -1), slice_step=2.0)
    for p in paths:
        _edit(p, ImageOrientationPatient=["0.7071", "0.7071", "0", "0", "0", "-1"])
    assert load_dicom(tmp_path).voxel_volume_mm3 == pytest.approx(2.0, rel=1e-4)


def test_slices_drifting_within_the_plane_are_a_geometry_error(tmp_path):
    pos = np.array([[0.03 * k, 0.0, 1.0 * k] for k in range(6)])  # 0.15 mm over the stack
    write_series(tmp_path, phantom((6, 8, 8)), positions=pos)
    with pytest.raises(SeriesGeometryError, match="not stacked along the normal"):
        load_dicom(tmp_path)


# ----------------------------------------------------------------------------------- NIfTI

DATA = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
AFFINE = np.array([[2.0, 0, 0, 10], [0, 1.5, 0, 20], [0, 0, 3.0, 30], [0, 0, 0, 1]])


def _nifti(path, *, floats=(), sform=1, qform=1):
    img = nib.Nifti1Image(DATA, AFFINE)
    img.set_sform(AFFINE, sform)
    img.set_qform(AFFINE, qform)
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    for offset, value in floats:  # header fields nibabel refuses to write
        struct.pack_into("<f", raw, offset, value)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("slope", [0.0, float("nan")])
def test_scl_slope_0_or_nan_means_unscaled(tmp_path, slope):
    vol = read_nifti(_nifti(tmp_path / "a.nii", floats=[(112, slope), (116, 5.0)]))
    np.testing.assert_array_equal(vol.array, DATA.transpose(2, 1, 0))
    assert vol.voxel_volume_mm3 == pytest.approx(9.0)


def test_scl_inter_nan_with_a_slope_is_an_error(tmp_path):
    path = _nifti(tmp_path / "a.nii", floats=[(112, 2.0), (116, float("nan"))])
    with pytest.raises(ImageFormatError, match="a.nii"):
        read_nifti(path)


def test_negative_pixdim_with_a_qform_keeps_the_voxel_size(tmp_path):
    vol = read_nifti(_nifti(tmp_path / "a.nii", sform=0, floats=[(80, -2.0)]))
    assert vol.spacing == pytest.approx((2.0, 1.5, 3.0)) and vol.origin == pytest.approx((-10, -20, 30))


def test_zero_pixdim_does_not_matter_when_the_sform_is_set(tmp_path):
    vol = read_nifti(_nifti(tmp_path / "a.nii", qform=0, floats=[(80, 0.0)]))
    assert vol.voxel_volume_mm3 == pytest.approx(9.0)


@pytest.mark.parametrize("srow", [[0.0] * 12, [2.0, 0.3, 0, 10, 0, 1.5, 0, 20, 0, 0, 3.0, 30],
                                  [2.0, 0, 0, float("nan"), 0, 1.5, 0, 20, 0, 0, 3.0, 30]],
                         ids=["singular", "shear", "nan"])
def test_singular_sheared_or_nan_sform_is_an_error(tmp_path, srow):
    path = _nifti(tmp_path / "a.nii", qform=0, floats=[(280 + 4 * n, v) for n, v in enumerate(srow)])
    with pytest.raises(ImageFormatError, match="a.nii: unusable affine"):
        read_nifti(path)


def test_5d_nifti_is_an_error(tmp_path):
    nib.save(nib.Nifti1Image(DATA.reshape(4, 5, 6, 1, 1), AFFINE), str(tmp_path / "a.nii"))
    with pytest.raises(ImageFormatError, match="5D image"):
        read_nifti(tmp_path / "a.nii")


# ----------------------------------------------------------------------------------- masks

SHAPE = (20, 22, 10)
TRUE_ML = 4 * 5 * 3 * 9.0 / 1000  # the cube below on 2 x 1.5 x 3 mm voxels


@pytest.fixture()
def image(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.int16), AFFINE), str(tmp_path / "t2.nii.gz"))
    return read_nifti(tmp_path / "t2.nii.gz")


def _mask(tmp_path, arr, affine=AFFINE):
    nib.save(nib.Nifti1Image(arr, affine), str(tmp_path / "m.nii.gz"))
    return tmp_path / "m.nii.gz"


def _cube(value=1, dtype=np.uint8):
    arr = np.zeros(SHAPE, dtype)
    arr[5:9, 6:11, 3:6] = value
    return arr


def test_mask_on_a_flipped_grid_keeps_every_voxel_and_is_flagged(image, tmp_path):
    flipped = AFFINE.copy()
    flipped[0, 0], flipped[0, 3] = -2.0, 10 + 2.0 * (SHAPE[0] - 1)
    got = read_mask(_mask(tmp_path, _cube()[::-1].copy(), flipped), image)
    assert got.flags == ["mask-resampled"]
    np.testing.assert_array_equal(got.mask.array, _cube().transpose(2, 1, 0).astype(bool))
    assert measure(got.mask).volume_ml == pytest.approx(TRUE_ML)


@pytest.mark.parametrize("arr, match", [
    (_cube(255), "not binary"), (_cube(-1, np.int8), "not binary"),
    (_cube(0.5, np.float32), "non-integer"), (np.repeat(_cube()[..., None], 2, 3), "holds 2 volumes; a mask is one 3D volume"),
], ids=["0-255", "minus-1", "float-0.5", "4d"])
def test_masks_that_are_not_one_binary_volume_are_errors(image, tmp_path, arr, match):
    with pytest.raises((InputError, GeometryMismatchError), match=match):
        read_mask(_mask(tmp_path, arr), image)


def test_4d_mask_with_one_volume_is_read_as_3d(image, tmp_path):
    assert measure(read_mask(_mask(tmp_path, _cube()[..., None]), image).mask).volume_ml == pytest.approx(TRUE_ML)


def test_all_zero_mask_is_empty_not_zero(image, tmp_path):
    m = measure(read_mask(_mask(tmp_path, _cube(0)), image).mask)
    assert m.status == "empty" and m.volume_ml is None


def test_one_voxel_mask_is_one_voxel_volume_and_flagged(image, tmp_path):
    arr = np.zeros(SHAPE, np.uint8)
    arr[3, 3, 3] = 1
    m = measure(read_mask(_mask(tmp_path, arr), image).mask)
    assert m.volume_ml == pytest.approx(9.0 / 1000) and "few-voxels" in m.flags
