"""The DICOM SEG writer's speed work changes no output byte.

Every case writes the same SEGs twice, with the writer as it was before the speed work
(``tests/seg_reference``: the committed code, kept verbatim) and with the current one, from the
same inputs, with the UID generator and the clock made deterministic (the only inputs that differ
between two runs), and compares the files byte for byte. Cases: the pipeline's path
(``write_seg_for``, several lesions of one series sharing the headers read once, with and without
pseudonymisation, files recorded or found again), oblique and slice-gap sample series, a volume of a
dual-echo series, CT sources on a flipped grid, other character sets and implicit VR, anonymised
sources, the highdicom fallback, and real scanner exports (classic multi-volume, enhanced
multi-frame) when ``../shared/data`` is present.
"""
from __future__ import annotations

import dataclasses
import datetime
import itertools
import types
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import write_series
from seg_reference import outputs as ref_outputs
from seg_reference import seg as ref_seg
from seg_reference import seg_fast as ref_seg_fast
from test_seg import DIRECTION, _grid_from_written, write_mr_series
from test_seg_fast import _blob, _ct_copies, _flipped_blob, _rewrite

from volumetry.image import Volume
from volumetry.io import seg, seg_fast
from volumetry.io.dicom import load_dicom
from volumetry.pipeline import outputs

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
_NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, 890123)


class _FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(*_NOW.timetuple()[:6], _NOW.microsecond, tzinfo=tz)


@pytest.fixture
def frozen(monkeypatch):
    """Deterministic UIDs and clock; returns ``reset()`` (call it before each writer's run)."""
    import highdicom.base
    import highdicom.base_content

    clock = types.SimpleNamespace(datetime=_FixedDatetime, date=datetime.date, time=datetime.time,
                                  timedelta=datetime.timedelta, timezone=datetime.timezone)
    for module in (seg_fast, ref_seg_fast, highdicom.base, highdicom.base_content):
        monkeypatch.setattr(module, "datetime", clock)
    counter = [itertools.count(1)]
    monkeypatch.setattr(pydicom.uid, "generate_uid",
                        lambda prefix=None, entropy_srcs=None: f"1.2.826.0.1.3680043.10.1453.{next(counter[0])}")

    def reset():
        counter[0] = itertools.count(1)

    return reset


@pytest.fixture
def fast_calls(monkeypatch):
    """How many SEGs the current writer's fast path encoded."""
    calls = []
    real = seg_fast.encode
    monkeypatch.setattr(seg_fast, "encode", lambda built: calls.append(1) or real(built))
    return calls


def _assert_same_files(new: list[Path], ref: list[Path]) -> None:
    assert len(new) == len(ref) > 0
    for a, b in zip(new, ref):
        da, db = a.read_bytes(), b.read_bytes()
        assert len(da) > 1000
        assert da == db, f"{a.name}: {len(da)} bytes, reference {len(db)}; first difference at byte " \
                         f"{next(i for i, (x, y) in enumerate(zip(da, db + b'?' * len(da))) if x != y)}"


def _write_seg_both(frozen, tmp_path: Path, jobs: list[tuple[Volume, list, dict]], *, shared: bool = False):
    """Each (mask, files, kwargs) of ``jobs`` written by both writers; with ``shared``, every job
    uses one prepared SegSources per writer (several masks of one series)."""
    out = {}
    for name, module in (("new", seg), ("ref", ref_seg)):
        frozen()
        folder = tmp_path / name
        sources = module.prepare_sources(jobs[0][1]) if shared else None
        out[name] = [module.write_seg(mask, sources or files, folder / f"{n}.dcm", **kwargs)
                     for n, (mask, files, kwargs) in enumerate(jobs)]
    _assert_same_files(out["new"], out["ref"])
    return out["new"]


