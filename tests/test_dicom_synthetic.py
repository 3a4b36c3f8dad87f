"""Synthetic pydicom series with known geometry: sorting, spacing, orientation, scaling, errors."""
from __future__ import annotations

import numpy as np
import pytest
from dicom_factory import phantom, rotation, write_series

from volumetry.errors import DicomReadError, SeriesGeometryError, SeriesSelectionError
from volumetry.io.dicom import (
    IN_PLANE_OFFSET_TOL_MM,
    SLICE_SPACING_TOL_MM,
    index_dicom,
    load_dicom,
)


def _check_geometry(vol, *, origin, row, col, spacing):
    row, col = np.asarray(row, float), np.asarray(col, float)
    normal = np.cross(row, col)
    np.testing.assert_allclose(vol.origin, origin, atol=1e-5)
    np.testing.assert_allclose(vol.spacing, spacing, atol=1e-5)
    np.testing.assert_allclose(vol.direction, np.column_stack([row, col, normal]), atol=1e-6)


def test_shuffled_file_names_sorted_by_position(tmp_path):
    arr = phantom((12, 16, 20), seed=1)
    write_series(tmp_path, arr, origin=(-10, 20, -30.5), slice_step=2.5, pixel_spacing=(0.9, 0.9),
                 shuffle_names=True, seed=2)
    vol = load_dicom(tmp_path)
    np.testing.assert_array_equal(vol.array, arr)
    assert vol.array.dtype == np.uint16
    _check_geometry(vol, origin=(-10, 20, -30.5), row=(1, 0, 0), col=(0, 1, 0), spacing=(0.9, 0.9, 2.5))
    assert vol.size == (20, 16, 12)
    assert len(vol.meta["files"]) == 12 and vol.meta["warnings"] == []


def test_reversed_positions_are_sorted_along_the_normal(tmp_path):
    arr = phantom((6, 8, 8), seed=3)
    pos = np.array([[0, 0, 10 - 2.0 * k] for k in range(6)])  # written from top to bottom
    write_series(tmp_path, arr, positions=pos)
    vol = load_dicom(tmp_path)
    np.testing.assert_array_equal(vol.array, arr[::-1])
    _check_geometry(vol, origin=(0, 0, 0), row=(1, 0, 0), col=(0, 1, 0), spacing=(1, 1, 2))


def test_slice_gap_spacing_from_positions_not_thickness(tmp_path):
    arr = phantom((8, 10, 10), seed=4)
    write_series(tmp_path, arr, slice_step=5.0, slice_thickness=4.0)
    vol = load_dicom(tmp_path)
    assert vol.spacing[2] == pytest.approx(5.0, abs=1e-9)
    assert vol.meta["slice_thickness_mm"] == pytest.approx(4.0)
    assert vol.voxel_volume_mm3 == pytest.approx(5.0)


def test_double_oblique(tmp_path):
    r = rotation(17.0, -23.0, 8.0)
    row, col = r[:, 0], r[:, 1]
    arr = phantom((9, 12, 14), seed=5)
    write_series(tmp_path, arr, origin=(12.25, -40.5, 7.75), row=row, col=col, slice_step=3.3,
                 pixel_spacing=(1.1, 0.7), shuffle_names=True, seed=6)
    vol = load_dicom(tmp_path)
    np.testing.assert_array_equal(vol.array, arr)
    _check_geometry(vol, origin=(12.25, -40.5, 7.75), row=row, col=col, spacing=(0.7, 1.1, 3.3))
    # the world position of voxel (i, j, k) is origin + i*si*row + j*sj*col + k*sk*normal
    ijk = np.array([13, 11, 8])
    expected = np.array([12.25, -40.5, 7.75]) + 13 * 0.7 * row + 11 * 1.1 * col + 8 * 3.3 * np.cross(row, col)
    np.testing.assert_allclose(vol.index_to_lps(ijk), expected, atol=1e-4)


