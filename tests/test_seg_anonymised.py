"""DICOM SEG of an anonymised source series.

Anonymised PACS exports often drop the type 2 attributes of the Patient and General Study
modules (PatientBirthDate, PatientSex, ReferringPhysicianName, StudyID, AccessionNumber,
StudyTime, ...) that a SEG takes from its source. Both writers still write the SEG, with those
attributes present and empty (what type 2 allows), element for element the same, and the mask
reads back unchanged. A missing type 1 attribute (a UID) is refused with an error naming the
file and the attribute.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from test_seg_fast import _assert_reads_back, _assert_same_seg, _both

from volumetry.errors import DicomReadError
from volumetry.io.dicom import load_dicom
from volumetry.io.dicom_write import SeriesInfo, write_dicom_series
from volumetry.io.seg import SEG_TYPE2_FROM_SOURCE, SEG_TYPE2_IMAGE_FROM_SOURCE, prepare_sources, read_seg, write_seg
from volumetry.phantoms import make_lesion_phantom, phantom_suite

#: What the brief's anonymiser strips; every type 2 attribute a SEG takes from its source, and the
#: Image Plane module's SliceThickness (type 2 too) that a SEG's pixel measures copy.
STRIPPED = {
    "patient-study": ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "StudyID", "AccessionNumber",
                      "StudyTime"),
    "every-type-2": SEG_TYPE2_FROM_SOURCE + SEG_TYPE2_IMAGE_FROM_SOURCE,
}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A phantom lesion written as a classic MR series (volumetry.phantoms), its image and mask."""
    ph = make_lesion_phantom(phantom_suite()[0], seed=11)
    folder = tmp_path_factory.mktemp("anon") / "series"
    write_dicom_series(ph.image, folder, SeriesInfo(patient_birth_date="20150304", patient_sex="F",
                                                    accession_number="ACC123", uid_seed="seg-anonymised"))
    image = load_dicom(folder)
    mask = image.with_array(np.asarray(ph.mask.array) > 0)
    assert image.same_grid(ph.mask) and 0 < mask.array.sum() < mask.array.size
    return image, mask


def _strip(files, folder: Path, keywords, *, only: int | None = None) -> list[Path]:
    """Copies of the files without ``keywords`` (in every file, or in file ``only`` alone)."""
    folder.mkdir(parents=True)
    out = []
    for n, f in enumerate(files):
        ds = pydicom.dcmread(f)
        if only is None or n == only:
            for kw in keywords:
                if kw in ds:
                    delattr(ds, kw)
        ds.save_as(folder / Path(f).name, enforce_file_format=True)
        out.append(folder / Path(f).name)
    return out


@pytest.mark.parametrize("case", sorted(STRIPPED))
def test_seg_of_an_anonymised_series_from_both_writers(phantom, tmp_path, case):
    image, mask = phantom
    files = _strip(image.meta["files"], tmp_path / "src", STRIPPED[case])
    assert not any(kw in pydicom.dcmread(files[0]) for kw in STRIPPED[case])
    before = [f.read_bytes() for f in files]
    ref, fast = _both(mask, files, tmp_path, case)  # the fast path is taken (no fallback)
    _assert_same_seg(ref, fast)
    _assert_reads_back(fast, mask)
    _assert_reads_back(ref, mask)
    for path in (ref, fast):
        ds = pydicom.dcmread(path)
        for kw in STRIPPED[case]:
            if kw == "SliceThickness":
                elem = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0][kw]
            else:
                elem = ds[kw]
            assert elem.value in (None, ""), (path.name, kw, elem.value)  # present, empty (type 2)
        kept = {"PatientName", "PatientID", "StudyDate", "PatientBirthDate", "PatientSex"} - set(STRIPPED[case])
        src = pydicom.dcmread(files[0])
        assert all(ds[kw].value == src[kw].value for kw in kept)
        assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert [f.read_bytes() for f in files] == before  # the sources are never changed


def test_anonymised_series_with_pseudonymising_overrides_and_prepared_sources(phantom, tmp_path):
    """As the pipeline writes it: headers prepared once (light headers after the first), two
    lesions, PatientID/PatientName/birth date overridden."""
    image, mask = phantom
    files = _strip(image.meta["files"], tmp_path / "src", STRIPPED["every-type-2"])
    sources = prepare_sources(files)
    overrides = {"PatientID": "P0123", "PatientName": "P0123", "PatientBirthDate": ""}
    arr = np.asarray(mask.array)
    halves = [arr.copy(), arr.copy()]
    split = int(np.median(np.nonzero(arr)[0]))
    halves[0][split:] = False
    halves[1][:split] = False
    for n, half in enumerate(halves):
        assert half.any()
        m = mask.with_array(half)
        ref = write_seg(m, sources, tmp_path / f"hd{n}.dcm", engine="highdicom", overrides=overrides)
        fast = write_seg(m, sources, tmp_path / f"fast{n}.dcm", overrides=overrides)
        _assert_same_seg(ref, fast)
        _assert_reads_back(fast, m)
        ds = pydicom.dcmread(fast)
        assert (ds.PatientID, str(ds.PatientName), ds.StudyID, ds.AccessionNumber) == ("P0123", "P0123", "", "")
    assert all(kw not in sources.datasets[0] for kw in STRIPPED["every-type-2"])  # the header read is unchanged


