"""Pipeline files: the shipped trial pipeline, strict validation with useful messages."""
from __future__ import annotations

import filecmp
import textwrap
from pathlib import Path

import pytest

from volumetry.config import (DEFAULT_PIPELINE_NAME, SCHEMA, find_default_pipeline, load_pipeline,
                              packaged_pipeline, validate_pipeline)
from volumetry.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TRIAL = ROOT / "pipelines" / DEFAULT_PIPELINE_NAME


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_trial_pipeline_encodes_the_trial():
    cfg = load_pipeline(TRIAL)
    assert cfg.series["modality"] == "MR"
    assert cfg.courses == {"length_weeks": 12, "max_courses": 4, "visit_window_days": 21}
    assert cfg.response["criteria"] == "vascular-anomaly"
    assert cfg.segmentation["propagate"] is True
    assert sorted(cfg.outputs["tables"]) == ["csv", "parquet"]
    import re

    rx = re.compile(cfg.series["description_regex"], re.IGNORECASE)
    for desc in ("T2 TSE FS COR", "t2_tse_fatsat_tra", "STIR cor", "T2 SPAIR ax", "t2_tirm_cor"):
        assert rx.search(desc), desc
    for desc in ("T1 VIBE", "T2 TSE cor", "DWI b800", "localizer"):
        assert not rx.search(desc), desc
    assert len(cfg.sha256) == 64


def test_packaged_copy_is_in_sync():
    assert filecmp.cmp(TRIAL, packaged_pipeline(), shallow=False), (
        "volumetry/data/ must hold a copy of pipelines/; run "
        f"cp pipelines/{DEFAULT_PIPELINE_NAME} volumetry/data/")


def test_default_pipeline_from_cwd_else_packaged(tmp_path):
    assert find_default_pipeline(ROOT) == ROOT / "pipelines" / DEFAULT_PIPELINE_NAME
    assert find_default_pipeline(tmp_path) == packaged_pipeline()


def test_unknown_key_names_it_suggests_and_lists(tmp_path):
    p = _write(tmp_path, """
        name: x
        segmentation: {method: region_growing, propagte: true}
    """)
    with pytest.raises(ConfigError, match=r"p\.yaml: key 'segmentation\.propagte' is not a valid key\. "
                                          r"Did you mean 'propagate'\?.*method, params, propagate, registration"):
        load_pipeline(p)


def test_unknown_top_level_key(tmp_path):
    p = _write(tmp_path, """
        name: x
        segmentation: {method: region_growing}
        course: {length_weeks: 12}
    """)
    with pytest.raises(ConfigError, match=r"key 'course' is not a valid key\. Did you mean 'courses'\?.*series"):
        load_pipeline(p)


@pytest.mark.parametrize("snippet, match", [
    ("courses: {max_courses: four}", r"key 'courses\.max_courses': expected integer, got str 'four'"),
    ("courses: {max_courses: true}", r"key 'courses\.max_courses': expected integer, got bool"),
    ("courses: {max_courses: 0}", r"must be at least 1"),
    ("courses: {length_weeks: -3}", r"'courses\.length_weeks': must be at least"),
    ("outputs: {tables: [csv, xlsx]}", r"'outputs\.tables': item 'xlsx' is not one of csv, parquet"),
    ("outputs: {tables: csv}", r"'outputs\.tables': expected list"),
    ("outputs: {tables: []}", r"'outputs\.tables': give at least one of csv, parquet"),
    ("outputs: {tables: [csv, csv]}", r"'outputs\.tables': item 'csv' is given twice"),
    ("series: {prefer: most-slices}", r"'series\.prefer': 'most-slices' is not one of .*Did you mean 'most_slices'"),
    ("series: {description_regex: '(t2'}", r"'series\.description_regex': not a valid regular expression"),
    ("series: [MR]", r"key 'series': expected a mapping"),
    ("courses: {length_weeks: .nan}", r"'courses\.length_weeks': must be a finite number, got nan"),
    ("courses: {visit_window_days: .inf}", r"'courses\.visit_window_days': must be a finite number, got inf"),
])
def test_wrong_types_and_values(tmp_path, snippet, match):
    p = _write(tmp_path, "name: x\nsegmentation: {method: region_growing}\n" + snippet + "\n")
    with pytest.raises(ConfigError, match=match):
        load_pipeline(p)


def test_required_keys_and_defaults(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'segmentation\.method' is required"):
        validate_pipeline({"name": "x"}, source="s.yaml")
    with pytest.raises(ConfigError, match=r"key 'name' is required"):
        validate_pipeline({"segmentation": {"method": "threshold"}}, source="s.yaml")
    cfg = validate_pipeline({"name": "x", "segmentation": {"method": "threshold"}})
    assert cfg.courses["max_courses"] == SCHEMA["courses"]["max_courses"].default
    assert cfg.outputs["tables"] == ["csv", "parquet"]


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(_write(tmp_path, "name: [x\n"))
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_pipeline(_write(tmp_path, "- a\n- b\n"))


def test_a_key_given_twice_is_an_error_not_silently_the_last(tmp_path):
    p = _write(tmp_path, "name: x\nsegmentation: {method: threshold}\nsegmentation: {method: region_growing}\n")
    with pytest.raises(ConfigError, match=r"(?s)not valid YAML.*key 'segmentation' is given twice \(first on line 2\)"):
        load_pipeline(p)
    with pytest.raises(ConfigError, match=r"key 'method' is given twice"):
        load_pipeline(_write(tmp_path, "name: x\nsegmentation:\n  method: threshold\n  method: levelset\n"))
    # merge keys ('<<: *anchor') are not duplicates
    cfg = load_pipeline(_write(tmp_path, "name: x\nsegmentation: &s {method: threshold}\n"
                                         "outputs: {<<: {summary: false}, report: false}\n"))
    assert cfg.outputs["summary"] is False and cfg.outputs["report"] is False


def test_section_hash_tracks_only_its_sections():
    a = validate_pipeline({"name": "x", "segmentation": {"method": "threshold"}})
    b = validate_pipeline({"name": "y", "segmentation": {"method": "threshold"}, "outputs": {"masks": False}})
    c = validate_pipeline({"name": "x", "segmentation": {"method": "threshold", "params": {"sigma_mm": 1.0}}})
    assert a.section_hash("segmentation") == b.section_hash("segmentation")
    assert a.section_hash("segmentation") != c.section_hash("segmentation")
    assert a.sha256 != b.sha256
