"""The pipeline's assess stage was made cheaper without changing a value: each function replaced is
kept here as it was (``_former_*``) and the new one must give the same result (frames equal with
``check_exact`` and the same dtypes, JSON text equal) on the sample trial, on the longitudinal
edge cases (missing visits, failed scans, empty measurements with reasons, several lesions, new
lesions, overlapping masks, undated scans with a course, confirm=true) and on stored frames.

* ``outputs._records_by_subject`` and ``outputs._ordered_table`` (back to their ``to_json`` export and
  sorted key frame; the comparisons stay as a guard);
* ``longitudinal.assess._validate``: the checks on the columns' Python values for a table
  ``volumetry.tables`` conformed.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from volumetry.errors import InputError
from volumetry.longitudinal import CourseSchedule, assess
from volumetry.longitudinal.assess import INPUT_STATUSES, OVERLAP_FLAG
from volumetry.pipeline import outputs
from volumetry.tables import TOTAL, conform

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


# ------------------------------------------------------------------------------ the former code
def _former_records_by_subject(table) -> dict[str, list[dict]]:
    records = json.loads(table.to_json(orient="records", date_format="iso"))
    for column in table.columns:
        if table[column].dtype.kind == "f":
            for record, value in zip(records, table[column].tolist()):
                record[column] = None if pd.isna(value) else float(value)
    out: dict[str, list[dict]] = {}
    for subject, record in zip(table["subject_id"], records):
        out.setdefault(subject, []).append(record)
    return out


def _former_ordered_table(frames: list, idents: list[tuple]):
    from volumetry.tables import _is_conformed

    if not frames:
        return conform(pd.DataFrame(columns=["subject_id", "lesion_id", "visit", "method"]))
    if len(frames) == 1:
        table = frames[0] if _is_conformed(frames[0]) else conform(frames[0])
    else:
        table = conform(pd.concat([conform(f) for f in frames], ignore_index=True))
    order = {ident: n for n, ident in enumerate(idents)}
    keys = pd.DataFrame({
        "subject_id": table["subject_id"].array,
        "_order": [order.get((s, v, l), len(order)) for s, v, l in
                   zip(table["subject_id"], table["visit"], table["lesion_id"])],
        "lesion_id": table["lesion_id"].array, "method": table["method"].array})
    rows = keys.sort_values(["subject_id", "_order", "lesion_id", "method"], kind="stable").index.to_numpy()
    return table.take(rows).reset_index(drop=True)


# ------------------------------------------------------------------------------ the inputs
BASE = pd.Timestamp("2025-01-06")


def _rows(volumes, *, subject="S1", lesion="L1", method="voxel", days=None, statuses=None, flags=None):
    days = days if days is not None else [84 * k for k in range(len(volumes))]
    out = []
    for k, (v, d) in enumerate(zip(volumes, days)):
        st = statuses[k] if statuses else ("ok" if v is not None else "failed")
        out.append(dict(subject_id=subject, lesion_id=lesion, visit="baseline" if k == 0 else f"V{k}",
                        scan_date=None if d is None else BASE + pd.Timedelta(days=d), method=method,
                        volume_ml=v, status=st,
                        reason={"failed": "segmentation failed", "empty": "no lesion left"}.get(st),
                        flags=(flags or {}).get(k, []), series_uid=f"1.2.{subject}.{k}", input_hash="ab" * 8,
                        config_hash="cd" * 8, software_version="0.3.0",
                        computed_at=pd.Timestamp("2026-12-06T10:11:10", tz="UTC") + pd.Timedelta(seconds=k)))
    return out


def _edge_tables() -> list[pd.DataFrame]:
    """Assessed tables of the longitudinal edge cases."""
    cases = [
        (_rows([10.0, 8.0, 7.9, 12.5]), {}),
        # missing visit (V2 not measured for L2), failed scan, several lesions
        (_rows([10.0, 8.0, None, 6.0]) + [r for r in _rows([5.0, 4.0, 3.0, 2.5], lesion="L2") if r["visit"] != "V2"],
         {}),
        # empty measurements with reasons, CR, new lesion, confirmation
        (_rows([10.0, 2.0, None, None], statuses=["ok", "ok", "empty", "empty"])
         + _rows([None, 1.0, 1.5, 0.5], lesion="L9", statuses=["empty", "ok", "ok", "ok"]), {"confirm": True}),
        (_rows([4.0, 1.0, 0.5, 0.4], subject="S2") + _rows([4.0, 5.0], subject="S3", method="mesh"),
         {"confirm": True, "criteria": "recist-volumetric"}),
        # overlapping masks at V1, a scan outside every window, an undated scan with an explicit course
        (_rows([3.0, 2.0], flags={1: [OVERLAP_FLAG]}) + _rows([1.0, 0.9], lesion="L2", flags={1: [OVERLAP_FLAG]})
         + _rows([3.0, 2.0, 2.5], subject="S4", days=[0, 84, 130]), {}),
    ]
    undated = pd.DataFrame(_rows([6.0, 5.0, 4.0], subject="S5", days=[0, None, None]))
    undated["course"] = [0, 1, 2]
    tables = [assess(pd.DataFrame(rows), **kw) for rows, kw in cases]
    tables.append(assess(undated, schedule=CourseSchedule(course_weeks=8, window_days=14)))
    study = [pd.DataFrame(rows).assign(subject_id=lambda f, n=n: f["subject_id"] + f"-{n}")
             for n, (rows, _) in enumerate(cases)]
    tables.append(assess(pd.concat(study + [undated], ignore_index=True), confirm=True))
    return tables


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The sample trial's table, and the rows outputs.assess conforms (one per scan and method)."""
    from volumetry.config import load_pipeline
    from volumetry.pipeline import run_study
    from volumetry.store import ResultStore

    if not SAMPLE.is_dir():
        pytest.skip(f"the sample trial is not at {SAMPLE}")
    cfg = load_pipeline(ROOT / "pipelines/vascular-anomalies-rapamycin.yaml")
    cfg = dataclasses.replace(cfg, outputs={**cfg.outputs, "report": False})
    out = tmp_path_factory.mktemp("sample") / "out"
    table = run_study(SAMPLE, cfg, out, jobs=1, progress=False).table
    with ResultStore(out / "results.sqlite") as store:
        scans = store.scans()
        rows = [r for s in scans for r in outputs._scan_rows(store, s, cfg, None)]
    assert len(rows) == 3 * len(scans) == 87
    return table, rows


