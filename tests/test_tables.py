"""Tidy table schema, CSV/Parquet writers, per-course summary with Wilson intervals."""
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from volumetry.errors import InputError
from volumetry.image import Volume
from volumetry.longitudinal import assess
from volumetry.measure import Measurement, measure
from volumetry.tables import COLUMN_NAMES, conform, course_summary, measurement_rows, read_tables, wilson_interval, write_tables

BASE = pd.Timestamp("2025-01-06")


def trial(changes_c1, *, extra=()):
    """One lesion per subject, baseline 10 mL, course 1 at the given percent changes."""
    rows = []
    for n, pct in enumerate(changes_c1):
        s = f"S{n:02d}"
        rows.append(dict(subject_id=s, lesion_id="L1", visit="baseline", scan_date=BASE, method="voxel", volume_ml=10.0))
        rows.append(dict(subject_id=s, lesion_id="L1", visit="C1", scan_date=BASE + pd.Timedelta(days=84),
                         method="voxel", volume_ml=None if pct is None else 10.0 * (1 + pct / 100)))
    return pd.DataFrame(rows + list(extra))


def test_wilson_interval_known_values():
    # Wilson score 95 % intervals (Newcombe 1998, Table I / standard references)
    lo, hi = wilson_interval(2, 5)
    assert lo == pytest.approx(0.1176, abs=1e-4) and hi == pytest.approx(0.7693, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_course_summary_numbers():
    df = assess(trial([-30, -20, -10, 0, 25, None]))
    s = course_summary(df)
    assert len(s) == 1
    r = s.iloc[0]
    assert (r["method"], r["course"]) == ("voxel", 1)
    assert r["n"] == 5 and r["n_assessed"] == 6  # the failed scan is NE: in the denominator
    assert r["median_percent_change"] == -10.0
    assert r["q1_percent_change"] == -20.0 and r["q3_percent_change"] == 0.0
    assert (r["pr_n"], r["sd_n"], r["pd_n"], r["ne_n"], r["cr_n"], r["orr_n"]) == (2, 2, 1, 1, 0, 2)
    assert r["pr_rate"] == pytest.approx(2 / 6)
    lo, hi = wilson_interval(2, 6)
    assert (r["pr_ci_low"], r["pr_ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert r["cr_ci_low"] == 0.0
    # per lesion instead of per subject gives the same here; an unknown lesion gives nothing
    assert course_summary(df, lesion_id="L1").iloc[0]["n"] == 5
    assert course_summary(df, lesion_id="nope").empty


def test_write_tables_csv_parquet_types_and_empties(tmp_path):
    df = assess(trial([-30, None]))
    paths = write_tables(df, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"volumes.csv", "volumes.parquet", "summary.csv"}
    assert all(p.parent == tmp_path / "out" for p in paths.values())
    text = paths["volumes_csv"].read_text().splitlines()
    assert text[0].split(",") == list(COLUMN_NAMES)
    failed = [ln for ln in text if ",failed," in ln]
    assert len(failed) == 1
    cells = dict(zip(COLUMN_NAMES, failed[0].split(",")))
    assert cells["volume_ml"] == "" and cells["percent_change"] == "" and cells["response"] == "NE"
    assert cells["scan_date"] == "2025-03-31" and cells["course"] == "1" and cells["baseline_volume_ml"] == "10"
    table = pq.read_table(paths["volumes_parquet"])
    assert str(table.schema.field("scan_date").type) == "date32[day]"
    assert str(table.schema.field("course").type) == "int64"
    assert table.schema.field("volume_ml").metadata[b"unit"] == b"mL"
    vol = table.column("volume_ml").to_pylist()
    assert None in vol and 0.0 not in vol  # missing stays null, never 0
    back = read_tables(paths["volumes_parquet"])
    pd.testing.assert_frame_equal(back, conform(df))
    back_csv = read_tables(paths["volumes_csv"])
    pd.testing.assert_frame_equal(back_csv, conform(df))
    s = pd.read_csv(paths["summary_csv"])
    assert s.loc[0, "n"] == 1 and s.loc[0, "n_assessed"] == 2
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        write_tables(df, tmp_path / "file")


def test_round_trip_keeps_confirmation_booleans(tmp_path):
    rows = trial([-30])
    rows = pd.concat([rows, rows.iloc[[1]].assign(visit="C2", scan_date=BASE + pd.Timedelta(days=168), volume_ml=9.0)])
    df = assess(rows, confirm=True)
    l1 = df[df["lesion_id"] == "L1"].reset_index(drop=True)
    assert l1.loc[1, "response"] == "PR" and l1.loc[1, "response_confirmed"] == False  # noqa: E712
    paths = write_tables(df, tmp_path)
    for p in (paths["volumes_csv"], paths["volumes_parquet"]):
        back = read_tables(p)
        pd.testing.assert_frame_equal(back, conform(df))
        assert int((~back["response_confirmed"].fillna(True)).sum()) == 2  # L1 and total


def test_conform_requires_keys_and_joins_flags():
    with pytest.raises(InputError, match="subject_id"):
        conform(pd.DataFrame({"lesion_id": ["a"]}))
    t = conform(pd.DataFrame({"subject_id": ["S"], "lesion_id": ["L"], "visit": ["b"], "method": ["voxel"],
                              "flags": [["touches-border", "few-voxels", "touches-border"]], "extra": [1]}))
    assert list(t.columns) == list(COLUMN_NAMES)
    assert t.loc[0, "flags"] == "touches-border;few-voxels" and t["volume_ml"].isna().all()
    with pytest.raises(InputError, match="course"):
        conform(pd.DataFrame({"subject_id": ["S"], "lesion_id": ["L"], "visit": ["b"], "method": ["voxel"], "course": [1.5]}))


def test_measurement_rows_feed_the_engine():
    arr = np.zeros((12, 12, 12), bool)
    arr[2:10, 2:10, 2:10] = True
    v = Volume(arr, (1, 1, 1), (0, 0, 0), np.eye(3))
    m0 = measure(v)
    arr2 = arr.copy()
    arr2[2:4] = False  # 6/8 of the volume
    m1 = measure(v.with_array(arr2))
    rows = (measurement_rows(m0, subject_id="S1", lesion_id="L1", visit="baseline", scan_date=BASE, series_uid="1.2.3")
            + measurement_rows(m1, subject_id="S1", lesion_id="L1", visit="C1", scan_date=BASE + pd.Timedelta(days=84))
            + measurement_rows(Measurement.failed("no mask"), subject_id="S1", lesion_id="L1", visit="C2",
                               scan_date=BASE + pd.Timedelta(days=168)))
    assert len(rows) == 9 and {r["method"] for r in rows} == {"voxel", "mesh", "ellipsoid-mri"}
    out = assess(pd.DataFrame(rows))
    vox = out[(out["method"] == "voxel") & (out["lesion_id"] == "L1")].reset_index(drop=True)
    assert vox.loc[0, "volume_ml"] == pytest.approx(0.512) and vox.loc[0, "series_uid"] == "1.2.3"
    assert vox.loc[1, "percent_change"] == -25.0 and vox.loc[1, "response"] == "PR"
    assert vox.loc[0, "volume_low_ml"] == pytest.approx(0.216) and vox.loc[0, "d1_mm"] > 8
    assert vox.loc[2, "status"] == "failed" and vox.loc[2, "reason"] == "no mask"
    mesh = out[(out["method"] == "mesh") & (out["lesion_id"] == "L1")]
    assert mesh["volume_low_ml"].isna().all() and mesh["volume_ml"].iloc[0] < 0.512
    with pytest.raises(InputError, match="unknown MRI method"):
        measurement_rows(m0, subject_id="S", lesion_id="L", visit="v", methods=("magic",))


def test_docs_document_every_column_status_and_flag():
    from pathlib import Path

    from volumetry.measure import FLAGS
    from volumetry.tables import STATUSES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "tables.md").read_text(encoding="utf-8")
    for name in (*COLUMN_NAMES, *STATUSES, *FLAGS):
        assert f"`{name}`" in doc, name
