"""A mask file the image reader cannot place gets advice for a mask (re-save it), not the image
options --affine / --volume, which do not apply to masks."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from volumetry.errors import ImageFormatError
from volumetry.image import Volume
from volumetry.io.masks import read_mask
from volumetry.io.nifti import write_nifti


@pytest.fixture
def image(tmp_path):
    img = Volume(np.zeros((6, 10, 12), np.float32), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    write_nifti(img, tmp_path / "image.nii.gz")
    return img


def test_four_d_mask_is_told_to_be_one_volume(image, tmp_path):
    arr = np.zeros((12, 10, 6, 3), np.uint8)
    arr[4:8, 3:6, 2:4, :] = 1
    nib.save(nib.Nifti1Image(arr, np.diag([-1.0, -1.0, 2.0, 1.0])), tmp_path / "m4d.nii.gz")
    with pytest.raises(ImageFormatError) as exc:
        read_mask(tmp_path / "m4d.nii.gz", image)
    msg = str(exc.value)
    assert "m4d.nii.gz" in msg and "holds 3 volumes" in msg and "one 3D volume" in msg
    assert "--volume" not in msg and "volume_index" not in msg


def test_mask_with_disagreeing_sform_and_qform_is_told_to_be_saved_again(image, tmp_path):
    arr = np.zeros((12, 10, 6), np.uint8)
    arr[4:8, 3:6, 2:4] = 1
    nii = nib.Nifti1Image(arr, np.diag([-1.0, -1.0, 2.0, 1.0]))
    nii.set_qform(np.diag([-1.0, -1.0, 2.0, 1.0]), code=1)
    shifted = np.diag([-1.0, -1.0, 2.0, 1.0])
    shifted[:3, 3] = [0.0, 0.0, 10.0]
    nii.set_sform(shifted, code=1)
    nib.save(nii, tmp_path / "amb.nii.gz")
    with pytest.raises(ImageFormatError) as exc:
        read_mask(tmp_path / "amb.nii.gz", image)
    msg = str(exc.value)
    assert "amb.nii.gz" in msg and "sform and qform disagree" in msg and "10 mm" in msg and "save the mask again" in msg
    assert "--affine" not in msg and "affine_source" not in msg
