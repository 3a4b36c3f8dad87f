"""The fast SEG writer gives highdicom's SEG, element for element.

Every case writes the same mask twice, once with ``engine="highdicom"`` (the
reference: ``highdicom.seg.Segmentation`` + pydicom ``save_as``) and once with
the fast path, then compares the two files attribute by attribute (tags, VRs,
values and their stored strings, nested sequences, pixel bytes), ignoring only
the UIDs generated per instance and the creation dates/times. Both files are
then read back with ``highdicom.seg.segread`` and with our reader, which must
give the identical mask on the identical grid.
"""
from __future__ import annotations

import re
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage
from test_seg import DIRECTION, _grid_from_written, write_mr_series

from volumetry.errors import GeometryMismatchError, InputError
from volumetry.image import Volume
from volumetry.io import seg_fast
from volumetry.io.dicom import load_dicom
from volumetry.io.seg import prepare_sources, read_seg, write_seg

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

#: Generated per instance (UIDs) or at creation (dates/times): only presence and VR are compared.
VOLATILE = {
    0x00020000,  # FileMetaInformationGroupLength (follows the UID lengths)
    0x00020003,  # MediaStorageSOPInstanceUID
    0x00080018,  # SOPInstanceUID
    0x0020000E,  # SeriesInstanceUID (of the SEG; the referenced series' UID is inside a sequence item)
    0x00209164,  # DimensionOrganizationUID
    0x00080012, 0x00080013,  # InstanceCreationDate/Time
    0x00080023, 0x00080033,  # ContentDate/Time
    0x0018A002,  # ContributionDateTime
}


def _compare(a: pydicom.Dataset, b: pydicom.Dataset, where: str = "", top: bool = True) -> int:
    """Assert ``a`` and ``b`` hold the same elements; return how many were compared."""
    assert list(a.keys()) == list(b.keys()), f"{where}: tags differ"
    for tag in a.keys():  # the stored bytes first (before pydicom converts the values)
        ra, rb = a.get_item(tag), b.get_item(tag)
        if ra.is_raw and rb.is_raw and ra.VR != "SQ" and tag not in VOLATILE:
            assert ra.value == rb.value, f"{where}/{tag}: stored bytes differ"
    n = 0
    for ea, eb in zip(a, b):
        name = f"{where}/{ea.keyword or ea.tag}"
        assert ea.VR == eb.VR, name
        n += 1
        if ea.VR == "SQ":
            assert len(ea.value) == len(eb.value), name
            for i, (ia, ib) in enumerate(zip(ea.value, eb.value)):
                n += _compare(ia, ib, f"{name}[{i}]", top=False)
            continue
        if ea.tag in VOLATILE and (top or ea.tag in (0x00209164, 0x0018A002)):
            assert (ea.value in (None, "")) == (eb.value in (None, "")), name
            continue
        if ea.tag == 0x0020000E and not top:  # the referenced series
            assert ea.value == eb.value, name
            continue
        assert ea.value == eb.value, f"{name}: {ea.value!r} != {eb.value!r}"
        assert str(ea.value) == str(eb.value), f"{name}: stored strings differ"
    return n


def _assert_same_seg(path_hd: Path, path_fast: Path) -> None:
    a, b = pydicom.dcmread(path_hd), pydicom.dcmread(path_fast)
    _compare(a.file_meta, b.file_meta, "file_meta")
    assert _compare(a, b) > 50
    assert a.PixelData == b.PixelData
    # the dates/times differ by at most the time between the two writes
    for kw in ("InstanceCreationDate", "ContentDate"):
        assert re.fullmatch(r"\d{8}", str(b.get(kw))), kw
    for kw in ("InstanceCreationTime", "ContentTime"):
        assert re.fullmatch(r"\d{6}(\.\d{1,6})?", str(b.get(kw))), kw
    if len(a.get("ContributingEquipmentSequence", [])):  # none in a pseudonymised SEG
        equipment = b.ContributingEquipmentSequence[-1]
        assert re.fullmatch(r"\d{14}(\.\d{1,6})?([+-]\d{4})?", str(equipment.ContributionDateTime))
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.SeriesInstanceUID != b.SeriesInstanceUID


def _assert_reads_back(path: Path, mask: Volume) -> None:
    seg = hd.seg.segread(path)
    assert seg.segment_numbers == [1]
    back = read_seg(path)
    np.testing.assert_array_equal(back.array, mask.array.astype(bool))
    assert back.size == mask.size
    np.testing.assert_allclose(back.spacing, mask.spacing, atol=1e-6)
    np.testing.assert_allclose(back.origin, mask.origin, atol=1e-6)
    np.testing.assert_allclose(back.direction, mask.direction, atol=1e-6)
    on_image = read_seg(path, image=mask)
    np.testing.assert_array_equal(on_image.array, mask.array.astype(bool))


