"""The write stage's per-series caches and plain-call shortcuts change no SEG byte.

Each case writes the same SEGs twice from the same inputs, with the writer as it was before this work
(``tests/seg_frozen_write``: ``volumetry/io/seg.py`` and ``seg_fast.py`` of commit 8737b9c, kept
verbatim) and with the current one, the UID generator and the clock made deterministic, and compares
the files byte for byte: every DICOM scan of the sample trial with its true lesion masks through the
pipeline's ``write_seg_for`` (identified, and pseudonymised with source UIDs mapped and dates moved),
lesions of one series sharing their headers, several grids and character sets on one set of sources,
identified and pseudonymised SEGs of one series in turn, anonymised and odd sources, and the real
scanner exports (classic and enhanced multi-frame) when ``../shared/data`` is present. The helpers
that replace a general computation (frame coverage, the light headers' source references, the
atomic write) are checked against it directly.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import hmac
import itertools
import types
from pathlib import Path

import numpy as np
import pydicom
import pytest
from seg_frozen_write import seg as old_seg
from seg_frozen_write import seg_fast as old_seg_fast
from test_seg import DIRECTION, _grid_from_written, write_mr_series
from test_seg_fast import _blob, _ct_copies, _flipped_blob, _rewrite

from volumetry.io import seg, seg_fast
from volumetry.io.dicom import load_dicom
from volumetry.io.masks import read_mask
from volumetry.pipeline import outputs

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
_NOW = datetime.datetime(2026, 5, 6, 7, 8, 9, 101112)


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
    for module in (seg_fast, old_seg_fast, highdicom.base, highdicom.base_content):
        monkeypatch.setattr(module, "datetime", clock)
    counter = [itertools.count(1)]
    monkeypatch.setattr(pydicom.uid, "generate_uid",
                        lambda prefix=None, entropy_srcs=None: f"1.2.826.0.1.3680043.10.1453.{next(counter[0])}")

    def reset():
        counter[0] = itertools.count(1)

    return reset


@pytest.fixture
def encoded(monkeypatch):
    """How many SEGs each writer's fast path encoded (``{"new": n, "old": n}``)."""
    calls = {"new": 0, "old": 0}
    for name, module in (("new", seg_fast), ("old", old_seg_fast)):
        real = module.encode

        def counted(built, uid_mapping=None, real=real, name=name):
            calls[name] += 1
            return real(built, uid_mapping=uid_mapping)

        monkeypatch.setattr(module, "encode", counted)
    return calls


