"""The assess stage's table assembly (fewer ``conform`` passes, one JSON export) gives the
same table and the same stored records as the former code, kept here as references."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from volumetry.longitudinal import assess
from volumetry.pipeline.outputs import _ordered_table, _records_by_subject
from volumetry.tables import conform

BASE = pd.Timestamp("2025-01-06")


def _trial(seed: int = 3) -> pd.DataFrame:
    """Three subjects (one with two lesions), visits to course 2, a failed scan, flags and provenance."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, lesions in (("S02", ("L1",)), ("S01", ("L1", "L2")), ("S03", ("L1",))):
        jitter = [int(d) for d in rng.integers(-3, 4, size=3)]  # one date per visit
        for lesion in lesions:
            for c, visit in enumerate(("baseline", "course1", "course2")):
                for method in ("voxel", "mesh", "ellipsoid-mri"):
                    failed = s == "S03" and visit == "course1"
                    rows.append(dict(
                        subject_id=s, lesion_id=lesion, visit=visit, course=c, method=method,
                        scan_date=BASE + pd.Timedelta(days=84 * c + jitter[c]),
                        volume_ml=None if failed else float(rng.uniform(5, 50)),
                        d1_mm=None if failed else float(rng.uniform(10, 40)),
                        status="failed" if failed else "ok", reason="load: unreadable" if failed else "",
                        flags=["propagated"] if c else [], series_uid=f"2.25.{seed}{c}",
                        input_hash="ab" * 32, config_hash="cd" * 32, software_version="0.1",
                        computed_at="2026-11-24T13:00:00.123456+00:00"))
    return pd.DataFrame.from_records(rows)


def _reference_records(table, subject):
    """Former per-subject export."""
    part = table[table["subject_id"] == subject]
    return json.loads(part.to_json(orient="records", date_format="iso"))


def _reference_ordered(frames, idents):
    """Former assembly: conform every frame, the concatenation, and the sorted table."""
    if not frames:
        return conform(pd.DataFrame(columns=["subject_id", "lesion_id", "visit", "method"]))
    table = conform(pd.concat([conform(f) for f in frames], ignore_index=True))
    order = {ident: n for n, ident in enumerate(idents)}
    table["_order"] = [order.get((s, v, l), len(order)) for s, v, l in
                       zip(table["subject_id"], table["visit"], table["lesion_id"])]
    table = table.sort_values(["subject_id", "_order", "lesion_id", "method"], kind="stable")
    return conform(table.drop(columns="_order"))


@pytest.fixture(scope="module")
def assessed():
    return assess(conform(_trial()), criteria="vascular-anomaly")


def _idents(table):
    seen = dict.fromkeys(zip(table["subject_id"], table["visit"], table["lesion_id"]))
    return list(reversed(list(seen)))  # an order the sort has to apply


def test_records_by_subject_equal_per_subject_export(assessed):
    by_subject = _records_by_subject(assessed)
    assert sorted(by_subject) == ["S01", "S02", "S03"]
    floats = [c for c in assessed.columns if assessed[c].dtype.kind == "f"]
    assert "volume_ml" in floats and "percent_change" in floats
    for subject in ("S01", "S02", "S03"):
        ref = _reference_records(assessed, subject)
        got = by_subject[subject]
        assert len(got) == len(ref)
        exact = assessed[assessed["subject_id"] == subject]
        for n, (g, r) in enumerate(zip(got, ref)):
            # everything as the per-subject export wrote it, but floats kept exactly
            assert {k: v for k, v in g.items() if k not in floats} == {k: v for k, v in r.items() if k not in floats}
            for c in floats:
                value = exact[c].iloc[n]
                assert g[c] == (None if pd.isna(value) else float(value))
                assert (g[c] is None) == (r[c] is None)
                if g[c] is not None:
                    assert abs(g[c] - r[c]) <= 1e-10 * max(1.0, abs(g[c]))
    # the failed scan's empty values and the dates travel as before
    s3 = by_subject["S03"]
    assert any(r["volume_ml"] is None and r["status"] == "failed" for r in s3)


@pytest.mark.parametrize("split", [False, True])
def test_ordered_table_equals_former_assembly(assessed, split):
    idents = _idents(assessed)
    if split:  # a re-run: one subject from the stored JSON records, the others assessed now
        stored = pd.DataFrame.from_records(_records_by_subject(assessed)["S02"])
        frames = [stored, assessed[assessed["subject_id"] != "S02"]]
    else:
        frames = [assessed]
    new, ref = _ordered_table(frames, idents), _reference_ordered(frames, idents)
    pd.testing.assert_frame_equal(new, ref, check_exact=True)
    assert list(new.index) == list(range(len(new)))
    assert len(new) == len(assessed)


def test_ordered_table_of_nothing():
    pd.testing.assert_frame_equal(_ordered_table([], []), _reference_ordered([], []), check_exact=True)