def _write_for_both(frozen, tmp_path: Path, jobs: list[tuple], pseudonymized: bool) -> list[Path]:
    """``write_seg_for`` of the pipeline (current and reference) for each (mask, source, files, lesion),
    sharing one cache of source headers per writer, as one run does."""
    out = {}
    for name, write in (("new", outputs.write_seg_for), ("ref", ref_outputs.write_seg_for)):
        frozen()
        cache: dict = {}
        out[name] = [write(mask, source, tmp_path / name / f"{n}.dcm", "SUBJ-9", lesion, pseudonymized,
                           files=files, cache=cache) for n, (mask, source, files, lesion) in enumerate(jobs)]
    _assert_same_files(out["new"], out["ref"])
    return out["new"]


def _sample(name: str):
    image = load_dicom(SAMPLE / name / "dicom")
    return image, [Path(f) for f in image.meta["files"]]


def _lesions(image: Volume, centres, radii=(8.0, 6.0, 6.0)) -> list[Volume]:
    nk, nj, ni = image.array.shape
    return [image.with_array(_blob(image.array.shape, (ni * c[0], nj * c[1], nk * c[2]), radii, image.spacing))
            for c in centres]


@pytest.mark.parametrize("pseudonymized", [False, True], ids=["identified", "pseudonymised"])
def test_pipeline_segs_of_sample_series_are_byte_identical(frozen, fast_calls, tmp_path, pseudonymized):
    """Several lesions per series (headers read once), oblique (PH003 course 1), slice gap with
    SpacingBetweenSlices (PH004 course 1), plain axial; files recorded by the task or found again."""
    jobs = []
    for name, centres in (("PH005/baseline", [(0.3, 0.4, 0.4), (0.7, 0.6, 0.6), (0.5, 0.5, 0.5)]),
                          ("PH003/course1", [(0.45, 0.55, 0.5)]), ("PH004/course1", [(0.4, 0.5, 0.5), (0.6, 0.4, 0.3)]),
                          ("PH001/baseline", [(0.5, 0.5, 0.5)])):
        image, files = _sample(name)
        source = (str(SAMPLE / name / "dicom"), image.meta["series_uid"])
        for n, mask in enumerate(_lesions(image, centres), start=1):
            jobs.append((mask, source, [str(f) for f in files] if n % 2 else None, f"L{n}"))
    written = _write_for_both(frozen, tmp_path, jobs, pseudonymized)
    assert len(fast_calls) == len(jobs) == 7
    ds = pydicom.dcmread(written[0])
    assert (ds.PatientID, ds.SegmentSequence[0].SegmentLabel) == ("SUBJ-9", "lesion L1")
    assert ("AccessionNumber" in ds and ds.AccessionNumber == "") == pseudonymized


def test_identifying_attributes_of_the_source_pseudonymised_identically(frozen, fast_calls, tmp_path):
    """Source files full of identifying attributes (a sequence among them), pseudonymised by the pipeline."""
    from test_outputs_seg_phi import TEXT, TRIAL_SUBJECT

    shape, spacing, origin = (4, 8, 9), (0.8, 0.9, 3.0), (-12.5, 30.25, -40.0)
    image = np.random.default_rng(3).integers(100, 400, size=shape).astype(np.uint16)
    paths = write_mr_series(tmp_path / "series", image, spacing, origin, DIRECTION)
    for p in paths:
        ds = pydicom.dcmread(p)
        for kw, value in TEXT.items():
            setattr(ds, kw, value)
        ds.ClinicalTrialSubjectID = TRIAL_SUBJECT
        other = pydicom.Dataset()
        other.PatientID = "MRN-123456"
        ds.OtherPatientIDsSequence = [other]
        ds.save_as(p, enforce_file_format=True)
    grid = _grid_from_written(DIRECTION, spacing, origin, shape)
    masks = [grid.with_array(_blob(shape, c, (2.0, 2.0, 3.0), spacing)) for c in ((3, 3, 1), (6, 5, 2))]
    uid = str(pydicom.dcmread(paths[0]).SeriesInstanceUID)
    jobs = [(m, (str(tmp_path / "series"), uid), [str(p) for p in paths], f"{n}") for n, m in enumerate(masks, 1)]
    for pseudonymized in (True, False):
        _write_for_both(frozen, tmp_path / str(pseudonymized), jobs, pseudonymized)
    assert len(fast_calls) == 4


