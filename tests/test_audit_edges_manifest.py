"""Audit of the command line's edges: manifest cells and lines that used to be misread or
misreported."""
from __future__ import annotations

from pathlib import Path

import pytest


# ------------------------------------------------------------------ manifest
HEADER = "subject_id,visit,course,scan_date,image,lesion_id,seed_x,seed_y,seed_z"


def _manifest(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_repeated_header_line_is_named_as_such(tmp_path):
    """Two manifests pasted together: the second header is not 'a course that is not a number'."""
    from volumetry.errors import ManifestError
    from volumetry.manifest import read_manifest

    path = _manifest(tmp_path, HEADER, "S1,baseline,0,2024-01-01,a.nii.gz,1,1,2,3", " " + HEADER.replace(",", " , "),
                     "S2,baseline,0,2024-01-01,b.nii.gz,1,1,2,3")
    with pytest.raises(ManifestError) as exc:
        read_manifest(path)
    assert str(exc.value) == (f"{path} line 3: this line repeats the header of line 1 (two manifests pasted "
                              "together?); delete it")


@pytest.mark.parametrize("cell", ["2024-W03", "2024W031", "2024-W03-1"])
def test_an_iso_week_is_not_taken_for_a_scan_date(tmp_path, cell):
    """Python reads '2024-W03' as Monday 2024-01-15: a date moved by up to 6 days, silently."""
    from volumetry.errors import ManifestError
    from volumetry.manifest import read_manifest

    path = _manifest(tmp_path, HEADER, f"S1,baseline,0,{cell},a.nii.gz,1,1,2,3")
    with pytest.raises(ManifestError, match=rf"line 2, column 'scan_date': '{cell}' is not an ISO date YYYY-MM-DD"):
        read_manifest(path)
    assert read_manifest(_manifest(tmp_path, HEADER, "S1,baseline,0,2024-01-15,a.nii.gz,1,1,2,3")).rows[0].scan_date \
        .isoformat() == "2024-01-15"


@pytest.mark.parametrize("rows, what", [
    (("S01,baseline,0,2024-01-01,a.nii.gz,1,1,2,3", "s01,baseline,0,2024-01-01,b.nii.gz,1,1,2,3"),
     "subject 's01' and subject 'S01' of line 2"),
    (("S01,baseline,0,2024-01-01,a.nii.gz,1,1,2,3", "S01,Baseline,1,2024-04-01,b.nii.gz,1,,,"),
     "visit 'Baseline' and visit 'baseline' of line 2"),
    (("S01,baseline,0,2024-01-01,a.nii.gz,L1,1,2,3", "S01,baseline,0,2024-01-01,a.nii.gz,l1,4,5,6"),
     "lesion 'l1' and lesion 'L1' of line 2"),
])
def test_names_that_differ_only_in_letter_case_are_refused(tmp_path, rows, what):
    """sub-S01 and sub-s01 (or ses-baseline and ses-Baseline) are one folder on a macOS or Windows
    disk: the second subject's masks would overwrite the first's."""
    from volumetry.errors import ManifestError
    from volumetry.manifest import read_manifest

    path = _manifest(tmp_path, HEADER, *rows)
    with pytest.raises(ManifestError) as exc:
        read_manifest(path)
    assert str(exc.value) == (f"{path} line 3: {what} differ only in letter case, and their output files would be "
                              "one file on a macOS or Windows disk; spell them the same way, or make them differ "
                              "in more than case")
