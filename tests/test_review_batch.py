"""Adversarial inputs to the batch path found in review: each is refused before any scan
runs (exit 2, an error naming the file, the line and the column), instead of failing the
whole run after every scan was computed."""
from __future__ import annotations

from pathlib import Path

import pytest

from volumetry.cli import main
from volumetry.errors import ManifestError
from volumetry.manifest import read_manifest

HEADER = "subject_id,visit,course,scan_date,image,lesion_id,seed_x,seed_y,seed_z"


def write_manifest(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join((HEADER, *rows)) + "\n")
    return path


def test_two_baseline_visits_of_one_subject_are_a_manifest_error(tmp_path):
    path = write_manifest(tmp_path, "S1,baseline,0,2024-01-01,a.nii.gz,1,1,2,3",
                          "S1,rebase,0,2024-01-03,b.nii.gz,1,1,2,3",
                          "S1,w12,1,2024-03-25,c.nii.gz,1,,,")
    with pytest.raises(ManifestError, match=r"manifest.csv line 3, column 'course': subject 'S1' has course 0 "
                                            r"\(baseline\) on visit 'rebase' here and on visit 'baseline' on line 2"):
        read_manifest(path)


@pytest.mark.parametrize("column, second", [("scan_date", "S1,baseline,0,2024-01-09,a.nii.gz,2,1,2,3"),
                                            ("course", "S1,baseline,,2024-01-01,a.nii.gz,2,1,2,3")])
def test_a_visit_whose_lesion_rows_disagree_is_a_manifest_error(tmp_path, column, second):
    path = write_manifest(tmp_path, "S1,baseline,0,2024-01-01,a.nii.gz,1,1,2,3", second)
    with pytest.raises(ManifestError, match=rf"line 3, column '{column}': subject 'S1' visit 'baseline' has "
                                            rf"{column} .* here but .* on line 2"):
        read_manifest(path)


def test_lesions_of_one_visit_with_the_same_date_and_course_are_fine(tmp_path):
    path = write_manifest(tmp_path, "S1,baseline,0,2024-01-01,a.nii.gz,1,1,2,3",
                          "S1,baseline,0,2024-01-01,a.nii.gz,2,4,5,6",
                          "S2,baseline,0,2024-01-01,a.nii.gz,1,1,2,3")
    assert [r.key for r in read_manifest(path).rows] == [("S1", "baseline", "1"), ("S1", "baseline", "2"),
                                                         ("S2", "baseline", "1")]


def test_course_beyond_max_courses_fails_before_any_scan(tmp_path, capsys):
    # the images do not even exist: the error must come before any scan is planned
    write_manifest(tmp_path, "S1,baseline,0,2024-01-01,a.nii.gz,1,1,2,3", "S1,c9,9,,b.nii.gz,1,,,")
    out = tmp_path / "out"
    assert main(["run", str(tmp_path), "--out", str(out), "--jobs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "manifest.csv line 3, column 'course': course 9 is more than the pipeline's courses.max_courses (4" in err
    assert not (out / "results.sqlite").exists()


@pytest.mark.parametrize("below", ["", "sub"])
def test_out_on_an_existing_file_is_a_clear_error(tmp_path, capsys, below):
    write_manifest(tmp_path, "S1,baseline,0,2024-01-01,a.nii.gz,1,1,2,3")
    afile = tmp_path / "results.txt"
    afile.write_text("keep me\n")
    out = afile / below if below else afile
    assert main(["run", str(tmp_path), "--out", str(out), "--jobs", "1", "--no-progress"]) == 2
    assert (f"output folder {out} cannot be made: it, or a folder above it, is a file; give --out a new or "
            "existing folder") in capsys.readouterr().err
    assert afile.read_text() == "keep me\n"


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, capsys):
    import fcntl

    from volumetry.pipeline.runner import LOCK_NAME

    write_manifest(tmp_path, "S1,baseline,0,2024-01-01,a.nii.gz,1,1,2,3")
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_NAME, "a+") as held:  # what a running 'volumetry run' holds
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["run", str(tmp_path), "--out", str(out), "--jobs", "1", "--no-progress"]) == 2
        assert f"output folder {out} is in use by another 'volumetry run'" in capsys.readouterr().err
        assert not (out / "results.sqlite").exists()
    # released: the run goes ahead (its scan fails: the image does not exist)
    assert main(["run", str(tmp_path), "--out", str(out), "--jobs", "1", "--no-progress"]) == 1
    assert "column 'image'" in capsys.readouterr().err
