"""The write stage's speed work changes no output byte.

* Pseudonymised DICOM SEGs: the source UIDs are now mapped while the SEG is encoded
  (:func:`volumetry.io.seg_fast.encode` with ``uid_mapping``) instead of reading the SEG back,
  mapping it (:func:`volumetry.io.seg.map_source_uids`) and saving it again with pydicom. The
  former path is kept below (:func:`_read_back_and_map`, verbatim from ``write_seg`` before this
  change) and both must give the same bytes, with the UID generator and the clock made
  deterministic (``frozen`` of ``tests/test_seg_speed_equality.py``): sample series, sources
  holding identifying attributes and nested sequences that reference a source UID, several masks
  of one series, and a source UID in a text value (the encoder hands that SEG to the former path).
* Source headers: the light headers of a series share the values decoded from equal bytes, and
  the checks of :func:`volumetry.io.seg._load_sources` are decided at once from those values;
  the values are those of a header read alone, and every check that fails still raises its
  error naming the file.
* NIfTI masks: ``write_masks`` writes :func:`volumetry.io.nifti.nifti_mask_bytes` and hashes
  those bytes instead of writing with ``write_nifti`` and reading the file back: the same file
  and the same recorded hash.
"""
from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from test_seg import DIRECTION, _grid_from_written, write_mr_series
from test_seg_fast import _blob
from test_seg_speed_equality import _lesions, _sample, frozen  # noqa: F401 -- the fixture

from volumetry.errors import DicomReadError, InputError
from volumetry.io import seg, seg_fast
from volumetry.io.nifti import nifti_mask_bytes, write_nifti
from volumetry.pipeline import outputs

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _pseudo(uid: str) -> str:
    """A stand-in for Pseudonymizer.uid: a keyed 2.25 UID of the real one (lengths vary)."""
    return "2.25." + str(int(hashlib.sha256(b"k\0" + uid.encode()).hexdigest()[:30], 16))


def _read_back_and_map(identified: bytes, datasets, uid_map) -> bytes:
    """The former pseudonymised SEG: the identified SEG read back, its source UIDs mapped, saved by pydicom."""
    ds = pydicom.dcmread(io.BytesIO(identified))
    seg.map_source_uids(ds, seg._source_uid_map(datasets, uid_map))
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


@pytest.fixture
def mapped_calls(monkeypatch):
    """How many SEGs were encoded with their UIDs mapped (None: handed to the read-back path)."""
    calls = []
    real = seg_fast.encode

    def encode(built, uid_mapping=None):
        data = real(built, uid_mapping=uid_mapping)
        if uid_mapping:
            calls.append(data is not None)
        return data

    monkeypatch.setattr(seg_fast, "encode", encode)
    return calls


def _assert_pseudonymised_like_before(frozen, tmp_path: Path, jobs: list[tuple], *, pseudonymized_run: bool = True):
    """Each (mask, source, files, lesion) written by ``write_seg_for`` with ``uid_map`` equals the
    identified SEG (same UIDs and clock) read back and mapped; returns the SEG files."""
    written = []
    for n, (mask, source, files, lesion) in enumerate(jobs):
        frozen()
        ident = outputs.write_seg_for(mask, source, tmp_path / "ident" / f"{n}.dcm", "SUBJ-9", lesion,
                                      pseudonymized_run, files=files, cache={})
        frozen()
        sources = outputs.seg_sources(source, files=files, cache={})
        target = tmp_path / "pseudo" / f"{n}.dcm"
        outputs.write_seg_for(mask, source, target, "SUBJ-9", lesion, pseudonymized_run, files=files, cache={},
                              uid_map=_pseudo)
        expected = _read_back_and_map(ident.read_bytes(), sources.datasets, _pseudo)
        got = target.read_bytes()
        assert len(got) > 1000
        assert got == expected, f"{target.name}: first difference at byte " \
                                f"{next(i for i, (x, y) in enumerate(zip(got, expected + b'?' * len(got))) if x != y)}"
        assert got != ident.read_bytes()
        written.append(target)
    return written


def test_pseudonymised_segs_of_sample_series_are_the_read_back_ones(frozen, mapped_calls, tmp_path):
    """Oblique (PH003 course 1), slice gap (PH004 course 1), two lesions of one series (PH005)."""
    jobs = []
    for name, centres in (("PH005/baseline", [(0.3, 0.4, 0.4), (0.7, 0.6, 0.6)]), ("PH003/course1", [(0.45, 0.55, 0.5)]),
                          ("PH004/course1", [(0.4, 0.5, 0.5)])):
        image, files = _sample(name)
        source = (str(SAMPLE / name / "dicom"), image.meta["series_uid"])
        for n, mask in enumerate(_lesions(image, centres), start=1):
            jobs.append((mask, source, [str(f) for f in files] if n % 2 else None, f"L{n}"))
    written = _assert_pseudonymised_like_before(frozen, tmp_path, jobs)
    assert mapped_calls == [True] * len(jobs)
    ds = pydicom.dcmread(written[0])
    real = pydicom.dcmread(_sample("PH005/baseline")[1][0])
    assert ds.StudyInstanceUID == _pseudo(real.StudyInstanceUID) != real.StudyInstanceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == _pseudo(real.SeriesInstanceUID)


