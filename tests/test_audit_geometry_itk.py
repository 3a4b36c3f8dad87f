"""An NRRD/MetaImage with an unusable geometry is refused naming the file, like a NIfTI.

Before the fix, a sheared NRRD ("space directions" not orthogonal) raised the Volume's bare
"direction matrix is not orthonormal" without the file's name.
"""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from volumetry.errors import ImageFormatError
from volumetry.io.reader import read_image


def test_sheared_nrrd_is_an_image_format_error_naming_the_file(tmp_path):
    path = tmp_path / "t2.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(path))
    text = path.read_bytes()
    assert b"space directions: (1,0,0) (0,1,0) (0,0,1)" in text
    path.write_bytes(text.replace(b"(0,1,0) (0,0,1)", b"(0.3,1,0) (0,0,1)"))
    with pytest.raises(ImageFormatError, match=f"{path}: unusable geometry: direction matrix is not orthonormal"):
        read_image(path)
