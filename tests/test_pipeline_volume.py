"""The manifest's ``volume`` column: one volume of a multi-volume DICOM series (dual echo,
dynamics) or of a 4D NIfTI is measured, the right one (its known lesion volume), it is part
of the cache key, a propagated follow-up re-reads the same baseline volume, and an index out
of range fails that scan only with the list of the volumes."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from dicom_factory import write_series
from test_pipeline import LESION_CENTRE, SPACING, make_image, tiny_config, voxel_rows
from volumetry.pipeline import run_study
from volumetry.store import ResultStore

#: visit -> radii (mm) of the lesion in each volume (echo) of the series, patient shift (mm)
DUAL = {"baseline": ([(9, 7, 7), (6, 5, 5)], (0, 0, 0)),
        "w12": ([(8, 7, 6), (5, 4, 4)], (2, -2, 0))}
#: radii of the lesion in the 3 volumes of the 4D NIfTI
FOUR_D = [(9, 8, 7), (5, 5, 5), (7, 6, 8)]


def _ml(lesion: np.ndarray) -> float:
    return float(lesion.sum() * np.prod(SPACING) / 1000)


def _write_dual_echo(folder, radii_per_volume, shift, seed) -> list[float]:
    """One classic DICOM series holding len(radii_per_volume) volumes (temporal positions)."""
    truth = []
    series_uid = f"1.2.826.0.1.3680043.10.1453.77.{seed}"
    study_uid = f"1.2.826.0.1.3680043.10.1453.78.{seed}"
    for v, radii in enumerate(radii_per_volume):
        img, lesion = make_image(radii, shift, seed=seed + v)
        arr = np.round(img.array).astype(np.int16)
        write_series(folder, arr, pixel_spacing=(SPACING[1], SPACING[0]), slice_step=SPACING[2],
                     series_uid=series_uid, study_uid=study_uid, temporal_position=v + 1,
                     name_prefix=f"v{v}_", instance_offset=v * arr.shape[0], description="T2 FS dual echo")
        truth.append(_ml(lesion))
    _add_type2_attributes(folder)
    return truth


def _add_type2_attributes(folder) -> None:
    """The patient/study attributes a scanner always writes (type 2: present, maybe empty),
    which a DICOM SEG copies from its source."""
    import pydicom

    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        for name in ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyTime",
                     "ReferringPhysicianName"):
            if name not in ds:
                setattr(ds, name, "")
        ds.save_as(f, enforce_file_format=True)


def _write_4d(path, radii_per_volume, seed) -> list[float]:
    import nibabel as nib

    from volumetry.io.nifti import write_nifti

    truth, data = [], []
    for v, radii in enumerate(radii_per_volume):
        img, lesion = make_image(radii, (0, 0, 0), seed=seed + v)
        data.append(img.array.transpose(2, 1, 0))  # [k, j, i] -> nibabel's [i, j, k]
        truth.append(_ml(lesion))
    write_nifti(img, path)  # a 3D file for its header (the LPS -> RAS affine), then 4D data in it
    ref = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.stack(data, axis=-1).astype(np.float32), ref.affine, ref.header), str(path))
    return truth


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("volumes") / "study"
    truth = {}
    for n, (visit, (radii, shift)) in enumerate(DUAL.items()):
        truth[("D1", visit)] = _write_dual_echo(root / "D1" / visit, radii, shift, seed=300 + 10 * n)
    truth[("N1", "baseline")] = _write_4d(root / "N1" / "baseline.nii.gz", FOUR_D, seed=400)
    seed = ",".join(f"{c:g}" for c in LESION_CENTRE)
    (root / "manifest.csv").write_text(
        "subject_id,visit,course,scan_date,image,volume,seed_x,seed_y,seed_z\n"
        f"D1,baseline,0,2024-01-15,D1/baseline,1,{seed}\n"
        "D1,w12,1,2024-04-08,D1/w12,1,,,\n"
        f"N1,baseline,0,2024-01-20,N1/baseline.nii.gz,2,{seed}\n")
    return root, truth


@pytest.fixture(scope="module")
def first(study, tmp_path_factory):
    root, _ = study
    return run_study(root, tiny_config(masks=False, seg=False), tmp_path_factory.mktemp("vol-out") / "out",
                     jobs=1, progress=False)


def test_the_chosen_volume_is_measured(study, first):
    _, truth = study
    assert first.ok, [f.line() for f in first.failures]
    v = voxel_rows(first.table)
    # each volume's lesion differs from the others' by more than 30 %: within 3 % is the chosen one
    np.testing.assert_allclose(v.loc[("D1", "baseline"), "volume_ml"], truth[("D1", "baseline")][1], rtol=0.03)
    np.testing.assert_allclose(v.loc[("N1", "baseline"), "volume_ml"], truth[("N1", "baseline")][2], rtol=0.03)
    # the follow-up is propagated from the baseline's echo 1 (a re-read without the volume would fail:
    # the series holds two) and measured on its own echo 1
    np.testing.assert_allclose(v.loc[("D1", "w12"), "volume_ml"], truth[("D1", "w12")][1], rtol=0.03)
    assert "propagated" in v.loc[("D1", "w12"), "flags"]
    # provenance: the volume read is in the measurement's data
    with ResultStore(first.out_dir / "results.sqlite") as st:
        keys = {(r["subject_id"], r["visit"]): r["task_key"] for r in st.scans()}
        images = {k: st.measurement(key)["data"]["image"] for k, key in keys.items()}
    assert {k: images[k]["volume_index"] for k in images} == {
        ("D1", "baseline"): 1, ("D1", "w12"): 1, ("N1", "baseline"): 2}


def test_another_volume_is_another_result(study, first, tmp_path):
    # the study moved to another folder (nothing recomputed for that) and one row's volume changed:
    # only that scan is recomputed
    root, truth = study
    moved = tmp_path / "study"
    shutil.copytree(root, moved)
    out = tmp_path / "out"
    shutil.copytree(first.out_dir, out)
    text = (moved / "manifest.csv").read_text()
    (moved / "manifest.csv").write_text(text.replace("N1/baseline.nii.gz,2,", "N1/baseline.nii.gz,0,"))
    s = run_study(moved, tiny_config(masks=False, seg=False), out, jobs=1, progress=False)
    assert s.ok and s.computed == [("N1", "baseline", "1")]
    np.testing.assert_allclose(voxel_rows(s.table).loc[("N1", "baseline"), "volume_ml"],
                               truth[("N1", "baseline")][0], rtol=0.03)


def test_volume_out_of_range_fails_that_scan_with_the_list(study, tmp_path):
    root, _ = study
    moved = tmp_path / "study"
    shutil.copytree(root, moved)
    text = (moved / "manifest.csv").read_text()
    (moved / "manifest.csv").write_text(text.replace("D1/w12,1,", "D1/w12,5,").replace(
        "N1/baseline.nii.gz,2,", "N1/baseline.nii.gz,3,"))
    s = run_study(moved, tiny_config(masks=False, seg=False, summary=False), tmp_path / "out", jobs=1,
                  progress=False)
    failed = {(f.subject_id, f.visit): f for f in s.failures}
    assert set(failed) == {("D1", "w12"), ("N1", "baseline")}
    d = failed[("D1", "w12")]
    assert d.stage == "load" and "manifest.csv line 3" in d.message
    assert "holds 2 volumes" in d.message and "0: temporal position 1" in d.message
    assert "column 'volume'" in d.message
    n = failed[("N1", "baseline")]
    assert "volume 3 requested but the file has volumes 0..2" in n.message and "column 'volume'" in n.message
    assert voxel_rows(s.table).loc[("D1", "baseline"), "status"] == "ok"


def test_worker_image_cache_keeps_volumes_apart(study):
    from volumetry.io.reader import read_image
    from volumetry.pipeline.tasks import ImageRef, hash_image_input, load_image

    root, _ = study
    folder = root / "D1" / "baseline"
    refs = [ImageRef(str(folder), None, hash_image_input(folder), None, v) for v in (0, 1)]
    first = [load_image(r) for r in refs]
    again = [load_image(r) for r in reversed(refs)][::-1]  # both from the cache now
    for v in (0, 1):
        truth = read_image(folder, volume_index=v).array
        np.testing.assert_array_equal(first[v].array, truth)
        np.testing.assert_array_equal(again[v].array, truth)
    assert not np.array_equal(first[0].array, first[1].array)


def test_dicom_tree_takes_the_volume_of_the_series_rule(study, tmp_path):
    from volumetry.config import validate_pipeline

    root, truth = study
    tree = tmp_path / "tree"
    shutil.copytree(root / "D1" / "baseline", tree / "study1" / "t2")
    seed = ",".join(f"{c:g}" for c in LESION_CENTRE)
    (tree / "seeds.csv").write_text(f"subject_id,seed_x,seed_y,seed_z\nSYN-001,{seed}\n")

    def cfg(**series):
        return validate_pipeline({**tiny_config(masks=False, seg=False).to_dict(), "series": series})

    s = run_study(tree, cfg(volume=1), tmp_path / "out1", jobs=1, progress=False)
    assert s.ok, [f.line() for f in s.failures]
    np.testing.assert_allclose(voxel_rows(s.table).loc[("SYN-001", "2024-01-02"), "volume_ml"],
                               truth[("D1", "baseline")][1], rtol=0.03)
    # without the key the scan fails with the list of the volumes and says how to choose one
    s = run_study(tree, cfg(), tmp_path / "out2", jobs=1, progress=False)
    (f,) = s.failures
    assert f.stage == "load" and "holds 2 volumes" in f.message and "series.volume" in f.message
    s = run_study(tree, cfg(volume=2), tmp_path / "out3", jobs=1, progress=False)
    (f,) = s.failures
    assert "volume index 2 is out of range" in f.message and "1: temporal position 2" in f.message


def test_dicom_seg_references_the_measured_volume(study, tmp_path):
    import pydicom

    root, _ = study
    s = run_study(root, tiny_config(), tmp_path / "out", jobs=1, progress=False)
    assert s.ok
    (seg_file,) = (tmp_path / "out").glob("sub-D1/ses-baseline/anat/*_desc-lesion_mask.dcm")
    seg = pydicom.dcmread(seg_file)
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    by_volume = {v: {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
                     for f in (root / "D1" / "baseline").glob(f"v{v}_*")} for v in (0, 1)}
    assert referenced == by_volume[1]
    # the files of the volume read are kept with the measurement (the SEG needs them), the
    # study's paths are withheld when pseudonymising
    with ResultStore(tmp_path / "out" / "results.sqlite") as st:
        key = {(r["subject_id"], r["visit"]): r["task_key"] for r in st.scans()}[("D1", "baseline")]
        files = st.measurement(key)["data"]["image"]["files"]
    assert sorted(files) == sorted(str(f) for f in (root / "D1" / "baseline").glob("v1_*"))
    s = run_study(root, tiny_config(masks=False, seg=False, summary=False), tmp_path / "pseudo", jobs=1,
                  progress=False, pseudonymize=True)
    assert s.ok
    with ResultStore(tmp_path / "pseudo" / "results.sqlite") as st:
        images = [st.measurement(r["task_key"])["data"]["image"] for r in st.scans()]
    assert images and all("files" not in i and i["volume_index"] is not None for i in images)