@pytest.mark.parametrize("plane,row,col", [
    ("coronal", (1, 0, 0), (0, 0, -1)),
    ("sagittal", (0, 1, 0), (0, 0, -1)),
])
def test_coronal_and_sagittal(tmp_path, plane, row, col):
    arr = phantom((7, 10, 12), seed=7)
    write_series(tmp_path, arr, origin=(-5, 3, 60), row=row, col=col, slice_step=4.0, pixel_spacing=(0.5, 0.5),
                 shuffle_names=True, seed=8)
    vol = load_dicom(tmp_path)
    np.testing.assert_array_equal(vol.array, arr)
    _check_geometry(vol, origin=(-5, 3, 60), row=row, col=col, spacing=(0.5, 0.5, 4.0))


def test_non_square_pixels_and_matrix(tmp_path):
    arr = phantom((5, 6, 9), seed=9)  # 6 rows, 9 columns
    write_series(tmp_path, arr, pixel_spacing=(0.8, 0.5), slice_step=1.5)
    vol = load_dicom(tmp_path)
    assert vol.size == (9, 6, 5)
    # PixelSpacing is (between rows = along j, between columns = along i)
    assert vol.spacing == pytest.approx((0.5, 0.8, 1.5))
    np.testing.assert_array_equal(vol.array, arr)


def test_signed_pixels_with_integer_rescale(tmp_path):
    arr = phantom((4, 8, 8), signed=True, seed=10)
    write_series(tmp_path, arr, slope=2, intercept=-1024)
    vol = load_dicom(tmp_path)
    assert vol.array.dtype.kind == "i"
    np.testing.assert_array_equal(vol.array, arr.astype(np.int64) * 2 - 1024)
    assert vol.array.min() < -1024  # negative stored values survived


def test_unsigned_pixels_with_fractional_rescale(tmp_path):
    arr = phantom((4, 8, 8), seed=11)
    arr[0, 1, 1] = 65535  # the top of the unsigned range
    write_series(tmp_path, arr, slope=0.25, intercept=-3.5)
    vol = load_dicom(tmp_path)
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, arr * 0.25 - 3.5, rtol=1e-7)
    assert vol.array[0, 1, 1] == pytest.approx(65535 * 0.25 - 3.5)


def test_missing_slice_is_a_geometry_error(tmp_path):
    arr = phantom((10, 8, 8), seed=12)
    paths = write_series(tmp_path, arr, slice_step=3.0, description="T2 ax")
    paths[4].unlink()
    with pytest.raises(SeriesGeometryError,
                       match=r"T2 ax.*a slice is missing.*6\.000 mm between slices at 9\.000 and 15\.000"):
        load_dicom(tmp_path)


def test_uneven_spacing_is_a_geometry_error(tmp_path):
    arr = phantom((6, 8, 8), seed=13)
    pos = np.array([[0, 0, z] for z in (0, 2, 4, 6.5, 8.5, 10.5)])
    write_series(tmp_path, arr, positions=pos)
    with pytest.raises(SeriesGeometryError, match="uneven"):
        load_dicom(tmp_path)


def test_spacing_within_tolerance_is_accepted(tmp_path):
    arr = phantom((6, 8, 8), seed=14)
    jitter = np.array([0, 1, -1, 1, 0, 0]) * SLICE_SPACING_TOL_MM / 2
    pos = np.array([[0, 0, 2.0 * k + jitter[k]] for k in range(6)])
    write_series(tmp_path, arr, positions=pos)
    assert load_dicom(tmp_path).spacing[2] == pytest.approx(2.0, abs=1e-6)


def test_gantry_tilt_is_a_geometry_error(tmp_path):
    arr = phantom((6, 8, 8), seed=15)
    pos = np.array([[0, 0.5 * k, 2.0 * k] for k in range(6)])  # slices slide along y: tilted stack
    assert 0.5 > IN_PLANE_OFFSET_TOL_MM
    write_series(tmp_path, arr, positions=pos)
    with pytest.raises(SeriesGeometryError, match="not stacked along the normal.*gantry"):
        load_dicom(tmp_path)


