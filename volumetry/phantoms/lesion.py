"""Single lesion phantoms: a spec, the phantom (image, truth mask, truth) and a suite.

>>> from volumetry.phantoms import PhantomSpec, make_lesion_phantom
>>> ph = make_lesion_phantom(PhantomSpec(shape="lobulated", volume_ml=10.0), seed=3)
>>> ph.truth["true_volume_ml"]  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..image import Volume
from .geometry import PLANES, Grid, make_grid, rotation_matrix
from .mri import Anatomy, Focus, Rendering, Scene, render, rng_for
from .shapes import TrueVolume, build_interior, build_solid, true_volume

#: Lesion shapes a :class:`PhantomSpec` accepts.
SHAPES = ("sphere", "ellipsoid", "lobulated", "infiltrative", "cystic", "septated", "multifocal")

#: Largest in-plane matrix the automatic field of view uses (voxels).
MAX_MATRIX = 256


@dataclasses.dataclass(frozen=True)
class PhantomSpec:
    """What to generate.

    Attributes
    ----------
    shape : str
        One of :data:`SHAPES`. ``cystic`` is an ellipsoid with dark cores,
        ``septated`` a lobulated lesion crossed by thin dark septa,
        ``multifocal`` 2–4 separate foci; the truth is always the envelope.
    volume_ml : float
        Total true lesion volume wanted, mL (the generated truth is within the
        Monte-Carlo error of it, exact for analytic shapes).
    plane : str
        ``axial``, ``coronal``, ``sagittal`` or ``oblique``.
    tilt_deg : tuple of float
        Tilts (degrees) about the plane's row and column axes.
    pixel_spacing : tuple of float
        ``(si, sj)`` mm.
    slice_thickness : float
        Acquired slice thickness, mm.
    slice_gap : float
        Gap between slices, mm (slice spacing = thickness + gap).
    snr : float
        Nominal lesion signal / noise σ.
    bias : float
        Bias-field log-amplitude (0 = none).
    n_foci : int
        Number of foci for ``multifocal``.
    name : str
        Case name (used by suites and regression tables).
    seed : int
        Default seed of :func:`make_lesion_phantom`.
    """

    shape: str = "ellipsoid"
    volume_ml: float = 10.0
    plane: str = "axial"
    tilt_deg: tuple[float, float] = (0.0, 0.0)
    pixel_spacing: tuple[float, float] = (1.0, 1.0)
    slice_thickness: float = 3.0
    slice_gap: float = 0.0
    snr: float = 20.0
    bias: float = 0.15
    n_foci: int = 3
    name: str = ""
    seed: int = 0

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise InputError(f"unknown phantom shape {self.shape!r}; choose one of {', '.join(SHAPES)}")
        if self.plane not in PLANES:
            raise InputError(f"unknown plane {self.plane!r}; choose one of {', '.join(PLANES)}")
        if not (self.volume_ml > 0 and self.slice_thickness > 0 and self.slice_gap >= 0 and self.snr > 0):
            raise InputError(
                f"phantom needs volume_ml > 0, slice_thickness > 0, slice_gap >= 0 and snr > 0; got {self}"
            )
        if min(self.pixel_spacing) <= 0:
            raise InputError(f"pixel spacing must be positive, got {self.pixel_spacing} mm")

    @property
    def slice_spacing(self) -> float:
        """Centre-to-centre slice distance (mm)."""
        return self.slice_thickness + self.slice_gap

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tilt_deg"] = list(self.tilt_deg)
        d["pixel_spacing"] = list(self.pixel_spacing)
        return d


@dataclasses.dataclass(frozen=True, eq=False)
class Phantom:
    """A generated phantom.

    Attributes
    ----------
    image : Volume
        MR-like intensities (int16, T2 fat-saturated look, Rician noise).
    mask : Volume
        Boolean ground truth on the same grid (voxels at least half inside).
    labels : Volume
        uint8 focus labels (1..n) on the same grid, 0 elsewhere.
    truth : dict
        JSON-ready truth: ``true_volume_ml``, ``true_volume_se_ml`` (0 when
        analytic), ``volume_method``, ``shape``, ``foci`` (label, centre LPS mm,
        volume), ``lesion_centres_lps_mm``, ``snr``, ``noise_sigma``,
        ``slice_thickness_mm``, ``slice_spacing_mm``, ``pixel_spacing_mm``,
        ``plane``, ``seed_point_lps_mm`` (inside the lesion, off any dark
        interior), ``seed_point_ijk``, ``box_ijk`` and ``box_lps_mm``,
        ``mask_volume_ml`` and the ``spec``.
    """

    image: Volume
    mask: Volume
    labels: Volume
    truth: dict[str, Any]


# ----------------------------------------------------------------- building
def make_focus(kind: str, volume_ml: float, *, rng: np.random.Generator, seed: int, label: int = 1,
               center=(0.0, 0.0, 0.0)) -> Focus:
    """A focus of ``kind`` (a :data:`SHAPES` member other than multifocal) scaled to ``volume_ml``.

    The truth is analytic for sphere, ellipsoid and cystic, else a Monte-Carlo
    estimate (seeded by ``seed``) of the unit shape, scaled exactly.
    """
    base = {"cystic": "ellipsoid", "septated": "lobulated"}.get(kind, kind)
    solid = build_solid(base, rng, center)
    interior = build_interior(kind, solid, rng)
    tv = true_volume(solid, seed=seed)
    factor = (volume_ml * 1000.0 / tv.mm3) ** (1.0 / 3.0)
    return Focus(label, solid, interior, tv).scaled(factor)


def make_foci(spec: PhantomSpec, seed: int) -> list[Focus]:
    """The foci of ``spec`` in body coordinates (body centre at the origin)."""
    rng = rng_for(seed, "shape")
    offset = np.array([rng.uniform(-8, 8), rng.uniform(-6, 6), rng.uniform(-5, 5)])
    if spec.shape != "multifocal":
        return [make_focus(spec.shape, spec.volume_ml, rng=rng, seed=seed, center=offset)]
    n = max(2, int(spec.n_foci))
    weights = rng.uniform(0.4, 1.0, n)
    weights[0] += 1.0  # one dominant focus
    weights /= weights.sum()
    made = [make_focus(("lobulated", "ellipsoid", "sphere", "infiltrative")[(lab - 1) % 4], spec.volume_ml * w,
                       rng=rng, seed=seed + 7919 * lab, label=lab)
            for lab, w in enumerate(weights, start=1)]
    return place_apart(made, rng, offset)


def place_apart(foci: list[Focus], rng: np.random.Generator, first_centre, *, gap_mm: float = 8.0) -> list[Focus]:
    """Move the foci so the first sits at ``first_centre`` and the others around it,
    every pair of bounding spheres at least ``gap_mm`` apart (body coordinates, mm)."""
    placed: list[Focus] = []
    for f in foci:
        r = f.solid.bounding_radius()
        c = np.asarray(first_centre, float)
        for _attempt in range(500):
            if not placed:
                break
            d = rng.normal(size=3)
            d[2] *= 0.5
            d /= np.linalg.norm(d)
            base = placed[0]
            c = base.solid.center + d * (base.solid.bounding_radius() + r + rng.uniform(gap_mm, gap_mm + 12))
            if all(np.linalg.norm(c - g.solid.center) > g.solid.bounding_radius() + r + gap_mm for g in placed):
                break
        move = c - f.solid.center
        placed.append(Focus(f.label, f.solid.transformed(np.eye(3), move),
                            tuple(p.transformed(np.eye(3), move) for p in f.interior), f.truth))
    return placed


def grid_for(foci_lps: list[Focus], spec: PhantomSpec, rng: np.random.Generator, *,
             margin_mm: float = 30.0) -> Grid:
    """A grid of ``spec``'s plane and spacings that holds the (posed) foci with a margin."""
    centre = np.mean([f.solid.center for f in foci_lps], axis=0)
    reach = max(np.linalg.norm(f.solid.center - centre) + f.solid.bounding_radius() for f in foci_lps)
    fov = max(2 * (reach + margin_mm), 80.0)
    si, sj = spec.pixel_spacing
    matrix = (min(int(math.ceil(fov / si)), MAX_MATRIX), min(int(math.ceil(fov / sj)), MAX_MATRIX))
    sk = spec.slice_spacing
    n_slices = int(math.ceil(2 * reach / sk)) + 4
    jitter = rng.uniform(-0.5, 0.5, 3) * np.array([si, sj, sk])
    return make_grid(tuple(centre + jitter), plane=spec.plane, matrix=matrix, pixel_spacing=(si, sj),
                     n_slices=n_slices, slice_spacing=sk, slice_thickness=spec.slice_thickness,
                     tilt_deg=spec.tilt_deg)


