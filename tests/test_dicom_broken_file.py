"""One truncated file in a PACS export fails its own series only: the other series of the
folder load (the same voxels as without the bad file), the bad series fails naming the file,
and a batch over a DICOM tree goes on past it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pydicom
import pytest

from test_pipeline import LESION_CENTRE, make_image, tiny_config
from test_pipeline_dicom_tree import RULE, _write_tree
from volumetry.errors import DicomReadError
from volumetry.io.dicom import index_dicom, load_dicom
from volumetry.io.dicom_write import SeriesInfo, write_dicom_series
from volumetry.manifest import read_study
from volumetry.pipeline import run_study


def _truncate(path, keep=2000):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture
def study(tmp_path):
    img, _ = make_image((9, 7, 7), (0, 0, 0), seed=1)
    img = img.with_array(np.round(img.array).astype(np.int16))
    common = dict(patient_id="P1", study_date="20240115", study_uid=None)
    root = tmp_path / "study"
    write_dicom_series(img, root / "t2fs", SeriesInfo(series_description="T2 FS COR", series_number=3,
                                                      uid_seed="a", **common))
    write_dicom_series(img, root / "t1", SeriesInfo(series_description="T1 VIBE", series_number=2,
                                                    uid_seed="b", **common))
    uids = {name: str(pydicom.dcmread(next((root / name).iterdir())).SeriesInstanceUID) for name in ("t2fs", "t1")}
    return root, uids


def test_other_series_of_the_folder_load_unchanged(study, tmp_path):
    root, uids = study
    clean = load_dicom(root, series_uid=uids["t2fs"])
    bad = sorted((root / "t1").iterdir())[3]
    _truncate(bad)
    stacks = {s.series_uid: s for s in index_dicom(root)}
    assert set(stacks) == set(uids.values())
    assert stacks[uids["t2fs"]].broken == () and bad.name in stacks[uids["t1"]].broken[0]
    v = load_dicom(root, series_uid=uids["t2fs"])
    assert np.array_equal(v.array, clean.array) and np.allclose(v.affine, clean.affine)
    with pytest.raises(DicomReadError, match=rf"{bad.name} is truncated.*series {uids['t1']} cannot be loaded"):
        load_dicom(root, series_uid=uids["t1"])
    # before: both raised "IM0004.dcm is truncated" while indexing the folder


def test_a_truncated_slice_of_the_series_itself_still_fails_it(study):
    root, uids = study
    bad = sorted((root / "t2fs").iterdir())[5]
    _truncate(bad, 3000)
    with pytest.raises(DicomReadError, match=bad.name):
        load_dicom(root, series_uid=uids["t2fs"])
    with pytest.raises(DicomReadError, match=bad.name):  # one file of the series named directly
        load_dicom(sorted((root / "t2fs").iterdir())[0])


def test_an_unreadable_header_still_stops_the_index(study):
    # its series is unknown: it could be a slice of any of them
    root, _ = study
    bad = sorted((root / "t1").iterdir())[2]
    _truncate(bad, 300)
    with pytest.raises(DicomReadError, match=bad.name):
        index_dicom(root)


def test_tree_batch_goes_on_past_a_truncated_file(tmp_path):
    tree = tmp_path / "tree"
    _write_tree(tree, patient_id="P9")
    # the baseline's T1 (not the series the rule chooses) and the follow-up's T2 FS each lose a file
    _truncate(sorted((tree / "study0" / "t1").iterdir())[4])
    bad = sorted((tree / "study1" / "t2fs").iterdir())[7]
    _truncate(bad)
    study = read_study(tree, RULE)
    assert [r.visit for r in study.rows] == ["2024-01-15", "2024-04-08"]
    cfg = tiny_config(seg=False)
    cfg = dataclasses.replace(cfg, series={**cfg.series, **RULE})  # the T2 FS series, as read_study chose
    s = run_study(tree, cfg, tmp_path / "out", jobs=1, progress=False)
    t = s.table[(s.table["method"] == "voxel") & (s.table["lesion_id"] != "total")].set_index("visit")
    assert t.loc["2024-01-15", "status"] == "ok" and t.loc["2024-01-15", "volume_ml"] > 0
    assert t.loc["2024-04-08", "status"] == "failed" and bad.name in t.loc["2024-04-08", "reason"]
    assert [f.visit for f in s.failures] == ["2024-04-08"]


def _float_pixel_series(folder, n=3):
    """A series whose pixels are FloatPixelData (a parametric map's kind), which volumetry does not read."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    series = generate_uid()
    for k in range(n):
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.PatientID = "MR", series, "1.2.3", "P1"
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.BitsAllocated = 1, "MONOCHROME2", 32
        ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, k], [1, 0, 0, 0, 1, 0], [1, 1]
        ds.FloatPixelData = np.full(16, 1.5, np.float32).tobytes()
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
    return series


def test_float_pixel_data_is_named_not_called_no_image(tmp_path):
    _float_pixel_series(tmp_path / "map")
    # before: "no DICOM image found in .../map"
    with pytest.raises(DicomReadError, match=r"0\.dcm holds float pixel data .*convert this one to NIfTI.*2 more"):
        load_dicom(tmp_path / "map")
    with pytest.raises(DicomReadError, match=r"1\.dcm holds float pixel data"):
        load_dicom(tmp_path / "map" / "1.dcm")


def test_a_float_pixel_series_beside_a_scan_fails_only_itself(study):
    root, uids = study
    clean = load_dicom(root, series_uid=uids["t2fs"])
    _float_pixel_series(root / "adc-map")
    assert {s.series_uid for s in index_dicom(root)} == set(uids.values())
    assert np.array_equal(load_dicom(root, series_uid=uids["t2fs"]).array, clean.array)