def _both(mask: Volume, files, tmp_path: Path, name: str, expect_fast: bool = True, **kwargs) -> tuple[Path, Path]:
    ref = write_seg(mask, files, tmp_path / f"{name}-hd.dcm", engine="highdicom", **kwargs)
    encoded = []
    real = seg_fast.encode
    try:  # the fast path must really be taken (no silent fallback to highdicom)
        seg_fast.encode = lambda seg: encoded.append(seg) or real(seg)
        fast = write_seg(mask, files, tmp_path / f"{name}-fast.dcm", engine="fast", **kwargs)
    finally:
        seg_fast.encode = real
    assert len(encoded) == (1 if expect_fast else 0)
    return ref, fast


def _ct_copies(paths, folder: Path) -> list[Path]:
    """Copies of the MR files ``paths`` in ``folder`` as CT Image Storage."""
    ct = []
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.Modality = "CT"
        ds.save_as(folder / p.name, enforce_file_format=True)
        ct.append(folder / p.name)
    return ct


def _flipped_blob(grid: Volume) -> Volume:
    """A blob mask on ``grid`` given on a grid that runs the other way along k."""
    arr = _blob(grid.array.shape, (6, 9, 4), (5.0, 4.0, 7.0), grid.spacing)
    return Volume(arr[::-1].copy(), grid.spacing, grid.index_to_lps((0, 0, grid.array.shape[0] - 1)),
                  grid.direction * np.array([1, 1, -1]))


def _blob(shape, centre, radii, spacing) -> np.ndarray:
    kk, jj, ii = np.indices(shape)
    c, r = centre, radii
    return (((ii - c[0]) * spacing[0] / r[0]) ** 2 + ((jj - c[1]) * spacing[1] / r[1]) ** 2
            + ((kk - c[2]) * spacing[2] / r[2]) ** 2) <= 1


def _sample(name: str):
    image = load_dicom(SAMPLE / name / "dicom")
    return image, [Path(f) for f in image.meta["files"]]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    shape, spacing, origin = (7, 16, 18), (0.8, 0.9, 3.0), (-12.5, 30.25, -40.0)
    image = np.random.default_rng(3).integers(100, 400, size=shape).astype(np.uint16)
    paths = write_mr_series(tmp_path_factory.mktemp("fast") / "series", image, spacing, origin, DIRECTION)
    grid = _grid_from_written(DIRECTION, spacing, origin, shape)
    return paths, grid


@pytest.mark.parametrize("name", ["PH003/course1", "PH004/course1", "PH001/baseline"])
def test_sample_series_same_seg_as_highdicom(name, tmp_path):
    """Oblique (PH003 course 1), axial with a slice gap and SpacingBetweenSlices (PH004
    course 1), plain axial (PH001): a lesion over some slices only."""
    image, files = _sample(name)
    nk, nj, ni = image.array.shape
    arr = _blob(image.array.shape, (ni * 0.45, nj * 0.55, nk * 0.5), (14.0, 10.0, 9.0), image.spacing)
    assert 0 < arr.any(axis=(1, 2)).sum() < nk
    mask = image.with_array(arr)
    ref, fast = _both(mask, files, tmp_path, "s", label="lesion L1")
    _assert_same_seg(ref, fast)
    _assert_reads_back(fast, mask)
    _assert_reads_back(ref, mask)


def test_two_lesions_on_one_series_and_pseudonymised_overrides(tmp_path):
    image, files = _sample("PH005/baseline")
    nk, nj, ni = image.array.shape
    overrides = {"PatientID": "PSEUDO-7", "PatientName": "PSEUDO-7", "PatientBirthDate": "",
                 "AccessionNumber": "", "ReferringPhysicianName": ""}
    for n, centre in enumerate([(ni * 0.3, nj * 0.4, nk * 0.4), (ni * 0.7, nj * 0.6, nk * 0.6)], start=1):
        mask = image.with_array(_blob(image.array.shape, centre, (8.0, 6.0, 6.0), image.spacing))
        ref, fast = _both(mask, files, tmp_path, f"l{n}", label=f"lesion L{n}", overrides=overrides)
        _assert_same_seg(ref, fast)
        _assert_reads_back(fast, mask)
        ds = pydicom.dcmread(fast)
        assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate) == ("PSEUDO-7", "PSEUDO-7", "")
        assert ds.SegmentSequence[0].SegmentLabel == f"lesion L{n}"