def to_int16(values: np.ndarray) -> np.ndarray:
    """Round and clip a signal to the stored int16 range (0..32767)."""
    return np.clip(np.rint(values), 0, 32767).astype(np.int16)


def seed_and_box(grid: Grid, rendering: Rendering, foci: list[Focus]) -> dict:
    """A seed point deep inside the largest focus (off its dark interior) and the mask's box."""
    labels = rendering.labels
    out: dict[str, Any] = {"seed_point_lps_mm": None, "seed_point_ijk": None, "box_ijk": None, "box_lps_mm": None}
    if not labels.any() or not foci:
        return out
    big = max(foci, key=lambda f: f.truth.mm3)
    region = (labels == big.label) & (rendering.dark_fraction < 0.05)
    if not region.any():
        region = labels == big.label
    if not region.any():
        region = labels > 0
    ks, js, is_ = np.nonzero(region)
    sl = (slice(ks.min(), ks.max() + 1), slice(js.min(), js.max() + 1), slice(is_.min(), is_.max() + 1))
    sub = np.pad(region[sl], 1)
    sk, sj, si = grid.spacing[2], grid.spacing[1], grid.spacing[0]
    edt = ndimage.distance_transform_edt(sub, sampling=(sk, sj, si))[1:-1, 1:-1, 1:-1]
    k, j, i = np.unravel_index(int(np.argmax(edt)), edt.shape)
    ijk = np.array([i + sl[2].start, j + sl[1].start, k + sl[0].start])
    out["seed_point_ijk"] = [int(v) for v in ijk]
    out["seed_point_lps_mm"] = [round(float(v), 4) for v in grid.index_to_lps(ijk.astype(float))]
    ks, js, is_ = np.nonzero(labels)
    lo = np.array([is_.min(), js.min(), ks.min()])
    hi = np.array([is_.max(), js.max(), ks.max()])
    out["box_ijk"] = [int(v) for v in (*lo, *hi)]
    corners = np.array([[a, b, c] for a in (lo[0] - .5, hi[0] + .5) for b in (lo[1] - .5, hi[1] + .5)
                        for c in (lo[2] - .5, hi[2] + .5)])
    pts = grid.index_to_lps(corners)
    out["box_lps_mm"] = [[round(float(v), 4) for v in pts.min(axis=0)], [round(float(v), 4) for v in pts.max(axis=0)]]
    return out