def test_volume_of_a_dual_echo_series_is_byte_identical(frozen, fast_calls, tmp_path):
    """The second volume of a classic two-volume series (both volumes' files in one folder), found
    again by the pipeline from ``(folder, series_uid, volume_index)``; oblique rows and columns."""
    folder = tmp_path / "dual"
    rng = np.random.default_rng(8)
    row, col = DIRECTION[:, 0], DIRECTION[:, 1]
    for v in range(2):
        write_series(folder, rng.integers(0, 900, size=(9, 20, 22)).astype(np.int16), pixel_spacing=(0.9, 0.8),
                     origin=(-20.0, 11.5, 40.25), row=row, col=col, slice_step=3.5, series_uid="1.2.826.0.1.3680043.10.1453.90.1",
                     study_uid="1.2.826.0.1.3680043.10.1453.90.2", temporal_position=v + 1, name_prefix=f"v{v}_",
                     instance_offset=v * 9, description="dual echo")
    image = load_dicom(folder, volume_index=1)
    assert len(image.meta["files"]) == 9 and all(Path(f).name.startswith("v1_") for f in image.meta["files"])
    masks = [image.with_array(_blob(image.array.shape, c, (4.0, 4.0, 5.0), image.spacing)) for c in ((6, 8, 3), (14, 12, 6))]
    jobs = [(m, (str(folder), image.meta["series_uid"], 1), None, f"{n}") for n, m in enumerate(masks, 1)]
    _write_for_both(frozen, tmp_path, jobs, False)
    assert len(fast_calls) == 2


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    shape, spacing, origin = (7, 16, 18), (0.8, 0.9, 3.0), (-12.5, 30.25, -40.0)
    image = np.random.default_rng(3).integers(100, 400, size=shape).astype(np.uint16)
    paths = write_mr_series(tmp_path_factory.mktemp("speed") / "series", image, spacing, origin, DIRECTION)
    return paths, _grid_from_written(DIRECTION, spacing, origin, shape)


def test_oblique_series_without_spacing_between_slices_and_extreme_masks(frozen, fast_calls, synthetic, tmp_path):
    """8-decimal oblique cosines, no SpacingBetweenSlices; a lesion, an empty and a full mask, one slice,
    MANUAL without description, several masks sharing prepared sources."""
    paths, grid = synthetic
    one = np.zeros(grid.array.shape, bool)
    one[3, 2:9, 4:7] = True
    masks = [grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing)),
             grid.with_array(np.zeros(grid.array.shape, bool)), grid.with_array(np.ones(grid.array.shape, bool)),
             grid.with_array(one)]
    kwargs = [{"label": "lesion 1"}, {"algorithm_type": "MANUAL", "series_description": None}, {"series_number": 77},
              {"overrides": {"PatientID": "P-1", "PatientName": "P-1", "PatientBirthDate": ""}}]
    jobs = [(m, paths, k) for m, k in zip(masks, kwargs)]
    _write_seg_both(frozen, tmp_path / "files", jobs)
    _write_seg_both(frozen, tmp_path / "shared", jobs, shared=True)
    assert len(fast_calls) == 8


def test_ct_sources_on_a_flipped_grid(frozen, fast_calls, synthetic, tmp_path):
    paths, grid = synthetic
    ct = _ct_copies(paths, tmp_path)
    flipped = _flipped_blob(grid)
    _write_seg_both(frozen, tmp_path, [(flipped, ct, {}), (flipped.with_array(~flipped.array), ct, {})], shared=True)
    assert len(fast_calls) == 2