def test_synthetic_oblique_without_spacing_between_slices(synthetic, tmp_path):
    """Shuffled file names, descending instance numbers, 8-decimal cosines, no
    SpacingBetweenSlices in the sources (highdicom computes it)."""
    paths, grid = synthetic
    arr = _blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing)
    mask = grid.with_array(arr)
    ref, fast = _both(mask, paths, tmp_path, "o", algorithm_type="MANUAL", series_description=None)
    _assert_same_seg(ref, fast)
    assert "SpacingBetweenSlices" in pydicom.dcmread(fast).SharedFunctionalGroupsSequence[0] \
        .PixelMeasuresSequence[0]
    _assert_reads_back(fast, mask)


@pytest.mark.parametrize("which", ["empty", "one-slice", "full"])
def test_extreme_masks(synthetic, tmp_path, which):
    paths, grid = synthetic
    arr = np.zeros(grid.array.shape, bool)
    if which == "one-slice":
        arr[3, 2:9, 4:7] = True
    elif which == "full":
        arr[:] = True
    mask = grid.with_array(arr)
    ref, fast = _both(mask, paths, tmp_path, which)
    _assert_same_seg(ref, fast)
    _assert_reads_back(fast, mask)


def test_ct_sources_and_flipped_mask_grid(synthetic, tmp_path):
    """CT Image Storage sources; the mask's grid runs the other way along k (frames are
    still placed by geometry, and sorted the same way as highdicom sorts them)."""
    paths, grid = synthetic
    flipped = _flipped_blob(grid)
    ref, fast = _both(flipped, _ct_copies(paths, tmp_path), tmp_path, "ct")
    _assert_same_seg(ref, fast)
    assert pydicom.dcmread(fast).ContentLabel == "CT_SEG"
    back = read_seg(fast, image=flipped)
    np.testing.assert_array_equal(back.array, flipped.array)


def test_mask_on_a_resampled_grid_is_refused_by_both(synthetic, tmp_path):
    paths, grid = synthetic
    off = Volume(np.ones(grid.array.shape, bool), grid.spacing,
                 np.asarray(grid.origin) + 0.4 * grid.direction[:, 0], grid.direction)
    for engine in ("highdicom", "fast"):
        with pytest.raises(GeometryMismatchError, match="between mask voxels"):
            write_seg(off, paths, tmp_path / f"{engine}.dcm", engine=engine)
        assert not (tmp_path / f"{engine}.dcm").exists()


def test_cases_outside_the_fast_path_fall_back_to_highdicom(synthetic, tmp_path):
    paths, grid = synthetic
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    out = write_seg(mask, paths, tmp_path / "omit.dcm", omit_empty_frames=True)  # highdicom
    ds = pydicom.dcmread(out)
    assert int(ds.NumberOfFrames) == int(mask.array.any(axis=(1, 2)).sum())
    # a header the fast path does not know (enhanced or unknown SOP class) gives None
    src = pydicom.dcmread(paths[0], stop_before_pixels=True)
    src.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    assert seg_fast.source_ref(src) is None


def test_light_header_values_equal_pydicom(synthetic):
    paths, _ = synthetic
    light = seg_fast.read_light_header(str(paths[1]))
    full = pydicom.dcmread(paths[1], stop_before_pixels=True)
    assert seg_fast.source_ref(light) == seg_fast.source_ref(full)


@pytest.mark.parametrize("sop_class", sorted(seg_fast.FAST_SOP_CLASSES))
def test_copied_attributes_are_highdicoms_tables(sop_class):
    """The attribute list kept in seg_fast is what highdicom's tables of the standard give."""
    assert set(seg_fast._copied_tags(sop_class)) == set(seg_fast._copied_tags_from_standard(sop_class))
    assert len(seg_fast.COPIED_KEYWORDS) == len(set(seg_fast.COPIED_KEYWORDS))


def test_prepared_sources_serve_both_writers_and_several_masks(synthetic, tmp_path):
    """One SegSources (light headers) for several masks, with either engine or omitted empty frames."""
    paths, grid = synthetic
    sources = prepare_sources(paths)
    assert any(isinstance(ds, seg_fast.LightHeader) for ds in sources.datasets)
    masks = [grid.with_array(_blob(grid.array.shape, c, (4.0, 4.0, 5.0), grid.spacing)) for c in ((5, 5, 2), (12, 10, 4))]
    for n, mask in enumerate(masks):
        ref = write_seg(mask, sources, tmp_path / f"hd{n}.dcm", engine="highdicom")
        fast = write_seg(mask, sources, tmp_path / f"fast{n}.dcm")
        _assert_same_seg(ref, fast)
        _assert_reads_back(fast, mask)
        omitted = write_seg(mask, sources, tmp_path / f"omit{n}.dcm", omit_empty_frames=True)
        np.testing.assert_array_equal(read_seg(omitted, image=mask).array, mask.array)


