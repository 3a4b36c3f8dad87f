"""A mask file without orientation (NIfTI sform and qform codes 0) cannot be resampled onto an image.

Such a file (what ``nibabel.Nifti1Image(mask, None)`` writes) gets nibabel's pixdim-only affine:
an invented position and a left-right flip. Before the fix, a mask of the image's shape on an
oblique image was resampled through that invented geometry and measured: 0.232 mL (flagged only
``mask-resampled``, mirrored and rotated away from the lesion) for a lesion of 0.240 mL. Now it is an error naming the file; a mask without
orientation that is on the image's grid (both written the same way) is still taken as it is.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from volumetry.errors import GeometryMismatchError
from volumetry.io.masks import read_mask
from volumetry.io.reader import read_image
from volumetry.measure import measure

SHAPE = (24, 20, 12)  # (i, j, k) as nibabel stores it
TRUE_ML = 6 * 5 * 4 * 2.0 / 1000  # the cube below, 2 mm^3 voxels


def _cube():
    arr = np.zeros(SHAPE, np.uint8)
    arr[12:18, 9:14, 5:9] = 1
    return arr


def _oblique_affine():
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    a = np.eye(4)
    a[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([1.0, 1.0, 2.0])
    a[:3, 3] = -a[:3, :3] @ ((np.array(SHAPE) - 1) / 2)  # the grid's centre at RAS 0, like pixdim-only
    return a


def _write(path, arr, affine, coded):
    img = nib.Nifti1Image(arr, affine)
    img.set_sform(affine, 1 if coded else 0)
    img.set_qform(affine, 1 if coded else 0)
    nib.save(img, str(path))
    return path


def test_unoriented_mask_of_an_oblique_image_is_an_error_not_a_resampled_volume(tmp_path):
    image = read_image(_write(tmp_path / "t2.nii.gz", np.zeros(SHAPE, np.int16), _oblique_affine(), True))
    oriented = _write(tmp_path / "oriented.nii.gz", _cube(), _oblique_affine(), True)
    assert measure(read_mask(oriented, image).mask).volume_ml == pytest.approx(TRUE_ML)
    unoriented = _write(tmp_path / "mask.nii.gz", _cube(), _oblique_affine(), False)
    with pytest.raises(GeometryMismatchError, match=f"{unoriented}: the mask has neither sform nor qform"):
        read_mask(unoriented, image)


def test_unoriented_mask_on_the_grid_of_an_unoriented_image_is_taken_as_it_is(tmp_path):
    image = read_image(_write(tmp_path / "t2.nii.gz", np.zeros(SHAPE, np.int16), _oblique_affine(), False))
    mask = read_mask(_write(tmp_path / "mask.nii.gz", _cube(), _oblique_affine(), False), image)
    assert mask.flags == []
    assert measure(mask.mask).volume_ml == pytest.approx(TRUE_ML)
