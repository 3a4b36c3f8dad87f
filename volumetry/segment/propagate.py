"""Carry a baseline prompt into a follow-up scan by image registration.

The follow-up (moving) is registered to the baseline (fixed) with a rigid
transform (optionally followed by an affine one): Mattes mutual information,
regular-step gradient descent, 3 resolution levels (shrink 4/2/1, smoothing
2/1/0 mm), 5 % random sampling with a fixed seed so that a run reproduces.
DESIGN.md: the plain-gradient recipe stops early with ~2.5 mm error; this one
reaches ~0.2 mm.

The fixed image is cropped around the prompt (plus :data:`CROP_MARGIN_MM`) so
the registration looks at the anatomy around the lesion and runs fast. The
registration transform maps baseline (fixed) points to follow-up (moving)
points, which is exactly what carrying seeds needs. Each carried seed is then
moved to the brightest (smoothed) voxel within ``snap_mm`` of it — the lesion
is T2-bright — and the follow-up is segmented on its own image.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from ..errors import PromptError
from ..image import Volume
from .prompts import Prompt

log = logging.getLogger(__name__)

#: Margin (mm) around the prompt's seeds/box of the baseline region registered.
CROP_MARGIN_MM = 60.0
#: Seed of the random metric sampling (fixed so that results reproduce).
SAMPLING_SEED = 20260
#: Fraction of voxels sampled by the metric at each level. DESIGN.md measured 5 %; on the
#: longitudinal phantoms (5 mm slices, 2-6 degree repositioning) 10 % with 32 bins gave
#: <= 1.7 mm error on every case where 5 % / 50 bins left up to 8-13 mm on some.
SAMPLING_FRACTION = 0.10
#: ITK threads while registering (the global default is set for the duration of
#: :func:`register` and restored after). One thread makes every sum, hence every optimizer
#: step, bit-for-bit reproducible: several threads add partial sums in a varying order and
#: the optimizer can follow the rounding into another local optimum (seen on the phantoms).
REGISTRATION_THREADS = 1
#: Histogram bins of Mattes mutual information.
MI_BINS = 32
#: Translation (mm) or rotation (degrees) beyond which the motion is flagged as large.
LARGE_TRANSLATION_MM = 50.0
LARGE_ROTATION_DEG = 20.0
#: Default radius (mm) within which a carried seed moves to the brightest voxel.
SNAP_MM = 3.0


@dataclasses.dataclass
class RegistrationResult:
    """Outcome of registering a follow-up to its baseline.

    Attributes
    ----------
    transform_type : str
        ``"rigid"`` or ``"affine"``.
    parameters : list of float
        ITK transform parameters (rigid: 3 Euler angles in rad, 3 translations in mm;
        affine: 9 matrix entries then 3 translations in mm).
    fixed_parameters : list of float
        ITK fixed parameters (centre of rotation, LPS mm).
    matrix : list of list of float
        3×3 linear part; ``translation_mm`` the 3 translations (mm); together they
        map baseline LPS points to follow-up LPS points about the centre.
    translation_mm : list of float
    rotation_deg : float
        Rotation angle of the linear part (degrees).
    initial_metric, final_metric : float
        Mattes mutual information (negative; lower is better) before and after.
    iterations : int
        Optimizer iterations at the last level.
    stop_condition : str
        The optimizer's stop description.
    flags : list of str
        ``registration-not-converged`` (iteration limit hit), ``registration-no-improvement``
        (the metric did not improve), ``registration-large-motion``.
    seed_shift_mm : list of float
        Distance (mm) each carried seed moved when snapped to the brightest voxel.
    elapsed_s : float
    attempts : int
        Registrations run: a suspect first result (no metric gain, large motion,
        iteration limit) is retried on the whole baseline, then from the centres
        of mass, and the lowest metric (on the region around the lesion) kept.
    """

    transform_type: str
    parameters: list
    fixed_parameters: list
    matrix: list
    translation_mm: list
    rotation_deg: float
    initial_metric: float
    final_metric: float
    iterations: int
    stop_condition: str
    flags: list
    seed_shift_mm: list = dataclasses.field(default_factory=list)
    elapsed_s: float = 0.0
    attempts: int = 1

    def to_json(self) -> dict:
        """JSON-ready copy."""
        return dataclasses.asdict(self)


def _crop_fixed(baseline: Volume, prompt: Prompt, margin_mm: float):
    import SimpleITK as sitk

    pts = prompt.box.corners() if prompt.box is not None else prompt.seeds_lps
    ijk = baseline.lps_to_index(pts)
    sp = np.asarray(baseline.spacing)
    lo = np.clip(np.floor(ijk.min(axis=0) - margin_mm / sp).astype(int), 0, np.asarray(baseline.size) - 1)
    hi = np.clip(np.ceil(ijk.max(axis=0) + margin_mm / sp).astype(int) + 1, lo + 1, np.asarray(baseline.size))
    img = sitk.Cast(baseline.to_sitk(), sitk.sitkFloat32)
    return sitk.RegionOfInterest(img, [int(x) for x in hi - lo], [int(x) for x in lo])


def _metric_method():
    """A registration method with the one metric set-up (Mattes MI, fixed random sampling)
    shared by optimisation and evaluation, so that their metric values are comparable."""
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(REGISTRATION_THREADS)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=MI_BINS)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(SAMPLING_FRACTION, SAMPLING_SEED)
    reg.SetInterpolator(sitk.sitkLinear)
    return reg


def _register(fixed, moving, initial, shrink, smooth_mm, iterations):
    reg = _metric_method()
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4, numberOfIterations=iterations,
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel(smooth_mm)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(initial, inPlace=False)
    out = reg.Execute(fixed, moving)
    return reg, out


def _rigid(fixed, moving, init, shrink, smooth_mm, iterations):
    import SimpleITK as sitk

    reg, out = _register(fixed, moving, init, shrink, smooth_mm, iterations)
    final = sitk.Euler3DTransform(sitk.CompositeTransform(out).GetNthTransform(0)) \
        if out.GetName() == "CompositeTransform" else sitk.Euler3DTransform(out)
    return reg, final


def _motion(transform) -> tuple[float, float]:
    """(translation mm, rotation degrees) of a transform's linear part and offset."""
    m = np.asarray(transform.GetMatrix()).reshape(3, 3)
    u, _, vt = np.linalg.svd(m)
    angle = float(np.degrees(np.arccos(np.clip((np.trace(u @ vt) - 1) / 2, -1, 1))))
    return float(np.linalg.norm(transform.GetTranslation())), angle