def combined_truth(foci: list[Focus]) -> TrueVolume:
    """Sum of the foci's truths (standard errors added in quadrature)."""
    if not foci:
        return TrueVolume(0.0, 0.0, "analytic")
    methods = {f.truth.method.split(" ")[0] for f in foci}
    return TrueVolume(sum(f.truth.mm3 for f in foci), math.sqrt(sum(f.truth.se_mm3 ** 2 for f in foci)),
                      "monte-carlo" if "monte-carlo" in methods else "analytic")


def assemble(grid: Grid, rendering: Rendering, foci_lps: list[Focus], *, shape: str, snr: float,
             extra: dict | None = None, meta: dict | None = None) -> Phantom:
    """Wrap a rendering as a :class:`Phantom` with its truth dictionary."""
    tv = combined_truth(foci_lps)
    meta = dict(meta or {})
    image = grid.volume(to_int16(rendering.image), modality="MR", **meta)
    labels = grid.volume(rendering.labels, **meta)
    mask = grid.volume(rendering.labels > 0, **meta)
    truth: dict[str, Any] = {
        "shape": shape,
        "true_volume_ml": round(float(tv.ml), 6),
        "true_volume_se_ml": round(float(tv.se_ml), 6),
        "volume_method": tv.method if foci_lps else "no lesion",
        "mask_volume_ml": round(float(mask.array.sum()) * grid.voxel_volume_mm3 / 1000.0, 6),
        "foci": [
            {"label": f.label, "kind": f.solid.kind, "centre_lps_mm": [round(float(v), 4) for v in f.solid.center],
             "true_volume_ml": round(float(f.truth.ml), 6), "true_volume_se_ml": round(float(f.truth.se_ml), 6),
             "volume_method": f.truth.method}
            for f in foci_lps
        ],
        "lesion_centres_lps_mm": [[round(float(v), 4) for v in f.solid.center] for f in foci_lps],
        "snr": float(snr),
        "noise_sigma": float(rendering.sigma),
        "slice_thickness_mm": float(grid.slice_thickness),
        "slice_spacing_mm": float(grid.spacing[2]),
        "pixel_spacing_mm": [float(grid.spacing[0]), float(grid.spacing[1])],
        "plane": grid.plane,
        "grid": grid.describe(),
        **seed_and_box(grid, rendering, foci_lps),
    }
    truth.update(extra or {})
    return Phantom(image, mask, labels, truth)


