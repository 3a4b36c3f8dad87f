"""Compressed transfer syntaxes decode to the same volume as the uncompressed series."""
from __future__ import annotations

import numpy as np
import pytest
from dicom_factory import phantom, write_series
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from volumetry.errors import DicomReadError
from volumetry.io.dicom import index_dicom, load_dicom

ENCODERS = {  # transfer syntax -> module pydicom needs to *encode* it (decoding uses pylibjpeg)
    RLELossless: None,
    DeflatedExplicitVRLittleEndian: None,
    JPEG2000Lossless: "openjpeg",
    JPEGLSLossless: "jpeg_ls",
}


@pytest.mark.parametrize("ts", list(ENCODERS), ids=lambda u: u.name)
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_compressed_series_equals_uncompressed(tmp_path, ts, signed):
    if ENCODERS[ts]:
        pytest.importorskip(ENCODERS[ts], reason=f"no encoder for {ts.name} to build the test series")
    arr = phantom((3, 64, 48), signed=signed, seed=30)
    write_series(tmp_path / "plain", arr, origin=(1, 2, 3), slice_step=2.0, shuffle_names=True, seed=5,
                 slope=1.5, intercept=-10)
    write_series(tmp_path / "comp", arr, origin=(1, 2, 3), slice_step=2.0, shuffle_names=True, seed=5,
                 slope=1.5, intercept=-10, transfer_syntax=ts)
    plain = load_dicom(tmp_path / "plain")
    comp = load_dicom(tmp_path / "comp")
    assert comp.meta["transfer_syntax"] == ts
    assert comp.same_grid(plain)
    np.testing.assert_array_equal(comp.array, plain.array)
    np.testing.assert_allclose(comp.array, arr * 1.5 - 10, rtol=1e-6)


def test_corrupt_compressed_pixels_name_the_file(tmp_path):
    arr = phantom((3, 16, 16), seed=31)
    paths = write_series(tmp_path, arr, transfer_syntax=RLELossless)
    data = bytearray(paths[1].read_bytes())
    paths[1].write_bytes(bytes(data[:-200]))
    assert len(index_dicom(tmp_path)) == 1  # headers are intact
    with pytest.raises(DicomReadError, match=rf"{paths[1].name}"):
        load_dicom(tmp_path)
