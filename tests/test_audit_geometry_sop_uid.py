"""Files sharing a SOPInstanceUID but holding different slices are not copies of one image.

The index skips a second file with an already-seen SOPInstanceUID as a copy of the same image
exported twice. A broken export (an anonymiser that rewrote the UIDs, a script writing one UID)
gives different slices the same SOPInstanceUID. Before the fix, the first and last slices of a
6-slice series sharing one UID loaded as 5 slices with no warning (the lesion's end slice lost), and
a series whose files all shared one UID loaded as its first slice alone. Now only a true copy (same
series, same positions and orientation) is skipped; the others are kept, with a note.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_factory import phantom, write_series

from volumetry.io.dicom import index_dicom, load_dicom


def _set_sop(path, uid):
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.save_as(path)


@pytest.mark.parametrize("sharing", [[0, 5], [0, 1, 2, 3, 4, 5]], ids=["first-and-last", "all"])
def test_different_slices_sharing_a_sop_instance_uid_are_all_loaded(tmp_path, sharing):
    arr = phantom((6, 8, 8))
    paths = write_series(tmp_path, arr, slice_step=2.0)
    for k in sharing:
        _set_sop(paths[k], "1.2.826.0.1.3680043.10.1453.99")
    vol = load_dicom(tmp_path)
    np.testing.assert_array_equal(vol.array, arr)
    assert vol.voxel_volume_mm3 == pytest.approx(2.0)
    assert any("SOPInstanceUID" in w and "different slices" in w for w in vol.meta["warnings"])


def test_a_true_copy_is_still_skipped(tmp_path):
    arr = phantom((4, 8, 8))
    write_series(tmp_path / "a", arr, seed=5)
    write_series(tmp_path / "b", arr, seed=5)  # the same files again
    (stack,) = index_dicom(tmp_path)
    assert stack.n_slices == 4 and stack.n_volumes == 1 and stack.notes == ()