def _suspect(transform, final_metric, initial_metric, reg, iterations) -> bool:
    """A result worth a second try: no metric gain, a large motion, or the iteration limit hit."""
    trans, angle = _motion(transform)
    return (not final_metric < initial_metric or trans > LARGE_TRANSLATION_MM or angle > LARGE_ROTATION_DEG
            or reg.GetOptimizerIteration() >= iterations)


def _metric(fixed, moving, transform) -> float:
    reg = _metric_method()
    reg.SetInitialTransform(transform)
    return float(reg.MetricEvaluate(fixed, moving))


def register(baseline: Volume, followup: Volume, prompt: Prompt, *, transform: str = "rigid",
             crop_margin_mm: float = CROP_MARGIN_MM, iterations: int = 200):
    """Register ``followup`` to ``baseline`` around the prompt.

    Parameters
    ----------
    baseline, followup : Volume
        Images of the same subject (any grids).
    prompt : Prompt
        Baseline prompt; the registration looks at the region around it.
    transform : {"rigid", "affine"}
        Rigid (6 parameters), or rigid followed by affine (12 parameters).
    crop_margin_mm : float
        Margin (mm) of the baseline region around the prompt.
    iterations : int
        Maximum optimizer iterations per level.

    Returns
    -------
    (SimpleITK.Transform, RegistrationResult)
        The transform maps baseline LPS points to follow-up LPS points.

    Raises
    ------
    InputError
        If ``transform`` is unknown.
    """
    import SimpleITK as sitk

    from ..errors import InputError

    if transform not in ("rigid", "affine"):
        raise InputError(f"unknown registration transform {transform!r}; use 'rigid' or 'affine'")
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(REGISTRATION_THREADS)
    try:
        return _register_all(baseline, followup, prompt, transform, crop_margin_mm, iterations)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def _register_all(baseline, followup, prompt, transform, crop_margin_mm, iterations):
    import SimpleITK as sitk

    t0 = time.perf_counter()
    fixed = _crop_fixed(baseline, prompt, crop_margin_mm)
    moving = sitk.Cast(followup.to_sitk(), sitk.sitkFloat32)
    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    init = sitk.Euler3DTransform(init)
    # start from the identity rotation about the fixed region's centre, translation 0:
    # patients are repositioned by millimetres, not by the offset between two fields of view
    init.SetTranslation((0.0, 0.0, 0.0))
    initial_metric = _metric(fixed, moving, init)
    shrink, smooth_mm = [4, 2, 1], [2.0, 1.0, 0.0]
    reg, final = _rigid(fixed, moving, init, shrink, smooth_mm, iterations)
    final_metric = _metric(fixed, moving, final)
    attempts = 1
    if _suspect(final, final_metric, initial_metric, reg, iterations):
        # second chances: the whole baseline image (more anatomy), then the centres of mass
        whole = sitk.Cast(baseline.to_sitk(), sitk.sitkFloat32)
        mom = sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS))
        for fx, start in ((whole, init), (fixed, mom)):
            attempts += 1
            r2, t2 = _rigid(fx, moving, start, shrink, smooth_mm, iterations)
            m2 = _metric(fixed, moving, t2)
            log.info("registration retry %d: metric %.4f (was %.4f)", attempts, m2, final_metric)
            if m2 < final_metric:
                reg, final, final_metric = r2, t2, m2
            if not _suspect(final, final_metric, initial_metric, reg, iterations):
                break
    kind = "rigid"
    if transform == "affine":
        aff = sitk.AffineTransform(3)
        aff.SetMatrix(final.GetMatrix())
        aff.SetTranslation(final.GetTranslation())
        aff.SetCenter(final.GetCenter())
        reg, out = _register(fixed, moving, aff, [2, 1], [1.0, 0.0], iterations)
        final = sitk.AffineTransform(sitk.CompositeTransform(out).GetNthTransform(0)) \
            if out.GetName() == "CompositeTransform" else sitk.AffineTransform(out)
        kind = "affine"
    if kind == "affine":
        final_metric = _metric(fixed, moving, final)
    m = np.asarray(final.GetMatrix()).reshape(3, 3)
    u, _, vt = np.linalg.svd(m)
    rot = u @ vt
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))))
    trans = list(final.GetTranslation())
    stop = reg.GetOptimizerStopConditionDescription()
    flags = []
    if reg.GetOptimizerIteration() >= iterations:
        flags.append("registration-not-converged")
    if not final_metric < initial_metric:
        flags.append("registration-no-improvement")
    if np.linalg.norm(trans) > LARGE_TRANSLATION_MM or angle > LARGE_ROTATION_DEG:
        flags.append("registration-large-motion")
    res = RegistrationResult(kind, list(final.GetParameters()), list(final.GetFixedParameters()), m.tolist(),
                             trans, angle, initial_metric, final_metric, int(reg.GetOptimizerIteration()),
                             stop, flags, [], time.perf_counter() - t0, attempts)
    log.info("registration %s: metric %.4f -> %.4f, translation %s mm, rotation %.2f deg, %.2f s%s", kind,
             initial_metric, final_metric, np.round(trans, 2).tolist(), angle, res.elapsed_s,
             f" (flags: {', '.join(flags)})" if flags else "")
    return final, res


