"""The SEG's frame affine (normal by explicit products) equals the former np.cross construction bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.errors import DicomReadError
from volumetry.io.seg import _frame_affine


def _reference_affine(ipp, iop, spacing) -> np.ndarray:
    pos, ori, ps = (np.array([float(v) for v in x]) for x in (ipp, iop, spacing))
    a = np.eye(4)
    a[:3, 0] = ori[:3] * ps[1]
    a[:3, 1] = ori[3:] * ps[0]
    a[:3, 2] = np.cross(ori[:3], ori[3:])
    a[:3, 3] = pos
    return a


def test_frame_affine_equals_np_cross_construction():
    rng = np.random.default_rng(11)
    for _ in range(500):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # random orthonormal row/column cosines
        iop = [float(v) for v in np.r_[q[:, 0], q[:, 1]]]
        ipp = [str(v) for v in rng.uniform(-200, 200, size=3).round(4)]  # decimal strings, as stored
        ps = [float(v) for v in rng.uniform(0.2, 3, size=2)]
        got = _frame_affine(ipp, iop, ps, "f")
        np.testing.assert_array_equal(got, _reference_affine(ipp, iop, ps))
    # an axial frame: the normal is +z (LPS), spacing on the columns
    a = _frame_affine(["1", "2", "3"], [1, 0, 0, 0, 1, 0], [0.5, 0.7], "axial")
    np.testing.assert_array_equal(a, [[0.7, 0, 0, 1], [0, 0.5, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]])


def test_frame_affine_refuses_bad_spacing():
    with pytest.raises(DicomReadError, match="f: PixelSpacing must be positive"):
        _frame_affine([0, 0, 0], [1, 0, 0, 0, 1, 0], [0, 1], "f")