@pytest.fixture(scope="module")
def sample_table(sample_run):
    return sample_run[0]


@pytest.fixture(scope="module")
def sample_rows(sample_run):
    return sample_run[1]


def _tables(sample_table) -> list[pd.DataFrame]:
    tables = [sample_table] + _edge_tables()
    one_row = sample_table.iloc[:1].reset_index(drop=True)
    empty = sample_table.iloc[:0].reset_index(drop=True)
    return tables + [one_row, empty, sample_table.iloc[::-1].reset_index(drop=True)]


# ------------------------------------------------------------------------------ the proofs
def test_records_equal_former_as_objects_and_json_text(sample_table):
    for table in _tables(sample_table):
        new, old = outputs._records_by_subject(table), _former_records_by_subject(table)
        assert new == old
        assert json.dumps(new) == json.dumps(old)
        assert json.dumps(new, sort_keys=True, default=str) == json.dumps(old, sort_keys=True, default=str)
        # the values' types as well (an int is not a float in the JSON text)
        assert [[{k: type(v) for k, v in r.items()} for r in rs] for rs in new.values()] == \
            [[{k: type(v) for k, v in r.items()} for r in rs] for rs in old.values()]


def test_records_of_other_dtypes_and_sub_millisecond_times_take_the_export():
    table = conform(pd.DataFrame({"subject_id": ["S1", "S2"], "lesion_id": ["L1", "L1"], "visit": ["b", "b"],
                                  "method": ["voxel", "voxel"]}))
    cases = [table.assign(computed_at=pd.to_datetime(["2026-01-01T00:00:00.000001", None], utc=True)),
             table.assign(scan_date=pd.to_datetime(["1969-12-31T23:59:59.123", "2026-01-01T00:00:00.000"])),
             table.assign(scan_date=pd.to_datetime(["1969-12-31T23:59:59.1234", "2026-01-01T00:00:00.0000"])),
             table.assign(volume_ml=pd.array([1.5, None], dtype="Float64")),
             table.assign(extra=np.array([1, 2], dtype=np.int32)),
             table.assign(volume_ml=[np.inf, np.nan], reason=["a \"quoted\" / é ☃ text", None]),
             table.assign(reason=pd.array(["a \"quoted\" / é ☃ text\n", None], dtype="string"))]
    # whole-millisecond dates and UTC times (before 1970 too), NaT, Int64 and boolean values, missing
    # values everywhere (a missing subject too), other units and zones, NaN-missing text, numpy ints,
    # and a repeated column name
    times = pd.to_datetime(["1969-12-31T23:59:59.123", None, "2262-04-11T23:47:16.854", "1677-09-21T00:12:44.000"]).astype("datetime64[ns]")
    four = conform(pd.DataFrame({"subject_id": ["S1", "S2", None, "S1"], "lesion_id": ["L1", None, "L1", "é☃\x00"],
                                 "visit": ["b", "b", "c", "\u2028"], "method": ["voxel"] * 4}))
    cases += [four.assign(scan_date=times, computed_at=times.tz_localize("UTC"),
                          course=pd.array([0, None, 2**53 + 1, -3], dtype="Int64"),
                          response_confirmed=pd.array([True, None, False, None], dtype="boolean")),
              four.assign(scan_date=pd.NaT, computed_at=pd.NaT),
              four.assign(computed_at=pd.to_datetime(["2026-01-01T00:00:00+00:00"] * 4, utc=True).tz_convert("Europe/Paris")),
              four.assign(scan_date=times.astype("datetime64[us]")),
              four.assign(scan_date=times.astype("datetime64[s]")),
              four.assign(reason=pd.array(["x", None, "y", None], dtype=pd.StringDtype(na_value=np.nan))),
              four.assign(course=np.arange(4, dtype=np.int64)),
              four.iloc[:0]]
    for t in cases:
        new, old = outputs._records_by_subject(t), _former_records_by_subject(t)
        assert new == old and list(new) == list(old)  # a missing subject is the key pd.NA in both
        assert json.dumps(list(new.values())) == json.dumps(list(old.values()))
    twice = pd.concat([four, four[["reason"]]], axis=1)  # a repeated column name: the export's error
    for records in (outputs._records_by_subject, _former_records_by_subject):
        with pytest.raises(ValueError, match="columns must be unique"):
            records(twice)
        assert [[{k: type(v) for k, v in r.items()} for r in rs] for rs in new.values()] == \
            [[{k: type(v) for k, v in r.items()} for r in rs] for rs in old.values()]


