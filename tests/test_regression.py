"""Regression checks on phantoms: the stored expected table is reproduced, and a
volume moved beyond its tolerance fails with a per-case diff (within passes)."""
from __future__ import annotations

import csv
import dataclasses

import pytest

from volumetry.cli import main
from volumetry.regression import (
    EXPECTED_TABLE, compare, load_expected, regression_cases, run_case, run_regression, truth_tolerance_pct,
)

#: Small, fast cases of the stored table (every shape family, oblique, gap, thick slices).
FAST = ("suite01-ellipsoid-4ml-coronal-3mm", "suite04-cystic-1ml-axial-5mm", "suite12-septated-2.5ml-axial-2mm",
        "suite15-ellipsoid-0.5ml-oblique-5mm", "suite35-sphere-6ml-sagittal-5mm")


def _specs(names=FAST):
    specs = [s for s in regression_cases("full") if s.name in names]
    assert len(specs) == len(names)
    return specs


@pytest.fixture(scope="module")
def results():
    return [run_case(s) for s in _specs()]


def test_stored_table_covers_the_full_suite():
    table = load_expected()
    assert set(table) == {s.name for s in regression_cases("full")}
    assert len(regression_cases("quick")) >= 16 and len(table) >= 40


def test_stored_expected_volumes_are_reproduced_through_io():
    report = run_regression(cases=_specs(FAST[:3]), io_roundtrip=True)
    assert report.passed, report.diff()
    for r in report.results:
        assert r.expected_ml == pytest.approx(r.measured_ml, abs=r.tolerance_ml)
        assert abs(r.truth_diff_pct) <= truth_tolerance_pct(next(s for s in _specs() if s.name == r.case))


def test_perturbation_beyond_tolerance_fails_with_the_diff(results):
    expected = load_expected()
    assert compare(results, expected).passed
    victim = results[1]
    tol = float(expected[victim.case]["tolerance_ml"])
    within = [dataclasses.replace(r, measured_ml=r.measured_ml + 0.5 * tol) if r is victim else r for r in results]
    assert compare(within, expected).passed
    beyond = [dataclasses.replace(r, measured_ml=r.measured_ml + 2.0 * tol) if r is victim else r for r in results]
    report = compare(beyond, expected)
    assert not report.passed and [f.case for f in report.failures] == [victim.case]
    diff = report.diff()
    assert f"FAIL {victim.case}" in diff
    assert f"{2 * tol:+.6f} mL (tolerance ±{tol:.6f} mL)" in diff.replace("+0.00", "+0.00")
    assert all(r.case not in diff for r in results if r is not victim)


def test_measurement_perturbed_through_the_real_path(results):
    """A measurement that drifts by 3 % fails on the truth and on the expected table."""
    spec = _specs(FAST[:1])

    def drifting(mask):
        n = int(mask.array.sum())
        return n * mask.voxel_volume_mm3 / 1000 * 1.03, None

    report = run_regression(cases=spec, io_roundtrip=False, measure=drifting)
    assert not report.passed
    problems = report.failures[0].problems()
    assert any(p.startswith("vs truth") and "+3.0" in p for p in problems)
    assert any(p.startswith("vs expected") for p in problems)
    # 0.05 % drift stays inside both tolerances
    report = run_regression(cases=spec, io_roundtrip=False,
                            measure=lambda m: (m.array.sum() * m.voxel_volume_mm3 / 1000 * 1.0005, None))
    assert report.passed, report.diff()


def test_missing_expected_row_fails(results):
    report = compare(results[:1], {})
    assert not report.passed and "no expected row" in report.diff()


def test_cli_pass_and_fail(tmp_path, capsys):
    case = FAST[0]
    assert main(["-q", "regress", "--case", case, "--no-io"]) == 0
    assert "regression check passed: 1 cases" in capsys.readouterr().out
    # an expected table whose volume for the case moved by 1 %
    with open(EXPECTED_TABLE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        if r["case"] == case:
            r["expected_volume_ml"] = f"{float(r['expected_volume_ml']) * 1.01:.6f}"
    moved = tmp_path / "expected.csv"
    with open(moved, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report_csv = tmp_path / "report.csv"
    assert main(["-q", "regress", "--case", case, "--no-io", "--expected", str(moved), "--report", str(report_csv)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {case}" in out and "vs expected" in out and "1 of 1 cases beyond tolerance" in out
    assert "FAIL" in report_csv.read_text()
    assert main(["regress", "--case", "nope"]) == 2
    assert "unknown regression case(s) nope" in capsys.readouterr().err


def test_missing_table_is_an_input_error(tmp_path):
    from volumetry.errors import InputError
    with pytest.raises(InputError, match="not found; create one with 'volumetry regress --write-expected"):
        load_expected(tmp_path / "none.csv")