def _series_with_references(tmp_path: Path, *, uid_in_text: bool = False):
    """A small oblique series full of identifying attributes, whose headers reference source UIDs
    in nested sequences (ReferencedStudySequence, a multi-valued UI in a sequence item)."""
    from test_outputs_seg_phi import TEXT, TRIAL_SUBJECT

    shape, spacing, origin = (4, 8, 9), (0.8, 0.9, 3.0), (-12.5, 30.25, -40.0)
    image = np.random.default_rng(5).integers(100, 400, size=shape).astype(np.uint16)
    paths = write_mr_series(tmp_path / "series", image, spacing, origin, DIRECTION)
    first = pydicom.dcmread(paths[0])
    for p in paths:
        ds = pydicom.dcmread(p)
        for kw, value in TEXT.items():
            setattr(ds, kw, value)
        ds.ClinicalTrialSubjectID = TRIAL_SUBJECT
        study = pydicom.Dataset()
        study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        study.ReferencedSOPInstanceUID = first.StudyInstanceUID  # a source UID, nested
        ds.ReferencedStudySequence = [study]
        other = pydicom.Dataset()
        other.PatientID = "MRN-123456"
        ds.OtherPatientIDsSequence = [other]
        if uid_in_text:
            ds.PatientComments = f"seen in study {first.StudyInstanceUID}"
        ds.save_as(p, enforce_file_format=True)
    grid = _grid_from_written(DIRECTION, spacing, origin, shape)
    masks = [grid.with_array(_blob(shape, c, (2.0, 2.0, 3.0), spacing)) for c in ((3, 3, 1), (6, 5, 2))]
    source = (str(tmp_path / "series"), str(first.SeriesInstanceUID))
    return [(m, source, [str(p) for p in paths], f"{n}") for n, m in enumerate(masks, 1)]


@pytest.mark.parametrize("pseudonymized_run", [True, False], ids=["pseudonymised-run", "uid-map-only"])
def test_nested_source_uids_and_identifying_attributes(frozen, mapped_calls, tmp_path, pseudonymized_run):
    """A source UID inside a copied sequence is mapped too; with the pipeline's pseudonymisation
    (attributes emptied, no contributing equipment) and without it (``write_seg`` with
    ``uid_map`` alone keeps the acquisition-equipment item, encoded once)."""
    jobs = _series_with_references(tmp_path)
    if not pseudonymized_run:  # write_seg_for maps UIDs only in pseudonymised runs: call write_seg itself
        for n, (mask, source, files, lesion) in enumerate(jobs):
            frozen()
            ident = seg.write_seg(mask, files, tmp_path / "ident" / f"{n}.dcm")
            frozen()
            target = seg.write_seg(mask, files, tmp_path / "pseudo" / f"{n}.dcm", uid_map=_pseudo)
            datasets = seg.prepare_sources(files).datasets
            assert target.read_bytes() == _read_back_and_map(ident.read_bytes(), datasets, _pseudo)
        assert mapped_calls == [True, True]
        return
    written = _assert_pseudonymised_like_before(frozen, tmp_path, jobs)
    assert mapped_calls == [True, True]
    ds = pydicom.dcmread(written[0])
    real_study = pydicom.dcmread(jobs[0][2][0]).StudyInstanceUID
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == _pseudo(real_study)
    assert real_study.encode() not in written[0].read_bytes()


def test_a_source_uid_in_a_text_value_goes_the_read_back_way(frozen, mapped_calls, tmp_path):
    """The encoder maps UI elements only; a source UID written in a text value (here the patient
    comments, kept by a run that only maps UIDs) makes it hand the SEG to the read-back path,
    which keeps the text as it did."""
    jobs = _series_with_references(tmp_path, uid_in_text=True)
    mask, _, files, _ = jobs[0]
    frozen()
    ident = seg.write_seg(mask, files, tmp_path / "ident.dcm")
    frozen()
    target = seg.write_seg(mask, files, tmp_path / "pseudo.dcm", uid_map=_pseudo)
    datasets = seg.prepare_sources(files).datasets
    assert target.read_bytes() == _read_back_and_map(ident.read_bytes(), datasets, _pseudo)
    assert mapped_calls == [False]