def _pseudo_uid(uid: str) -> str:
    digest = hmac.new(b"write-cache-test", b"uid\x00" + uid.encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _assert_same_files(new: list[Path], old: list[Path]) -> None:
    assert len(new) == len(old) > 0
    for a, b in zip(new, old):
        da, db = a.read_bytes(), b.read_bytes()
        assert len(da) > 1000
        assert da == db, f"{a.name}: {len(da)} bytes, before {len(db)}; first difference at byte " \
                         f"{next(i for i, (x, y) in enumerate(zip(da, db + b'?' * len(da))) if x != y)}"


def _with_writer(monkeypatch, module):
    """Make the pipeline's SEG functions (which import them from volumetry.io.seg when called) use
    ``module``'s ``write_seg`` and ``prepare_sources``."""
    monkeypatch.setattr(seg, "write_seg", module.write_seg if module is old_seg else _NEW_WRITE_SEG)
    monkeypatch.setattr(seg, "prepare_sources", module.prepare_sources if module is old_seg else _NEW_PREPARE)


_NEW_WRITE_SEG, _NEW_PREPARE = seg.write_seg, seg.prepare_sources


def _write_for_both(frozen, monkeypatch, tmp_path: Path, jobs: list[dict]) -> list[Path]:
    """``write_seg_for`` of each job with the current and the frozen writer (one cache of source headers
    per writer, as one run keeps); the files must be equal byte for byte."""
    out = {}
    for name, module in (("new", seg), ("old", old_seg)):
        frozen()
        _with_writer(monkeypatch, module)
        cache: dict = {}
        out[name] = [outputs.write_seg_for(job["mask"], job["source"], tmp_path / name / f"{n}.dcm", job["subject"],
                                           job["lesion"], job["pseudonymized"], files=job["files"], cache=cache,
                                           date_shift_days=job.get("shift", 0),
                                           uid_map=_pseudo_uid if job["pseudonymized"] else None)
                     for n, job in enumerate(jobs)]
    _with_writer(monkeypatch, seg)
    _assert_same_files(out["new"], out["old"])
    return out["new"]


def _write_seg_both(frozen, tmp_path: Path, jobs: list[tuple], *, shared: bool = True) -> list[Path]:
    """``write_seg`` of each (mask, files, kwargs) with both writers; ``shared``: one prepared
    SegSources per writer for every job (the lesions of one series)."""
    out = {}
    for name, module in (("new", seg), ("old", old_seg)):
        frozen()
        sources = module.prepare_sources(jobs[0][1]) if shared else None
        out[name] = [module.write_seg(mask, sources or files, tmp_path / name / f"{n}.dcm", **kwargs)
                     for n, (mask, files, kwargs) in enumerate(jobs)]
    _assert_same_files(out["new"], out["old"])
    return out["new"]


def _sample_trial_jobs(pseudonymized: bool) -> list[dict]:
    """One job per DICOM row of the sample trial's manifest (18 lesions over 14 series): the true
    lesion mask on the loaded image, the files the loader read (every other job: found again)."""
    with open(SAMPLE / "truth.csv", newline="") as fp:
        truth = {(r["subject_id"], r["visit"], r["lesion_id"]): r for r in csv.DictReader(fp)}
    with open(SAMPLE / "manifest.csv", newline="") as fp:
        rows = [r for r in csv.DictReader(fp) if r["image"].endswith("dicom")]
    images: dict = {}
    jobs = []
    for n, r in enumerate(rows):
        if r["image"] not in images:
            images[r["image"]] = load_dicom(SAMPLE / r["image"])
        image = images[r["image"]]
        t = truth[(r["subject_id"], r["visit"], r["lesion_id"])]
        if float(t["true_volume_ml"]) == 0:  # the lesion has gone (its truth mask holds no label)
            mask = image.with_array(np.zeros(image.array.shape, bool))
        else:
            mask = read_mask(SAMPLE / t["mask"], image, label=int(t["mask_label"])).mask
        jobs.append({"mask": mask, "source": (str(SAMPLE / r["image"]), image.meta["series_uid"]),
                     "files": [str(f) for f in image.meta["files"]] if n % 2 == 0 else None,
                     "subject": ("P-" if pseudonymized else "") + r["subject_id"], "lesion": r["lesion_id"],
                     "pseudonymized": pseudonymized, "shift": 123 if pseudonymized else 0,
                     "present": float(t["true_volume_ml"]) > 0})
    return jobs


@pytest.mark.parametrize("pseudonymized", [False, True], ids=["identified", "pseudonymised"])
def test_every_sample_trial_seg_is_byte_identical(frozen, encoded, monkeypatch, tmp_path, pseudonymized):
    jobs = _sample_trial_jobs(pseudonymized)
    assert len(jobs) == 18 and len({j["source"] for j in jobs}) == 14
    # the true lesions, the gone ones empty
    assert [bool(np.any(j["mask"].array)) for j in jobs] == [j["present"] for j in jobs]
    assert sum(j["present"] for j in jobs) >= 12
    written = _write_for_both(frozen, monkeypatch, tmp_path, jobs)
    assert encoded == {"new": 18, "old": 18}  # every SEG on the fast path, in both writers
    ds = pydicom.dcmread(written[-1])
    assert ds.SegmentSequence[0].SegmentLabel == f"lesion {jobs[-1]['lesion']}"
    real_series = jobs[-1]["source"][1]
    assert (ds.ReferencedSeriesSequence[0].SeriesInstanceUID == _pseudo_uid(real_series)) == pseudonymized


def test_identified_and_pseudonymised_segs_of_one_series_in_turn(frozen, encoded, monkeypatch, tmp_path):
    """The encoded references kept per series are those of the UIDs written: real and mapped in turn."""
    image = load_dicom(SAMPLE / "PH005" / "baseline" / "dicom")
    source = (str(SAMPLE / "PH005" / "baseline" / "dicom"), image.meta["series_uid"])
    nk, nj, ni = image.array.shape
    masks = [image.with_array(_blob(image.array.shape, (ni * c[0], nj * c[1], nk * c[2]), (8.0, 6.0, 6.0),
                                    image.spacing)) for c in ((0.3, 0.4, 0.4), (0.7, 0.6, 0.6), (0.5, 0.5, 0.5))]
    jobs = [{"mask": m, "source": source, "files": None, "subject": f"S{n % 2}", "lesion": f"L{n}",
             "pseudonymized": bool(n % 2), "shift": 30 * (n % 2)} for n, m in enumerate(masks + masks[:1])]
    _write_for_both(frozen, monkeypatch, tmp_path, jobs)
    assert encoded == {"new": 4, "old": 4}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """An oblique series without SpacingBetweenSlices (the SEG's pixel measures are made of its planes)."""
    shape, spacing, origin = (7, 16, 18), (0.8, 0.9, 3.0), (-12.5, 30.25, -40.0)
    image = np.random.default_rng(5).integers(100, 400, size=shape).astype(np.uint16)
    paths = write_mr_series(tmp_path_factory.mktemp("write-cache") / "series", image, spacing, origin, DIRECTION)
    return paths, _grid_from_written(DIRECTION, spacing, origin, shape)


def test_several_grids_masks_and_character_sets_on_one_set_of_sources(frozen, encoded, synthetic, tmp_path):
    """One SegSources: masks on the grid and on its flipped twin (other plane order: other pixel measures
    made of the planes), empty, full and one-slice masks, latin-1 sources whose character set an override
    changes to UTF-8 (the text copied from the source encoded again), other labels, series numbers and
    descriptions."""
    paths, grid = synthetic
    paths = _rewrite(paths, tmp_path / "latin", SpecificCharacterSet="ISO_IR 100",
                     ReferringPhysicianName="Müller^Jürgen", StudyDescription="Étude genou")
    one = np.zeros(grid.array.shape, bool)
    one[3, 2:9, 4:7] = True
    blob = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    flipped = _flipped_blob(grid)
    jobs = [(blob, paths, {"label": "lesion 1"}), (flipped, paths, {}),
            (grid.with_array(np.zeros_like(one)), paths, {"algorithm_type": "MANUAL"}),
            (grid.with_array(np.ones_like(one)), paths, {"series_number": 77, "series_description": None}),
            (grid.with_array(one), paths,
             {"overrides": {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "Ωmega^Ä"}}),
            (flipped.with_array(~flipped.array), paths, {"overrides": {"PatientID": "P-1"}}),
            (blob, paths, {"label": "lesion 1"})]
    _write_seg_both(frozen, tmp_path / "shared", jobs)
    _write_seg_both(frozen, tmp_path / "files", jobs, shared=False)
    assert encoded == {"new": 14, "old": 14}


def test_ct_latin1_and_anonymised_sources(frozen, synthetic, tmp_path):
    paths, grid = synthetic
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    (tmp_path / "ct").mkdir()
    ct = _ct_copies(paths, tmp_path / "ct")
    _write_seg_both(frozen, tmp_path / "ct-out", [(_flipped_blob(grid), ct, {}), (mask, ct, {})])
    latin = _rewrite(paths, tmp_path / "latin", SpecificCharacterSet="ISO_IR 100", StudyDescription="Étude genou",
                     InstitutionName="Hôpital Nord", ReferringPhysicianName="Müller^Jürgen",
                     SpacingBetweenSlices="3.0")
    _write_seg_both(frozen, tmp_path / "latin-out", [(mask, latin, {}), (mask.with_array(~mask.array), latin, {})])
    anonymised = _rewrite(paths, tmp_path / "anon")
    for f in anonymised:
        ds = pydicom.dcmread(f)
        for kw in seg.SEG_TYPE2_FROM_SOURCE + ("SliceThickness", "Manufacturer"):
            if kw in ds:
                delattr(ds, kw)
        ds.save_as(f, enforce_file_format=True)
    _write_seg_both(frozen, tmp_path / "anon-out", [(mask, anonymised, {}), (mask, anonymised, {"label": "2"})])


def test_highdicom_engine_is_unchanged(frozen, encoded, synthetic, tmp_path):
    paths, grid = synthetic
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    _write_seg_both(frozen, tmp_path, [(mask, paths, {"engine": "highdicom"}),
                                       (mask, paths, {"omit_empty_frames": True})])
    assert encoded == {"new": 0, "old": 0}


@pytest.mark.shared_data
@pytest.mark.parametrize("item", ["philips_3dpcasl_classic", "siemens_t1_2d_sag_HFS",
                                  "ge_epi_slicegap_3mm_thk_5mm_spacing", "philips_3dpcasl_enhanced",
                                  "siemens_xa10_enhanced_multiframe"])
def test_real_exports(shared_data, frozen, tmp_path, item):
    """Scanner exports: classic (several volumes: two source images at a frame's position) and enhanced
    multi-frame sources (handed to highdicom by both writers)."""
    vol = load_dicom(shared_data / "dicom" / item / "dicom", volume_index=0)
    nk, nj, ni = vol.array.shape
    m = np.zeros(vol.array.shape, bool)
    m[nk // 4: 3 * nk // 4 + 1, nj // 4: 3 * nj // 4, ni // 3: 2 * ni // 3] = True
    m &= vol.array > np.median(vol.array)
    mask = vol.with_array(m)
    _write_seg_both(frozen, tmp_path, [(mask, vol.meta["files"], {}), (mask.with_array(~m), vol.meta["files"], {})])


def test_attributes_set_per_seg_are_never_copied_from_the_source():
    """:func:`volumetry.io.seg_fast._base_top` sets the copied attributes before the per-SEG ones, which
    keeps the values they had when set after them only because no per-SEG attribute is copied."""
    from pydicom.datadict import tag_for_keyword

    copied = set(seg_fast._copied_tags(next(iter(seg_fast.FAST_SOP_CLASSES))))
    per_seg = {int(tag_for_keyword(k)) for k in seg_fast._PER_SEG_KEYWORDS}
    assert len(per_seg) == len(seg_fast._PER_SEG_KEYWORDS) and not (copied & per_seg)
    assert {int(tag_for_keyword(k)) for k in ("PatientID", "StudyDate")} <= copied  # the check can fail


def _coverage_by_array(maps, shape) -> bool:
    covered = np.zeros(shape, bool)
    for fmap in maps:
        fmap.view(covered)[...] = True
    return bool(covered.all())


def test_whole_slice_coverage_is_the_voxel_by_voxel_one():
    """Frames that are whole slices at every index cover the grid; a missing, partial or crossed frame
    does not (or is left to the voxel-by-voxel check), as the array of covered voxels says."""
    rng = np.random.default_rng(11)
    shape = (5, 6, 7)  # (nk, nj, ni)
    full = [seg._FrameMap((0, 0, k), (0, 1), (1, 1), 6, 7) for k in range(5)]
    flipped = [seg._FrameMap((6, 5, k), (0, -1), (1, -1), 6, 7) for k in range(5)]
    sagittal = [seg._FrameMap((i, 0, 0), (1, 1), (2, 1), 5, 6) for i in range(7)]
    cases = [full, flipped, sagittal, full[:-1], full + full[:1], full[:4] + flipped[4:], full[:4] + sagittal[:1],
             [seg._FrameMap((0, 0, k), (0, 1), (1, 1), 5, 7) for k in range(5)],
             [seg._FrameMap((1, 0, k), (0, 1), (1, 1), 6, 6) for k in range(5)]]
    for _ in range(40):
        cases.append([full[k] for k in rng.choice(5, size=rng.integers(1, 8))])
    decided = 0
    for maps in cases:
        truth = _coverage_by_array(maps, shape)
        if seg._cover_every_slice(maps, shape):
            decided += 1
            assert truth, maps
    assert decided >= 4 and seg._cover_every_slice(full, shape) and seg._cover_every_slice(sagittal, (5, 6, 7))
    assert not seg._cover_every_slice(full[:-1], shape) and not _coverage_by_array(full[:-1], shape)


def test_source_refs_of_light_headers_are_those_read_through_the_header(synthetic, tmp_path):
    """The light headers' references read from their decoded values equal those the frozen writer read
    attribute by attribute, for whole headers and headers lacking or spoiling an attribute."""
    paths, _ = synthetic
    variants = [_rewrite(paths[:2], tmp_path / "plain")]
    for n, (kw, value) in enumerate([("FrameOfReferenceUID", None), ("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7"),
                                     ("ImageOrientationPatient", ["1", "0", "0", "0", "1"]), ("NumberOfFrames", "2"),
                                     ("ImagePositionPatient", ["1", "2"]), ("Rows", None)]):
        files = _rewrite(paths[:2], tmp_path / f"v{n}")
        for f in files:
            ds = pydicom.dcmread(f)
            if value is None:
                delattr(ds, kw)
            else:
                setattr(ds, kw, value)
            ds.save_as(f, enforce_file_format=True)
        variants.append(files)
    seen = set()
    for files in variants:
        for f in files:
            light = seg_fast.read_light_header(str(f), {})
            if light is None or light._raw is not None:
                continue
            ref = seg_fast.source_ref(light)
            old = old_seg_fast.source_ref(old_seg_fast.read_light_header(str(f), {}))  # attribute by attribute
            assert (ref is None) == (old is None), f
            if ref is not None:
                assert dataclasses.astuple(ref) == dataclasses.astuple(old)
            seen.add(ref is None)
    assert seen == {True, False}


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out" / "m.dcm"
    seg._write_atomically(target, lambda tmp: tmp.write_bytes(b"first"))  # the folder is made
    assert target.read_bytes() == b"first"

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(seg.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        seg._write_atomically(target, lambda tmp: tmp.write_bytes(b"second"))
    monkeypatch.undo()
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.dcm"]
    seg._write_atomically(target, lambda tmp: tmp.write_bytes(b"third"))
    assert target.read_bytes() == b"third" and sorted(p.name for p in target.parent.iterdir()) == ["m.dcm"]


@pytest.mark.parametrize("changes", [
    {"Manufacturer": "ACME", "AcquisitionDateTime": "20240102101112.5", "InstitutionName": "North",
     "StationName": "MR1", "SoftwareVersions": ["1.0", "2.0"], "DeviceSerialNumber": "42"},
    {"Manufacturer": "ACME", "AcquisitionDateTime": "20240103", "InstitutionalDepartmentName": "Radiology",
     "InstitutionAddress": "1 Main St"},
    {"Manufacturer": "M" * 70},  # longer than LO: highdicom raises, the item is left out
    {"Manufacturer": "ACME", "AcquisitionDateTime": "not a date"},
], ids=["date-time and equipment", "date only", "too long", "bad date-time"])
def test_acquisition_equipment_items(frozen, synthetic, tmp_path, changes):
    """The acquisition-equipment item made of a template per equipment plus the scan's date and time is
    the item highdicom makes, or is left out where highdicom raises; two series of one equipment."""
    import warnings

    paths, grid = synthetic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's advice on the invalid values the case is about
        files = _rewrite(paths, tmp_path / "a", **changes)
        other = _rewrite(paths, tmp_path / "b", **{**changes, "AcquisitionDateTime": "20250607080910"})
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = [_write_seg_both(frozen, tmp_path / f"out{n}", [(mask, series, {})])[0]
                   for n, series in enumerate((files, other))]
    counts = [len(pydicom.dcmread(path).ContributingEquipmentSequence) for path in written]
    too_long, bad_date = len(changes["Manufacturer"]) > 64, changes.get("AcquisitionDateTime") == "not a date"
    assert counts == [1 if too_long or bad_date else 2, 1 if too_long else 2]


def test_acquisition_item_is_highdicoms_item_encoded(synthetic, tmp_path):
    """The item made of a template and the scan's date and time encodes to the bytes of the item
    highdicom makes (the frozen writer's ``_acquisition_equipment``) in both character sets."""
    paths, _ = synthetic
    cases = [{"Manufacturer": "ACME", "AcquisitionDateTime": "20240102101112.5", "StationName": "MR1",
              "SoftwareVersions": ["1.0", "2.0"]}, {"Manufacturer": "ACME", "InstitutionName": "Hôpital"},
             {"Manufacturer": "ACME", "AcquisitionDateTime": "20240103"}]
    for n, changes in enumerate(cases):
        ds = pydicom.dcmread(_rewrite(paths[:1], tmp_path / f"c{n}", SpecificCharacterSet="ISO_IR 100", **changes)[0])
        reference = old_seg_fast._acquisition_equipment(ds)
        item = seg_fast._acquisition_item(ds)
        for encodings in (["iso8859"], ["latin_1"]):
            assert item.encode_item(encodings) == old_seg_fast._encode_item(reference, encodings)
    ds.Manufacturer = ""
    assert seg_fast._acquisition_item(ds) is None and old_seg_fast._acquisition_equipment(ds) is None


def test_light_header_reads_fail_and_fall_back_as_before(synthetic, tmp_path):
    """Read with plain file calls: a missing file or a folder raises what the frozen reader raised, a
    truncated file and one the raw header reader must parse give what it gave."""
    paths, _ = synthetic
    (tmp_path / "folder").mkdir()
    for bad in (tmp_path / "missing.dcm", tmp_path / "folder"):
        with pytest.raises(OSError) as new_error:
            seg_fast.read_light_header(str(bad), {})
        with pytest.raises(OSError) as old_error:
            old_seg_fast.read_light_header(str(bad), {})
        assert (type(new_error.value), str(new_error.value)) == (type(old_error.value), str(old_error.value))
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(Path(paths[0]).read_bytes()[:700])
    implicit = _rewrite(paths[:1], tmp_path / "implicit", transfer_syntax=pydicom.uid.ImplicitVRLittleEndian)[0]
    for f in (truncated, implicit, paths[0]):
        new, old = seg_fast.read_light_header(str(f), {}), old_seg_fast.read_light_header(str(f), {})
        assert (new is None) == (old is None), f
        if new is not None:
            assert (new._raw is None) == (old._raw is None)
            assert [new.get(k, "absent") for k in seg_fast._LIGHT_KEYWORDS] == \
                [old.get(k, "absent") for k in seg_fast._LIGHT_KEYWORDS]
    assert seg_fast.read_light_header(str(implicit), {})._raw is not None  # the raw header reader's
    assert seg_fast.read_light_header(str(paths[0]), {})._raw is None  # the light scan's
