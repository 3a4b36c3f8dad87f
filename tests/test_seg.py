"""DICOM SEG export/import: round trip on a DICOM MR series with known geometry."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from volumetry.errors import GeometryMismatchError, InputError
from volumetry.image import Volume
from volumetry.io.seg import read_seg, write_seg

#: Oblique orientation (rotated 20° about z, then 10° about x): row and column cosines.
_ROT_Z = np.array([[np.cos(0.349066), -np.sin(0.349066), 0], [np.sin(0.349066), np.cos(0.349066), 0], [0, 0, 1]])
_ROT_X = np.array([[1, 0, 0], [0, np.cos(0.174533), -np.sin(0.174533)], [0, np.sin(0.174533), np.cos(0.174533)]])
DIRECTION = _ROT_X @ _ROT_Z


def write_mr_series(folder: Path, image: np.ndarray, spacing, origin, direction, *,
                    patient_id="SUBJ01", description="T2 axial", seed=0) -> list[Path]:
    """Write ``image`` ([k, j, i], uint16) as single-frame MR files; shuffled file names,
    InstanceNumber descending, so that nothing can rely on file order."""
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.asarray(direction, float)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    nk, nj, ni = image.shape
    order = np.random.default_rng(seed).permutation(nk)
    paths = []
    for n, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"IM{n:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID = "Test^Patient", patient_id
        ds.PatientBirthDate, ds.PatientSex = "20150101", "F"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240102", "101010", "A1"
        ds.ReferringPhysicianName, ds.StudyID = "", "1"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", 3, nk - int(k)
        ds.SeriesDescription = description
        ds.Manufacturer = "test"
        pos = np.asarray(origin) + direction[:, 2] * spacing[2] * k
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.r_[direction[:, 0], direction[:, 1]]]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.Rows, ds.Columns = nj, ni
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(image[k], dtype=np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _grid_from_written(direction, spacing, origin, shape) -> Volume:
    """The grid a loader builds from the written files (DICOM strings, k along row x column)."""
    d = np.array([[float(f"{v:.8f}") for v in direction[:, c]] for c in range(3)]).T
    o = [float(f"{v:.6f}") for v in origin]
    return Volume(np.zeros(shape, bool), spacing, o, d)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    rng = np.random.default_rng(7)
    shape = (9, 20, 24)  # k, j, i
    spacing = (0.8, 0.9, 3.0)
    origin = (-12.5, 30.25, -40.0)
    image = rng.integers(100, 400, size=shape).astype(np.uint16)
    kk, jj, ii = np.indices(shape)
    truth = ((ii - 11.3) * 0.8 / 6.0) ** 2 + ((jj - 9.6) * 0.9 / 5.0) ** 2 + ((kk - 4.2) * 3.0 / 9.0) ** 2 <= 1
    image[truth] += 600
    paths = write_mr_series(tmp_path_factory.mktemp("mr") / "series", image, spacing, origin, DIRECTION)
    grid = _grid_from_written(DIRECTION, spacing, origin, shape)
    return paths, grid.with_array(truth)


def _assert_same_grid(a: Volume, b: Volume) -> None:
    assert a.size == b.size
    np.testing.assert_allclose(a.spacing, b.spacing, atol=1e-4)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-4)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-4)


def test_round_trip_without_image_gives_same_mask_on_same_grid(series, tmp_path):
    paths, mask = series
    assert 50 < mask.array.sum() < mask.array.size // 2
    out = write_seg(mask, paths, tmp_path / "seg" / "mask.dcm", label="lesion 1")
    back = read_seg(out)
    _assert_same_grid(back, mask)
    assert back.array.dtype == bool
    np.testing.assert_array_equal(back.array, mask.array)
    assert back.meta["segment_label"] == "lesion 1"
    assert back.meta["referenced_series_uid"] == pydicom.dcmread(paths[0]).SeriesInstanceUID


def test_round_trip_with_image_and_omitted_empty_frames(series, tmp_path):
    paths, mask = series
    out = write_seg(mask, paths, tmp_path / "mask.dcm", omit_empty_frames=True)
    n_frames = int(pydicom.dcmread(out).NumberOfFrames)
    assert n_frames == int(np.count_nonzero(mask.array.any(axis=(1, 2))))
    back = read_seg(out, image=mask)
    _assert_same_grid(back, mask)
    np.testing.assert_array_equal(back.array, mask.array)


def test_seg_references_every_source_image_and_copies_study(series, tmp_path):
    paths, mask = series
    ds = pydicom.dcmread(write_seg(mask, paths, tmp_path / "m.dcm"))
    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    refs = {r.ReferencedSOPInstanceUID for r in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert refs == {s.SOPInstanceUID for s in src}
    assert ds.StudyInstanceUID == src[0].StudyInstanceUID
    assert ds.FrameOfReferenceUID == src[0].FrameOfReferenceUID
    assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Lesion"


def test_flipped_mask_grid_is_placed_by_geometry(series, tmp_path):
    """A mask on the same voxels but with k (and i) reversed maps onto the same source pixels."""
    paths, mask = series
    flip = mask.array[::-1, :, ::-1]
    d = mask.direction.copy()
    d[:, 0] *= -1
    d[:, 2] *= -1
    origin = mask.index_to_lps(np.array([mask.size[0] - 1, 0, mask.size[2] - 1]))
    flipped = Volume(flip, mask.spacing, tuple(origin), d)
    out = write_seg(flipped, paths, tmp_path / "f.dcm")
    back = read_seg(out)  # rebuilt in the series' own order
    np.testing.assert_array_equal(back.array, mask.array)
    back_on_flipped = read_seg(out, image=flipped)
    np.testing.assert_array_equal(back_on_flipped.array, flip)


def test_mask_grid_with_rows_and_columns_swapped(series, tmp_path):
    """A mask stored with its i and j axes exchanged (and j reversed): the same voxels in space."""
    paths, mask = series
    arr = np.swapaxes(mask.array, 1, 2)[:, ::-1, :]  # new [k, j', i'] with j' = reversed old i, i' = old j
    d = np.column_stack([mask.direction[:, 1], -mask.direction[:, 0], mask.direction[:, 2]])
    origin = mask.index_to_lps(np.array([mask.size[0] - 1, 0, 0], float))
    swapped = Volume(arr, (mask.spacing[1], mask.spacing[0], mask.spacing[2]), tuple(origin), d)
    assert np.allclose(swapped.index_to_lps(np.array([3, 5, 2.0])),
                       mask.index_to_lps(np.array([mask.size[0] - 1 - 5, 3, 2.0])))
    out = write_seg(swapped, paths, tmp_path / "t.dcm")
    np.testing.assert_array_equal(read_seg(out).array, mask.array)
    np.testing.assert_array_equal(read_seg(out, image=swapped).array, arr)


def test_mask_off_the_series_grid_is_refused(series, tmp_path):
    paths, mask = series
    shifted = Volume(mask.array, mask.spacing, tuple(np.add(mask.origin, mask.direction[:, 0] * 0.4)),
                     mask.direction)
    with pytest.raises(GeometryMismatchError, match="between mask voxels"):
        write_seg(shifted, paths, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_missing_source_slice_with_foreground_is_refused(series, tmp_path):
    paths, mask = series
    by_pos = sorted(paths, key=lambda p: float(
        np.dot(np.array(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient, float), mask.direction[:, 2])))
    with pytest.raises(GeometryMismatchError, match="foreground voxels on slices that none"):
        write_seg(mask, by_pos[:3] + by_pos[4:], tmp_path / "x.dcm")


def test_overrides_replace_patient_identifiers(series, tmp_path):
    paths, mask = series
    ds = pydicom.dcmread(write_seg(mask, paths, tmp_path / "p.dcm",
                                   overrides={"PatientID": "sub-7f3a", "PatientName": "sub-7f3a"}))
    assert ds.PatientID == "sub-7f3a" and str(ds.PatientName) == "sub-7f3a"
    assert b"SUBJ01" not in (tmp_path / "p.dcm").read_bytes()


def test_bad_inputs_have_clear_errors(series, tmp_path):
    paths, mask = series
    with pytest.raises(InputError, match="got none"):
        write_seg(mask, [], tmp_path / "x.dcm")
    with pytest.raises(InputError, match="one path"):
        write_seg(mask, str(paths[0]), tmp_path / "x.dcm")
    with pytest.raises(InputError, match="must be binary"):
        write_seg(mask.with_array(mask.array.astype(np.uint8) * 2), paths, tmp_path / "x.dcm")
    with pytest.raises(InputError, match="SEG file not found"):
        read_seg(tmp_path / "nope.dcm")
    with pytest.raises(InputError, match="not a DICOM Segmentation"):
        read_seg(paths[0])


# ------------------------------------------------------------------ real scanner exports
REAL_SERIES = ("ge_epi_slicegap_3mm_thk_5mm_spacing", "philips_3dpcasl_classic", "philips_3dpcasl_enhanced",
               "siemens_t1_2d_sag_HFS", "siemens_xa10_enhanced_multiframe")


@pytest.mark.shared_data
@pytest.mark.parametrize("item", REAL_SERIES)
def test_round_trip_on_real_series(shared_data, item, tmp_path):
    """Classic, multi-volume and enhanced multi-frame exports: the SEG written on the loaded
    series reads back as the same mask on the same grid, with and without the image."""
    from volumetry.io.dicom import load_dicom

    vol = load_dicom(shared_data / "dicom" / item / "dicom", volume_index=0)
    nk, nj, ni = vol.array.shape
    m = np.zeros(vol.array.shape, bool)
    m[nk // 4: 3 * nk // 4 + 1, nj // 4: 3 * nj // 4, ni // 3: 2 * ni // 3] = True
    m &= vol.array > np.median(vol.array)
    mask = vol.with_array(m)
    assert m.sum() > 20
    out = write_seg(mask, vol.meta["files"], tmp_path / "seg.dcm")
    for back in (read_seg(out), read_seg(out, image=vol)):
        _assert_same_grid(back, mask)
        np.testing.assert_array_equal(back.array, m)


@pytest.mark.shared_data
def test_mosaic_source_is_refused_with_reason(shared_data, tmp_path):
    from volumetry.io.dicom import load_dicom

    vol = load_dicom(shared_data / "dicom" / "siemens_mosaic_ax_asc35" / "dicom", volume_index=0)
    with pytest.raises(InputError, match="Siemens mosaic"):
        write_seg(vol.with_array(vol.array > 0), vol.meta["files"], tmp_path / "seg.dcm")


def test_series_files_select_the_loaded_series(series, tmp_path):
    """The files found from the folder are those of the series; the SEG written with them
    equals the one written with the loader's own list."""
    from volumetry.io.dicom import load_dicom
    from volumetry.io.seg import series_files

    paths, mask = series
    folder = paths[0].parent
    vol = load_dicom(folder)
    assert vol.same_grid(mask)
    found = series_files(folder)
    assert sorted(found) == sorted(Path(p) for p in vol.meta["files"]) == sorted(paths)
    out = write_seg(vol.with_array(mask.array), found, tmp_path / "s.dcm")
    np.testing.assert_array_equal(read_seg(out, image=vol).array, mask.array)


