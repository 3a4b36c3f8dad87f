"""Every real series of ../shared/data/dicom loads with the voxels and geometry of its
dcm2niix reference NIfTI (RAS, 4D for multi-volume series), compared in world space."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from volumetry.io.dicom import index_dicom, load_dicom, load_stack

pytestmark = pytest.mark.shared_data

#: Acceptance tolerances of issue 2.
AFFINE_TOL_MM = 1e-3
DIRECTION_TOL = 1e-4

ITEMS = [
    "ge_epi_slicegap_3mm_thk_5mm_spacing",
    "philips_3dpcasl_classic",
    "philips_3dpcasl_enhanced",
    "siemens_mosaic_ax_asc35",
    "siemens_t1_2d_sag_HFS",
    "siemens_xa10_enhanced_multiframe",
]


def _reference(item_dir: Path) -> nib.Nifti1Image:
    refs = sorted((item_dir / "reference").glob("*.nii*"))
    assert len(refs) == 1, refs
    return nib.load(refs[0])


def _map_reference(ours_affine_lps: np.ndarray, ref_affine_ras: np.ndarray):
    """Signed permutation + offset taking reference voxel indices to ours.

    Returns (perm, signs, offsets) such that ours index along our axis a is
    ``signs[a] * ref_index[perm[a]] + offsets[a]``, and the world-space
    errors of the mapping (mm at the reference's corners, direction cosines).
    """
    ref_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ref_affine_ras
    m = np.linalg.inv(ours_affine_lps) @ ref_lps
    r = np.round(m[:3, :3])
    assert np.all(np.abs(r).sum(axis=0) == 1) and np.all(np.abs(r).sum(axis=1) == 1), m
    t = np.round(m[:3, 3])
    perm = [int(np.nonzero(r[a])[0][0]) for a in range(3)]
    signs = [int(r[a, perm[a]]) for a in range(3)]
    return perm, signs, t.astype(int), ref_lps, r


def _compare(vol, ref_img: nib.Nifti1Image, ref_data: np.ndarray, *, rtol: float = 0.0):
    ours = vol.affine
    perm, signs, offsets, ref_lps, r = _map_reference(ours, ref_img.affine)
    shape = ref_data.shape[:3]
    # world positions of the reference's corner voxels, mapped into our grid
    corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)],
                       dtype=float)
    ref_world = corners @ ref_lps[:3, :3].T + ref_lps[:3, 3]
    our_idx = corners @ r.T + offsets
    our_world = our_idx @ ours[:3, :3].T + ours[:3, 3]
    assert np.abs(ref_world - our_world).max() < AFFINE_TOL_MM
    ref_dirs = ref_lps[:3, :3] / np.linalg.norm(ref_lps[:3, :3], axis=0)
    our_dirs = (ours[:3, :3] @ r) / np.linalg.norm(ours[:3, :3] @ r, axis=0)
    assert np.abs(ref_dirs - our_dirs).max() < DIRECTION_TOL
    # voxels: reorder the reference (i', j', k') into our (i, j, k), then to [k, j, i]
    data = np.transpose(ref_data, perm)
    for a, s in enumerate(signs):
        if s < 0:
            data = np.flip(data, axis=a)
    assert tuple(offsets[a] for a in range(3)) == tuple(0 if signs[a] > 0 else data.shape[a] - 1 for a in range(3))
    data = np.transpose(data, (2, 1, 0))
    assert data.shape == vol.array.shape
    if rtol:
        np.testing.assert_allclose(vol.array, data, rtol=rtol, atol=0)
    else:
        np.testing.assert_array_equal(vol.array.astype(np.float64), data)


def _volumes(ref_img):
    data = np.asanyarray(ref_img.dataobj)  # scaled by scl_slope/scl_inter when set
    return [data] if data.ndim == 3 else [data[..., t] for t in range(data.shape[3])]


@pytest.mark.parametrize("item", [i for i in ITEMS if not i.startswith("philips")])
def test_series_matches_dcm2niix(shared_data, item):
    item_dir = shared_data / "dicom" / item
    ref = _reference(item_dir)
    refs = _volumes(ref)
    stacks = index_dicom(item_dir / "dicom")
    assert len(stacks) == 1
    stack = stacks[0]
    assert stack.n_volumes == len(refs)
    for t, ref_vol in enumerate(refs):
        vol = load_stack(stack, volume_index=t if stack.n_volumes > 1 else None)
        assert vol.array.dtype.kind in "iu"  # no rescale in these series: stored integers kept
        _compare(vol, ref, ref_vol)


#: Our volumes are ordered (temporal position, label type) for both exports of the
#: Philips acquisition; dcm2niix orders the classic export that way too but the
#: enhanced one as (label type, temporal position): our volume t is its volume ORDER[t].
DCM2NIIX_VOLUME_ORDER = {
    "philips_3dpcasl_classic": [0, 1, 2, 3, 4, 5],
    "philips_3dpcasl_enhanced": [0, 3, 1, 4, 2, 5],
}


@pytest.mark.parametrize("item", ["philips_3dpcasl_classic", "philips_3dpcasl_enhanced"])
def test_philips_matches_dcm2niix_precise_and_display(shared_data, item):
    """dcm2niix stores Philips floating-point values FP = (PV*RS + RI) / (RS*SS); our default is
    the DICOM display value DV = PV*RS + RI, so DV = FP * RS * SS; 'precise' reproduces FP."""
    item_dir = shared_data / "dicom" / item
    ref = _reference(item_dir)
    refs = _volumes(ref)
    (stack,) = index_dicom(item_dir / "dicom")
    assert stack.n_volumes == len(refs) == 6
    assert [("LABEL" if "LABEL" in lab else "CONTROL") for lab in stack.volume_labels] == ["CONTROL", "LABEL"] * 3
    for t in range(6):
        ref_vol = refs[DCM2NIIX_VOLUME_ORDER[item][t]]
        precise = load_stack(stack, volume_index=t, philips_scaling="precise")
        _compare(precise, ref, ref_vol, rtol=1e-6)
        display = load_stack(stack, volume_index=t)
        rs_ss = 1.33870573870573 * 3.432509765843861e-05  # RescaleSlope x (2005,100E) of this acquisition
        _compare(display, ref, ref_vol * rs_ss, rtol=1e-6)
        assert display.meta["rescale_slope"] == pytest.approx(1.33870573870573)


def test_classic_and_enhanced_philips_agree(shared_data):
    base = shared_data / "dicom"
    a = load_dicom(base / "philips_3dpcasl_classic" / "dicom", volume_index=3)
    b = load_dicom(base / "philips_3dpcasl_enhanced" / "dicom", volume_index=3)
    assert a.same_grid(b)
    np.testing.assert_array_equal(a.array, b.array)


def test_multi_volume_series_needs_a_volume_index(shared_data):
    from volumetry.errors import SeriesSelectionError

    with pytest.raises(SeriesSelectionError, match=r"holds 10 volumes.*volume_index \(0\.\.9\)"):
        load_dicom(shared_data / "dicom" / "ge_epi_slicegap_3mm_thk_5mm_spacing" / "dicom")


def test_gap_series_uses_position_spacing_not_thickness(shared_data):
    vol = load_dicom(shared_data / "dicom" / "ge_epi_slicegap_3mm_thk_5mm_spacing" / "dicom", volume_index=0)
    assert vol.spacing[2] == pytest.approx(5.0, abs=1e-6)
    assert vol.meta["slice_thickness_mm"] == pytest.approx(3.0)


def test_single_classic_file_loads_its_series(shared_data):
    folder = shared_data / "dicom" / "siemens_t1_2d_sag_HFS" / "dicom"
    one = sorted(folder.iterdir())[7]
    vol = load_dicom(one)
    assert vol.size == (256, 256, 35)
    assert vol.meta["source"] == str(one)


def test_index_of_the_whole_tree(shared_data):
    """Recursive index of every item: the classic and enhanced exports of the Philips series
    share a SeriesInstanceUID and become two stacks (never 12 volumes of one)."""
    stacks = index_dicom(shared_data / "dicom")
    assert len(stacks) == 6
    philips = [s for s in stacks if s.manufacturer == "Philips"]
    assert [(s.kind, s.n_slices, s.n_volumes, len(s.files)) for s in philips] == [
        ("classic", 40, 6, 240), ("enhanced", 40, 6, 1)]
    assert {s.stack_id for s in philips} == {philips[0].series_uid + "#1", philips[0].series_uid + "#2"}
    assert len({s.stack_id for s in stacks}) == 6


def test_mosaic_spacing_from_protocol_slice_positions(shared_data):
    vol = load_dicom(shared_data / "dicom" / "siemens_mosaic_ax_asc35" / "dicom", volume_index=1)
    assert vol.spacing[2] == pytest.approx(3.6, abs=1e-6)
    assert any("slice positions of the protocol" in w for w in vol.meta["warnings"])
    assert vol.meta["volume_index"] == 1 and vol.meta["n_volumes"] == 2


def test_volumes_told_apart_by_order_only_are_labelled_by_instance(shared_data):
    (stack,) = index_dicom(shared_data / "dicom" / "ge_epi_slicegap_3mm_thk_5mm_spacing" / "dicom")
    assert len(set(stack.volume_labels)) == 10
    assert all("instance" in lab for lab in stack.volume_labels)