def make_lesion_phantom(spec: PhantomSpec, *, seed: int | None = None) -> Phantom:
    """Generate one lesion phantom.

    Parameters
    ----------
    spec : PhantomSpec
        Shape, volume, geometry and image quality.
    seed : int, optional
        Seed of everything random (shape, anatomy, placement, texture, bias,
        noise); defaults to ``spec.seed``. Same seed -> identical phantom.

    Returns
    -------
    Phantom

    Raises
    ------
    InputError
        If the spec is invalid (raised when the spec is built).
    """
    seed = spec.seed if seed is None else int(seed)
    foci = make_foci(spec, seed)
    anatomy = Anatomy.around(foci, seed=seed)
    scene = Scene(anatomy, tuple(foci))
    rng = rng_for(seed, "placement")
    # the body sits somewhere in the scanner, slightly rotated (patient positioning)
    rot = rotation_matrix(rng.normal(size=3), rng.uniform(0, 6))
    trans = rng.uniform(-40, 40, 3)
    posed = [f.posed(rot, trans) for f in foci]
    grid = grid_for(posed, spec, rng)
    rendering = render(scene, grid, pose=(rot, trans), snr=spec.snr, bias_amplitude=spec.bias, seed=seed)
    return assemble(grid, rendering, posed, shape=spec.shape, snr=spec.snr,
                    extra={"spec": spec.as_dict(), "seed": seed, "bias_amplitude": spec.bias},
                    meta={"description": f"phantom {spec.name or spec.shape}", "source": "volumetry.phantoms"})


# -------------------------------------------------------------------- suite
def phantom_suite(n: int = 48, *, seed: int = 2024) -> list[PhantomSpec]:
    """A deterministic list of ``n`` (≥ 40 by default) varied phantom specs.

    Covers 0.5–200 mL, 1–6 mm slices, slice gaps, SNR 5–40, bias fields,
    axial/coronal/sagittal/double-oblique planes, anisotropic pixels and every
    shape of :data:`SHAPES`. Pixel size grows with the lesion so the matrices
    stay small. Each spec carries its own ``name`` and ``seed``.

    Parameters
    ----------
    n : int
        Number of specs.
    seed : int
        Seed of the choices (the default gives the benchmark's suite).
    """
    rng = rng_for(seed, "suite")
    volumes = [0.5, 1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 14.0, 20.0, 30.0, 45.0, 70.0, 100.0, 140.0, 200.0]
    thicknesses = [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0]
    snrs = [5.0, 8.0, 12.0, 20.0, 30.0, 40.0]
    biases = [0.0, 0.1, 0.2, 0.3]
    out = []
    for idx in range(n):
        shape = SHAPES[idx % len(SHAPES)]
        vol = volumes[(idx * 4) % len(volumes)]
        thk = thicknesses[(idx * 3 + idx // 7) % len(thicknesses)]
        plane = ("axial", "coronal", "sagittal", "oblique", "axial")[(idx + idx // 5) % 5]
        tilt = (0.0, 0.0)
        if plane == "oblique":
            tilt = (float(rng.uniform(10, 30)), float(rng.uniform(-25, -8)))
        elif idx % 6 == 2:
            tilt = (float(rng.uniform(-12, 12)), 0.0)  # single-oblique
        radius = (3 * vol * 1000 / (4 * np.pi)) ** (1 / 3)
        base_px = float(np.clip(radius / 18.0, 0.45, 1.6))
        px = (round(base_px, 3), round(base_px * (1.0 if idx % 3 else rng.uniform(1.1, 1.35)), 3))
        gap = [0.0, 0.0, 0.0, 0.5, 1.0][idx % 5] * (thk / 3.0 if thk >= 3 else 0.0)
        spec = PhantomSpec(
            shape=shape, volume_ml=vol, plane=plane, tilt_deg=tilt, pixel_spacing=px,
            slice_thickness=thk, slice_gap=round(gap, 3), snr=snrs[(idx * 5) % len(snrs)],
            bias=biases[idx % len(biases)], n_foci=2 + idx % 3,
            name=f"suite{idx:02d}-{shape}-{vol:g}ml-{plane}-{thk:g}mm", seed=seed * 1000 + idx,
        )
        out.append(spec)
    return out


def iter_suite(specs: list[PhantomSpec]) -> Iterator[tuple[PhantomSpec, Phantom]]:
    """Generate the phantoms of ``specs`` one at a time."""
    for spec in specs:
        yield spec, make_lesion_phantom(spec)
