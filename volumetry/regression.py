"""Regression checks on phantoms: what a site runs in its CI after upgrading.

Each case of a phantom suite is generated (deterministically), its
ground-truth mask is measured with the package's measurement
(:func:`volumetry.measure.measure`, voxel count × voxel volume from the
geometry; optionally after a round trip through the package's writers and
readers: image as a DICOM series, mask as NIfTI), and the volume is compared

* with the **truth** (analytic or Monte-Carlo), within the case's truth
  tolerance (percent), and
* with the **expected table** stored with the package
  (``volumetry/data/regression_expected.csv``), within the case's tolerance
  in mL.

Any case beyond a tolerance fails the check; :meth:`RegressionReport.diff`
lists each failing case with the measured, expected and true volumes, the
difference and the tolerance.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import math
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from .errors import InputError
from .image import Volume

log = logging.getLogger(__name__)

#: The stored expected table (package data).
EXPECTED_TABLE = Path(__file__).resolve().parent / "data" / "regression_expected.csv"

#: Truth tolerance (%) for lesions ≥ 1 mL on contiguous slices ≤ 3 mm (the
#: voxelised truth mask is within this of the analytic volume).
TRUTH_TOL_FINE_PCT = 1.0
#: Truth tolerance (%) for the rest: slice gaps (the image samples only the
#: acquired slabs), slices > 3 mm, or lesions < 1 mL.
TRUTH_TOL_COARSE_PCT = 3.0
#: Expected-table tolerance: this fraction of the expected volume ...
EXPECTED_TOL_REL = 1e-3
#: ... but never less than this many voxels (a voxel flipping at the surface
#: on another platform's floating point is not a regression).
EXPECTED_TOL_VOXELS = 2

COLUMNS = ("case", "shape", "plane", "slice_thickness_mm", "slice_gap_mm", "seed", "true_volume_ml",
           "true_volume_se_ml", "truth_tolerance_pct", "expected_volume_ml", "expected_mesh_volume_ml",
           "tolerance_ml")


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One case of a regression run (volumes in mL)."""

    case: str
    shape: str
    plane: str
    slice_thickness_mm: float
    slice_gap_mm: float
    seed: int
    true_volume_ml: float
    true_volume_se_ml: float
    truth_tolerance_pct: float
    measured_ml: float | None
    mesh_ml: float | None
    voxel_volume_mm3: float
    expected_ml: float | None = None
    expected_mesh_ml: float | None = None
    tolerance_ml: float | None = None
    error: str | None = None

    @property
    def truth_diff_pct(self) -> float | None:
        if self.measured_ml is None or not self.true_volume_ml:
            return None
        return (self.measured_ml - self.true_volume_ml) / self.true_volume_ml * 100.0

    def problems(self) -> list[str]:
        """Human-readable reasons this case fails (empty when it passes)."""
        out = []
        if self.error:
            return [self.error]
        if self.measured_ml is None:
            return ["the mask could not be measured (no volume)"]
        d = self.truth_diff_pct
        limit = self.truth_tolerance_pct + 300.0 * self.true_volume_se_ml / max(self.true_volume_ml, 1e-12)
        if d is not None and abs(d) > limit:
            out.append(f"vs truth {self.true_volume_ml:.4f} mL: {d:+.3f} % (tolerance ±{limit:.3f} %)")
        if self.expected_ml is None:
            out.append("no expected row for this case (regenerate the expected table?)")
        else:
            diff = self.measured_ml - self.expected_ml
            if abs(diff) > self.tolerance_ml:
                out.append(f"vs expected {self.expected_ml:.6f} mL: {diff:+.6f} mL (tolerance ±{self.tolerance_ml:.6f} mL)")
            if self.expected_mesh_ml is not None and self.mesh_ml is not None:
                dm = self.mesh_ml - self.expected_mesh_ml
                if abs(dm) > self.tolerance_ml:
                    out.append(f"mesh volume {self.mesh_ml:.6f} mL vs expected {self.expected_mesh_ml:.6f} mL: "
                               f"{dm:+.6f} mL (tolerance ±{self.tolerance_ml:.6f} mL)")
        return out

    @property
    def passed(self) -> bool:
        return not self.problems()


