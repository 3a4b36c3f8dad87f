"""Enhanced multi-frame MR built with pydicom: shared and per-frame functional groups."""
from __future__ import annotations

import numpy as np
import pytest
from dicom_factory import phantom, rotation, write_enhanced

from volumetry.errors import SeriesSelectionError
from volumetry.io.dicom import index_dicom, load_dicom


@pytest.fixture()
def enhanced(tmp_path):
    vols = np.stack([phantom((5, 12, 10), seed=60), phantom((5, 12, 10), seed=61)])
    slopes = np.array([[1.0 + 0.5 * k for k in range(5)], [2.0] * 5])  # per-frame rescale
    r = rotation(-12.0, 25.0, 4.0)
    path = write_enhanced(tmp_path / "enh.dcm", vols, pixel_spacing=(0.9, 0.6), origin=(3, -7, 11.5),
                          row=r[:, 0], col=r[:, 1], slice_step=2.2, slopes=slopes, intercept=-5, seed=3)
    return path, vols, slopes, r


def test_enhanced_geometry_volumes_and_per_frame_rescale(enhanced):
    path, vols, slopes, r = enhanced
    (stack,) = index_dicom(path.parent)
    assert (stack.kind, stack.n_slices, stack.n_volumes) == ("enhanced", 5, 2)
    with pytest.raises(SeriesSelectionError, match="0: temporal position 1; 1: temporal position 2"):
        load_dicom(path)
    for v in range(2):
        vol = load_dicom(path, volume_index=v)
        np.testing.assert_allclose(vol.array, vols[v] * slopes[v][:, None, None] - 5, rtol=1e-6)
        assert vol.spacing == pytest.approx((0.6, 0.9, 2.2))
        np.testing.assert_allclose(vol.origin, (3, -7, 11.5), atol=1e-5)
        expected = np.column_stack([r[:, 0], r[:, 1], np.cross(r[:, 0], r[:, 1])])
        np.testing.assert_allclose(vol.direction, expected, atol=1e-6)
        assert "rescale slope/intercept differ between slices; applied per slice" in vol.meta["warnings"] or v == 1
        assert vol.meta["files"] == [str(path)]


def test_enhanced_integer_rescale_keeps_integers(tmp_path):
    vols = phantom((4, 8, 8), seed=62)[None]
    path = write_enhanced(tmp_path / "e.dcm", vols, slopes=np.full((1, 4), 3.0), intercept=-100)
    vol = load_dicom(path)
    assert vol.array.dtype.kind == "i"
    np.testing.assert_array_equal(vol.array, vols[0].astype(np.int64) * 3 - 100)