@pytest.mark.parametrize("changes", [
    {"SpecificCharacterSet": "ISO_IR 100", "StudyDescription": "Étude IRM genou", "InstitutionName": "Hôpital Nord",
     "ReferringPhysicianName": "Müller^Jürgen"},
    {"SpecificCharacterSet": "ISO_IR 192", "StudyDescription": "Ωmega study", "InstitutionName": "Санкт"},
    {"transfer_syntax": pydicom.uid.ImplicitVRLittleEndian, "PatientSex": ""},
    {"Manufacturer": "", "AcquisitionDate": "20240102", "AcquisitionTime": "101112.5"},
], ids=["latin-1 text", "utf-8 text", "implicit VR", "acquisition time, no manufacturer"])
def test_character_sets_implicit_vr_and_equipment(frozen, synthetic, tmp_path, changes):
    paths, grid = synthetic
    files = _rewrite(paths, tmp_path / "src", **changes)
    masks = [grid.with_array(_blob(grid.array.shape, c, (4.0, 4.0, 5.0), grid.spacing)) for c in ((5, 5, 2), (12, 10, 4))]
    _write_seg_both(frozen, tmp_path, [(m, files, {"label": f"lesion {n}"}) for n, m in enumerate(masks)], shared=True)


@pytest.mark.parametrize("stripped", [("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "StudyID",
                                       "AccessionNumber", "StudyTime"), seg.SEG_TYPE2_FROM_SOURCE + ("SliceThickness",)],
                         ids=["patient-study", "every-type-2"])
def test_anonymised_sources(frozen, synthetic, tmp_path, stripped):
    paths, grid = synthetic
    files = _rewrite(paths, tmp_path / "src")
    for f in files:
        ds = pydicom.dcmread(f)
        for kw in stripped:
            if kw in ds:
                delattr(ds, kw)
        ds.save_as(f, enforce_file_format=True)
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    _write_seg_both(frozen, tmp_path, [(mask, files, {}), (mask, files, {"overrides": {"PatientID": "X"}})])


def test_highdicom_engine_and_omitted_empty_frames(frozen, fast_calls, synthetic, tmp_path):
    """What the fast path hands to highdicom is written as before too."""
    paths, grid = synthetic
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    _write_seg_both(frozen, tmp_path, [(mask, paths, {"engine": "highdicom"}), (mask, paths, {"omit_empty_frames": True})],
                    shared=True)
    assert fast_calls == []


@pytest.mark.shared_data
@pytest.mark.parametrize("item", ["philips_3dpcasl_classic", "siemens_t1_2d_sag_HFS", "ge_epi_slicegap_3mm_thk_5mm_spacing",
                                  "philips_3dpcasl_enhanced", "siemens_xa10_enhanced_multiframe"])