@dataclasses.dataclass
class RegressionReport:
    """All cases of a run."""

    results: list[CaseResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    def diff(self) -> str:
        """The per-case diff of the failing cases ('' when all pass)."""
        lines = []
        for r in self.failures:
            measured = "n/a" if r.measured_ml is None else f"{r.measured_ml:.6f} mL"
            lines.append(f"FAIL {r.case}: measured {measured}")
            lines.extend(f"    {p}" for p in r.problems())
        if lines:
            lines.append("(if the change is understood and intended, store new expected volumes with "
                         "'volumetry regress --cases full --write-expected FILE'; the package's table is "
                         "volumetry/data/regression_expected.csv)")
        return "\n".join(lines)

    def table(self) -> str:
        """A fixed-width summary of every case."""
        head = f"{'case':44s} {'true mL':>10s} {'measured':>10s} {'vs truth':>9s} {'expected':>10s} {'diff mL':>10s} {'tol mL':>9s}  status"
        rows = [head]
        for r in self.results:
            exp = "-" if r.expected_ml is None else f"{r.expected_ml:10.4f}"
            diff = "-" if r.expected_ml is None or r.measured_ml is None else f"{r.measured_ml - r.expected_ml:+10.6f}"
            tp = "-" if r.truth_diff_pct is None else f"{r.truth_diff_pct:+8.3f}%"
            meas = "-" if r.measured_ml is None else f"{r.measured_ml:10.4f}"
            tol = "-" if r.tolerance_ml is None else f"{r.tolerance_ml:9.5f}"
            rows.append(f"{r.case:44s} {r.true_volume_ml:10.4f} {meas:>10s} {tp:>9s} {exp:>10s} {diff:>10s} {tol:>9s}  "
                        f"{'ok' if r.passed else 'FAIL'}")
        return "\n".join(rows)

    def write_csv(self, path: str | Path) -> Path:
        """Write every case's numbers (and problems) as CSV."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["case", "true_volume_ml", "measured_ml", "truth_diff_pct", "expected_ml", "tolerance_ml",
                        "mesh_ml", "expected_mesh_ml", "status", "problems"])
            for r in self.results:
                w.writerow([r.case, r.true_volume_ml, r.measured_ml, r.truth_diff_pct, r.expected_ml, r.tolerance_ml,
                            r.mesh_ml, r.expected_mesh_ml, "ok" if r.passed else "FAIL", " | ".join(r.problems())])
        return path


# ----------------------------------------------------------------- cases
def regression_cases(which: str = "quick"):
    """The phantom specs of a run: ``quick`` (every third case of the suite, 16)
    or ``full`` (the whole :func:`volumetry.phantoms.phantom_suite`, 48).

    Raises
    ------
    InputError
        If ``which`` is neither.
    """
    from .phantoms import phantom_suite

    suite = phantom_suite()
    if which == "full":
        return suite
    if which == "quick":
        return suite[::3]
    raise InputError(f"unknown regression case set {which!r}; choose quick or full")


def truth_tolerance_pct(spec) -> float:
    """Truth tolerance (%) of a case, from its geometry (see the ``TRUTH_TOL_*`` constants)."""
    fine = spec.slice_gap == 0 and spec.slice_thickness <= 3.0 and spec.volume_ml >= 1.0
    return TRUTH_TOL_FINE_PCT if fine else TRUTH_TOL_COARSE_PCT


def _measure(mask: Volume) -> tuple[float | None, float | None]:
    """Voxel and mesh volume (mL) of a mask with the package's measurement."""
    try:
        from .measure import measure
    except ImportError:  # pragma: no cover - measure is part of the package
        n = int(mask.array.astype(bool).sum())
        return (n * mask.voxel_volume_mm3 / 1000.0 if n else None), None
    m = measure(mask)
    return m.volume_ml, getattr(m, "mesh_volume_ml", None)


def _roundtrip(phantom, workdir: Path, name: str) -> tuple[Volume, Volume]:
    """Write the image as DICOM and the mask as NIfTI, read both back with the package's readers."""
    from .io.nifti import read_nifti
    from .io.reader import read_image
    from .phantoms.export import write_phantom

    paths = write_phantom(phantom, workdir / name, image_format="dicom")
    image = read_image(paths["image"])
    mask = read_nifti(paths["mask"])
    image.require_same_grid(mask, what=f"truth mask of {name}")
    return image, mask.with_array(mask.array > 0)


def run_case(spec, *, io_roundtrip: bool = False, workdir: Path | None = None,
             measure: Callable[[Volume], tuple[float | None, float | None]] | None = None) -> CaseResult:
    """Generate, (optionally) write/read, and measure one case."""
    from .phantoms import make_lesion_phantom

    ph = make_lesion_phantom(spec)
    t = ph.truth
    mask = ph.mask
    error = None
    if io_roundtrip:
        try:
            _, mask = _roundtrip(ph, workdir, spec.name)
        except Exception as exc:  # the report names the case and the failure
            error = f"write/read round trip failed: {type(exc).__name__}: {exc}"
    measured, mesh = (None, None) if error else (measure or _measure)(mask)
    return CaseResult(spec.name, spec.shape, spec.plane, spec.slice_thickness, spec.slice_gap, spec.seed,
                      t["true_volume_ml"], t["true_volume_se_ml"], truth_tolerance_pct(spec), measured, mesh,
                      ph.mask.voxel_volume_mm3, error=error)


def load_expected(path: str | Path | None = None) -> dict[str, dict]:
    """Read an expected table (default: the one stored with the package).

    Raises
    ------
    InputError
        If the file is missing or lacks a column.
    """
    path = Path(path) if path else EXPECTED_TABLE
    if not path.is_file():
        raise InputError(f"expected table {path} not found; create one with 'volumetry regress --write-expected FILE'")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in ("case", "expected_volume_ml", "tolerance_ml") if rows and c not in rows[0]]
    if missing or not rows:
        raise InputError(f"expected table {path} lacks column(s) {', '.join(missing) or 'rows'}; "
                         f"it needs {', '.join(COLUMNS)}")
    return {r["case"]: r for r in rows}


