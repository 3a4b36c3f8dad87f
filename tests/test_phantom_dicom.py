"""Phantoms written as DICOM load back through the project's loader on the grid
they were written with; files are deterministic; the writer's tags are those of a
real MR export."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from volumetry.image import Volume
from volumetry.io.dicom_write import SeriesInfo, derived_uid, write_dicom_series
from volumetry.phantoms import PhantomSpec, make_lesion_phantom
from volumetry.phantoms.export import write_phantom

GEOMETRY_TOL = 1e-4

GEOMETRIES = {
    "axial": PhantomSpec(volume_ml=3, plane="axial", slice_thickness=3),
    "coronal": PhantomSpec(volume_ml=3, plane="coronal", slice_thickness=2),
    "sagittal": PhantomSpec(volume_ml=3, plane="sagittal", slice_thickness=4),
    "single-oblique": PhantomSpec(volume_ml=3, plane="coronal", tilt_deg=(17.0, 0.0), slice_thickness=3),
    "double-oblique-gap": PhantomSpec(volume_ml=3, plane="oblique", tilt_deg=(23.0, -14.0),
                                      slice_thickness=3, slice_gap=1.5, pixel_spacing=(0.7, 0.9)),
    "sagittal-gap-anisotropic": PhantomSpec(volume_ml=3, plane="sagittal", tilt_deg=(0.0, 9.0),
                                            slice_thickness=4, slice_gap=0.8, pixel_spacing=(0.6, 1.1)),
    "thick-6mm": PhantomSpec(volume_ml=8, shape="multifocal", slice_thickness=6, pixel_spacing=(1.3, 1.3)),
}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_dicom_phantom_loads_with_its_geometry(name, tmp_path):
    import pydicom

    from volumetry.io.dicom import load_dicom

    spec = GEOMETRIES[name]
    ph = make_lesion_phantom(spec, seed=21)
    paths = write_phantom(ph, tmp_path, image_format="dicom")
    vol = load_dicom(paths["image"])
    assert vol.size == ph.image.size
    assert np.abs(np.subtract(vol.origin, ph.image.origin)).max() < GEOMETRY_TOL
    assert np.abs(np.subtract(vol.spacing, ph.image.spacing)).max() < GEOMETRY_TOL
    assert np.abs(vol.direction - ph.image.direction).max() < GEOMETRY_TOL
    assert np.array_equal(vol.array, ph.image.array)
    # the written slice thickness is the acquired one, the spacing the slice pitch
    ds = pydicom.dcmread(sorted(paths["image"].glob("*.dcm"))[0])
    assert float(ds.SliceThickness) == pytest.approx(spec.slice_thickness)
    assert float(ds.SpacingBetweenSlices) == pytest.approx(spec.slice_spacing)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([spec.pixel_spacing[1], spec.pixel_spacing[0]])
    # the truth mask written with it is on the same grid
    from volumetry.io.nifti import read_nifti
    vol.require_same_grid(read_nifti(paths["mask"]))


def test_written_tags_are_an_mr_export(tmp_path, monkeypatch):
    import pydicom
    import pydicom.config

    # every value must be valid for its VR, on writing and on reading
    monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode", pydicom.config.RAISE)
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode", pydicom.config.RAISE)
    ph = make_lesion_phantom(PhantomSpec(volume_ml=2, plane="oblique", tilt_deg=(21.3, -13.7), slice_thickness=3),
                             seed=2)
    info = SeriesInfo(patient_name="PHANTOM^007", patient_id="PH007", study_date="20240305",
                      series_description="T2 FS AX", series_number=4, uid_seed="t")
    files = write_dicom_series(ph.image, tmp_path / "s", info)
    assert [f.name for f in files][:2] == ["IM0001.dcm", "IM0002.dcm"]
    dss = [pydicom.dcmread(f) for f in files]
    assert all(len(list(d.iterall())) > 60 for d in dss)  # read back (validated) in full
    ds = dss[0]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert str(ds.PatientName) == "PHANTOM^007" and ds.PatientID == "PH007"
    assert ds.StudyDate == ds.SeriesDate == "20240305" and ds.SeriesDescription == "T2 FS AX"
    assert ds.Modality == "MR" and ds.ScanOptions == "FS" and ds.SeriesNumber == 4
    assert ds.PixelRepresentation == 1 and ds.BitsStored == 16
    assert float(ds.RescaleSlope) == 1 and float(ds.RescaleIntercept) == 0
    assert len({d.SOPInstanceUID for d in dss}) == len(dss)
    assert len({(d.StudyInstanceUID, d.SeriesInstanceUID, d.FrameOfReferenceUID) for d in dss}) == 1
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert uid.startswith("2.25.") and len(uid) <= 64 and uid.is_valid
    assert [d.InstanceNumber for d in dss] == list(range(1, len(dss) + 1))
    assert derived_uid("t", "series", 4) == ds.SeriesInstanceUID


def test_rescale_and_unsigned_storage(tmp_path):
    from volumetry.io.dicom import load_dicom

    rng = np.random.default_rng(0)
    base = Volume(np.zeros((3, 8, 10)), (0.8, 0.9, 2.0), (10.0, -5.0, 3.0), np.eye(3))
    real = base.with_array(rng.uniform(-3.5, 7.25, base.array.shape))  # not integers -> a slope
    write_dicom_series(real, tmp_path / "f")
    back = load_dicom(tmp_path / "f")
    slope = (7.25 + 3.5) / 65535
    assert np.abs(back.array - real.array).max() <= slope  # one quantisation step
    big = base.with_array(rng.integers(0, 60000, base.array.shape).astype(np.uint16))
    write_dicom_series(big, tmp_path / "u")
    import pydicom
    assert pydicom.dcmread(tmp_path / "u" / "IM0001.dcm").PixelRepresentation == 0
    assert np.array_equal(load_dicom(tmp_path / "u").array, big.array)


def test_left_handed_grid_is_refused(tmp_path):
    from volumetry.errors import InputError

    vol = Volume(np.zeros((2, 4, 4), np.int16), (1, 1, 1), (0, 0, 0), np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(InputError, match="left-handed"):
        write_dicom_series(vol, tmp_path)


def test_same_seed_same_files_other_seed_other_noise(tmp_path):
    spec = PhantomSpec(shape="septated", volume_ml=4, plane="oblique", tilt_deg=(12.0, -7.0), slice_thickness=2)
    for run in ("a", "b"):
        ph = make_lesion_phantom(spec, seed=5)
        write_phantom(ph, tmp_path / run / "dicom", image_format="dicom")
        write_phantom(ph, tmp_path / run / "nifti", image_format="nifti")
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(a) > 10 and a == b
    one, other = make_lesion_phantom(spec, seed=5), make_lesion_phantom(spec, seed=6)
    assert one.image.array.shape != other.image.array.shape or \
        (one.image.array != other.image.array).mean() > 0.5
    # the noise alone differs too: same shape and grid, another noise seed
    from volumetry.phantoms.lesion import make_foci, grid_for
    from volumetry.phantoms.mri import Anatomy, Scene, render, rng_for
    foci = make_foci(spec, 5)
    scene = Scene(Anatomy.around(foci, seed=5), tuple(foci))
    grid = grid_for(foci, spec, rng_for(5, "placement"))
    r1, r2 = render(scene, grid, seed=1), render(scene, grid, seed=2)
    assert np.array_equal(r1.labels, r2.labels)
    assert (r1.image != r2.image).mean() > 0.99
    assert np.array_equal(render(scene, grid, seed=1).image, r1.image)


def test_dcm2niix_reads_the_same_grid_and_voxels(tmp_path):
    """An independent converter (dcm2niix, the bench extra) agrees with the written geometry."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("dcm2niix") or shutil.which("dcm2niix", path=str(Path(sys.executable).parent))
    if not exe:
        pytest.skip("dcm2niix is not installed (pip install '.[bench]')")
    from volumetry.io.nifti import read_nifti

    ph = make_lesion_phantom(GEOMETRIES["double-oblique-gap"], seed=8)
    paths = write_phantom(ph, tmp_path / "p", image_format="dicom")
    out = tmp_path / "conv"
    out.mkdir()
    subprocess.run([exe, "-z", "n", "-b", "n", "-o", str(out), str(paths["image"])], check=True,
                   capture_output=True)
    conv = read_nifti(next(out.glob("*.nii")))
    # same voxel centres (dcm2niix may order the axes differently) and same values at them
    nk, nj, ni = conv.array.shape
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    lps = conv.index_to_lps(np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float))
    idx = ph.image.lps_to_index(lps)
    assert np.abs(idx - np.rint(idx)).max() < 1e-3
    i, j, k = np.rint(idx).astype(int).T
    assert np.array_equal(ph.image.array[k, j, i], conv.array.reshape(-1))