def test_ordered_table_equals_former_on_new_and_stored_frames(sample_table):
    rng = np.random.default_rng(5)
    for table in _tables(sample_table):
        idents = list(dict.fromkeys(zip(table["subject_id"], table["visit"], table["lesion_id"])))
        stored = pd.DataFrame.from_records([r for rs in _former_records_by_subject(table).values() for r in rs])
        frame_sets = [[table], [table.iloc[::-1].reset_index(drop=True)]] + ([[stored]] if len(table) else [])
        if len(table) > 2:
            frame_sets.append([table.iloc[: len(table) // 2], stored.iloc[len(table) // 2:]])
            frame_sets.append([stored.iloc[::2], table.iloc[1::2], stored.iloc[1:2]])
        for order in (idents, idents[::-1], [idents[k] for k in rng.permutation(len(idents))], idents[:3], []):
            for frames in frame_sets:
                before = [f.copy() for f in frames]
                new, old = outputs._ordered_table(frames, order), _former_ordered_table(frames, order)
                pd.testing.assert_frame_equal(new, old, check_exact=True)
                assert new.dtypes.equals(old.dtypes)
                for f, b in zip(frames, before):
                    pd.testing.assert_frame_equal(f, b, check_exact=True)
    pd.testing.assert_frame_equal(outputs._ordered_table([], []), _former_ordered_table([], []))


def test_ordered_table_with_missing_keys_sorts_as_before():
    table = conform(pd.DataFrame({"subject_id": ["S2", None, "S1", "S1"], "lesion_id": ["L1", "L1", None, "L0"],
                                  "visit": ["b", "b", "c", None], "method": ["voxel", None, "mesh", "voxel"]}))
    for order in ([("S1", "c", None), ("S2", "b", "L1")], []):
        pd.testing.assert_frame_equal(outputs._ordered_table([table], order),
                                      _former_ordered_table([table], order), check_exact=True)


# ------------------------------------------------------------------------------ _validate
def _former_validate(df: pd.DataFrame) -> pd.DataFrame:
    need = ("subject_id", "lesion_id", "visit", "method", "volume_ml")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"the measurements lack the column(s) {', '.join(missing)}; need {', '.join(need)} "
                         "and scan_date and/or course")
    if "scan_date" not in df.columns and "course" not in df.columns:
        raise InputError("the measurements need scan_date or course to place each scan in a treatment course")
    d = df.copy().reset_index(drop=True)
    for c in ("subject_id", "lesion_id", "visit", "method"):
        if d[c].isna().any():
            r = int(np.flatnonzero(d[c].isna())[0])
            raise InputError(f"row {r}: {c} is empty; every row needs subject_id, lesion_id, visit and method")
        d[c] = d[c].astype(str)
    if (d["lesion_id"].str.lower() == TOTAL).any():
        raise InputError(f"lesion_id {TOTAL!r} is reserved for the subject's total; rename that lesion")
    dup = d.duplicated(["subject_id", "lesion_id", "visit", "method"], keep=False)
    if dup.any():
        r = d[dup].iloc[0]
        raise InputError(f"subject {r['subject_id']} lesion {r['lesion_id']} visit {r['visit']} ({r['method']}) "
                         "appears more than once; one measurement per lesion, visit and method")
    d["volume_ml"] = pd.to_numeric(d["volume_ml"], errors="raise").astype(float)
    infinite = np.isposinf(d["volume_ml"].to_numpy())
    if infinite.any():  # would be a +inf % change (PD), or a baseline nothing can be divided by
        r = d[infinite].iloc[0]
        raise InputError(f"subject {r['subject_id']} lesion {r['lesion_id']} visit {r['visit']}: volume {r['volume_ml']} mL "
                         "is not a finite number; give the measured volume, or status failed with a reason")
    if (d["volume_ml"] < 0).any():
        r = d[d["volume_ml"] < 0].iloc[0]
        raise InputError(f"subject {r['subject_id']} lesion {r['lesion_id']} visit {r['visit']}: "
                         f"negative volume {r['volume_ml']} mL")
    if "status" not in d:
        d["status"] = np.where(d["volume_ml"].notna(), "ok", "failed")
    d["status"] = d["status"].fillna("ok").astype(str)
    bad = ~d["status"].isin(INPUT_STATUSES)
    if bad.any():
        raise InputError(f"unknown status {d.loc[bad, 'status'].iloc[0]!r}; use one of {', '.join(INPUT_STATUSES)}")
    no_vol = (d["status"] == "ok") & d["volume_ml"].isna()
    if no_vol.any():
        r = d[no_vol].iloc[0]
        raise InputError(f"subject {r['subject_id']} lesion {r['lesion_id']} visit {r['visit']}: status ok but no "
                         "volume; give the volume or status failed/empty with a reason")
    d.loc[d["status"] != "ok", "volume_ml"] = np.nan
    d["reason"] = d["reason"].astype(object).where(d["reason"].notna(), None) if "reason" in d else None
    d.loc[(d["status"] == "failed") & d["reason"].isna(), "reason"] = "no volume given"
    return d




def _edge_rows() -> list[list[dict]]:
    both = _rows([10.0, 8.0, None, 6.0]) + _rows([None, 4.0, 3.0], lesion="L2", statuses=["empty", "ok", "failed"])
    for r in both:
        if r["lesion_id"] == "L2" and r["status"] == "failed":
            r["reason"] = None  # given "no volume given"
    return [both, _rows([3.0, 2.0], flags={1: [OVERLAP_FLAG]}) + _rows([1.0, 0.9], lesion="L2", flags={1: [OVERLAP_FLAG]}),
            _rows([6.0, 5.0, 4.0], subject="S5", days=[0, None, None]), _rows([1.0, 2.0], lesion="Łesion é"),
            [dict(r, status=None) for r in _rows([1.0, 2.0, 3.0])]]


def _conformed_inputs(sample_rows) -> list[pd.DataFrame]:
    from volumetry.tables import table_from_rows

    parts = [sample_rows, sample_rows[::-1], sample_rows[:1], [], [dict(r, status=None) for r in sample_rows[:6]],
             [dict(r, reason=None, status="failed", volume_ml=None) for r in sample_rows[:9]]]
    return [table_from_rows(p) for p in parts + _edge_rows()]


def _bad_inputs(rows: list[dict]) -> list[list[dict]]:
    one = rows[:4]
    return [[dict(one[0], subject_id=None)] + one[1:], [dict(one[0], method=None)] + one[1:],
            [dict(one[0], lesion_id="Total")] + one[1:], [dict(one[0], lesion_id="TOTAL")] + one[1:],
            one + [dict(one[0])], [dict(one[0], volume_ml=float("inf"))] + one[1:],
            [dict(one[0], volume_ml=-1.0)] + one[1:], [dict(one[0], volume_ml=float("-inf"))] + one[1:],
            [dict(one[0], status="gone")] + one[1:], [dict(one[0], volume_ml=None, status="ok")] + one[1:]]


def test_validate_of_a_conformed_table_equals_former(sample_rows):
    for df in _conformed_inputs(sample_rows):
        before = df.copy()
        fast = _assess_module()._checked_conformed(df)
        ascii_ids = all(v.isascii() for v in df["lesion_id"].tolist())
        assert (fast is not None) == ascii_ids  # what lets assess skip the frame (a non-ASCII id: the frame)
        new, old = _assess_module()._validate(df), _former_validate(df)
        pd.testing.assert_frame_equal(new, old, check_exact=True)
        assert new.dtypes.equals(old.dtypes)
        assert [[type(v) for v in new[c].tolist()] for c in new.columns] == \
            [[type(v) for v in old[c].tolist()] for c in old.columns]
        pd.testing.assert_frame_equal(df, before, check_exact=True)


def test_validate_of_bad_conformed_tables_raises_as_former(sample_rows):
    from volumetry.tables import table_from_rows

    for rows in _bad_inputs(sample_rows) + _bad_inputs(_rows([1.0, 2.0, 3.0, 4.0])):
        df = table_from_rows(rows)
        assert _assess_module()._checked_conformed(df) is None
        with pytest.raises(InputError) as old:
            _former_validate(df)
        with pytest.raises(InputError) as new:
            _assess_module()._validate(df)
        assert str(new.value) == str(old.value)


def test_assess_of_conformed_tables_equals_assess_with_the_former_validate(sample_rows, monkeypatch):
    module = _assess_module()
    inputs = _conformed_inputs(sample_rows)
    runs = [dict(), dict(confirm=True), dict(criteria="recist-volumetric", confirm=True)]
    new = [[module.assess(df, **kw) for df in inputs if len(df)] for kw in runs]
    monkeypatch.setattr(module, "_validate", _former_validate)
    old = [[module.assess(df, **kw) for df in inputs if len(df)] for kw in runs]
    for a, b in zip(sum(new, []), sum(old, [])):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert a.dtypes.equals(b.dtypes)
        assert json.dumps(outputs._records_by_subject(a)) == json.dumps(_former_records_by_subject(b))


def _assess_module():
    import importlib

    return importlib.import_module("volumetry.longitudinal.assess")
