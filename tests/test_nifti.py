"""NIfTI/NRRD/MHA reading and writing: the RAS/LPS edge, sform/qform, scaling, 4D, NaN."""
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from volumetry.errors import ImageFormatError, InputError
from volumetry.image import Volume
from volumetry.io.nifti import SFORM_QFORM_TOL_MM, read_itk, read_nifti, write_nifti
from volumetry.io.reader import read_image


def _save(tmp_path, name, data, affine, *, sform=1, qform=1, qaffine=None, slope=None, inter=None):
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=sform)
    img.set_qform(affine if qaffine is None else qaffine, code=qform)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    p = tmp_path / name
    nib.save(img, str(p))
    return p


def _asymmetric_object():
    data = np.zeros((12, 10, 8), np.int16)  # [i, j, k]
    data[2:5, 3:8, 1:4] = 100  # a box near the right (low i in neurological order)
    data[9, 1, 6] = 7  # a single marker voxel
    return data


def _lps_points(vol: Volume, value):
    k, j, i = np.nonzero(vol.array == value)
    return np.round(vol.index_to_lps(np.c_[i, j, k]), 6)


def test_identity_affine_maps_ras_to_lps():
    # NIfTI voxel (1, 0, 0) with identity affine is RAS (1, 0, 0) = LPS (-1, 0, 0)
    vol = Volume.from_affine(np.zeros((2, 2, 2)), np.diag([-1.0, -1.0, 1.0, 1.0]))
    np.testing.assert_allclose(vol.index_to_lps([1, 0, 0]), [-1, 0, 0])


