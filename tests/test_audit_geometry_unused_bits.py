"""Unsigned pixels stored in fewer bits than allocated: the bits above HighBit are not pixel data.

DICOM allows the unused high bits of a stored value to hold other data (retired overlay planes);
pydicom (and the compressed-file path of the loader) masks them. Before the fix, the direct
uncompressed read kept them: a 12-bit value 100 with the top nibble set read 61540, and the same
series read 100 when it was compressed. Now both paths give pydicom's values.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_factory import write_series
from pydicom.uid import RLELossless

from volumetry.io.dicom import load_dicom


@pytest.mark.parametrize("transfer_syntax", [None, RLELossless])
def test_unused_high_bits_of_unsigned_12_bit_pixels_are_masked_like_pydicom(tmp_path, transfer_syntax):
    values = np.array([[[100, 4095], [0, 2048]]] * 3, dtype=np.uint16)
    stored = values | np.uint16(0xF000)  # garbage in the 4 unused bits
    paths = write_series(tmp_path, values)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PixelData = stored[0].astype("<u2").tobytes()
        if transfer_syntax is not None:
            ds.compress(transfer_syntax)
        ds.save_as(p)
    np.testing.assert_array_equal(pydicom.dcmread(paths[0]).pixel_array, values[0])
    vol = load_dicom(tmp_path)
    np.testing.assert_array_equal(vol.array, values)
