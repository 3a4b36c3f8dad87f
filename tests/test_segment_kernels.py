"""The compiled kernels of region growing (volumetry/segment/kernels.py) and the code calling them give
exactly the numbers of the code they replaced. The oracles are frozen copies of that code:

* tests/frozen_region_growing.py: volumetry/segment/region_growing.py before the kernels (verbatim);
* ``_ref_median`` below: ``common.median`` before its compiled tail (verbatim, renamed);
* the numpy building blocks of volumetry/segment/common.py that the kernels stand in for (``closing``,
  ``connected_to_seeds_in_box``, ``shell``, ``core``, ``fill_holes``), which this change leaves as they were.

Every comparison is exact: arrays with ``array_equal`` (and the same dtype), floats with ``==``, the
same type and the same sign of zero, messages and flags with ``==``. The inputs:

* every call the 29 ``segment()`` calls of a sample-trial pipeline run make (their images, prompts,
  methods and parameters were recorded from ``run_study`` into tests/segment_sample_calls.json;
  the images are read again from sample_data/ and checked against the recorded content hash), and
  the whole ``segment()`` results of those calls;
* suite phantoms (bias-corrected, septated, multifocal, a box, failures) through ``segment()``;
* randomized crops: float32 and float64, thin axes (one voxel), regions on the crop's faces, ties of
  the threshold with voxel values, every connectivity, with and without a box (``allowed``),
  seeds off the region (their anchors decide), several seeds, closings from none to 3D balls.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import frozen_region_growing as F
from volumetry.phantoms import make_lesion_phantom, phantom_suite
from volumetry.segment import Box, Prompt, api, common, kernels
from volumetry.segment import region_growing as rg
from volumetry.segment.common import bbox, closing, connected_to_seeds_in_box, core, fill_holes, seed_balls, shell
from volumetry.segment.roi import make_roi

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
CALLS = Path(__file__).resolve().parent / "segment_sample_calls.json"


# ---------------------------------------------------------------- reference (old code) ----


def _ref_median(x: np.ndarray):
    x = np.ravel(x)
    n = x.size
    if n < 3 or not np.issubdtype(x.dtype, np.floating):
        return np.median(x)
    h = n // 2
    part = np.partition(x, h)
    if np.isnan(part[h]) or np.isnan(part[h + 1:]).any():  # NaN: numpy's own result
        return np.median(x)
    if n % 2:
        return np.mean(part[h:h + 1])
    mid = np.empty(2, dtype=part.dtype)
    mid[0] = part[:h].max()
    mid[1] = part[h]
    return np.mean(mid)


def _ref_grow(sm, threshold, connectivity, allowed, seeds, anchors, closing_mm, spacing_kji):
    """``grow`` of the frozen ``_one_pass`` (a closure there), verbatim but for its free variables."""
    binary = sm > threshold
    if allowed is not None:
        binary &= allowed
    region = np.zeros(binary.shape, dtype=bool)
    sl = bbox(binary)
    if sl is None:
        return region
    box = closing(binary[sl], closing_mm, spacing_kji)
    if allowed is not None:
        box &= allowed[sl]
    region[sl] = connected_to_seeds_in_box(box, [s.start for s in sl], seeds, anchors=anchors,
                                           structure=rg.CONNECTIVITY[connectivity])
    return region


@contextlib.contextmanager
def _old_code():
    """Within: ``segment()`` runs the frozen region growing with the frozen median (also inside
    ``common.noise_sigma``)."""
    saved = rg.region_growing, common.median, F.median
    rg.region_growing, common.median, F.median = F.region_growing, _ref_median, _ref_median
    try:
        yield
    finally:
        rg.region_growing, common.median, F.median = saved


# ---------------------------------------------------------------- comparisons ----


def _same_float(x, y) -> bool:
    if type(x) is not type(y):
        return False
    if isinstance(x, (float, np.floating)):
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return x == y and math.copysign(1.0, x) == math.copysign(1.0, y)
    return x == y


def _same_array(x: np.ndarray, y: np.ndarray) -> bool:
    return x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")


def _same_qc(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(_same_float(a[k], b[k]) for k in a)


def _same_result(new, old):
    assert (new.status, new.reason, new.method, new.lesion_id) == (old.status, old.reason, old.method, old.lesion_id)
    assert new.flags == old.flags
    assert new.params == old.params
    assert _same_qc(new.qc, old.qc), (new.qc, old.qc)
    assert (new.mask is None) == (old.mask is None)
    if old.mask is not None:
        assert _same_array(new.mask.array, old.mask.array)
        assert new.mask.meta == old.mask.meta
        assert np.array_equal(new.mask.affine, old.mask.affine)


def _same_output(new, old):
    """Two ``MethodOutput``\\ s are the same."""
    assert (new.reason, new.flags, new.needs_larger_crop) == (old.reason, old.flags, old.needs_larger_crop)
    assert (new.mask is None) == (old.mask is None)
    if old.mask is not None:
        assert _same_array(new.mask, old.mask)
    assert _same_qc(new.qc, old.qc), (new.qc, old.qc)


# ---------------------------------------------------------------- the sample trial ----


def _sample_calls():
    from volumetry.io.reader import read_image

    if not CALLS.exists() or not SAMPLE.exists():
        pytest.skip("sample_data/ or the recorded calls are absent")
    out = []
    images = {}
    for c in json.loads(CALLS.read_text()):
        key = (c["image"], c["series_uid"], c["volume_index"])
        if key not in images:
            images[key] = read_image(SAMPLE / c["image"], series_uid=c["series_uid"], volume_index=c["volume_index"])
        image = images[key]
        assert hashlib.sha256(np.ascontiguousarray(image.array).tobytes()).hexdigest() == c["array_sha256"]
        box = None if c["box"] is None else Box(np.asarray(c["box"]["corner"]), np.asarray(c["box"]["edges"]))
        prompt = Prompt(np.asarray(c["seeds_lps"], float), box, c["lesion_id"], c["source"])
        out.append((image, prompt, c["method"], c["params"]))
    return out


@pytest.fixture(scope="module")
def sample_calls():
    return _sample_calls()


class _Recorder:
    """Wraps the entry points of the kernels in region_growing and common and records each call."""

    def __init__(self, monkeypatch):
        self.grow, self.shell, self.lesion, self.fill, self.field, self.medians = [], [], [], [], [], []
        self._pass = None
        one_pass, grower_call, shell_call = rg._one_pass, rg._Grower.__call__, rg._Shell.__call__
        lesion, fill_kernel, field, median = rg._lesion_intensity, rg.fill_slices_kernel, rg.lesion_field, common.median

        def rec_one_pass(a, roi, p, anchors):
            self._pass = (roi, p, anchors)
            return one_pass(a, roi, p, anchors)

        def rec_grow(grower, threshold, connectivity, allowed):
            out = grower_call(grower, threshold, connectivity, allowed)
            region, n, rbox = out  # copies: the last region is filled in place afterwards
            self.grow.append((grower.sm, threshold, connectivity, allowed, self._pass, (region.copy(), n, rbox.copy())))
            return out

        def rec_shell(sh, region, rbox):
            out = shell_call(sh, region, rbox)
            self.shell.append((sh, region.copy(), rbox.copy(), out))
            return out

        def rec_lesion(a, region, rbox, n, stat, core_fraction):
            out = lesion(a, region, rbox, n, stat, core_fraction)
            self.lesion.append((a, region.copy(), stat, core_fraction, out))
            return out

        def rec_fill(region, rbox):
            before = region.copy()
            out = fill_kernel(region, rbox)
            self.fill.append((before, region.copy(), out))
            return out

        def rec_field(a, region, spacing_kji, *args):
            out = field(a, region, spacing_kji, *args)
            self.field.append((a, region.copy(), spacing_kji, args, out))
            return out

        def rec_median(x):
            out = median(x)
            self.medians.append((np.array(x, copy=True), out))
            return out

        monkeypatch.setattr(rg, "_one_pass", rec_one_pass)
        monkeypatch.setattr(rg._Grower, "__call__", rec_grow)
        monkeypatch.setattr(rg._Shell, "__call__", rec_shell)
        monkeypatch.setattr(rg, "_lesion_intensity", rec_lesion)
        monkeypatch.setattr(rg, "fill_slices_kernel", rec_fill)
        monkeypatch.setattr(rg, "lesion_field", rec_field)
        monkeypatch.setattr(rg, "median", rec_median)
        monkeypatch.setattr(common, "median", rec_median)


def _check_recorded(r: _Recorder):
    """Every recorded kernel call against the code it replaces."""
    for sm, threshold, conn, allowed, (roi, p, anchors), (region, n, rbox) in r.grow:
        ref = _ref_grow(sm, threshold, conn, allowed, roi.seeds, anchors, p["closing_mm"], roi.spacing_kji)
        assert _same_array(region, ref)
        assert n == np.count_nonzero(ref)
        if n:
            assert [(s.start, s.stop) for s in bbox(ref)] == list(zip(rbox[:3].tolist(), rbox[3:].tolist()))
    for sh, region, rbox, values in r.shell:
        ref = shell(region, sh.spacing_kji, sh.width_mm, sh.allowed, sh.gap_mm)
        assert _same_array(values, sh.a[ref])
        if sh.rows is not None:  # the kernel's mask too
            mask = np.zeros(region.shape, bool)
            kernels.shell_kernel(region, rbox, sh.pad, sh.rows[0], sh.rows[1], sh.allowed, sh.a, mask)
            assert _same_array(mask, ref)
    with _old_code():
        for a, region, stat, core_fraction, value in r.lesion:
            assert _same_float(value, F.lesion_intensity(a, region, stat, core_fraction))
        for a, region, spacing_kji, args, (field, gradient) in r.field:
            ref_field, ref_gradient = F.lesion_field(a, region, spacing_kji, *args)
            assert _same_float(gradient, ref_gradient)
            assert (field is None) == (ref_field is None)
            if field is not None:
                assert _same_array(field, ref_field)
    for before, after, n in r.fill:
        ref = fill_holes(before)
        assert _same_array(after, ref)
        assert n == np.count_nonzero(ref) - np.count_nonzero(before)
    for x, value in r.medians:
        assert _same_float(value, _ref_median(x)), (x, value)


def test_every_kernel_call_of_the_sample_trial_equals_the_old_code(sample_calls, monkeypatch):
    assert len(sample_calls) == 29
    with monkeypatch.context() as m:
        r = _Recorder(m)
        for image, prompt, method, params in sample_calls:
            api.segment(image, prompt, method=method, params=params)
    # the run's calls (grow 245, shell 183, lesion intensity 183, fill 62, lesion field 34)
    assert len(r.grow) > 200 and len(r.shell) > 150 and len(r.lesion) > 150 and len(r.fill) > 50
    assert len(r.field) > 30 and len(r.medians) > 400
    _check_recorded(r)


def test_segment_results_of_the_sample_trial_equal_the_old_code(sample_calls):
    new = [api.segment(image, prompt, method=method, params=params) for image, prompt, method, params in sample_calls]
    with _old_code():
        old = [api.segment(image, prompt, method=method, params=params)
               for image, prompt, method, params in sample_calls]
    assert sum(res.ok for res in old) == 24  # the run's results: some follow-ups have no lesion left
    assert sum(res.qc.get("bias_corrected", 0) for res in old) > 10  # the second, corrected pass is exercised
    for n, o in zip(new, old):
        _same_result(n, o)


# ---------------------------------------------------------------- phantoms ----

#: Suite phantoms: cystic (bias-corrected), septated (correction rejected, 12 iterations),
#: multifocal (several seeds), a small sphere with a bias field, a low-contrast sphere, an oblique ellipsoid.
CASES = ["suite04-cystic-1ml-axial-5mm", "suite19-septated-1ml-sagittal-3mm", "suite13-multifocal-14ml-axial-5mm",
         "suite35-sphere-6ml-sagittal-5mm", "suite42-sphere-2.5ml-axial-6mm", "suite15-ellipsoid-0.5ml-oblique-5mm"]


def _phantom(name):
    return make_lesion_phantom(next(s for s in phantom_suite() if s.name == name))


def _seeds(ph):
    t = ph.truth
    return t["lesion_centres_lps_mm"] if t["shape"] == "multifocal" else [t["seed_point_lps_mm"]]


@pytest.mark.parametrize("name", CASES)
def test_segment_results_on_phantoms_equal_the_old_code(name, monkeypatch):
    ph = _phantom(name)
    prompts = [Prompt.from_points(_seeds(ph), "lps", ph.image)]
    seed = np.asarray(_seeds(ph)[0], float)
    prompts.append(Prompt.from_points([seed], "lps", ph.image, box=[seed - 10.0, seed + 10.0]))  # a box
    far = ph.image.index_to_lps(np.array([2.0, 2.0, ph.image.array.shape[0] // 2]))
    prompts.append(Prompt.from_points([far], "lps", ph.image))  # background: fails
    for params in ({}, {"connectivity": 26, "lesion_stat": "core"}, {"bias_correction": False, "closing_mm": 0.0},
                   {"connectivity": 6, "closing_mm": 3.0, "lesion_stat": "region", "fill_holes": False}):
        for prompt in prompts:
            with monkeypatch.context() as m:
                r = _Recorder(m)
                new = api.segment(ph.image, prompt, params=params)
            with _old_code():
                old = api.segment(ph.image, prompt, params=params)
            _same_result(new, old)
            if new.ok:
                _check_recorded(r)


def test_region_growing_on_a_crop_equals_the_old_code_when_it_fails():
    ph = _phantom("suite35-sphere-6ml-sagittal-5mm")
    seed = np.asarray(ph.truth["seed_point_lps_mm"], float)
    roi = make_roi(ph.image, Prompt.from_points([seed], "lps", ph.image), 3.0)  # no background left
    with _old_code():
        old = rg.region_growing(roi, {})
    assert old.mask is None and old.needs_larger_crop
    _same_output(rg.region_growing(roi, {}), old)
    for bad in ({"lesion_stat": "mean"}, {"connectivity": 10}):
        with pytest.raises(Exception) as new_exc:
            rg.region_growing(make_roi(ph.image, Prompt.from_points([seed], "lps", ph.image), 30.0), bad)
        with _old_code(), pytest.raises(Exception) as old_exc:
            rg.region_growing(make_roi(ph.image, Prompt.from_points([seed], "lps", ph.image), 30.0), bad)
        assert (type(new_exc.value), str(new_exc.value)) == (type(old_exc.value), str(old_exc.value))


# ---------------------------------------------------------------- randomized crops ----

#: Voxel sizes (k, j, i) in mm: thick slices, isotropic, fine in-plane, odd values.
SPACINGS = [(5.0, 1.4, 1.4), (1.0, 1.0, 1.0), (3.0, 0.7, 0.75), (2.2, 0.45, 0.505), (6.0, 1.6, 1.6), (0.9, 1.1, 0.8)]


def _shape(rng, kind):
    shape = [int(x) for x in rng.integers(1, 26, size=3)]
    if kind == 1:
        shape[int(rng.integers(0, 3))] = 1  # a thin axis
    if kind == 2:
        shape = [int(x) for x in rng.integers(20, 40, size=3)]
    return tuple(shape)


def _crop(rng, shape, dtype):
    sm = ndimage.gaussian_filter(rng.random(shape), float(rng.uniform(0.5, 2.0))) + rng.normal(0, 0.02, shape)
    if rng.random() < 0.3:
        sm = np.round(sm * 50) / 50  # ties everywhere
    return sm.astype(dtype)


def _allowed(rng, shape):
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return None
    if kind == 1:  # a box
        m = np.zeros(shape, bool)
        m[tuple(slice(int(rng.integers(0, n)), int(rng.integers(0, n)) + 1 + n // 2) for n in shape)] = True
        return m
    return rng.random(shape) < 0.8


def _seed_voxels(rng, shape):
    n = int(rng.integers(1, 4))
    seeds = np.stack([rng.integers(0, s, size=n) for s in shape], axis=1)
    if rng.random() < 0.3:  # on the crop's faces
        seeds[0, int(rng.integers(0, 3))] = 0
    return seeds.astype(int)


@pytest.mark.parametrize("seed", range(60))
def test_grow_equals_old_code_on_random_crops(seed):
    rng = np.random.default_rng(seed)
    shape = _shape(rng, seed % 3)
    dtype = (np.float32, np.float64)[seed % 2]
    sm = _crop(rng, shape, dtype)
    sp = SPACINGS[seed % len(SPACINGS)]
    closing_mm = (0.0, 1.5, 3.0, 0.5)[seed % 4]
    seeds = _seed_voxels(rng, shape)
    anchors = seed_balls(shape, seeds, sp, float(rng.choice([0.0, 1.5, 3.0])))
    roi = type("R", (), {"seeds": seeds, "spacing_kji": sp})()
    grower = rg._Grower(sm, roi, closing_mm, anchors)
    allowed = _allowed(rng, shape)
    values = np.unique(sm)
    thresholds = [float(values[int(rng.integers(0, len(values)))]),  # a tie with a voxel value
                  float(np.quantile(sm, 0.6)), float(sm.max()), float(sm.min()) - 1.0,
                  float(np.nextafter(np.float32(values[len(values) // 2]), np.float32(np.inf))) + 1e-12]
    for threshold in thresholds:
        for conn in (6, 18, 26):
            region, n, rbox = grower(threshold, conn, allowed)
            ref = _ref_grow(sm, threshold, conn, allowed, seeds, anchors, closing_mm, sp)
            assert _same_array(region, ref), (threshold, conn)
            assert n == np.count_nonzero(ref)
            if n:
                assert [(s.start, s.stop) for s in bbox(ref)] == list(zip(rbox[:3].tolist(), rbox[3:].tolist()))


def _region(rng, shape, kind):
    if kind == 0:  # blobs
        r = ndimage.gaussian_filter(rng.random(shape), 1.5)
        m = r > np.quantile(r, float(rng.uniform(0.5, 0.95)))
    elif kind == 1:  # one voxel
        m = np.zeros(shape, bool)
        m[tuple(int(rng.integers(0, n)) for n in shape)] = True
    elif kind == 2:  # a box on the crop's faces
        m = np.zeros(shape, bool)
        m[tuple(slice(0, max(1, n // 2)) for n in shape)] = True
    else:  # a shell with cavities (holes in 3D and in slices)
        m = np.zeros(shape, bool)
        m[tuple(slice(n // 5, n - n // 5) for n in shape)] = True
        m &= rng.random(shape) < 0.9
        m[tuple(slice(n // 3, n - n // 3) for n in shape)] = False
    if not m.any():
        m[tuple(n // 2 for n in shape)] = True
    return m


def _rbox(region):
    return np.array([s.start for s in bbox(region)] + [s.stop for s in bbox(region)], np.int64)


@pytest.mark.parametrize("seed", range(60))
def test_shell_equals_old_code_on_random_regions(seed):
    rng = np.random.default_rng(100 + seed)
    shape = _shape(rng, seed % 3)
    region = _region(rng, shape, seed % 4)
    a = _crop(rng, shape, np.float32)
    sp = SPACINGS[seed % len(SPACINGS)]
    allowed = rng.random(shape) < 0.9 if seed % 2 else np.ones(shape, bool)
    for width, gap in ((4.0, 2.0), (6.0, 0.0), (2.0, 3.5), (0.0, 0.0), (1.0, 1.4)):
        sh = rg._Shell(a, sp, width, gap, allowed)
        ref = shell(region, sp, width, allowed, gap)
        assert _same_array(sh(region, _rbox(region)), a[ref]), (width, gap)
        if sh.rows is not None:
            mask = np.zeros(shape, bool)
            kernels.shell_kernel(region, _rbox(region), sh.pad, sh.rows[0], sh.rows[1], sh.allowed, a, mask)
            assert _same_array(mask, ref)


def test_shell_values_on_a_rounding_tie_come_from_the_distance_transform():
    sp, gap = (1.0, 1.0, 1.0), 2.0 - 1e-12  # the offset (0, 0, 2) lies a hair beyond the gap
    rng = np.random.default_rng(7)
    region = _region(rng, (9, 21, 21), 0)
    a = _crop(rng, region.shape, np.float32)
    sh = rg._Shell(a, sp, 4.0, gap, np.ones(region.shape, bool))
    assert sh.rows is None
    assert _same_array(sh(region, _rbox(region)), a[shell(region, sp, 4.0, np.ones(region.shape, bool), gap)])


@pytest.mark.parametrize("seed", range(40))
def test_core_values_fill_and_core_indices_equal_old_code(seed):
    rng = np.random.default_rng(200 + seed)
    shape = _shape(rng, seed % 3)
    region = _region(rng, shape, seed % 4)
    a = _crop(rng, shape, (np.float32, np.float64)[seed % 2])
    rbox = _rbox(region)
    n = int(np.count_nonzero(region))
    for min_voxels in (20, 1, 10 ** 6):
        vals, inner = kernels.core_values(a, region, rbox, n, min_voxels)
        assert _same_array(vals, a[region])
        assert _same_array(inner, a[core(region, min_voxels)])
        idx3, cvals = kernels.core_indices(a, region, min_voxels)
        ref = np.asarray(np.nonzero(core(region, min_voxels)))
        assert _same_array(idx3, ref.astype(np.int64)) and _same_array(cvals, a[core(region, min_voxels)])
        assert np.transpose(idx3).strides == np.transpose(ref).strides  # the layout of lesion_field's sums
    filled = region.copy()
    added = kernels.fill_slices_kernel(filled, rbox)
    assert _same_array(filled, fill_holes(region))
    assert added == np.count_nonzero(filled) - n


@pytest.mark.parametrize("seed", range(12))
def test_lesion_field_equals_old_code_on_shaded_blobs(seed):
    rng = np.random.default_rng(300 + seed)
    shape = _shape(rng, 2)
    region = _region(rng, shape, seed % 2 * 3)
    a = (_crop(rng, shape, np.float32) * 100 + 50 + 100 * region).astype(np.float32)
    a *= np.exp(0.03 * np.arange(shape[2]))[None, None, :].astype(np.float32)
    sp = SPACINGS[seed % len(SPACINGS)]
    new_field, new_g = rg.lesion_field(a, region, sp)
    with _old_code():
        old_field, old_g = F.lesion_field(a, region, sp)
    assert _same_float(new_g, old_g)
    assert (new_field is None) == (old_field is None)
    if old_field is not None:
        assert _same_array(new_field, old_field)
    with _old_code():  # too small a region, and none at all
        assert F.lesion_field(a, np.zeros(shape, bool), sp)[0] is None
    assert rg.lesion_field(a, np.zeros(shape, bool), sp)[0] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16])
def test_median_equals_old_code(dtype):
    rng = np.random.default_rng(5)
    for t in range(3000):
        n = int(rng.integers(1, 200))
        kind = t % 7
        x = rng.normal(size=n) * 10 ** rng.uniform(-3, 3)
        if kind == 1:
            x = np.round(x)
        elif kind == 2:
            x = rng.integers(-2, 3, n).astype(float)  # ties, zeros
        elif kind == 3 and n:
            x[int(rng.integers(0, n))] = np.nan
        elif kind == 4:
            x = rng.choice([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf], n)  # signed zeros, infinities
        elif kind == 5:
            x = np.full(n, -0.0)
        with np.errstate(all="ignore"):
            x = x.astype(dtype) if np.issubdtype(dtype, np.floating) else np.nan_to_num(x).astype(dtype)
            new, old = common.median(x), _ref_median(x)
        assert _same_float(new, old), (x, new, old)


WARM_CHECK = """
import json, sys
sys.path.insert(0, {tests!r})
from volumetry._jit import warm_all
from volumetry.segment import kernels
import test_segment_kernels as t
warm_all()
names = [n for n in dir(kernels) if hasattr(getattr(kernels, n), "signatures")]
before = {{n: list(getattr(kernels, n).signatures) for n in names}}
for image, prompt, method, params in t._sample_calls():
    t.api.segment(image, prompt, method=method, params=params)
print(json.dumps({{n: [str(s) for s in getattr(kernels, n).signatures if s not in before[n]] for n in names}}))
"""


def test_warm_up_compiles_every_kernel_the_sample_trial_calls():
    """The pipeline's workers compile (or load) in warm_up exactly the kernel signatures a run uses:
    none is compiled inside a timed scan."""
    import subprocess
    import sys

    if not CALLS.exists() or not SAMPLE.exists():
        pytest.skip("sample_data/ or the recorded calls are absent")
    code = WARM_CHECK.format(tests=str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    new = json.loads(out.stdout.strip().splitlines()[-1])
    assert new and all(sigs == [] for sigs in new.values()), new
