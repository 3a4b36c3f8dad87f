"""Manifest CSV: columns, values, errors naming file/line/column, seed propagation links;
safe output names; pseudonyms."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from volumetry.errors import InputError, ManifestError
from volumetry.manifest import read_manifest, read_study, select_series
from volumetry.paths import safe_filename, safe_join, safe_label
from volumetry.pseudonym import KEY_ENV, KEY_FILE, Pseudonymizer, load_key

HEADER = "subject_id,visit,course,scan_date,image,lesion_id,seed_x,seed_y,seed_z,seed_space\n"


def _manifest(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    p = tmp_path / "manifest.csv"
    p.write_text(header + body)
    return p


def test_rows_paths_and_propagation_links(tmp_path):
    p = _manifest(tmp_path, (
        "S01,w12,1,2024-04-08,S01/w12.nii.gz,1,,,,\n"
        "S01,baseline,0,2024-01-15,S01/base.nii.gz,1,10.5,-3,22,LPS\n"
        "S01,baseline,0,2024-01-15,S01/base.nii.gz,2,1,2,3,voxel\n"
        "S01,w24,2,2024-07-01,S01/w24.nii.gz,2,,,,\n"
    ))
    study = read_study(tmp_path)
    assert study.source == p.resolve()
    r = study.rows
    assert [x.key for x in r] == [("S01", "w12", "1"), ("S01", "baseline", "1"), ("S01", "baseline", "2"),
                                 ("S01", "w24", "2")]
    assert r[0].image == tmp_path.resolve() / "S01" / "w12.nii.gz"
    assert r[1].seed == (10.5, -3.0, 22.0) and r[1].seed_space == "lps" and r[1].propagate_from is None
    assert r[0].propagate_from == 1 and r[3].propagate_from == 2
    assert r[3].seed_space == "voxel"
    assert r[0].course == 1 and r[0].scan_date == dt.date(2024, 4, 8)
    assert "manifest.csv line 2" in r[0].where


def test_optional_columns(tmp_path):
    _manifest(tmp_path, "A,v1,a.nii,\"1 2 3 4 5 6\",m.nii.gz,1.2.3\nA,v2,b.nii,,m2.nii.gz,\n",
              header="subject_id,visit,image,box,mask,series_uid\n")
    r = read_manifest(tmp_path / "manifest.csv").rows
    assert r[0].box == (1, 2, 3, 4, 5, 6) and r[0].lesion_id == "1" and r[0].series_uid == "1.2.3"
    assert r[0].mask == tmp_path.resolve() / "m.nii.gz" and r[1].propagate_from is None


@pytest.mark.parametrize("header, body, match", [
    ("subject_id,visit\n", "a,b\n", r"manifest\.csv line 1: missing required column\(s\) image"),
    ("subject_id,visit,image,seed_X\n", "a,b,c,1\n", r"line 1, column 'seed_X': unknown column\. Did you mean 'seed_x'"),
    (HEADER, "S1,b,0,2024-01-01,i.nii,1,1,2,,\n", r"line 2, column 'seed_z': a seed needs all of"),
    (HEADER, "S1,b,0,2024-01-01,i.nii,1,1,zwei,3,lps\n", r"line 2, column 'seed_y': 'zwei' is not a number"),
    (HEADER, "S1,b,0,01/02/2024,i.nii,1,1,2,3,lps\n", r"line 2, column 'scan_date': '01/02/2024' is not an ISO date"),
    (HEADER, "S1,b,x,2024-01-01,i.nii,1,1,2,3,lps\n", r"line 2, column 'course': 'x' is not a whole number"),
    (HEADER, "S1,b,0,2024-01-01,i.nii,1,1,2,3,mni\n", r"line 2, column 'seed_space': 'mni' is not one of"),
    (HEADER, "S1,b,0,2024-01-01,,1,1,2,3,lps\n", r"line 2, column 'image': empty"),
    (HEADER, "S1,b,0,2024-01-01,i.nii,1,1,2,3,lps\nS1,b,0,2024-01-01,j.nii,1,1,2,3,lps\n",
     r"line 3: subject 'S1' visit 'b' lesion '1' is already on line 2"),
    (HEADER, "S1,b,0,2024-01-01,i.nii,1,,,,\n", r"line 2: subject 'S1' lesion '1' has no seed, box or mask"),
    (HEADER, "S1,b,0\n", r"line 2: 3 cells but the header has 10 columns"),
    ("subject_id,visit,image,box\n", "a,b,c,1 2 3\n", r"line 2, column 'box': '1 2 3': a box is 6 numbers"),
])
def test_errors_name_file_line_column(tmp_path, header, body, match):
    _manifest(tmp_path, body, header=header)
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path / "manifest.csv")


def test_missing_files_are_not_manifest_errors(tmp_path):
    # a missing image is a failure of that scan (recorded by the runner), not of the study
    _manifest(tmp_path, "S1,b,0,2024-01-01,nope.nii.gz,1,1,2,3,lps\n")
    assert not read_manifest(tmp_path / "manifest.csv").rows[0].image.exists()


def test_study_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_study(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="no manifest.csv and no DICOM series found"):
        read_study(tmp_path, {"modality": "MR", "description_regex": ".*"})


def test_series_selection_rule():
    class S:
        def __init__(self, d, m="MR", n=10):
            self.description, self.modality, self.files = d, m, tuple(range(n))

    stacks = [S("T1 VIBE"), S("T2 FS cor", n=30), S("STIR ax", n=40), S("T2 FS cor", m="CT", n=99)]
    rule = {"modality": "MR", "description_regex": r"t2.*fs|stir", "prefer": "most_slices"}
    assert select_series(stacks, rule) is stacks[2]
    assert select_series(stacks, {**rule, "prefer": "first"}) is stacks[1]
    assert select_series(stacks, {**rule, "description_regex": "dwi"}) is None


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "..", "", "a/b", "sub-01", "01 A", "é", "x" * 200])
def test_safe_label_is_plain_and_injective(name):
    label = safe_label(name)
    assert label and label.isalnum() and label.isascii() and len(label) <= 64
    assert safe_label(name) == label
    fname = safe_filename(name)
    assert "/" not in fname and not fname.startswith(".")


def test_safe_label_keeps_plain_names_and_separates_others():
    assert safe_label("S01") == "S01"
    assert safe_label("01-A") != safe_label("01A") != safe_label("01_A")


def test_safe_join_refuses_escape(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert safe_join(out, "sub-1", "a.nii.gz") == out.resolve() / "sub-1" / "a.nii.gz"
    with pytest.raises(InputError, match="outside the output folder"):
        safe_join(out, "..", "x")
    with pytest.raises(InputError, match="absolute path"):
        safe_join(out, "/tmp/x")
    (out / "link").symlink_to(tmp_path)
    with pytest.raises(InputError, match="outside the output folder"):
        safe_join(out, "link", "x")


def test_pseudonyms_are_stable_keyed_and_key_file(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    key = load_key(tmp_path)
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o077 == 0
    assert load_key(tmp_path) == key
    p = Pseudonymizer(key)
    assert p("S01") == p("S01") != p("S02")
    assert p("S01").startswith("P") and len(p("S01")) == 17
    assert Pseudonymizer(b"other")("S01") != p("S01")
    monkeypatch.setenv(KEY_ENV, "site-secret")
    assert load_key(tmp_path) == b"site-secret"
    assert "site-secret" not in repr(Pseudonymizer(load_key(tmp_path)))
    import hashlib
    import hmac

    assert Pseudonymizer(b"k")("S01") == "P" + hmac.new(b"k", b"S01", hashlib.sha256).hexdigest()[:16]


# ------------------------------------------------------------------ CSV reading, the optional 'volume' column
def test_trailing_comma_in_header_is_named(tmp_path):
    _manifest(tmp_path, "S1,b,i.nii,\n", header="subject_id,visit,image,\n")
    with pytest.raises(ManifestError, match=r"manifest\.csv line 1: column 4 has an empty column name "
                                            r"\(trailing comma\?\)"):
        read_manifest(tmp_path / "manifest.csv")
    _manifest(tmp_path, "S1,b,,i.nii\n", header="subject_id,visit, ,image\n")
    with pytest.raises(ManifestError, match=r"line 1: column 3 has an empty column name"):
        read_manifest(tmp_path / "manifest.csv")


def test_quoted_line_break_is_kept_and_lines_stay_right(tmp_path):
    # a free column with a two-line note: the cell keeps its line break, and the rows after it
    # keep their physical line numbers in messages
    body = ('S1,b,0,2024-01-01,i.nii,1,1,2,3,lps,"first line\nsecond line"\n'
            'S1,c,1,2024-04-01,j.nii,1,,,,,plain\n')
    header = HEADER.rstrip("\n") + ",x_note\n"
    _manifest(tmp_path, body, header=header)
    rows = read_manifest(tmp_path / "manifest.csv").rows
    assert rows[0].where.endswith("manifest.csv line 2") and rows[1].where.endswith("manifest.csv line 4")
    _manifest(tmp_path, body + "S1,d,2,01/07/2024,k.nii,1,,,,,x\n", header=header)
    with pytest.raises(ManifestError, match=r"line 5, column 'scan_date'"):
        read_manifest(tmp_path / "manifest.csv")
    # an error inside the multi-line row names the line the row starts on
    _manifest(tmp_path, 'S1,b,0,2024-01-01,i.nii,1,1,zwei,3,lps,"a\nb"\n', header=header)
    with pytest.raises(ManifestError, match=r"line 2, column 'seed_y': 'zwei'"):
        read_manifest(tmp_path / "manifest.csv")


def test_windows_line_ends_and_a_line_break_in_an_identifier(tmp_path):
    p = tmp_path / "manifest.csv"
    p.write_bytes(b"subject_id,visit,image,seed_x,seed_y,seed_z\r\nS1,b,i.nii,1,2,3\r\nS2,b,j.nii,1,2,3\r\n")
    assert [r.subject_id for r in read_manifest(p).rows] == ["S1", "S2"]
    p.write_bytes(b'subject_id,visit,image,seed_x,seed_y,seed_z\nS1,"b\nc",i.nii,1,2,3\n')
    with pytest.raises(ManifestError, match=r"line 2, column 'visit': .*line break or control character"):
        read_manifest(p)


@pytest.mark.parametrize("body, match", [
    ('S1,b,"i.nii,1,2,3\nS2,b,j.nii,1,2,3\n', r"line 2: a quoted cell is never closed"),
    ('S1,b,"i"x.nii,1,2,3\n', r"line 2: badly quoted cell"),
])
def test_malformed_quotes_are_manifest_errors(tmp_path, body, match):
    _manifest(tmp_path, body, header="subject_id,visit,image,seed_x,seed_y,seed_z\n")
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path / "manifest.csv")


def test_volume_column(tmp_path):
    _manifest(tmp_path, "S1,b,dual.nii.gz,1,1,2,3\nS1,c,dual2.nii.gz,,,,\nS2,b,x.nii,0,1,2,3\n",
              header="subject_id,visit,image,volume,seed_x,seed_y,seed_z\n")
    rows = read_manifest(tmp_path / "manifest.csv").rows
    assert [r.volume for r in rows] == [1, None, 0]


@pytest.mark.parametrize("cell, match", [
    ("-1", r"line 2, column 'volume': -1 is not a volume index: give a whole number 0 or more"),
    ("1.5", r"line 2, column 'volume': '1.5' is not a volume index"),
    ("two", r"line 2, column 'volume': 'two' is not a volume index"),
])
def test_volume_column_errors(tmp_path, cell, match):
    _manifest(tmp_path, f"S1,b,dual.nii.gz,{cell},1,2,3\n", header="subject_id,visit,image,volume,seed_x,seed_y,seed_z\n")
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path / "manifest.csv")


@pytest.mark.parametrize("sep, name", [(";", "semicolons"), ("\t", "tabs")])
def test_other_separators_are_named(tmp_path, sep, name):
    # European spreadsheet exports separate with ';', "text" exports with tabs
    _manifest(tmp_path, sep.join(["S1", "b", "i.nii", "1,5", "2", "3"]) + "\n",
              header=sep.join(["subject_id", "visit", "image", "seed_x", "seed_y", "seed_z"]) + "\n")
    with pytest.raises(ManifestError, match=rf"line 1: the columns are separated by {name}, not commas; "
                                            "save the file as comma-separated CSV"):
        read_manifest(tmp_path / "manifest.csv")


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    _manifest(tmp_path, "S1,b,i.nii,1,2,3\n", header="\n\nsubject_id,visit,image,seed_x,seed_y,seed_z\n")
    (row,) = read_manifest(tmp_path / "manifest.csv").rows
    assert row.seed == (1, 2, 3) and row.where.endswith("manifest.csv line 4")
