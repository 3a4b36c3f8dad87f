"""Numbers of the manifest are read as written: Python's int()/float() accept '1_0' as 10
(PEP 515 digit separators), which in a manifest is a typo that would move a seed or change a
course silently."""
from __future__ import annotations

import pytest

from volumetry.errors import ManifestError
from volumetry.manifest import read_manifest


def _write(tmp_path, header: str, row: str):
    p = tmp_path / "manifest.csv"
    p.write_text(f"{header}\n{row}\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("cells, column", [
    ("1_0,20,30", "seed_x"),
    ("10,2_0,30", "seed_y"),
    ("10,20,3_0.5", "seed_z"),
])
def test_digit_separator_in_a_seed_is_an_error(tmp_path, cells, column):
    p = _write(tmp_path, "subject_id,visit,image,seed_x,seed_y,seed_z", f"S1,b,a.nii,{cells}")
    with pytest.raises(ManifestError, match=rf"line 2, column '{column}': '[0-9._]+' is not a number"):
        read_manifest(p)


def test_digit_separator_in_a_box_or_course_is_an_error(tmp_path):
    p = _write(tmp_path, "subject_id,visit,image,box", "S1,b,a.nii,1 2 3 4 5 6_0")
    with pytest.raises(ManifestError, match=r"line 2, column 'box': '6_0' is not a number"):
        read_manifest(p)
    p = _write(tmp_path, "subject_id,visit,image,course,seed_x,seed_y,seed_z", "S1,b,a.nii,1_0,1,2,3")
    with pytest.raises(ManifestError, match=r"line 2, column 'course': '1_0' is not a whole number"):
        read_manifest(p)


def test_plain_numbers_are_read_exactly(tmp_path):
    p = _write(tmp_path, "subject_id,visit,image,course,seed_x,seed_y,seed_z,box",
               "S1,b,a.nii,2,-1.5,2e1,+3,0 0 0 1.25 2 3")
    row = read_manifest(p).rows[0]
    assert row.course == 2 and row.seed == (-1.5, 20.0, 3.0) and row.box == (0, 0, 0, 1.25, 2, 3)


def test_follow_up_of_a_mask_only_baseline_says_the_mask_is_not_propagated(tmp_path):
    """The baseline has a mask (no seed): the message must not claim there is no mask."""
    p = tmp_path / "manifest.csv"
    p.write_text("subject_id,visit,image,mask\nS1,b,a.nii,m.nii\nS1,w12,b.nii,\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"line 3: this row has no seed, box or mask, and subject 'S1' lesion '1' "
                                            r"has no seed or box to propagate from \(line 2: a mask only, which is "
                                            r"measured as given, not propagated\); give seed_x/seed_y/seed_z \(or box\) "
                                            r"on the baseline row as well as its mask, or a mask on this row"):
        read_manifest(p)
    # with a seed next to the baseline's mask, the follow-up is propagated from that row
    p.write_text("subject_id,visit,image,mask,seed_x,seed_y,seed_z\nS1,b,a.nii,m.nii,1,2,3\nS1,w12,b.nii,,,,\n",
                 encoding="utf-8")
    rows = read_manifest(p).rows
    assert rows[1].propagate_from == 0 and rows[0].mask is not None and rows[0].seed == (1.0, 2.0, 3.0)