def test_two_series_in_one_folder_listed_not_merged(tmp_path):
    a = phantom((5, 8, 8), seed=16)
    b = phantom((7, 8, 8), seed=17)
    study = "1.2.826.0.1.3680043.10.1453.77"
    write_series(tmp_path, a, description="T1 ax", series_number=3, name_prefix="a", seed=1, study_uid=study)
    write_series(tmp_path, b, description="T2 ax", series_number=4, name_prefix="b", seed=2, slice_step=2.0,
                 study_uid=study)
    stacks = index_dicom(tmp_path)
    assert [(s.description, s.n_slices, s.n_volumes) for s in stacks] == [("T1 ax", 5, 1), ("T2 ax", 7, 1)]
    with pytest.raises(SeriesSelectionError, match=r"2 image stacks.*T1 ax.*8x8x5.*T2 ax.*8x8x7"):
        load_dicom(tmp_path)
    vol = load_dicom(tmp_path, series_uid=stacks[1].series_uid)
    np.testing.assert_array_equal(vol.array, b)
    with pytest.raises(SeriesSelectionError, match="no stack .* matches series UID '1.2.3'"):
        load_dicom(tmp_path, series_uid="1.2.3")


def test_two_orientations_in_one_series_are_two_stacks(tmp_path):
    a = phantom((3, 8, 8), seed=18)
    paths = write_series(tmp_path, a, name_prefix="ax", series_uid="1.2.826.0.1.3680043.10.1453.7")
    write_series(tmp_path, a, name_prefix="cor", series_uid="1.2.826.0.1.3680043.10.1453.7",
                 row=(1, 0, 0), col=(0, 0, -1), instance_offset=10)
    stacks = index_dicom(tmp_path)
    assert [s.stack_id for s in stacks] == ["1.2.826.0.1.3680043.10.1453.7#1", "1.2.826.0.1.3680043.10.1453.7#2"]
    with pytest.raises(SeriesSelectionError, match="splits into 2 stacks"):
        load_dicom(tmp_path, series_uid="1.2.826.0.1.3680043.10.1453.7")
    assert len(paths) == 3


def test_readme_and_garbage_files_are_ignored(tmp_path):
    arr = phantom((4, 8, 8), seed=19)
    write_series(tmp_path / "series", arr)
    (tmp_path / "README.txt").write_text("exported by PACS\n")
    (tmp_path / "series" / "garbage.dcm").write_bytes(np.random.default_rng(0).bytes(3000))
    (tmp_path / "series" / "DICOMDIR-like").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00")
    (tmp_path / "empty").write_bytes(b"")
    stacks = index_dicom(tmp_path)
    assert len(stacks) == 1 and stacks[0].n_slices == 4
    np.testing.assert_array_equal(load_dicom(tmp_path).array, arr)


def test_no_dicom_is_a_read_error(tmp_path):
    (tmp_path / "README.txt").write_text("nothing here\n")
    with pytest.raises(DicomReadError, match="no DICOM image found"):
        load_dicom(tmp_path)


def test_truncated_pixel_data_names_the_file(tmp_path):
    arr = phantom((5, 16, 16), seed=20)
    paths = write_series(tmp_path, arr)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[:-100])
    with pytest.raises(DicomReadError, match=rf"{paths[2].name}.*truncated"):
        load_dicom(tmp_path)


def test_truncated_header_names_the_file(tmp_path):
    arr = phantom((5, 16, 16), seed=21)
    paths = write_series(tmp_path, arr)
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[:300])
    with pytest.raises(DicomReadError, match=paths[3].name):
        load_dicom(tmp_path)


def test_multi_volume_series_select_by_index(tmp_path):
    a = phantom((5, 8, 8), seed=22)
    b = phantom((5, 8, 8), seed=23)
    uid = "1.2.826.0.1.3680043.10.1453.9"
    write_series(tmp_path, a, series_uid=uid, temporal_position=1, name_prefix="t1", shuffle_names=True, seed=3)
    write_series(tmp_path, b, series_uid=uid, temporal_position=2, name_prefix="t2", shuffle_names=True, seed=4)
    (stack,) = index_dicom(tmp_path)
    assert (stack.n_slices, stack.n_volumes) == (5, 2)
    with pytest.raises(SeriesSelectionError, match=r"holds 2 volumes.*0: temporal position 1.*1: temporal position 2"):
        load_dicom(tmp_path)
    np.testing.assert_array_equal(load_dicom(tmp_path, volume_index=0).array, a)
    np.testing.assert_array_equal(load_dicom(tmp_path, volume_index=1).array, b)
    with pytest.raises(SeriesSelectionError, match="volume index 2 is out of range"):
        load_dicom(tmp_path, volume_index=2)


