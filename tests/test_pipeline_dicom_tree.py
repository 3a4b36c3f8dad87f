"""A study folder without manifest: a DICOM tree (subjects from PatientID, visits from
StudyDate, the series by the pipeline's selection rule, the seed from seeds.csv), with a
hostile PatientID ``../../x``: nothing is written outside the output folder."""
from __future__ import annotations

import numpy as np
import pytest

from test_pipeline import LESION_CENTRE, SPACING, make_image, tiny_config, voxel_rows
from volumetry.errors import InputError
from volumetry.io.dicom_write import SeriesInfo, write_dicom_series
from volumetry.manifest import read_study
from volumetry.pipeline import run_study

RULE = {"modality": "MR", "description_regex": r"t2.*fs|stir", "prefer": "most_slices"}


def _write_tree(root, patient_id="../../x", uid_tag=""):
    truth = {}
    for n, (date, radii, shift) in enumerate([("20240115", (9, 7, 7), (0, 0, 0)),
                                              ("20240408", (7, 6, 6), (3, -2, 0))]):
        img, lesion = make_image(radii, shift, seed=50 + n)
        img = img.with_array(np.round(img.array).astype(np.int16))
        common = dict(patient_id=patient_id, study_date=date, uid_seed=f"tree{uid_tag}-{n}", study_uid=None)
        write_dicom_series(img, root / f"study{n}" / "t2fs", SeriesInfo(series_description="T2 FS COR",
                                                                        series_number=3, **common))
        write_dicom_series(img, root / f"study{n}" / "t1", SeriesInfo(series_description="T1 VIBE",
                                                                      series_number=2, **common))
        truth[f"{date[:4]}-{date[4:6]}-{date[6:]}"] = float(lesion.sum() * np.prod(SPACING) / 1000)
    (root / "seeds.csv").write_text("subject_id,seed_x,seed_y,seed_z,seed_space\n"
                                    f"{patient_id},{LESION_CENTRE[0]},{LESION_CENTRE[1]},{LESION_CENTRE[2]},lps\n")
    return truth


def test_dicom_tree_study_with_hostile_patient_id(tmp_path):
    tree = tmp_path / "deep" / "er" / "tree"
    truth = _write_tree(tree)
    study = read_study(tree, RULE)
    assert [(r.subject_id, r.visit) for r in study.rows] == [("../../x", "2024-01-15"), ("../../x", "2024-04-08")]
    assert all(len(r.files) == 16 and "t2fs" in str(r.image) for r in study.rows)
    assert study.rows[0].seed is not None and study.rows[1].propagate_from == 0

    out = tmp_path / "deep" / "er" / "out"
    before = set(tmp_path.rglob("*"))
    s = run_study(tree, tiny_config(), out, jobs=1, progress=False)
    assert s.ok, [f.line() for f in s.failures]
    created = set(tmp_path.rglob("*")) - before
    assert created and all(p == out or out in p.parents for p in created)
    v = voxel_rows(s.table)
    for visit, true_ml in truth.items():
        assert v.loc[("../../x", visit), "volume_ml"] == pytest.approx(true_ml, rel=0.03)
        assert v.loc[("../../x", visit), "series_uid"]
    subs = [p.name for p in out.glob("sub-*")]
    assert len(subs) == 1 and subs[0][4:].isalnum()
    assert len(list(out.rglob("*_desc-lesion_mask.nii.gz"))) == 2
    import pydicom

    segs = sorted(out.rglob("*_desc-lesion_mask.dcm"))
    assert len(segs) == 2
    ds = pydicom.dcmread(segs[0], stop_before_pixels=True)
    # only the identifier the outputs carry (the source's PatientName is PHANTOM^001)
    assert ds.PatientID == "../../x" and str(ds.PatientName) == "../../x" and not ds.PatientBirthDate


def test_dicom_tree_errors(tmp_path):
    tree = tmp_path / "tree"
    _write_tree(tree, patient_id="P1")
    with pytest.raises(InputError, match=r"no series matches the pipeline's series rule .*T1 VIBE"):
        read_study(tree, {**RULE, "description_regex": "stir"})
    (tree / "seeds.csv").unlink()
    with pytest.raises(InputError, match="needs the side file seeds.csv"):
        read_study(tree, RULE)


def test_dicom_tree_seg_and_pseudonyms(tmp_path, monkeypatch):
    """Masks made on DICOM series also get a DICOM SEG; with --pseudonymize neither the
    file names nor any file's bytes (SEG, tables, database) carry the PatientID."""
    from volumetry.io.reader import read_image
    from volumetry.io.seg import read_seg
    from volumetry.pseudonym import KEY_ENV, Pseudonymizer

    monkeypatch.setenv(KEY_ENV, "k")
    tree = tmp_path / "tree"
    _write_tree(tree, patient_id="SECRET42")
    out = tmp_path / "out"
    s = run_study(tree, tiny_config(), out, jobs=1, progress=False, pseudonymize=True)
    assert s.ok
    pid = Pseudonymizer(b"k")("SECRET42")
    segs = sorted(out.rglob("*_desc-lesion_mask.dcm"))
    assert len(segs) == 2 and all(f"sub-{pid}" in str(p) for p in segs)
    for seg in segs:
        nii = read_image(seg.with_name(seg.name.replace(".dcm", ".nii.gz")))
        back = read_seg(seg, nii)
        assert np.array_equal(back.array.astype(bool), nii.array.astype(bool))
        import pydicom

        ds = pydicom.dcmread(seg, stop_before_pixels=True)
        assert ds.PatientID == pid and str(ds.PatientName) == pid
    for f in out.rglob("*"):
        assert "SECRET42" not in str(f)
        if f.is_file():
            assert b"SECRET42" not in f.read_bytes(), f