def test_shared_light_values_are_those_of_a_header_read_alone():
    """Every light header of a series read with one shared dict holds the values (and position
    strings) of the same header read alone, and the series' equal values are decoded once."""
    for name in ("PH001/baseline", "PH003/course1", "PH005/course2"):
        files = [str(f) for f in _sample(name)[1]]
        shared: dict = {}
        together = [seg_fast.read_light_header(f, shared) for f in files]
        alone = [seg_fast.read_light_header(f) for f in files]
        for a, b in zip(together, alone):
            assert a._raw is None and b._raw is None
            assert a._cache.keys() == b._cache.keys()
            for key in a._cache:
                assert a._cache[key] == b._cache[key], (name, key)
                assert type(a._cache[key]) is type(b._cache[key])
            assert a._strings == b._strings
        assert together[0]._cache["StudyInstanceUID"] is together[-1]._cache["StudyInstanceUID"]
        assert together[0]._cache["SOPInstanceUID"] != together[-1]._cache["SOPInstanceUID"]


def _rewritten(files: list[str], folder: Path, index: int, **changes) -> list[str]:
    """Copies of the series' files, the file at ``index`` changed (None deletes the attribute)."""
    folder.mkdir()
    out = []
    for n, f in enumerate(files):
        ds = pydicom.dcmread(f)
        if n == index:
            for kw, value in changes.items():
                if value is None:
                    delattr(ds, kw)
                else:
                    setattr(ds, kw, value)
        target = folder / Path(f).name
        ds.save_as(target, enforce_file_format=True)
        out.append(str(target))
    return out


@pytest.mark.parametrize("changes, error, match", [
    ({"SOPInstanceUID": None}, DicomReadError, "SOPInstanceUID is missing"),
    ({"FrameOfReferenceUID": ""}, DicomReadError, "FrameOfReferenceUID is empty"),
    ({"Modality": None}, DicomReadError, "Modality is missing"),
    ({"SeriesInstanceUID": "1.2.826.0.1.3680043.10.1453.77"}, InputError, "belong to 2 series"),
    ({"StudyInstanceUID": "1.2.826.0.1.3680043.10.1453.78"}, InputError, "StudyInstanceUID .* differs"),
    ({"Rows": 64}, InputError, "Rows '64' differs"),
    ({"NumberOfFrames": 2}, InputError, "either single-frame images or exactly one multi-frame"),
], ids=["missing uid", "empty frame of reference", "no modality", "other series", "other study", "other matrix",
        "multi-frame"])
def test_checks_decided_at_once_still_raise_naming_the_file(tmp_path, changes, error, match):
    """The sample series passes the checks decided at once; a file of it that fails one of them is
    refused with the error of the checks run one by one (naming the file where they name one)."""
    files = [str(f) for f in _sample("PH001/baseline")[1]]
    datasets, _ = seg._load_sources(files, light=True)
    assert seg._light_checks_pass(datasets)
    broken = _rewritten(files, tmp_path / "src", 5, **changes)
    light = [broken[0]] + [seg_fast.read_light_header(f) for f in broken[1:]]
    light = [pydicom.dcmread(broken[0], stop_before_pixels=True)] + light[1:]
    assert not seg._light_checks_pass(light)
    with pytest.raises(error, match=match):
        seg._load_sources(broken, light=True)
    if error is DicomReadError:
        with pytest.raises(error, match=Path(broken[5]).name):
            seg._load_sources(broken, light=True)


def test_write_masks_writes_and_records_write_nifti_bytes(tmp_path):
    """A pipeline run's NIfTI masks are the files ``write_nifti`` writes for the stored masks,
    and the database records their SHA-256."""
    import dataclasses

    from volumetry.config import load_pipeline
    from volumetry.pipeline import run_study
    from volumetry.pipeline.tasks import unpack_mask
    from volumetry.store import ResultStore

    cfg = load_pipeline(Path(__file__).resolve().parents[1] / "pipelines/vascular-anomalies-rapamycin.yaml")
    cfg = dataclasses.replace(cfg, outputs={**cfg.outputs, "report": False, "seg": False})
    out = tmp_path / "out"
    run_study(SAMPLE, cfg, out, jobs=1, progress=False)
    n = 0
    with ResultStore(out / "results.sqlite") as store:
        for scan in store.scans():
            mask = store.mask(scan["task_key"])
            if mask is None or not mask["path"]:
                continue
            written = (out / mask["path"]).read_bytes()
            reference = write_nifti(unpack_mask(mask["data"], mask["grid"]), tmp_path / "ref" / f"{n}.nii.gz")
            assert written == nifti_mask_bytes(unpack_mask(mask["data"], mask["grid"]))
            assert gzip.decompress(written) == gzip.decompress(reference.read_bytes())  # nibabel's file
            assert mask["file_sha256"] == hashlib.sha256(written).hexdigest()
            n += 1
    assert n == 29
