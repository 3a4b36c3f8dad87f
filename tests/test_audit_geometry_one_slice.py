"""A one-slice NIfTI/NRRD/MHA is flagged ``single-slice`` like a one-slice DICOM series.

With one slice the slice spacing cannot be measured: it is whatever the header declares (the
affine's third column). A one-slice DICOM series is flagged for that reason; before the fix the
same slice as NIfTI or NRRD gave its volume (area x header thickness) with no flag at all.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from volumetry.io.reader import geometry_flags, read_image


@pytest.mark.parametrize("shape", [(12, 10), (12, 10, 1)], ids=["2d", "3d-one-slice"])
def test_one_slice_nifti_is_flagged_single_slice(tmp_path, shape):
    aff = np.array([[0.8, 0, 0, -10], [0, 0.9, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), aff), str(tmp_path / "flat.nii.gz"))
    vol = read_image(tmp_path / "flat.nii.gz")
    assert vol.voxel_volume_mm3 == pytest.approx(0.8 * 0.9 * 3.0)
    assert geometry_flags(vol.meta["warnings"]) == ["single-slice"]
    assert "3 mm" in vol.meta["warnings"][0]


@pytest.mark.parametrize("ext", [".nrrd", ".mha"])
def test_one_slice_itk_image_is_flagged_single_slice(tmp_path, ext):
    img = sitk.GetImageFromArray(np.zeros((1, 10, 12), np.int16))
    img.SetSpacing((0.8, 0.9, 3.0))
    sitk.WriteImage(img, str(tmp_path / f"flat{ext}"))
    vol = read_image(tmp_path / f"flat{ext}")
    assert geometry_flags(vol.meta["warnings"]) == ["single-slice"]


def test_several_slices_are_not_flagged(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((12, 10, 2), np.int16), np.diag([0.8, 0.9, 3.0, 1])), str(tmp_path / "a.nii"))
    assert read_image(tmp_path / "a.nii").meta["warnings"] == []