def test_measure_cli_takes_a_seg_as_mask_and_refuses_it_as_image(series, tmp_path, capsys):
    # volumetry writes SEGs; `volumetry measure SERIES --mask SEG` crashed (internal error, BitsAllocated 1
    # read as an image) instead of placing the SEG's frames on the series' grid
    import json

    from volumetry.cli import main

    paths, mask = series
    out = write_seg(mask, paths, tmp_path / "mask.dcm", omit_empty_frames=True)
    folder = str(paths[0].parent)
    assert main(["measure", folder, "--mask", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["status"] == "ok" and res["n_voxels"] == int(mask.array.sum())
    assert res["volume_ml"] == pytest.approx(mask.array.sum() * 0.8 * 0.9 * 3.0 / 1000, rel=1e-5)
    assert main(["measure", folder, "--mask", str(out), "--label", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(out) in err and "segment 2" in err and "\n" not in err
    # a SEG given where an image is expected: a clear one-line error naming it, exit 2
    assert main(["measure", str(out), "--mask", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(out) in err and "Segmentation" in err and "--mask" in err and "\n" not in err


def test_label_0_of_a_seg_is_refused_not_read_as_segment_1(series, tmp_path, capsys):
    # segment numbers start at 1; `label or 1` turned label 0 into segment 1 silently
    from volumetry.cli import main
    from volumetry.io.masks import read_mask

    paths, mask = series
    out = write_seg(mask, paths, tmp_path / "mask.dcm")
    with pytest.raises(InputError, match="no segment 0"):
        read_mask(out, mask, label=0)
    assert main(["measure", str(paths[0].parent), "--mask", str(out), "--label", "0"]) == 2
    assert "no segment 0" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["fast", "highdicom"])
def test_seg_is_written_atomically_and_logged_under_its_own_name(series, tmp_path, caplog, engine):
    paths, mask = series
    target = tmp_path / "out" / "m.dcm"
    target.parent.mkdir()
    target.write_bytes(b"an older SEG")
    with caplog.at_level(logging.INFO, logger="volumetry.io.seg"):
        out = write_seg(mask, paths, target, engine=engine)
    assert out == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.dcm"]  # no temporary file left beside it
    np.testing.assert_array_equal(read_seg(target).array, mask.array)
    written = [r.getMessage() for r in caplog.records if r.getMessage().startswith("wrote DICOM SEG")]
    assert len(written) == 1 and f"{target} (" in written[0] and ".tmp" not in written[0]


def test_failed_seg_write_leaves_the_old_file_and_no_temporary(series, tmp_path, monkeypatch):
    from volumetry.io import seg_fast

    paths, mask = series
    target = tmp_path / "m.dcm"
    target.write_bytes(b"an older SEG")

    def broken(built):
        raise OSError("disk full")

    monkeypatch.setattr(seg_fast, "encode", broken)
    with pytest.raises(OSError, match="disk full"):
        write_seg(mask, paths, target)
    assert target.read_bytes() == b"an older SEG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dcm"]
