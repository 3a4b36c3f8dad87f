"""A DICOM tree is indexed without following links to folders: a linked subject or visit
folder must be an error naming it, not a scan silently missing from the batch."""
from __future__ import annotations

import numpy as np
import pytest

from dicom_factory import write_series
from volumetry.errors import InputError
from volumetry.manifest import read_dicom_tree


def _series(folder, patient_id: str, date: str, uid: int) -> None:
    import pydicom

    arr = np.zeros((3, 8, 8), np.int16)
    write_series(folder, arr, pixel_spacing=(1.0, 1.0), slice_step=2.0, series_uid=f"1.2.826.0.1.3680043.10.1453.90.{uid}",
                 study_uid=f"1.2.826.0.1.3680043.10.1453.91.{uid}", description="T2")
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientID, ds.StudyDate = patient_id, date
        ds.save_as(f)


def test_a_linked_visit_folder_is_an_error_naming_it(tmp_path):
    tree = tmp_path / "tree"
    _series(tree / "P1" / "base", "P1", "20240102", 1)
    _series(tmp_path / "elsewhere" / "fu", "P1", "20240402", 2)
    (tree / "seeds.csv").write_text("subject_id,seed_x,seed_y,seed_z\nP1,3,3,2\n")
    assert [r.visit for r in read_dicom_tree(tree, {"modality": "MR"}).rows] == ["2024-01-02"]
    (tree / "P1" / "fu").symlink_to(tmp_path / "elsewhere" / "fu", target_is_directory=True)
    with pytest.raises(InputError, match=r"tree: P1/fu is a symbolic link to a folder, which a DICOM tree does not "
                                         r"follow \(its series would be left out\); replace the link"):
        read_dicom_tree(tree, {"modality": "MR"})