def test_manifest_dicom_folder_with_several_series_uses_the_series_rule(tmp_path):
    """A manifest row pointing at a DICOM folder with a T1 and a T2 FS series and no
    series_uid: the pipeline's series rule picks the T2 FS; a rule matching nothing is
    a failure of that scan listing the series found."""
    from volumetry.config import validate_pipeline

    study = tmp_path / "study"
    img, lesion = make_image((9, 7, 7), (0, 0, 0), seed=5)
    img = img.with_array(np.round(img.array).astype(np.int16))
    t1 = img.with_array((img.array // 3).astype(np.int16))  # another contrast: the lesion is dimmer
    info = dict(patient_id="P1", study_date="20240115", uid_seed="mixed")
    write_dicom_series(t1, study / "P1" / "dicom" / "s2", SeriesInfo(series_description="T1 VIBE", series_number=2, **info))
    write_dicom_series(img, study / "P1" / "dicom" / "s3", SeriesInfo(series_description="T2 FS COR", series_number=3, **info))
    (study / "manifest.csv").write_text(
        "subject_id,visit,image,seed_x,seed_y,seed_z,seed_space\n"
        f"P1,baseline,P1/dicom,{LESION_CENTRE[0]},{LESION_CENTRE[1]},{LESION_CENTRE[2]},lps\n")
    cfg = validate_pipeline({**tiny_config().to_dict(), "series": RULE})
    s = run_study(study, cfg, tmp_path / "out", jobs=1, progress=False)
    assert s.ok, [f.line() for f in s.failures]
    assert len(list((tmp_path / "out").rglob("*_desc-lesion_mask.dcm"))) == 1
    v = voxel_rows(s.table).loc[("P1", "baseline")]
    assert v["volume_ml"] == pytest.approx(lesion.sum() * np.prod(SPACING) / 1000, rel=0.03)
    t2_uid = read_study(study).rows[0]  # the manifest gives no series_uid ...
    assert t2_uid.series_uid is None
    from volumetry.io.dicom import index_dicom

    t2 = [st for st in index_dicom(study / "P1" / "dicom") if st.description == "T2 FS COR"][0]
    assert v["series_uid"] == t2.series_uid  # ... the rule chose the T2 FS
    strict = validate_pipeline({**cfg.to_dict(), "series": {**RULE, "description_regex": "stir"}})
    s2 = run_study(study, strict, tmp_path / "out2", jobs=1, progress=False)
    assert [f.stage for f in s2.failures] == ["load"]
    assert "none matches the pipeline's series rule" in s2.failures[0].message
    assert "T1 VIBE" in s2.failures[0].message and "T2 FS COR" in s2.failures[0].message


@pytest.mark.parametrize("row, match", [
    ("P2,,1,2,3", r"seeds\.csv line 3, column 'subject_id': PatientID 'P2' is not in the tree \(PatientIDs found: P1\)"),
    ("P1,20240116,1,2,3", r"seeds\.csv line 3, column 'visit': P1 has no study on 2024-01-16 "
                          r"\(StudyDates found: 2024-01-15, 2024-04-08\)"),
])
def test_side_file_rows_that_match_no_study_are_errors(tmp_path, row, match):
    # a typo in seeds.csv must not silently drop a seed
    from volumetry.errors import ManifestError

    tree = tmp_path / "tree"
    _write_tree(tree, patient_id="P1")
    text = (tree / "seeds.csv").read_text().splitlines()
    header = "subject_id,visit,seed_x,seed_y,seed_z"
    (tree / "seeds.csv").write_text("\n".join([header, "P1,," + ",".join(text[1].split(",")[1:4]), row]) + "\n")
    with pytest.raises(ManifestError, match=match):
        read_study(tree, RULE)


def test_dicom_tree_patient_ids_differing_only_in_case_are_refused(tmp_path):
    # sub-ab12 and sub-AB12 would be one mask folder on a macOS or Windows disk
    from volumetry.errors import ManifestError

    tree = tmp_path / "tree"
    _write_tree(tree / "one", patient_id="ab12")
    _write_tree(tree / "two", patient_id="AB12", uid_tag="two")
    (tree / "seeds.csv").write_text((tree / "one" / "seeds.csv").read_text()
                                    + (tree / "two" / "seeds.csv").read_text().splitlines()[1] + "\n")
    (tree / "one" / "seeds.csv").unlink()
    (tree / "two" / "seeds.csv").unlink()
    with pytest.raises(ManifestError, match=r"PatientID 'ab12' and PatientID 'AB12' .* differ only in letter case"):
        read_study(tree, RULE)
    # ids that differ in more than case are two subjects
    (tree / "seeds.csv").write_text((tree / "seeds.csv").read_text().replace("AB12", "AB13"))
    _write_tree(tree / "two", patient_id="AB13", uid_tag="two")
    (tree / "two" / "seeds.csv").unlink()
    assert {r.subject_id for r in read_study(tree, RULE).rows} == {"ab12", "AB13"}