def test_radiological_and_neurological_storage_give_same_lps_geometry(tmp_path):
    data = _asymmetric_object()
    neuro_aff = np.array([[0.8, 0, 0, -10], [0, 0.9, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    # the same object stored radiologically: i axis reversed, x column negated, origin at the other end
    radio = data[::-1].copy()
    radio_aff = neuro_aff.copy()
    radio_aff[:3, 0] *= -1
    radio_aff[:3, 3] = neuro_aff[:3, :3] @ [data.shape[0] - 1, 0, 0] + neuro_aff[:3, 3]
    a = read_nifti(_save(tmp_path, "neuro.nii.gz", data, neuro_aff))
    b = read_nifti(_save(tmp_path, "radio.nii.gz", radio, radio_aff))
    for value in (100, 7):
        pa, pb = _lps_points(a, value), _lps_points(b, value)
        np.testing.assert_allclose(pa[np.lexsort(pa.T)], pb[np.lexsort(pb.T)], atol=1e-6)
    assert a.voxel_volume_mm3 == pytest.approx(b.voxel_volume_mm3) == pytest.approx(0.8 * 0.9 * 3.0)
    # the marker voxel: RAS = affine @ (9, 1, 6) -> LPS flips x and y
    ras = neuro_aff @ [9, 1, 6, 1]
    np.testing.assert_allclose(_lps_points(a, 7)[0], [-ras[0], -ras[1], ras[2]], atol=1e-6)


def test_cube_of_1mm_voxels_is_exactly_one_ml(tmp_path):
    data = np.zeros((20, 20, 20), np.uint8)
    data[5:15, 5:15, 5:15] = 1
    vol = read_image(_save(tmp_path, "cube.nii", data, np.eye(4)))
    assert vol.array.sum() * vol.voxel_volume_mm3 / 1000.0 == 1.000


def test_sform_qform_disagreement_is_an_error_with_the_fix(tmp_path):
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    q = aff.copy()
    q[0, 3] = 5.0  # 5 mm shift
    p = _save(tmp_path, "ambig.nii.gz", np.zeros((4, 4, 4), np.int16), aff, qaffine=q)
    with pytest.raises(ImageFormatError, match=r"ambig\.nii\.gz: sform .* and qform .* disagree.*5 mm.*affine_source='sform' or 'qform'"):
        read_nifti(p)
    np.testing.assert_allclose(read_nifti(p, affine_source="sform").origin, [0, 0, 0])
    np.testing.assert_allclose(read_nifti(p, affine_source="qform").origin, [-5, 0, 0])
    # below tolerance: accepted, sform wins
    q[0, 3] = SFORM_QFORM_TOL_MM / 10
    p2 = _save(tmp_path, "close.nii.gz", np.zeros((4, 4, 4), np.int16), aff, qaffine=q)
    np.testing.assert_allclose(read_nifti(p2).origin, [0, 0, 0])


def test_qform_used_when_sform_unset_and_pixdim_fallback_is_flagged(tmp_path):
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [1, 2, 3]
    v = read_nifti(_save(tmp_path, "q.nii", np.zeros((3, 3, 3), np.int16), aff, sform=0, qform=1))
    np.testing.assert_allclose(v.origin, [-1, -2, 3])
    assert v.spacing == (2.0, 2.0, 2.0) and v.meta["warnings"] == []
    v0 = read_nifti(_save(tmp_path, "none.nii", np.zeros((3, 3, 3), np.int16), aff, sform=0, qform=0))
    assert "neither sform nor qform" in v0.meta["warnings"][0]


def test_scl_slope_and_inter_are_applied(tmp_path):
    data = np.arange(27, dtype=np.int16).reshape(3, 3, 3)
    v = read_nifti(_save(tmp_path, "scaled.nii", data, np.eye(4), slope=0.5, inter=-3.0))
    assert v.array.dtype == np.float32
    np.testing.assert_allclose(v.array, data.transpose(2, 1, 0) * 0.5 - 3.0)


def test_4d_needs_a_selected_volume(tmp_path):
    data = np.stack([np.full((3, 4, 5), t, np.int16) for t in range(3)], axis=-1)
    p = _save(tmp_path, "four.nii.gz", data, np.eye(4))
    with pytest.raises(ImageFormatError, match=r"4D file with 3 volumes \(0\.\.2.*volume_index=N"):
        read_nifti(p)
    v = read_nifti(p, volume_index=2)
    assert v.size == (3, 4, 5) and np.all(v.array == 2)
    with pytest.raises(ImageFormatError, match="volume 3 requested"):
        read_nifti(p, volume_index=3)


def test_nan_voxels_are_an_error_with_their_count(tmp_path):
    data = np.zeros((4, 4, 4), np.float32)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = np.inf
    with pytest.raises(ImageFormatError, match=r"nan\.nii: 4 voxel\(s\) are NaN or infinite"):
        read_nifti(_save(tmp_path, "nan.nii", data, np.eye(4)))


def test_garbage_and_missing_files(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    with pytest.raises(ImageFormatError, match="bad.nii.gz: not a readable NIfTI"):
        read_image(bad)
    with pytest.raises(InputError, match="nothere.nii: no such file"):
        read_image(tmp_path / "nothere.nii")


def test_write_read_round_trip_oblique_is_exact(tmp_path):
    t = np.deg2rad(23)
    d = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    arr = np.random.default_rng(0).integers(-500, 500, (5, 6, 7)).astype(np.int16)
    vol = Volume(arr, (0.7, 0.9, 4.0), (12.5, -30.25, 7.0), d)
    p = write_nifti(vol, tmp_path / "sub" / "x.nii.gz")
    back = read_nifti(p)
    assert back.same_grid(vol)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert np.array_equal(back.array, arr) and back.array.dtype == np.int16
    mask = vol.with_array(arr > 0)
    mback = read_image(write_nifti(mask, tmp_path / "m.nii.gz"))
    assert mback.array.dtype == np.uint8 and np.array_equal(mback.array.astype(bool), arr > 0)
    # deterministic bytes
    p2 = write_nifti(vol, tmp_path / "y.nii.gz")
    assert p.read_bytes() == p2.read_bytes()


@pytest.mark.parametrize("ext", [".nrrd", ".mha"])
def test_itk_formats_keep_lps_geometry(tmp_path, ext):
    arr = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.6, 2.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    t = np.deg2rad(10)
    img.SetDirection((np.cos(t), -np.sin(t), 0, np.sin(t), np.cos(t), 0, 0, 0, 1))
    p = tmp_path / f"x{ext}"
    sitk.WriteImage(img, str(p))
    v = read_image(p)
    np.testing.assert_allclose(v.origin, (10, -20, 30))
    np.testing.assert_allclose(v.spacing, (0.5, 0.6, 2.0))
    np.testing.assert_allclose(v.index_to_lps([1, 2, 1]), img.TransformIndexToPhysicalPoint((1, 2, 1)), atol=1e-9)
    assert np.array_equal(v.array, arr)


def test_itk_nan_and_4d_rejected(tmp_path):
    arr = np.zeros((3, 3, 3), np.float32)
    arr[1, 1, 1] = np.nan
    p = tmp_path / "nan.mha"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(p))
    with pytest.raises(ImageFormatError, match="1 voxel"):
        read_itk(p)
    p4 = tmp_path / "four.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 3, 3), np.int16), isVector=False), str(p4))
    with pytest.raises(ImageFormatError, match="4D image"):
        read_itk(p4)


def test_info_cli_reports_sform_qform_conflict_and_accepts_the_choice(tmp_path, capsys):
    import json

    from volumetry.cli import main

    aff = np.eye(4)
    q = aff.copy()
    q[1, 3] = 4.0
    p = _save(tmp_path, "ambig.nii.gz", np.zeros((4, 4, 4), np.int16), aff, qaffine=q)
    assert main(["info", str(p), "--json"]) == 2
    assert "--affine sform|qform" in capsys.readouterr().err
    assert main(["info", str(p), "--json", "--affine", "qform"]) == 0
    assert json.loads(capsys.readouterr().out)["origin"] == [0.0, -4.0, 0.0]


@pytest.mark.parametrize("units, factor", [("meter", 1e-3), ("micron", 1e3), ("mm", 1.0), ("unknown", 1.0)])
def test_spatial_units_of_the_header_are_converted_to_mm(tmp_path, units, factor):
    # NIfTI's xyz_units give the unit of pixdim and of the affine: a file in metres
    # must not read as 1e9 times too small a volume (ITK/Slicer convert it as well).
    data = _asymmetric_object()
    aff_mm = np.array([[0.8, 0, 0, -10], [0, 0.9, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    aff = aff_mm.copy()
    aff[:3] *= factor
    img = nib.Nifti1Image(data, aff)
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    img.header.set_xyzt_units(units)
    p = tmp_path / f"units_{units}.nii"
    nib.save(img, str(p))
    vol = read_image(p)
    np.testing.assert_allclose(vol.spacing, (0.8, 0.9, 3.0), rtol=1e-6)
    np.testing.assert_allclose(vol.origin, (10.0, -20.0, -5.0), rtol=1e-6, atol=1e-5)
    assert vol.voxel_volume_mm3 == pytest.approx(0.8 * 0.9 * 3.0, rel=1e-6)
    ref = Volume.from_sitk(sitk.ReadImage(str(p)))
    np.testing.assert_allclose(vol.spacing, ref.spacing, rtol=1e-6)
    np.testing.assert_allclose(vol.origin, ref.origin, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("sform, qform", [(1, 1), (1, 0), (0, 1)])
def test_2d_nifti_reads_as_one_slice(tmp_path, sform, qform):
    # a 2D file with both header affines set used to crash (IndexError) in the sform/qform check
    data = np.arange(12 * 10, dtype=np.int16).reshape(12, 10)
    aff = np.array([[0.8, 0, 0, -10], [0, 0.9, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    vol = read_image(_save(tmp_path, "flat.nii.gz", data, aff, sform=sform, qform=qform))
    assert vol.size == (12, 10, 1)
    np.testing.assert_array_equal(vol.array[0].T, data)
    np.testing.assert_allclose(vol.index_to_lps([3, 4, 0]), [10 - 0.8 * 3, -20 - 0.9 * 4, -5], atol=1e-5)


def test_written_nifti_of_a_slightly_non_orthogonal_grid_reads_back(tmp_path):
    # DICOM cosines written with 4 decimals are orthogonal only to ~1e-4 (accepted by Volume);
    # the qform (a pure rotation) cannot hold that affine, so it must not contradict the sform.
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("xyz", [12.3, -7.7, 31.1], degrees=True).as_matrix()
    row, col = np.round(rot[:, 0], 4), np.round(rot[:, 1], 4)
    normal = np.cross(row, col) / np.linalg.norm(np.cross(row, col))
    direction = np.column_stack([row, col, normal])
    assert np.abs(direction.T @ direction - np.eye(3)).max() > 5e-5
    mask = np.zeros((100, 256, 256), bool)
    mask[40:60, 100:140, 90:150] = True
    vol = Volume(mask, (1.0, 1.0, 1.5), (-100.0, -120.0, -60.0), direction)
    back = read_image(write_nifti(vol, tmp_path / "mask.nii.gz"))
    assert back.same_grid(vol)
    np.testing.assert_array_equal(back.array.astype(bool), mask)
    np.testing.assert_allclose(Volume.from_sitk(sitk.ReadImage(str(tmp_path / "mask.nii.gz"))).affine,
                               vol.affine, atol=1e-4)


def test_analyze_file_reads_with_pixdim_geometry_and_a_warning(tmp_path):
    # a plain Analyze 7.5 .hdr/.img (no sform/qform in its header) crashed with an AttributeError
    data = _asymmetric_object()
    nib.save(nib.AnalyzeImage(data, np.diag([0.8, 0.9, 3.0, 1.0])), str(tmp_path / "old.hdr"))
    vol = read_image(tmp_path / "old.hdr")
    np.testing.assert_allclose(vol.spacing, (0.8, 0.9, 3.0), rtol=1e-6)
    assert vol.voxel_volume_mm3 == pytest.approx(0.8 * 0.9 * 3.0, rel=1e-6)
    np.testing.assert_array_equal(vol.array, data.transpose(2, 1, 0))
    assert "Analyze" in vol.meta["warnings"][0] and "orientation unknown" in vol.meta["warnings"][0]


def test_volume_index_on_a_3d_file_is_refused_not_ignored(tmp_path):
    # --volume 3 on a 3D NIfTI silently gave the only volume
    p = _save(tmp_path, "three_d.nii.gz", np.zeros((4, 5, 6), np.int16), np.eye(4))
    assert read_nifti(p, volume_index=0).size == (4, 5, 6)
    with pytest.raises(ImageFormatError, match=r"three_d\.nii\.gz.*volume 3 requested.*one volume"):
        read_nifti(p, volume_index=3)
    p1 = _save(tmp_path, "one_vol.nii.gz", np.zeros((4, 5, 6, 1), np.int16), np.eye(4))
    with pytest.raises(ImageFormatError, match=r"one_vol\.nii\.gz.*volume 1 requested.*one volume"):
        read_nifti(p1, volume_index=1)