def snap_to_brightest(image: Volume, points_lps: np.ndarray, radius_mm: float, smoothing_mm: float = 1.0) -> np.ndarray:
    """Move each point to the brightest voxel (after Gaussian smoothing, mm) within ``radius_mm``."""
    from scipy import ndimage

    if radius_mm <= 0:
        return np.asarray(points_lps, float)
    sp = np.asarray(image.spacing[::-1], float)
    out = []
    for xyz in np.asarray(points_lps, float):
        c = np.rint(image.lps_to_index(xyz)[::-1]).astype(int)
        r = np.ceil((radius_mm + 3 * smoothing_mm) / sp).astype(int)
        lo = np.maximum(c - r, 0)
        hi = np.minimum(c + r + 1, image.array.shape)
        sub = image.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32)
        sub = ndimage.gaussian_filter(sub, [smoothing_mm / s if s <= 2 * smoothing_mm else 0 for s in sp], mode="nearest")
        grid = np.meshgrid(*(((np.arange(a, b) - cc) * s) ** 2 for a, b, cc, s in zip(lo, hi, c, sp)), indexing="ij")
        ball = sum(grid) <= radius_mm ** 2 + 1e-9
        vals = np.where(ball, sub, -np.inf)
        best = np.array(np.unravel_index(np.argmax(vals), vals.shape)) + lo
        out.append(image.index_to_lps(best[::-1].astype(float)))
    return np.asarray(out)


