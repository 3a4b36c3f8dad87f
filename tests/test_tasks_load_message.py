"""The load stage adds "in the manifest, column 'volume' ..." to the reader's message only when
that message is about choosing a volume, not whenever the word occurs (a study kept under
a folder named ``volumetry_trial`` holds it in every path)."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.errors import InputError
from volumetry.pipeline import tasks
from volumetry.pipeline.tasks import ImageRef, load_image


def _ref(path, volume=None) -> ImageRef:
    return ImageRef(str(path), None, f"test-{path}-{volume}", None, volume)


def test_a_corrupt_file_under_a_volumetry_folder_gets_no_volume_advice(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "_IMAGE_CACHE", tasks.collections.OrderedDict())
    folder = tmp_path / "volumetry_trial"
    folder.mkdir()
    bad = folder / "S01_volume.nii.gz"
    bad.write_bytes(b"not a nifti file")
    with pytest.raises(InputError, match=r"S01_volume\.nii\.gz: not a readable NIfTI file") as info:
        load_image(_ref(bad))
    assert "column 'volume'" not in str(info.value)


def test_a_4d_image_without_volume_names_the_manifest_column(tmp_path, monkeypatch):
    import nibabel as nib

    monkeypatch.setattr(tasks, "_IMAGE_CACHE", tasks.collections.OrderedDict())
    path = tmp_path / "dual.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), str(path))
    with pytest.raises(InputError, match=r"2 volumes \(0\.\.1.*in the manifest, column 'volume' gives the 0-based"):
        load_image(_ref(path))
    with pytest.raises(InputError, match=r"volume 5 requested but the file has volumes 0\.\.1; in the manifest, "
                                         r"column 'volume'"):
        load_image(_ref(path, 5))
    assert load_image(_ref(path, 1)).array.shape == (3, 4, 4)