def _float(v) -> float | None:
    return None if v in (None, "", "None") else float(v)


def compare(results: Iterable[CaseResult], expected: dict[str, dict]) -> RegressionReport:
    """Attach the expected volumes and tolerances to ``results``."""
    out = []
    for r in results:
        row = expected.get(r.case)
        if row is None:
            out.append(r)
            continue
        out.append(dataclasses.replace(r, expected_ml=_float(row["expected_volume_ml"]),
                                       expected_mesh_ml=_float(row.get("expected_mesh_volume_ml")),
                                       tolerance_ml=_float(row["tolerance_ml"])))
    return RegressionReport(out)


def run_regression(*, cases: str | list = "quick", expected: str | Path | dict | None = None,
                   io_roundtrip: bool = True, measure=None, progress: Callable[[str], None] | None = None
                   ) -> RegressionReport:
    """Run the regression check.

    Parameters
    ----------
    cases : {"quick", "full"} or list of PhantomSpec
    expected : path or dict, optional
        Expected table (default: the stored one); a dict as from :func:`load_expected`.
    io_roundtrip : bool
        Write image (DICOM) and mask (NIfTI) and read them back before measuring.
    measure : callable, optional
        ``mask -> (volume_ml, mesh_volume_ml)``; default the package's measurement.
    progress : callable, optional
        Called with each case name.

    Returns
    -------
    RegressionReport
        ``report.passed`` is False when any case is beyond a tolerance; ``report.diff()``.
    """
    specs = regression_cases(cases) if isinstance(cases, str) else list(cases)
    table = expected if isinstance(expected, dict) else load_expected(expected)
    results = []
    with tempfile.TemporaryDirectory(prefix="volumetry-regress-") as tmp:
        for spec in specs:
            if progress:
                progress(spec.name)
            results.append(run_case(spec, io_roundtrip=io_roundtrip, workdir=Path(tmp), measure=measure))
    report = compare(results, table)
    log.info("regression: %d cases, %d failing", len(report.results), len(report.failures))
    return report


def write_expected(results: Iterable[CaseResult], path: str | Path) -> Path:
    """Store measured volumes as the expected table (tolerances from the ``EXPECTED_TOL_*`` constants)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in results:
            if r.measured_ml is None:
                raise InputError(f"case {r.case} has no measured volume ({r.error}); cannot store it as expected")
            tol = max(EXPECTED_TOL_REL * r.measured_ml, EXPECTED_TOL_VOXELS * r.voxel_volume_mm3 / 1000.0)
            w.writerow([r.case, r.shape, r.plane, r.slice_thickness_mm, r.slice_gap_mm, r.seed,
                        f"{r.true_volume_ml:.6f}", f"{r.true_volume_se_ml:.6f}", r.truth_tolerance_pct,
                        f"{r.measured_ml:.6f}", "" if r.mesh_ml is None else f"{r.mesh_ml:.6f}",
                        f"{_round_up(tol):.6f}"])
    return path


def _round_up(x: float) -> float:
    return math.ceil(x * 1e6) / 1e6
