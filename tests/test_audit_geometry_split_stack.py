"""An end slice split off its series into another stack must not leave a silently shorter volume.

A series whose last slice has another PixelSpacing (or orientation, or matrix) splits into two
stacks: the 5 regular slices and the odd one. Before the fix, choosing the larger stack (by stack
id, or the pipeline's series rule ``prefer: most_slices``) loaded 5 of the 6 slices without a word:
a lesion reaching that slice lost it. Now it is an error naming the slice's file.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_factory import phantom, write_series

from volumetry.errors import SeriesGeometryError
from volumetry.io.dicom import load_dicom

UID = "1.2.826.0.1.3680043.10.1453.77.1"


def _edit(path, **attrs):
    ds = pydicom.dcmread(path)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.save_as(path)


@pytest.mark.parametrize("end", [0, 5])
@pytest.mark.parametrize("attrs", [
    {"PixelSpacing": ["1.1", "1"]},
    {"ImageOrientationPatient": ["1", "0", "0", "0", "0.99995", "0.0099998"]},
], ids=["pixel-spacing", "orientation"])
def test_end_slice_split_off_into_another_stack_is_an_error_not_a_shorter_volume(tmp_path, end, attrs):
    paths = write_series(tmp_path, phantom((6, 8, 8)), series_uid=UID, slice_step=2.0)
    _edit(paths[end], **attrs)
    with pytest.raises(SeriesGeometryError, match=f"{paths[end].name}.*split off"):
        load_dicom(tmp_path, series_uid=f"{UID}#1")


def test_another_plane_in_the_same_series_is_not_taken_for_a_split_off_slice(tmp_path):
    arr = phantom((6, 8, 8))
    write_series(tmp_path / "ax", arr, series_uid=UID, slice_step=2.0)
    # a localizer of another plane whose first pixel sits where the axial stack's next slice would
    write_series(tmp_path / "loc", arr[:1], series_uid=UID, origin=(0, 0, 12.0), row=(0, 1, 0), col=(0, 0, -1),
                 name_prefix="loc")
    vol = load_dicom(tmp_path, series_uid=f"{UID}#1")
    np.testing.assert_array_equal(vol.array, arr)
    assert vol.spacing == (1.0, 1.0, 2.0)