def _expected_lesion_intensity(baseline: Volume, followup: Volume, prompt: Prompt, tx) -> float:
    """The baseline seed intensity mapped into the follow-up's intensity scale.

    The two scans' intensities are related by a linear map fitted on the
    registered region around the prompt (quartiles and median of the baseline
    crop against the follow-up resampled onto it): scanners rescale images from
    visit to visit. :func:`volumetry.segment.segment` uses it to tell a lesion
    from the tissue left at its place after a complete response.
    """
    import SimpleITK as sitk

    from .common import seed_value

    fixed = _crop_fixed(baseline, prompt, 30.0)
    moved = sitk.Resample(sitk.Cast(followup.to_sitk(), sitk.sitkFloat32), fixed, tx, sitk.sitkLinear, np.nan)
    b = sitk.GetArrayViewFromImage(fixed).ravel()
    f = sitk.GetArrayViewFromImage(moved).ravel()
    ok = np.isfinite(f)
    if ok.sum() < 100:
        return float("nan")
    qb = np.percentile(b[ok], [25, 50, 75])
    qf = np.percentile(f[ok], [25, 50, 75])
    scale = (qf[2] - qf[0]) / (qb[2] - qb[0]) if qb[2] > qb[0] else 1.0
    sb = seed_value(np.asarray(baseline.array, np.float32), prompt.seeds_index(baseline)[:, ::-1],
                    baseline.spacing[::-1], 2.0)
    return float(qf[1] + scale * (sb - qb[1]))


def lesion_anchors(baseline: Volume, prompt: Prompt, baseline_mask: Volume | None = None) -> np.ndarray:
    """Points (LPS mm) to carry instead of the seeds: the centre of each seed's lesion part.

    A lesion shrinks or grows about its centre, so its centre stays inside it at the
    follow-up when an off-centre click may fall outside. For each seed, the
    26-connected component of the baseline mask holding it gives its centroid; when
    the centroid is not inside the component (a crescent), its deepest voxel is used.
    Seeds without a component (or with no mask) are kept.

    Parameters
    ----------
    baseline : Volume
    prompt : Prompt
    baseline_mask : Volume, optional
        The baseline segmentation on ``baseline``'s grid; computed with the default
        method when absent.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` LPS points, one per seed.

    Raises
    ------
    GeometryMismatchError
        If ``baseline_mask`` is not on ``baseline``'s grid.
    """
    from scipy import ndimage

    from .api import segment
    from .common import CONN26, bbox

    if baseline_mask is None:
        res = segment(baseline, prompt)
        if not res.ok:
            return prompt.seeds_lps.copy()
        baseline_mask = res.mask
    baseline.require_same_grid(baseline_mask, "baseline mask")  # its indices are read with baseline's geometry
    mask = np.asarray(baseline_mask.array, bool)
    out = []
    for xyz, ijk in zip(prompt.seeds_lps, prompt.seeds_index(baseline)):
        kji = tuple(int(v) for v in ijk[::-1])
        if not mask[kji]:
            out.append(xyz)
            continue
        sl = bbox(mask, 1)
        lab, _ = ndimage.label(mask[sl], structure=CONN26)
        comp = lab == lab[tuple(k - s.start for k, s in zip(kji, sl))]
        idx = np.argwhere(comp)
        c = idx.mean(axis=0)
        ci = tuple(int(v) for v in np.rint(c))
        if not comp[ci]:
            edt = ndimage.distance_transform_edt(np.pad(comp, 1), sampling=baseline.spacing[::-1])[1:-1, 1:-1, 1:-1]
            c = np.array(np.unravel_index(int(np.argmax(edt)), edt.shape), float)
        c_full = c + np.array([s.start for s in sl])
        out.append(baseline.index_to_lps(c_full[::-1]))
    return np.asarray(out)