def test_multi_volume_series_missing_one_slice(tmp_path):
    a = phantom((5, 8, 8), seed=24)
    uid = "1.2.826.0.1.3680043.10.1453.10"
    write_series(tmp_path, a, series_uid=uid, temporal_position=1, name_prefix="t1")
    paths = write_series(tmp_path, a, series_uid=uid, temporal_position=2, name_prefix="t2")
    paths[2].unlink()
    with pytest.raises(SeriesGeometryError, match="do not all hold the same number of frames"):
        load_dicom(tmp_path, volume_index=0)


def test_duplicate_copies_of_a_series_are_one_stack(tmp_path):
    arr = phantom((4, 8, 8), seed=25)
    write_series(tmp_path / "export1", arr, seed=5)
    write_series(tmp_path / "export2", arr, seed=5)  # same UIDs: the same images copied
    (stack,) = index_dicom(tmp_path)
    assert (stack.n_slices, stack.n_volumes) == (4, 1)
    assert all("export1" in f for f in stack.files)
    np.testing.assert_array_equal(load_dicom(tmp_path).array, arr)


def test_signed_12_bit_values_are_sign_extended(tmp_path):
    import pydicom

    arr = np.array([[[-5, 7], [-2048, 2047]]] * 3, dtype=np.int16)
    paths = write_series(tmp_path, arr)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PixelData = (arr[0].astype(np.uint16) & 0x0FFF).astype("<u2").tobytes()  # no sign extension stored
        ds.save_as(p)
    vol = load_dicom(tmp_path)
    np.testing.assert_array_equal(vol.array, arr)


def test_orientation_noise_below_tolerance_stays_one_stack(tmp_path):
    """Cosines that differ by 4e-6 across a 4-decimal rounding boundary (0.99995) are one stack."""
    arr = phantom((4, 8, 8), seed=26)
    a = np.array([0.999952, 0.0, 0.01])  # rounds to 1.0000 at 4 decimals
    b = np.array([0.999948, 0.0, 0.01])  # rounds to 0.9999
    uid = "1.2.826.0.1.3680043.10.1453.12"
    for k, row in enumerate((a, b, a, b)):
        col = np.array([0.0, 1.0, 0.0])
        normal = np.cross(a, col)
        write_series(tmp_path, arr[k:k + 1], row=row, col=col, series_uid=uid, name_prefix=f"s{k}",
                     positions=np.array([2.0 * k * normal]), instance_offset=k)
    (stack,) = index_dicom(tmp_path)
    assert stack.n_slices == 4
    np.testing.assert_array_equal(load_dicom(tmp_path).array, arr)


def test_read_image_dispatches_dicom_folders(tmp_path):
    from volumetry.io.reader import read_image

    arr = phantom((3, 8, 8), seed=27)
    write_series(tmp_path, arr, slice_step=1.25)
    vol = read_image(tmp_path)
    np.testing.assert_array_equal(vol.array, arr)
    assert vol.spacing[2] == pytest.approx(1.25) and vol.meta["series_uid"]


def test_skipped_files_are_logged_at_debug(tmp_path, caplog):
    import logging

    write_series(tmp_path, phantom((2, 8, 8), seed=28))
    (tmp_path / "README").write_text("hello\n")
    with caplog.at_level(logging.DEBUG, logger="volumetry.io"):
        index_dicom(tmp_path)
    assert any("README" in r.getMessage() and "not a DICOM file" in r.getMessage() and r.levelno == logging.DEBUG
               for r in caplog.records)


def test_missing_slice_message_names_the_gap_not_the_regular_steps(tmp_path):
    # with one slice missing late in a long stack every step differs from the mean spacing;
    # the message listed the first five (regular) steps and never the gap
    arr = phantom((30, 6, 6), seed=15)
    paths = write_series(tmp_path, arr, slice_step=2.0, description="T2 long")
    paths[20].unlink()
    with pytest.raises(SeriesGeometryError, match=r"a slice is missing.*gap is 4\.000 mm between slices at "
                                                  r"38\.000 and 42\.000 mm \(tolerance") as info:
        load_dicom(tmp_path)
    assert "2.000 mm between" not in str(info.value)