def _rewrite(paths, folder: Path, **changes) -> list[Path]:
    """Copies of a series with some attributes changed (``transfer_syntax`` re-encodes it)."""
    folder.mkdir()
    out = []
    for p in paths:
        ds = pydicom.dcmread(p)
        ts = changes.get("transfer_syntax")
        for kw, value in changes.items():
            if kw != "transfer_syntax":
                setattr(ds, kw, value)
        if ts is not None:
            ds.file_meta.TransferSyntaxUID = ts
        ds.save_as(folder / p.name, enforce_file_format=True)
        out.append(folder / p.name)
    return out


@pytest.mark.parametrize("changes", [
    {"SpecificCharacterSet": "ISO_IR 100", "StudyDescription": "Étude IRM genou", "InstitutionName": "Hôpital Nord",
     "ReferringPhysicianName": "Müller^Jürgen"},
    {"SpecificCharacterSet": "ISO_IR 192", "StudyDescription": "Ωmega study", "InstitutionName": "Санкт"},
    {"transfer_syntax": pydicom.uid.ImplicitVRLittleEndian, "PatientSex": ""},
], ids=["latin-1 text", "utf-8 text", "implicit VR"])
def test_character_sets_and_implicit_vr_sources(synthetic, tmp_path, changes):
    paths, grid = synthetic
    files = _rewrite(paths, tmp_path / "src", **changes)
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    ref, fast = _both(mask, files, tmp_path, "cs")
    _assert_same_seg(ref, fast)
    _assert_reads_back(fast, mask)


def test_single_slice_series(tmp_path):
    image = np.random.default_rng(5).integers(100, 400, size=(1, 12, 10)).astype(np.uint16)
    paths = write_mr_series(tmp_path / "one", image, (0.9, 0.8, 4.0), (1.0, 2.0, 3.0), np.eye(3))
    grid = _grid_from_written(np.eye(3), (0.9, 0.8, 4.0), (1.0, 2.0, 3.0), image.shape)
    arr = np.zeros(image.shape, bool)
    arr[0, 3:7, 2:6] = True
    ref, fast = _both(grid.with_array(arr), paths, tmp_path, "one")
    _assert_same_seg(ref, fast)
    np.testing.assert_array_equal(read_seg(fast, image=grid.with_array(arr)).array, arr)


