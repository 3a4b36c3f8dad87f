"""Longitudinal phantom subjects: one patient scanned at baseline and at the end
of each 12-week treatment course.

Each lesion follows a volume trajectory (a factor per visit relative to
baseline) built to have a known response category under the default
vascular-anomaly criteria (vs baseline: CR = no measurable lesion; PR ≤ −20 %;
PD ≥ +20 %; SD otherwise). Factors stay well away from the ±20 % thresholds so
the expected category is unambiguous. A lesion shrinks or grows about its own
centre with its shape kept, so every visit's true volume is the baseline truth
times the factor exactly, and the true percent change is exact.

Between visits the patient is repositioned (a rigid rotation of a few degrees
and a shift of up to ~10 mm in the scanner), the bias field and the noise are
new, and at one visit the protocol drifts (another slice thickness, a gap, or
another plane).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from typing import Any

import numpy as np

from .geometry import Grid, make_grid, rotation_matrix
from .lesion import Phantom, assemble, make_focus, place_apart
from .mri import Anatomy, Focus, Scene, render, rng_for

#: Visits of a subject, in order (baseline, then the end of each course).
VISITS = ("baseline", "course1", "course2", "course3", "course4")
#: Length of a treatment course (days).
COURSE_DAYS = 84

#: Default thresholds (percent change from baseline) of the response categories.
PR_THRESHOLD_PCT = -20.0
PD_THRESHOLD_PCT = 20.0

#: Volume factors (visit / baseline) of the built-in trajectories, one per visit.
TRAJECTORIES: dict[str, tuple[float, ...]] = {
    "responder": (1.0, 0.88, 0.70, 0.58, 0.50),
    "stable": (1.0, 1.06, 0.94, 1.09, 1.03),
    "progressor": (1.0, 1.08, 1.33, 1.55, 1.85),
    "complete_response": (1.0, 0.55, 0.18, 0.0, 0.0),
    "focus_disappears": (1.0, 0.50, 0.0, 0.0, 0.0),
    "slow_responder": (1.0, 0.93, 0.86, 0.74, 0.66),
}


def expected_response(factor: float) -> str:
    """Category of a visit whose true volume is ``factor`` × baseline (default criteria).

    Returns ``CR`` for 0, ``PD`` for ≥ +20 %, ``PR`` for ≤ −20 %, else ``SD``.
    """
    if factor <= 0:
        return "CR"
    pct = round((factor - 1.0) * 100.0, 9)  # boundaries inclusive despite binary fractions
    if pct >= PD_THRESHOLD_PCT:
        return "PD"
    if pct <= PR_THRESHOLD_PCT:
        return "PR"
    return "SD"


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Acquisition protocol of a visit (scanner LPS, mm)."""

    plane: str = "axial"
    tilt_deg: tuple[float, float] = (0.0, 0.0)
    pixel_spacing: tuple[float, float] = (1.4, 1.4)
    matrix: tuple[int, int] = (128, 128)
    slice_thickness: float = 5.0
    slice_gap: float = 0.0
    snr: float = 20.0
    bias: float = 0.15
    description: str = "T2 FS AX"

    @property
    def slice_spacing(self) -> float:
        return self.slice_thickness + self.slice_gap


@dataclasses.dataclass(frozen=True)
class LesionPlan:
    """One lesion of a subject: its shape, baseline volume and trajectory."""

    lesion_id: str
    kind: str
    baseline_ml: float
    trajectory: str

    @property
    def factors(self) -> tuple[float, ...]:
        return TRAJECTORIES[self.trajectory]


@dataclasses.dataclass(frozen=True)
class SubjectPlan:
    """Everything that defines a longitudinal subject.

    Attributes
    ----------
    subject_id : str
    lesions : tuple of LesionPlan
    protocol : Protocol
        The usual protocol.
    drift : dict
        ``visit -> Protocol`` used at that visit instead (protocol drift).
    missed : tuple of str
        Visits not performed (no scan, no truth row).
    formats : dict
        ``visit -> "dicom" | "nifti"`` (default dicom).
    baseline_date : str
        ISO date of the baseline scan.
    seed : int
    """

    subject_id: str
    lesions: tuple
    protocol: Protocol = Protocol()
    drift: dict = dataclasses.field(default_factory=dict)
    missed: tuple = ()
    formats: dict = dataclasses.field(default_factory=dict)
    baseline_date: str = "2024-01-08"
    seed: int = 0
    trajectory: str = ""

    def visits(self) -> list[str]:
        """Visits performed, in order."""
        return [v for v in VISITS if v not in self.missed]

    def protocol_at(self, visit: str) -> Protocol:
        return self.drift.get(visit, self.protocol)

    def scan_date(self, visit: str) -> str:
        """ISO date of a visit: baseline + 84 days per course, ± a few days."""
        course = VISITS.index(visit)
        jitter = 0 if course == 0 else int(rng_for(self.seed, f"date-{visit}").integers(-6, 7))
        day = _dt.date.fromisoformat(self.baseline_date) + _dt.timedelta(days=COURSE_DAYS * course + jitter)
        return day.isoformat()


@dataclasses.dataclass(frozen=True, eq=False)
class Subject:
    """A built subject: its anatomy and baseline foci (body coordinates)."""

    plan: SubjectPlan
    scene: Scene
    labels: dict  # lesion_id -> focus label

    def pose(self, visit: str) -> tuple[np.ndarray, np.ndarray]:
        """Body -> scanner rigid transform of the patient at ``visit``."""
        rng = rng_for(self.plan.seed, f"pose-{visit}")
        angle = rng.uniform(2.0, 6.0) if visit != "baseline" else rng.uniform(0.0, 2.0)
        rot = rotation_matrix(rng.normal(size=3), angle)
        trans = np.array([0.0, -20.0, 40.0]) + rng.uniform(-10.0, 10.0, 3)
        return rot, trans


