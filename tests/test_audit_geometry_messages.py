"""Impossible DICOM geometry is refused with the series and a file named, not a bare Volume error.

Before the fix, a negative or zero PixelSpacing or row and column cosines that are not perpendicular
reached the Volume check, whose message named neither the series nor a file ("voxel spacing must be
three positive finite mm values, got (1.0, -1.0, 1.0)"); a NaN ImagePositionPatient was merged into
another slice position and reported as "a volume is missing a slice or a slice is duplicated".
"""
from __future__ import annotations

import warnings

import pydicom
import pytest
from dicom_factory import phantom, write_series

from volumetry.errors import SeriesGeometryError
from volumetry.io.dicom import load_dicom


def _edit_all(paths, **attrs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that "NaN" is not a valid DS: that is the point
        for p in paths:
            ds = pydicom.dcmread(p)
            for k, v in attrs.items():
                setattr(ds, k, v)
            ds.save_as(p)


@pytest.mark.parametrize("spacing", [["-1", "1"], ["0", "1"]])
def test_pixel_spacing_not_positive_names_the_series_and_a_file(tmp_path, spacing):
    paths = write_series(tmp_path, phantom((3, 8, 8)), description="t2 ax")
    _edit_all(paths, PixelSpacing=spacing)
    with pytest.raises(SeriesGeometryError, match=r"series 't2 ax'.*PixelSpacing.*IM000\d\.dcm.*not positive"):
        load_dicom(tmp_path)


def test_row_and_column_cosines_not_perpendicular_name_the_series_and_a_file(tmp_path):
    write_series(tmp_path, phantom((3, 8, 8)), row=(1, 0, 0), col=(0.1, 0.99498744, 0), description="t2 ax")
    with pytest.raises(SeriesGeometryError, match=r"series 't2 ax'.*IM000\d\.dcm.*not perpendicular"):
        load_dicom(tmp_path)


def test_nan_image_position_names_the_series_and_the_file(tmp_path):
    paths = write_series(tmp_path, phantom((3, 8, 8)), description="t2 ax")
    _edit_all(paths[1:2], ImagePositionPatient=["0", "NaN", "1"])
    with pytest.raises(SeriesGeometryError, match=r"series 't2 ax'.*ImagePositionPatient.*IM0002\.dcm.*not three finite"):
        load_dicom(tmp_path)