@pytest.mark.shared_data
@pytest.mark.parametrize("item,fast", [
    ("ge_epi_slicegap_3mm_thk_5mm_spacing", True), ("philips_3dpcasl_classic", True),
    ("siemens_t1_2d_sag_HFS", True), ("philips_3dpcasl_enhanced", False), ("siemens_xa10_enhanced_multiframe", False),
])
def test_real_exports_same_seg_as_highdicom(shared_data, item, fast, tmp_path):
    """Scanner exports: classic (one file per slice; philips_3dpcasl_classic holds several volumes, so two
    source images sit at each frame's position) through the fast path; enhanced multi-frame through highdicom."""
    vol = load_dicom(shared_data / "dicom" / item / "dicom", volume_index=0)
    nk, nj, ni = vol.array.shape
    m = np.zeros(vol.array.shape, bool)
    m[nk // 4: 3 * nk // 4 + 1, nj // 4: 3 * nj // 4, ni // 3: 2 * ni // 3] = True
    m &= vol.array > np.median(vol.array)
    mask = vol.with_array(m)
    ref, out = _both(mask, vol.meta["files"], tmp_path, "real", expect_fast=fast)
    _assert_same_seg(ref, out)
    np.testing.assert_array_equal(read_seg(out, image=vol).array, m)


@pytest.mark.parametrize("text", ["-74.7862329432", " 12.5 ", "1e-3", "-119.257887324000001", "0.000000000012345678",
                                  "84.9834248152", "7"])
def test_ds_string_is_pydicoms_auto_formatted_string(text):
    """The string pydicom writes for ``DS(text, auto_format=True)`` (its original string)."""
    import warnings

    from pydicom.valuerep import DS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom warns on the over-long value
        expected = DS(text, auto_format=True).original_string
    assert seg_fast._ds_string(text) == expected


def _grids(grid: Volume):
    """The series' grid, flipped in k and i, rows/columns swapped, shifted by whole voxels, off by 0.4 voxel,
    rotated by 1°, and too small (frames reaching outside)."""
    yield "same", grid
    d = grid.direction.copy()
    d[:, 0] *= -1
    d[:, 2] *= -1
    origin = grid.index_to_lps(np.array([grid.size[0] - 1, 0, grid.size[2] - 1], float))
    yield "flipped", Volume(grid.array[::-1, :, ::-1], grid.spacing, tuple(origin), d)
    d = np.column_stack([grid.direction[:, 1], -grid.direction[:, 0], grid.direction[:, 2]])
    origin = grid.index_to_lps(np.array([grid.size[0] - 1, 0, 0], float))
    yield "swapped", Volume(np.swapaxes(grid.array, 1, 2)[:, ::-1, :], (grid.spacing[1], grid.spacing[0],
                                                                          grid.spacing[2]), tuple(origin), d)
    big = np.zeros((grid.array.shape[0] + 4, grid.array.shape[1] + 3, grid.array.shape[2] + 2), bool)
    yield "larger", Volume(big, grid.spacing, tuple(grid.index_to_lps(np.array([-2.0, -3.0, -2.0]))), grid.direction)
    yield "off", Volume(grid.array, grid.spacing, tuple(np.add(grid.origin, grid.direction[:, 0] * 0.4 * grid.spacing[0])),
                        grid.direction)
    c, s = np.cos(np.radians(1.0)), np.sin(np.radians(1.0))
    yield "rotated", Volume(grid.array, grid.spacing, grid.origin, grid.direction @ np.array([[c, -s, 0], [s, c, 0],
                                                                                               [0, 0, 1]]))
    yield "smaller", Volume(grid.array[:, :-1], grid.spacing, grid.origin, grid.direction)


def test_batched_frame_mapping_equals_frame_by_frame(synthetic):
    """``_map_frames`` (all frames at once) gives ``_map_frame``'s maps, or its error, on every grid."""
    from volumetry.io import seg as segmod

    paths, grid = synthetic
    sources = prepare_sources(paths)
    refused = set()
    for name, g in _grids(grid):
        expected, error = [], None
        try:
            for fr in sources.frames:
                ds = sources.datasets[fr.dataset_index]
                fm = segmod._map_frame(fr.affine, g, int(ds.Rows), int(ds.Columns), "f")
                if not fm.inside(g.array.shape):
                    raise GeometryMismatchError("f: the source frame reaches outside the mask's grid")
                expected.append(fm)
        except GeometryMismatchError as exc:
            error = exc
        batched = segmod._map_frames_batched(sources.frames, g, (int(sources.datasets[0].Rows),
                                                                 int(sources.datasets[0].Columns)))
        if error is None:
            assert batched == expected, name
            assert segmod._map_frames(sources, g) == expected, name
        else:
            refused.add(name)
            assert batched is None or not all(fm.inside(g.array.shape) for fm in batched), name
            with pytest.raises(GeometryMismatchError, match=re.escape(str(error).split(": ", 1)[1][:40])):
                segmod._map_frames(prepare_sources(paths), g)
    assert refused == {"off", "rotated", "smaller"}


@pytest.mark.parametrize("keyword,value", [("StudyInstanceUID", "1.2.826.0.1.3680043.99.1"),
                                           ("FrameOfReferenceUID", "1.2.826.0.1.3680043.99.2")])
@pytest.mark.parametrize("engine", ["fast", "highdicom"])
def test_sources_of_another_study_or_frame_of_reference_are_refused_naming_the_file(synthetic, tmp_path, keyword,
                                                                                    value, engine):
    """One file of the series from another study or frame of reference (a mixed-up export): an
    InputError naming that file and the attribute (was highdicom's bare ValueError)."""
    paths, grid = synthetic
    files = _rewrite(paths, tmp_path / "src")
    ds = pydicom.dcmread(files[2])
    setattr(ds, keyword, value)
    ds.save_as(files[2], enforce_file_format=True)
    mask = grid.with_array(_blob(grid.array.shape, (9, 8, 3), (5.0, 5.0, 6.0), grid.spacing))
    with pytest.raises(InputError, match=rf"{re.escape(files[2].name)}.*{keyword} .*differs from"):
        write_seg(mask, files, tmp_path / "out.dcm", engine=engine)
    assert not (tmp_path / "out.dcm").exists()