@dataclasses.dataclass(frozen=True, eq=False)
class VisitScan:
    """One visit of a subject: the phantom and its per-lesion truth."""

    subject_id: str
    visit: str
    course: int
    scan_date: str
    protocol: Protocol
    phantom: Phantom
    lesions: list  # dicts: lesion_id, label, factor, true_volume_ml, true_volume_se_ml, ...


def make_subject(plan: SubjectPlan) -> Subject:
    """Build the anatomy and baseline lesions of ``plan`` (deterministic in ``plan.seed``)."""
    rng = rng_for(plan.seed, "subject-shape")
    foci = [make_focus(lp.kind, lp.baseline_ml, rng=rng, seed=plan.seed * 100 + n, label=n)
            for n, lp in enumerate(plan.lesions, start=1)]
    offset = np.array([rng.uniform(-6, 6), rng.uniform(-5, 5), 0.0])
    foci = place_apart(foci, rng, offset, gap_mm=10.0)
    anatomy = Anatomy.around(foci, seed=plan.seed)
    return Subject(plan, Scene(anatomy, tuple(foci)), {lp.lesion_id: n for n, lp in enumerate(plan.lesions, start=1)})


def _grid(subject: Subject, protocol: Protocol, pose, visit: str) -> Grid:
    rot, trans = pose
    foci = subject.scene.foci
    centre_body = np.mean([f.solid.center for f in foci], axis=0)
    reach = max(np.linalg.norm(f.solid.center - centre_body) + f.solid.bounding_radius() for f in foci)
    rng = rng_for(subject.plan.seed, f"grid-{visit}")
    centre = rot @ centre_body + trans + rng.uniform(-4.0, 4.0, 3)
    n_slices = int(math.ceil((2 * reach + 24.0) / protocol.slice_spacing)) + 1
    return make_grid(tuple(centre), plane=protocol.plane, matrix=protocol.matrix,
                     pixel_spacing=protocol.pixel_spacing, n_slices=n_slices,
                     slice_spacing=protocol.slice_spacing, slice_thickness=protocol.slice_thickness,
                     tilt_deg=protocol.tilt_deg)


def scan_visit(subject: Subject, visit: str) -> VisitScan:
    """Render ``visit`` of ``subject``.

    Raises
    ------
    ValueError
        If the visit is unknown or was missed.
    """
    plan = subject.plan
    if visit not in plan.visits():
        raise ValueError(f"{plan.subject_id} has no visit {visit!r} (visits: {', '.join(plan.visits())})")
    idx = VISITS.index(visit)
    foci: list[Focus] = []
    lesions: list[dict[str, Any]] = []
    for lp in plan.lesions:
        label = subject.labels[lp.lesion_id]
        base = subject.scene.foci[label - 1]
        factor = lp.factors[idx]
        if factor > 0:
            foci.append(base.scaled(factor ** (1.0 / 3.0)))
        lesions.append({
            "lesion_id": lp.lesion_id, "label": label, "trajectory": lp.trajectory, "factor": factor,
            "true_volume_ml": round(float(base.truth.ml * factor), 6),
            "true_volume_se_ml": round(float(base.truth.se_ml * factor), 6),
            "true_percent_change": round((factor - 1.0) * 100.0, 6),
            "expected_response": "" if idx == 0 else expected_response(factor),
        })
    protocol = plan.protocol_at(visit)
    pose = subject.pose(visit)
    grid = _grid(subject, protocol, pose, visit)
    scene = Scene(subject.scene.anatomy, tuple(foci))
    seed = plan.seed * 10 + idx
    rendering = render(scene, grid, pose=pose, snr=protocol.snr, bias_amplitude=protocol.bias, seed=seed)
    rot, trans = pose
    posed = [f.posed(rot, trans) for f in foci]
    phantom = assemble(
        grid, rendering, posed, shape="+".join(lp.kind for lp in plan.lesions), snr=protocol.snr,
        extra={"subject_id": plan.subject_id, "visit": visit, "course": idx, "lesions": lesions,
               "pose": {"rotation": [[round(float(v), 9) for v in row] for row in rot],
                        "translation_mm": [round(float(v), 6) for v in trans]},
               "protocol_drift": visit in plan.drift, "bias_amplitude": protocol.bias},
        meta={"description": protocol.description, "source": "volumetry.phantoms"},
    )
    # per-lesion seed points (the seed_and_box above is for the largest focus)
    for les in lesions:
        les["seed_point_lps_mm"] = _seed_for(phantom, rendering, les["label"])
    return VisitScan(plan.subject_id, visit, idx, plan.scan_date(visit), protocol, phantom, lesions)


def _seed_for(phantom: Phantom, rendering, label: int) -> list[float] | None:
    from scipy import ndimage

    region = (rendering.labels == label) & (rendering.dark_fraction < 0.05)
    if not region.any():
        region = rendering.labels == label
    if not region.any():
        return None
    sk, sj, si = phantom.image.spacing[2], phantom.image.spacing[1], phantom.image.spacing[0]
    edt = ndimage.distance_transform_edt(np.pad(region, 1), sampling=(sk, sj, si))[1:-1, 1:-1, 1:-1]
    k, j, i = np.unravel_index(int(np.argmax(edt)), edt.shape)
    return [round(float(v), 4) for v in phantom.image.index_to_lps(np.array([i, j, k], float))]