@pytest.mark.parametrize("keyword,which,state", [
    ("StudyInstanceUID", 3, "missing"), ("FrameOfReferenceUID", 0, "missing"), ("SOPInstanceUID", 5, "missing"),
    ("SeriesInstanceUID", 0, "empty"), ("Modality", 2, "missing"),
])
def test_missing_type_1_attribute_is_refused_naming_the_file(phantom, tmp_path, keyword, which, state):
    image, mask = phantom
    files = list(image.meta["files"])
    folder = tmp_path / "src"
    if state == "missing":
        files = _strip(files, folder, (keyword,), only=which)
    else:
        folder.mkdir()
        out = []
        for n, f in enumerate(files):
            ds = pydicom.dcmread(f)
            if n == which:
                setattr(ds, keyword, "")
            ds.save_as(folder / Path(f).name, enforce_file_format=True)
            out.append(folder / Path(f).name)
        files = out
    bad = str(files[which])
    for engine in ("highdicom", "fast"):
        target = tmp_path / f"{engine}.dcm"
        with pytest.raises(DicomReadError, match=rf"{bad}: {keyword} is {state}; it is a type 1 attribute"):
            write_seg(mask, files, target, engine=engine)
        assert not target.exists()


def test_pipeline_writes_the_seg_of_an_anonymised_series(phantom, tmp_path):
    """``volumetry run`` on an anonymised DICOM series with an imported mask: the SEG is written
    (it was only a warning before) and holds the mask."""
    from test_pipeline import tiny_config

    from volumetry.io.nifti import write_nifti
    from volumetry.pipeline import run_study

    image, mask = phantom
    study = tmp_path / "study"
    _strip(image.meta["files"], study / "S1" / "baseline", STRIPPED["every-type-2"])
    write_nifti(mask.with_array(np.asarray(mask.array).astype(np.uint8)), study / "S1" / "mask.nii.gz")
    (study / "manifest.csv").write_text("subject_id,visit,course,scan_date,image,mask\n"
                                        "S1,baseline,0,2024-01-15,S1/baseline,S1/mask.nii.gz\n")
    s = run_study(study, tiny_config(summary=False), tmp_path / "out", jobs=1, progress=False)
    assert s.ok, [f.line() for f in s.failures]
    (seg_file,) = (tmp_path / "out").glob("sub-S1/ses-baseline/anat/*_desc-lesion_mask.dcm")
    np.testing.assert_array_equal(read_seg(seg_file, image=image).array, np.asarray(mask.array))
    ds = pydicom.dcmread(seg_file)
    assert (ds.PatientID, ds.PatientBirthDate, ds.PatientSex, ds.StudyID) == ("S1", "", "", "")


@pytest.mark.shared_data
def test_anonymised_enhanced_multiframe_source(shared_data, tmp_path):
    """An enhanced multi-frame export (highdicom writes it: outside the fast path) stripped of its
    type 2 patient/study attributes still gets its SEG, which holds the mask."""
    vol = load_dicom(shared_data / "dicom" / "siemens_xa10_enhanced_multiframe" / "dicom", volume_index=0)
    (src,) = vol.meta["files"]
    assert all(kw in pydicom.dcmread(src, stop_before_pixels=True) for kw in SEG_TYPE2_FROM_SOURCE)
    files = _strip([src], tmp_path / "src", SEG_TYPE2_FROM_SOURCE)
    nk, nj, ni = vol.array.shape
    m = np.zeros(vol.array.shape, bool)
    m[nk // 4: 3 * nk // 4 + 1, nj // 4: 3 * nj // 4, ni // 3: 2 * ni // 3] = True
    ref, out = _both(vol.with_array(m), files, tmp_path, "enh", expect_fast=False)
    _assert_same_seg(ref, out)
    np.testing.assert_array_equal(read_seg(out, image=vol).array, m)
    ds = pydicom.dcmread(out)
    assert all(ds[kw].value in (None, "") for kw in SEG_TYPE2_FROM_SOURCE)
    assert "SliceThickness" not in ds  # an enhanced source's thickness lives in its functional groups