def propagate(baseline: Volume, followup: Volume, prompt: Prompt, *, transform: str = "rigid",
              snap_mm: float = SNAP_MM, baseline_mask: Volume | None = None) -> tuple[Prompt, RegistrationResult]:
    """Carry a baseline prompt into a follow-up scan.

    Parameters
    ----------
    baseline : Volume
        The baseline image the prompt was given on.
    followup : Volume
        A later scan of the same subject.
    prompt : Prompt
        Baseline seeds/box (LPS mm).
    transform : {"rigid", "affine"}
        Registration transform.
    snap_mm : float
        Radius (mm) within which each carried seed moves to the brightest voxel
        of the follow-up (0 disables).
    baseline_mask : Volume, optional
        The baseline segmentation of this lesion (computed when absent): the centre
        of each seed's lesion part is carried rather than the click itself
        (see :func:`lesion_anchors`).

    Returns
    -------
    (Prompt, RegistrationResult)
        The follow-up prompt (same lesion id; ``source["registration_flags"]``
        holds the registration flags so that :func:`segment` reports them) and
        the registration outcome.

    Raises
    ------
    PromptError
        If a carried seed falls outside the follow-up image (the message gives
        the seed and the follow-up's extent).
    GeometryMismatchError
        If ``baseline_mask`` is not on the baseline's grid.
    """
    tx, res = register(baseline, followup, prompt, transform=transform)

    def point_map(pts):
        return np.array([tx.TransformPoint(tuple(float(c) for c in p)) for p in np.asarray(pts, float)])

    anchors = lesion_anchors(baseline, prompt, baseline_mask)
    carried = Prompt(anchors, prompt.box, prompt.lesion_id, prompt.source).transformed(point_map)
    for n, xyz in enumerate(carried.seeds_lps):
        if not followup.contains_index(followup.lps_to_index(xyz)):
            from .prompts import image_extent

            lo, hi = image_extent(followup, "lps")
            raise PromptError(
                f"lesion {prompt.lesion_id!r}: baseline seed {n + 1} carried into the follow-up lands at "
                f"{np.round(xyz, 1).tolist()} (LPS mm), outside the follow-up's extent {np.round(lo, 1).tolist()} to "
                f"{np.round(hi, 1).tolist()}; the follow-up does not cover the lesion or the registration failed "
                f"(flags: {res.flags}); give a seed on the follow-up")
    snapped = snap_to_brightest(followup, carried.seeds_lps, snap_mm)
    expected = _expected_lesion_intensity(baseline, followup, prompt, tx)
    res.seed_shift_mm = [float(d) for d in np.linalg.norm(snapped - carried.seeds_lps, axis=1)]
    box = carried.box
    if box is not None:  # keep every seed inside the carried box
        inside = box.contains(snapped, margin_mm=1e-6)
        snapped = np.where(inside[:, None], snapped, carried.seeds_lps)
    new = Prompt(snapped, box, prompt.lesion_id,
                 {**prompt.source, "space": "lps", "propagated": True, "registration_flags": list(res.flags),
                  "expected_lesion_intensity": expected})
    return new, res
