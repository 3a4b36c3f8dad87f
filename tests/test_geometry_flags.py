"""Images whose geometry is partly taken on trust (a single slice, no orientation) give
volumes that are flagged in the results table, never silent numbers."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom

from dicom_factory import write_series
from test_pipeline import tiny_config
from volumetry.io.nifti import write_nifti
from volumetry.io.reader import geometry_flags, read_image
from volumetry.pipeline import run_study


def _single_slice_dicom(folder, thickness):
    """One slice; ``thickness=None`` leaves the header without SliceThickness/SpacingBetweenSlices."""
    arr = np.full((1, 24, 24), 100, np.int16)
    arr[0, 8:16, 8:16] = 900
    files = write_series(folder, arr, pixel_spacing=(0.5, 0.5), slice_thickness=thickness)
    if thickness is None:
        for f in files:
            ds = pydicom.dcmread(f)
            for keyword in ("SliceThickness", "SpacingBetweenSlices"):
                if keyword in ds:
                    delattr(ds, keyword)
            ds.save_as(f)
    return folder


def _nifti_without_orientation(path):
    data = np.full((20, 20, 6), 100, np.int16)
    data[5:12, 5:12, 2:4] = 900
    img = nib.Nifti1Image(data, np.diag([0.8, 0.8, 3.0, 1.0]))
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    nib.save(img, str(path))
    return path


def test_loader_warnings_become_flags(tmp_path):
    assumed = read_image(_single_slice_dicom(tmp_path / "a", None))
    assert assumed.spacing[2] == 1.0
    assert geometry_flags(assumed.meta["warnings"]) == ["single-slice", "slice-spacing-assumed"]
    header = read_image(_single_slice_dicom(tmp_path / "b", 4.0))
    assert header.spacing[2] == 4.0
    assert geometry_flags(header.meta["warnings"]) == ["single-slice"]
    unoriented = read_image(_nifti_without_orientation(tmp_path / "c.nii"))
    assert geometry_flags(unoriented.meta["warnings"]) == ["orientation-unknown"]
    assert geometry_flags([]) == []


def test_flags_reach_the_table(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    rows = ["subject_id,visit,course,scan_date,image,lesion_id,mask"]
    for subject, image_rel in (("S1", "s1"), ("S2", "s2.nii")):
        path = study / image_rel
        img = read_image(_single_slice_dicom(path, None) if subject == "S1" else _nifti_without_orientation(path))
        write_nifti(img.with_array(img.array > 500), study / f"{subject}_mask.nii.gz")
        rows.append(f"{subject},baseline,0,2024-01-01,{image_rel},1,{subject}_mask.nii.gz")
    (study / "manifest.csv").write_text("\n".join(rows) + "\n")
    summary = run_study(study, tiny_config(masks=False, seg=False), tmp_path / "out", jobs=1, progress=False)
    t = summary.table
    voxel = t[(t["method"] == "voxel") & (t["lesion_id"] != "total")].set_index("subject_id")
    flags = {s: str(voxel.loc[s, "flags"]).split(";") for s in ("S1", "S2")}
    assert {"single-slice", "slice-spacing-assumed"} <= set(flags["S1"])
    assert "orientation-unknown" in flags["S2"] and "single-slice" not in flags["S2"]
    # the volumes themselves are still the voxel count times the voxel volume
    assert voxel.loc["S1", "volume_ml"] == 64 * 0.25 * 1.0 / 1000
    # (pixdim is float32 in the header: 0.8 mm is stored to ~1e-8 relative)
    assert abs(voxel.loc["S2", "volume_ml"] / (49 * 2 * 0.8 * 0.8 * 3.0 / 1000) - 1) < 1e-6
