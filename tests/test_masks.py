"""Importing masks drawn elsewhere: binary/label checks and the geometry check."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.errors import GeometryMismatchError, InputError
from volumetry.image import Volume
from volumetry.io.masks import import_mask, read_mask


@pytest.fixture()
def image():
    return Volume(np.zeros((10, 20, 20), np.float32), (1.0, 1.0, 2.0), (-10.0, -10.0, 0.0), np.eye(3),
                  {"series_uid": "1.2.3"})


def cube(image, value=1, dtype=np.uint8):
    arr = np.zeros(image.array.shape, dtype)
    arr[3:7, 5:15, 5:15] = value
    return arr


def test_matching_grid_is_taken_as_is(image):
    m = Volume(cube(image), image.spacing, np.asarray(image.origin) + 0.004, image.direction)
    out = import_mask(m, image)
    assert out.flags == [] and out.mask.same_grid(image) and out.mask.array.dtype == bool
    assert out.mask.array.sum() == 400


def test_mismatching_grid_is_resampled_by_nearest_neighbour_and_flagged(image, caplog):
    # the same 4 x 10 x 10 voxel cube drawn on a 0.5 mm in-plane grid, shifted by a quarter voxel
    fine = np.zeros((10, 40, 40), np.uint8)
    fine[3:7, 10:30, 10:30] = 1
    m = Volume(fine, (0.5, 0.5, 2.0), (-10.25 + 0.0, -10.25, 0.0), np.eye(3))
    out = import_mask(m, image, source="drawn.nrrd")
    assert out.flags == ["mask-resampled"] and out.mask.same_grid(image)
    assert out.mask.array.sum() == 400  # nearest neighbour keeps the cube
    assert "size (40, 40, 10)" in out.geometry_note
    assert "resampled onto the image grid" in caplog.text


def test_mask_reaching_outside_the_image_is_also_flagged_cropped(image):
    arr = np.zeros((10, 20, 20), np.uint8)
    arr[3:7, 5:15, 5:15] = 1
    m = Volume(arr, image.spacing, (0.0, -10.0, 0.0), image.direction)  # shifted 10 mm along x
    out = import_mask(m, image)
    assert out.flags == ["mask-resampled", "mask-cropped"] and out.mask.array.sum() == 4 * 10 * 5


def test_mask_not_overlapping_is_an_error(image):
    m = Volume(cube(image), image.spacing, (300.0, 0.0, 0.0), image.direction)
    with pytest.raises(GeometryMismatchError, match="does not overlap the image"):
        import_mask(m, image, source="other.nii.gz")


def test_label_map_needs_a_label(image):
    arr = cube(image, 2)
    arr[0, 0, 0] = 5
    m = Volume(arr, image.spacing, image.origin, image.direction)
    with pytest.raises(InputError, match=r"labels\.nii\.gz: the mask is not binary \(values 0, 2, 5\); choose the "
                                         r"lesion's label"):
        import_mask(m, image, source="labels.nii.gz")
    assert import_mask(m, image, label=2).mask.array.sum() == 400
    with pytest.raises(InputError, match="label 3 is not in the mask; its labels are 2, 5"):
        import_mask(m, image, label=3)


def test_probability_map_is_refused(image):
    m = Volume(cube(image, 1, np.float32) * 0.7, image.spacing, image.origin, image.direction)
    with pytest.raises(InputError, match="non-integer values"):
        import_mask(m, image)


def test_read_mask_from_nifti_and_missing_file(image, tmp_path):
    from volumetry.io.nifti import write_nifti

    path = write_nifti(Volume(cube(image), image.spacing, image.origin, image.direction), tmp_path / "m.nii.gz")
    out = read_mask(path, image)
    assert out.flags == [] and out.mask.array.sum() == 400 and out.source == str(path)
    with pytest.raises(InputError, match="mask file not found"):
        read_mask(tmp_path / "nope.nii.gz", image)


def test_read_mask_takes_a_dicom_seg_through_io_seg(tmp_path):
    from test_seg import DIRECTION, write_mr_series

    from volumetry.io.reader import read_image
    from volumetry.io.seg import write_seg

    shape = (6, 16, 18)
    img = np.full(shape, 200, np.uint16)
    img[2:5, 4:11, 5:12] = 900
    paths = write_mr_series(tmp_path / "mr", img, (0.8, 0.9, 3.0), (-12.5, 30.25, -40.0), DIRECTION)
    image = read_image(tmp_path / "mr")
    seg = write_seg(image.with_array(image.array > 500), paths, tmp_path / "lesion.dcm")
    out = read_mask(seg, image)
    assert out.flags == [] and out.mask.same_grid(image)
    assert out.mask.array.sum() == 3 * 7 * 7
