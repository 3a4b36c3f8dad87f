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
