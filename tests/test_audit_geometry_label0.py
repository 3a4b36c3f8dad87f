"""Label 0 is the background of a label map: asking for it must be an error, never the background's volume.

Before the fix, ``read_mask(..., label=0)`` and ``measure(..., label=0)`` returned the volume of
every voxel outside the lesion (the pipeline passes ``label=int(lesion_id)``, so a lesion id "0"
with a label-map mask measured the background).
"""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from volumetry.errors import InputError
from volumetry.image import Volume
from volumetry.io.masks import import_mask, read_mask
from volumetry.measure import measure


def _label_map():
    arr = np.zeros((6, 8, 10), np.uint8)
    arr[1:3, 2:4, 2:5] = 1  # 12 voxels
    arr[4:6, 5:7, 6:9] = 2  # 12 voxels
    return Volume(arr, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))


def test_label_0_of_a_label_map_is_refused_by_import_mask_not_the_background():
    labels = _label_map()
    assert import_mask(labels, labels, label=2).mask.array.sum() == 12  # a real label still works
    with pytest.raises(InputError, match="label 0 is the background"):
        import_mask(labels, labels, label=0, source="labels.nii.gz")


def test_label_0_of_a_nifti_label_map_is_refused_by_read_mask(tmp_path):
    labels = _label_map()
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels.array.transpose(2, 1, 0), np.diag([-1.0, -1.0, 2.0, 1.0])), str(path))
    with pytest.raises(InputError, match=f"{path}: label 0 is the background"):
        read_mask(path, labels, label=0)


def test_label_0_is_refused_by_measure_not_the_background_volume():
    labels = _label_map()
    assert measure(labels, label=1).volume_ml == pytest.approx(12 * 2 / 1000)
    with pytest.raises(InputError, match="label 0 is the background"):
        measure(labels, label=0)
    binary = labels.with_array(labels.array == 1)
    with pytest.raises(InputError, match="label 0 is the background"):
        measure(binary, label=0)
