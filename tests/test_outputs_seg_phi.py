"""A pseudonymised run's DICOM SEG carries no identifying attribute of the source images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from test_seg import DIRECTION, _grid_from_written, write_mr_series

from volumetry.io.seg import read_seg
from volumetry.pipeline.outputs import SEG_IDENTIFYING, write_seg_for

#: Identifying values put into every source file (text attributes) and sequences.
TEXT = {"OtherPatientNames": "Doe^Janet", "PatientBirthTime": "101500", "PatientComments": "lives at 3 Elm St",
        "ConsultingPhysicianName": "House^Greg", "PhysiciansOfRecord": "Grey^Meredith", "StudyID": "S-77123",
        "AdmissionID": "ADM-5531", "ResponsiblePerson": "Doe^John", "IssuerOfPatientID": "HOSP-A",
        "AccessionNumber": "ACC-99", "ReferringPhysicianName": "Who^Doctor", "PatientBirthDate": "20150304",
        "StudyDescription": "MRI OF JANET DOE", "ClinicalTrialTimePointDescription": "Janet week 12",
        "RequestingService": "Dr Grey vascular clinic"}
#: The trial's own subject ID in the source (clinical trial subject module).
TRIAL_SUBJECT = "SIRO-0042"


@pytest.fixture
def identified_series(tmp_path):
    shape, spacing, origin = (4, 8, 9), (0.8, 0.9, 3.0), (-12.5, 30.25, -40.0)
    image = np.random.default_rng(3).integers(100, 400, size=shape).astype(np.uint16)
    paths = write_mr_series(tmp_path / "series", image, spacing, origin, DIRECTION)
    for p in paths:
        ds = pydicom.dcmread(p)
        for kw, value in TEXT.items():
            setattr(ds, kw, value)
        ds.ClinicalTrialSubjectID = TRIAL_SUBJECT
        other = Dataset()
        other.PatientID = "MRN-123456"
        ds.OtherPatientIDsSequence = [other]
        ds.save_as(p, enforce_file_format=True)
    return paths, _grid_from_written(DIRECTION, spacing, origin, shape)


@pytest.mark.parametrize("engine", ["fast", "highdicom"])
def test_pseudonymised_seg_has_no_identifying_attribute(identified_series, tmp_path, engine):
    paths, grid = identified_series
    arr = np.zeros(grid.array.shape, bool)
    arr[1:3, 2:6, 3:7] = True
    out = write_seg_for(grid.with_array(arr), (paths[0].parent, None), tmp_path / f"{engine}.dcm", "PSN-01", "1",
                        True, files=paths, engine=engine)
    ds = pydicom.dcmread(out)
    assert (ds.PatientID, str(ds.PatientName)) == ("PSN-01", "PSN-01")
    for kw in TEXT:
        assert not ds.get(kw), kw
    assert not ds.get("OtherPatientIDsSequence")
    assert ds.ClinicalTrialSubjectID == "PSN-01"  # type 1C: the pseudonym, not emptied
    text = out.read_bytes()
    for value in (*TEXT.values(), "MRN-123456", TRIAL_SUBJECT):
        assert value.encode() not in text, value
    assert set(TEXT) | {"OtherPatientIDsSequence"} <= set(SEG_IDENTIFYING)
    np.testing.assert_array_equal(read_seg(out, image=grid).array, arr)


def test_seg_of_a_run_without_pseudonymisation_keeps_the_source_attributes(identified_series, tmp_path):
    paths, grid = identified_series
    arr = np.zeros(grid.array.shape, bool)
    arr[1, 2:4, 3:5] = True
    out = write_seg_for(grid.with_array(arr), (paths[0].parent, None), tmp_path / "plain.dcm", "PH001", "1",
                        False, files=paths)
    ds = pydicom.dcmread(out)
    assert (ds.PatientID, ds.PatientBirthDate) == ("PH001", "")
    assert (str(ds.OtherPatientNames), ds.StudyID, ds.AccessionNumber) == ("Doe^Janet", "S-77123", "ACC-99")
    assert (ds.StudyDescription, ds.ClinicalTrialSubjectID) == ("MRI OF JANET DOE", TRIAL_SUBJECT)


def test_both_engines_write_the_same_pseudonymised_seg(identified_series, tmp_path):
    """The emptied attributes (text and sequences) are written alike by the fast path and highdicom."""
    from test_seg_fast import _assert_same_seg

    paths, grid = identified_series
    arr = np.zeros(grid.array.shape, bool)
    arr[0, 2:6, 3:7] = arr[-1, 1, 1] = True
    outs = [write_seg_for(grid.with_array(arr), (paths[0].parent, None), tmp_path / f"{e}.dcm", "PSN-02", "2", True,
                          files=paths, engine=e) for e in ("highdicom", "fast")]
    _assert_same_seg(*outs)
    for out in outs:  # the source's institution, station, acquisition date and time are not carried
        assert len(pydicom.dcmread(out).get("ContributingEquipmentSequence", [])) == 0