def test_real_exports(shared_data, frozen, tmp_path, item):
    """Scanner exports: classic (philips_3dpcasl_classic holds several volumes, two source images at each
    frame's position), and enhanced multi-frame sources (written by highdicom)."""
    vol = load_dicom(shared_data / "dicom" / item / "dicom", volume_index=0)
    nk, nj, ni = vol.array.shape
    m = np.zeros(vol.array.shape, bool)
    m[nk // 4: 3 * nk // 4 + 1, nj // 4: 3 * nj // 4, ni // 3: 2 * ni // 3] = True
    m &= vol.array > np.median(vol.array)
    mask = vol.with_array(m)
    _write_seg_both(frozen, tmp_path, [(mask, vol.meta["files"], {}), (mask.with_array(~m), vol.meta["files"], {})],
                    shared=True)


def _long_header_and_sequence_files(paths, folder: Path) -> list[Path]:
    """Copies whose header is longer than the first read (8 KiB) or holds a sequence of
    undefined length (which the light scan skips as the raw header reader does)."""
    folder.mkdir()
    out = []
    for n, p in enumerate(paths[:2]):
        ds = pydicom.dcmread(p)
        if n == 0:
            ds.ImageComments = "x" * 10000
        else:
            item = pydicom.Dataset()
            item.CodeValue = "1"
            ds.ProcedureCodeSequence = [item]
            ds["ProcedureCodeSequence"].is_undefined_length = True
        ds.save_as(folder / p.name, enforce_file_format=True)
        out.append(folder / p.name)
    return out


def test_light_headers_hold_the_values_the_raw_header_reader_gave(synthetic, tmp_path):
    """The light scan's values (every attribute a SEG reads from a source that is not the first),
    presence, position strings and which files it leaves to the raw reader or pydicom are the
    reference reader's: sample files, oblique 8-decimal files, implicit VR, other character sets,
    a long header, an undefined-length sequence."""
    paths, _ = synthetic
    files = [*_sample("PH003/course1")[1][:3], *paths[:3],
             *_rewrite(paths[:2], tmp_path / "implicit", transfer_syntax=pydicom.uid.ImplicitVRLittleEndian),
             *_rewrite(paths[:2], tmp_path / "latin", SpecificCharacterSet="ISO_IR 100", StudyDescription="Étude"),
             *_rewrite(paths[:2], tmp_path / "greek", SpecificCharacterSet="ISO_IR 126", StudyDescription="Ωmega"),
             *_long_header_and_sequence_files(paths, tmp_path / "odd")]
    keywords = [*seg_fast._LIGHT_KEYWORDS, *seg_fast._LIGHT_ABSENT, "SliceThickness", "PatientID"]
    scanned = 0
    for f in files:
        new, ref = seg_fast.read_light_header(str(f)), ref_seg_fast.read_light_header(str(f))
        assert (new is None) == (ref is None), f
        if new is None:
            continue
        scanned += new._raw is None
        for kw in keywords:
            assert (kw in new) == (kw in ref), (f, kw)
            assert new.get(kw, "absent") == ref.get(kw, "absent"), (f, kw)
        assert new.raw_strings("ImagePositionPatient") == ref.raw_strings("ImagePositionPatient")
        assert dataclasses.astuple(seg_fast.source_ref(new)) == dataclasses.astuple(ref_seg_fast.source_ref(ref))
    # the light scan: sample, oblique, latin-1, the long header and the sequence; implicit VR: the raw reader
    assert scanned == 3 + 3 + 2 + 2


def test_frame_geometry_is_the_same_numbers(synthetic, tmp_path):
    """The source frames' matrices computed all at once equal the frame-by-frame ones exactly
    (oblique cosines, pydicom data sets and light headers), and a source without geometry is still
    refused naming the file."""
    paths, _ = synthetic
    _, files = _sample("PH003/course1")
    for group in (paths, files):
        datasets, names = seg._load_sources(group, light=True)
        new, ref = seg._frames_of(datasets, names), ref_seg._frames_of(datasets, names)
        assert [(f.dataset_index, f.frame_index) for f in new] == [(f.dataset_index, f.frame_index) for f in ref]
        assert all(np.array_equal(a.affine, b.affine) for a, b in zip(new, ref))
        assert not np.array_equal(new[0].affine[:3, :3], np.diag(np.diag(new[0].affine[:3, :3])))  # oblique
    bad = _rewrite(paths[:3], tmp_path / "bad")
    ds = pydicom.dcmread(bad[1])
    del ds.ImageOrientationPatient
    ds.save_as(bad[1], enforce_file_format=True)
    datasets, names = seg._load_sources(bad, light=True)
    with pytest.raises(Exception) as new_error:
        seg._frames_of(datasets, names)
    with pytest.raises(Exception) as ref_error:
        ref_seg._frames_of(datasets, names)
    assert str(new_error.value) == str(ref_error.value) and "IM" in str(new_error.value)


def test_sources_whose_geometry_differs_only_in_its_stored_strings(frozen, fast_calls, synthetic, tmp_path):
    """Series whose orientation, pixel spacing, slice thickness and spacing between slices are the
    same numbers written differently ("0.800000" / "0.8", a trailing zero on every cosine): each SEG
    carries its own source's strings, whichever series was written before it."""
    paths, grid = synthetic
    iop = [str(v) for v in pydicom.dcmread(paths[0]).ImageOrientationPatient]
    a = _rewrite(paths, tmp_path / "a", SpacingBetweenSlices="3.000000")
    b = _rewrite(paths, tmp_path / "b", SpacingBetweenSlices="3", PixelSpacing=["0.9", "0.8"], SliceThickness="3.0",
                 ImageOrientationPatient=[v + "0" for v in iop])
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    written = [_write_seg_both(frozen, tmp_path / f"{n}", [(mask, files, {})])[0] for n, files in enumerate((a, b, a, b))]
    assert len(fast_calls) == 4
    stored = []
    for path in written:
        shared = pydicom.dcmread(path).SharedFunctionalGroupsSequence[0]
        measures = shared.PixelMeasuresSequence[0]
        stored.append((measures.PixelSpacing[0].original_string, measures.SpacingBetweenSlices.original_string,
                       shared.PlaneOrientationSequence[0].ImageOrientationPatient[0].original_string))
    assert stored[0] == stored[2] == ("0.900000", "3.000000", iop[0])
    assert stored[1] == stored[3] == ("0.9", "3", iop[0] + "0")


@pytest.mark.shared_data
@pytest.mark.parametrize("item,scanned", [("ge_epi_slicegap_3mm_thk_5mm_spacing", True), ("siemens_t1_2d_sag_HFS", True),
                                          ("philips_3dpcasl_classic", True), ("siemens_xa10_enhanced_multiframe", False)])
def test_light_headers_of_real_exports(shared_data, item, scanned):
    """Scanner files (private tags, sequences of undefined length, headers longer than the first read):
    the light scan's values are the reference reader's; an enhanced file is still left to pydicom."""
    files = sorted(f for f in (shared_data / "dicom" / item / "dicom").rglob("*") if f.is_file())[:40]
    for f in files:
        new, ref = seg_fast.read_light_header(str(f)), ref_seg_fast.read_light_header(str(f))
        assert (new is not None and new._raw is None) == scanned, f
        assert (new is None) == (ref is None), f
        if new is None:
            continue
        for kw in seg_fast._LIGHT_KEYWORDS:
            assert (kw in new, new.get(kw, "absent")) == (kw in ref, ref.get(kw, "absent")), (f, kw)
        assert dataclasses.astuple(seg_fast.source_ref(new)) == dataclasses.astuple(ref_seg_fast.source_ref(ref))


def _mapped_reference(ref_path: Path, sources: list, uid_map, out: Path) -> Path:
    """The reference writer's SEG with every source instance UID mapped afterwards (read, mapped by
    :func:`volumetry.io.seg.map_source_uids`, written back by pydicom, as the pseudonymised path does)."""
    ds = pydicom.dcmread(ref_path)
    mapping = {}
    for f in sources:
        src = pydicom.dcmread(f, stop_before_pixels=True)
        mapping.update({str(src[k].value): uid_map(str(src[k].value)) for k in seg.SEG_SOURCE_UIDS if k in src})
    assert seg.map_source_uids(ds, mapping) > 0
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out)
    return out


@pytest.mark.parametrize("engine", ["fast", "highdicom"])
def test_pseudonymised_uids_are_the_reference_seg_with_its_source_uids_mapped(frozen, tmp_path, engine):
    """``uid_map`` (pseudonymised runs) changes only the source instance UIDs: the SEG equals the
    reference writer's with those UIDs mapped afterwards (bytes on the fast path, every element
    with highdicom), and no source instance UID is left in it."""
    from volumetry.pseudonym import Pseudonymizer

    pz = Pseudonymizer(b"seg-uid-key")
    image, files = _sample("PH005/baseline")
    mask = _lesions(image, [(0.4, 0.5, 0.5)])[0]
    frozen()
    new = seg.write_seg(mask, files, tmp_path / "new.dcm", engine=engine, uid_map=pz.uid)
    frozen()
    ref = ref_seg.write_seg(mask, files, tmp_path / "ref.dcm", engine=engine)
    mapped = _mapped_reference(ref, files, pz.uid, tmp_path / "mapped.dcm")
    if engine == "fast":
        _assert_same_files([new], [mapped])
    a, b = pydicom.dcmread(new), pydicom.dcmread(mapped)
    assert a == b
    real = {str(pydicom.dcmread(f, stop_before_pixels=True)[k].value) for f in files for k in seg.SEG_SOURCE_UIDS}
    values = {str(e.value) for e in a.iterall() if e.VR == "UI"}
    assert real and not (real & values)
    assert a.ReferencedSeriesSequence[0].SeriesInstanceUID == pz.uid(image.meta["series_uid"])
    assert a.SOPClassUID == pydicom.dcmread(ref).SOPClassUID  # standard UIDs unchanged
