"""The third round of region-growing speed-ups gives exactly the numbers of the code before it.

Changed: ``kernels.grow_kernel`` holds the thresholded box as rows of bits (the closing shifts whole
uint64 words) and finds the components holding the seeds by a fill over the closed box's runs along i
instead of a voxel-by-voxel span fill; the row ends of the threshold's box are looked for only beyond
the columns already in it. ``kernels.shell_kernel`` holds the rows of its box as bits too: the
26-neighbour dilation and the balls' dilations are shifts and ORs of words (no difference arrays of
counts), and the shell's values are read from the set bits.

The oracles are frozen copies of the code before: tests/frozen_segment_kernels_v3.py and
tests/frozen_region_growing_v3.py. Every comparison is exact: arrays with ``array_equal`` (same dtype
and shape), numbers with ``==`` and the same sign of zero (NaN with NaN), messages, flags and
parameters with ``==``. Inputs: the 29 ``segment()`` calls of a sample-trial run
(tests/segment_sample_calls.json), whole results and every grow call they make; suite phantoms on
several grids through ``segment()`` with several parameter sets, with and without a box; random
crops (float32 and float64, thin and one-voxel crops, rows wider than a 64-bit word, boxes and masks
of allowed voxels, seeds on the crop's faces and off the region, closings reaching beyond a word), and
random regions (blobs, one voxel, boxes on the crop's faces and corners, the whole crop, hollow regions)
with real and random element rows (some reaching beyond a word), pads smaller and larger than the balls'
reach, float32, float64 and int16 images, with and without a mask of allowed voxels.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import frozen_region_growing_v3 as F3
import frozen_segment_kernels_v3 as FK
from test_segment_kernels import (CASES, SPACINGS, _allowed, _crop, _phantom, _rbox, _region, _same_array, _same_result,
                                  _sample_calls, _seed_voxels, _seeds)
from volumetry.segment import Prompt, api, kernels
from volumetry.segment import region_growing as rg
from volumetry.segment.common import seed_balls


@contextlib.contextmanager
def _old_code():
    """Within: ``segment()`` runs the frozen region growing (with the frozen kernels)."""
    saved = rg.region_growing
    rg.region_growing = F3.region_growing
    try:
        yield
    finally:
        rg.region_growing = saved


def _grow_both(sm, thr, allowed, cl_off, conn_off, seeds, anchors, anchor_start, new=None):
    """(region, n, rbox) of the current and of the frozen grow kernel on the same arguments."""
    new = kernels.grow_kernel if new is None else new
    use = allowed is not None
    allowed = np.ascontiguousarray(allowed) if use else rg._NOWHERE
    out = []
    for f in (new, FK.grow_kernel):
        region, rbox = np.zeros(sm.shape, bool), np.zeros(6, np.int64)
        n = f(sm, thr, allowed, use, cl_off, conn_off, seeds, anchors, anchor_start, region, rbox)
        out.append((region, n, rbox))
    return out


def _check_grow(*args, new=None) -> int:
    (region, n, rbox), (ref, ref_n, ref_rbox) = _grow_both(*args, new=new)
    assert n == ref_n and _same_array(region, ref)
    assert _same_array(rbox, ref_rbox)  # zeros when the region is empty
    return n


class _GrowRecorder:
    """Records the kernel arguments of every ``_Grower`` call during ``segment()`` calls."""

    def __init__(self, m):
        self.calls = []
        call = rg._Grower.__call__

        def rec(grower, threshold, connectivity, allowed):
            region, n, rbox = call(grower, threshold, connectivity, allowed)
            with np.errstate(over="ignore"):
                thr = grower.sm.dtype.type(threshold)
            self.calls.append((grower.sm, thr, None if allowed is None else allowed.copy(), grower.closing_offsets,
                               rg._CONNECTIVITY_OFFSETS[connectivity], grower.seeds, grower.anchors,
                               grower.anchor_start, region.copy(), n, rbox.copy()))
            return region, n, rbox

        m.setattr(rg._Grower, "__call__", rec)


def _check_recorded(calls, new=None) -> int:
    """Each recorded grow equals the frozen kernel's (and what ``_Grower`` returned); the voxels grown."""
    total = 0
    for *args, region, n, rbox in calls:
        total += _check_grow(*args, new=new)
        assert _same_array(region, _grow_both(*args, new=new)[1][0])
    return total


def _check_shell(region, rbox, pad, outer_rows, gap_rows, allowed, img, new=None) -> int:
    """The current shell kernel's values and mask equal the frozen kernel's; the number of values."""
    new = kernels.shell_kernel if new is None else new
    args = (region, rbox, np.asarray(pad, np.int64), outer_rows, gap_rows, allowed, img)
    values, ref = new(*args, rg._NOWHERE), FK.shell_kernel(*args, rg._NOWHERE)
    assert _same_array(values, ref)
    mask, ref_mask = np.zeros(region.shape, bool), np.zeros(region.shape, bool)
    assert _same_array(new(*args, mask), FK.shell_kernel(*args, ref_mask))
    assert _same_array(mask, ref_mask)
    return len(ref)


class _ShellRecorder:
    """Records the kernel arguments of every ``_Shell`` call during ``segment()`` calls."""

    def __init__(self, m):
        self.calls = []
        call = rg._Shell.__call__

        def rec(sh, region, rbox):
            if sh.rows is not None:
                self.calls.append((region.copy(), rbox.copy(), sh.pad, sh.rows[0], sh.rows[1], sh.allowed, sh.a))
            return call(sh, region, rbox)

        m.setattr(rg._Shell, "__call__", rec)


# ---------------------------------------------------------------- the sample trial ----


@pytest.fixture(scope="module")
def sample_calls():
    return _sample_calls()


def test_segment_results_and_grow_calls_of_the_sample_trial_equal_the_old_code(sample_calls, monkeypatch):
    with monkeypatch.context() as m:
        r = _GrowRecorder(m)
        shells = _ShellRecorder(m)
        new = [api.segment(image, prompt, method=method, params=params)
               for image, prompt, method, params in sample_calls]
    with _old_code():
        old = [api.segment(image, prompt, method=method, params=params)
               for image, prompt, method, params in sample_calls]
    for a, b in zip(new, old):
        _same_result(a, b)
    assert sum(res.ok for res in old) >= 24
    assert len(r.calls) > 200  # 245 grows in the run
    assert _check_recorded(r.calls) > 200 * 1000
    # what the change is about is exercised: closings, 6- and 18-connectivity, several runs a row
    assert any(len(c[3]) > 1 for c in r.calls) and {len(c[4]) for c in r.calls} >= {6, 18}
    assert len(shells.calls) > 150  # 183 shells in the run
    assert sum(_check_shell(*c) for c in shells.calls) > 150 * 1000


def test_a_broken_shell_kernel_fails_the_comparison(sample_calls, monkeypatch):
    """The comparison catches a kernel that differs (here: one without the gap ball)."""
    def no_gap(region, rbox, pad, outer_rows, gap_rows, *rest):
        return kernels.shell_kernel(region, rbox, pad, outer_rows, gap_rows[:0], *rest)

    with monkeypatch.context() as m:
        r = _ShellRecorder(m)
        for image, prompt, method, params in sample_calls[:2]:
            api.segment(image, prompt, method=method, params=params)
    with pytest.raises(AssertionError):
        for c in r.calls:
            _check_shell(*c, new=no_gap)


def test_a_broken_grow_kernel_fails_the_comparison(sample_calls, monkeypatch):
    """The comparison catches a kernel that differs (here: one that ignores the closing)."""
    def no_closing(sm, thr, allowed, use, cl_off, *rest):
        return kernels.grow_kernel(sm, thr, allowed, use, rg._closing_offsets(0.0, (1.0, 1.0, 1.0)), *rest)

    with monkeypatch.context() as m:
        r = _GrowRecorder(m)
        for image, prompt, method, params in sample_calls[:4]:
            api.segment(image, prompt, method=method, params=params)
    with pytest.raises(AssertionError):
        _check_recorded(r.calls, new=no_closing)


# ---------------------------------------------------------------- phantoms ----


@pytest.mark.parametrize("name", CASES + ["suite24-infiltrative-9ml-oblique-5mm"])
def test_segment_results_on_phantoms_equal_the_old_code(name, monkeypatch):
    ph = _phantom(name)
    seed = np.asarray(_seeds(ph)[0], float)
    prompts = [Prompt.from_points(_seeds(ph), "lps", ph.image),
               Prompt.from_points([seed], "lps", ph.image, box=[seed - 10.0, seed + 10.0])]
    far = ph.image.index_to_lps(np.array([2.0, 2.0, ph.image.array.shape[0] // 2]))
    prompts.append(Prompt.from_points([far], "lps", ph.image))  # background: fails
    for params in ({}, {"connectivity": 26, "closing_mm": 3.0}, {"closing_mm": 0.0, "bias_correction": False},
                   {"connectivity": 6, "closing_mm": 5.0, "fill_holes": False}):
        for prompt in prompts:
            with monkeypatch.context() as m:
                r = _GrowRecorder(m)
                shells = _ShellRecorder(m)
                new = api.segment(ph.image, prompt, params=params)
            with _old_code():
                old = api.segment(ph.image, prompt, params=params)
            _same_result(new, old)
            _check_recorded(r.calls)
            for c in shells.calls:
                _check_shell(*c)


# ---------------------------------------------------------------- random crops ----


def _shape(rng, kind):
    shape = [int(x) for x in rng.integers(1, 24, size=3)]
    if kind == 1:
        shape[2] = int(rng.integers(60, 150))  # rows of two or more words
    elif kind == 2:
        shape[int(rng.integers(0, 3))] = 1  # a thin axis
    elif kind == 3:
        shape = [int(x) for x in rng.integers(1, 4, size=3)]  # tiny, one voxel included
    return tuple(shape)


def _closing(rng, seed, sp):
    if seed % 8 == 5:  # offsets reaching beyond a word along i (and along k and j)
        far = [[0, 0, 0], [0, 0, 70], [0, 0, -70], [0, 1, 0], [0, -1, 0], [0, 0, 130], [0, 0, -130], [1, 0, 64],
               [-1, 0, -64], [0, 2, 3], [0, -2, -3]]
        cl = np.array(far[:int(rng.integers(3, len(far) + 1))], np.int64)
        cl.flags.writeable = False
        return cl
    return rg._closing_offsets(float(rng.choice([0.0, 0.5, 1.5, 3.0, 6.0])), tuple(float(x) for x in sp))


@pytest.mark.parametrize("seed", range(40))
def test_grow_equals_the_old_kernel_on_random_crops(seed):
    rng = np.random.default_rng(9100 + seed)
    shape = _shape(rng, seed % 4)
    sm = _crop(rng, shape, (np.float32, np.float64)[seed % 2])
    sp = SPACINGS[seed % len(SPACINGS)]
    cl = _closing(rng, seed, sp)
    seeds = _seed_voxels(rng, shape).astype(np.int64)
    balls = seed_balls(shape, seeds, sp, float(rng.choice([0.0, 1.5, 3.0])))
    anchors = np.concatenate([b.reshape(-1, 3) for b in balls]).astype(np.int64)
    anchor_start = np.concatenate([[0], np.cumsum([len(b) for b in balls])]).astype(np.int64)
    if seed % 5 == 4:
        anchor_start[0] = -1  # no anchors
    allowed = _allowed(rng, shape)
    values = np.unique(sm)
    thresholds = [values[int(rng.integers(0, len(values)))], np.quantile(sm, 0.5), np.quantile(sm, 0.15),
                  sm.max(), sm.min() - 1]  # a tie with a voxel, half, most of the crop, nothing, everything
    for thr in thresholds:
        for conn in (6, 18, 26):
            _check_grow(sm, sm.dtype.type(thr), allowed, cl, rg._CONNECTIVITY_OFFSETS[conn], seeds, anchors,
                        anchor_start)


def test_grow_on_runs_that_touch_the_crop_and_word_edges():
    """Regions along whole rows, on the crop's faces and corners, and across the 64-bit word boundaries."""
    for ni in (1, 2, 62, 63, 64, 65, 66, 127, 128, 129):
        sm = np.zeros((3, 4, ni), np.float32)
        sm[0, 0, :] = 1  # a whole row on the faces
        sm[2, 3, ni - 1] = 1  # the far corner
        sm[1, :, ni // 2:] = 1
        sm[1, 2, ::3] = 1  # runs of one voxel
        for seeds in ([[0, 0, 0]], [[2, 3, ni - 1]], [[1, 1, ni - 1], [0, 0, ni // 2]], [[1, 0, 0]]):
            seeds = np.asarray(seeds, np.int64)
            anchors = seeds.copy()
            anchor_start = np.arange(len(seeds) + 1, dtype=np.int64)
            for closing_mm in (0.0, 1.5, 3.0):
                cl = rg._closing_offsets(closing_mm, (1.0, 1.0, 1.0))
                for conn in (6, 18, 26):
                    _check_grow(sm, np.float32(0.5), None, cl, rg._CONNECTIVITY_OFFSETS[conn], seeds, anchors,
                                anchor_start)


def _element_rows(rng, far=False):
    """Random element rows (dk, dj, di, w); with ``far``, some reaching beyond a 64-bit word along i."""
    n = int(rng.integers(0, 10))
    reach = int(rng.choice([1, 2, 4, 7]))
    rows = np.stack([rng.integers(-reach, reach + 1, n), rng.integers(-reach, reach + 1, n),
                     rng.integers(-reach, reach + 1, n), rng.integers(0, reach + 1, n)], axis=1)
    if far and n:
        rows[0, 2], rows[0, 3] = int(rng.choice([-70, 66, 130])), int(rng.integers(0, 3))
    return kernels._read_only(rows.astype(np.int64).reshape(-1, 4))


def _shell_regions(rng, shape):
    yield _region(rng, shape, int(rng.integers(0, 4)))
    corner = np.zeros(shape, bool)
    corner[0, 0, 0] = True
    yield corner
    far = np.zeros(shape, bool)
    far[-1, -1, -1] = True
    yield far
    yield np.ones(shape, bool)
    rows = np.zeros(shape, bool)  # runs that start at i = 0 and end at the last i
    rows[:, shape[1] // 2, :] = True
    rows[shape[0] // 2, :, 0] = True
    yield rows


@pytest.mark.parametrize("seed", range(40))
def test_shell_equals_the_old_kernel_on_random_regions(seed):
    rng = np.random.default_rng(9400 + seed)
    shape = _shape(rng, seed % 4)
    dtype = (np.float32, np.float64, np.int16)[seed % 3]
    img = (_crop(rng, shape, np.float64) * 1000).astype(dtype)
    allowed = rng.random(shape) < 0.85 if seed % 2 else np.ones(shape, bool)
    sp = SPACINGS[seed % len(SPACINGS)]
    element_rows = []
    for width, gap in ((4.0, 2.0), (6.0, 0.0), (2.0, 3.5), (0.0, 0.0)):
        rows = rg._shell_offsets(tuple(float(x) for x in sp), width, gap)
        if rows is not None:
            element_rows.append(rows)
    element_rows.append((_element_rows(rng, far=seed % 4 == 1), _element_rows(rng, far=seed % 8 == 1)))
    element_rows.append((_element_rows(rng), kernels._read_only(np.zeros((0, 4), np.int64))))
    for region in _shell_regions(rng, shape):
        rbox = _rbox(region)
        for outer, gap in element_rows:
            for pad in (rng.integers(0, 9, 3), (0, 0, 0), (1, 1, 1), (2, 6, 6), (30, 30, 80)):
                _check_shell(region, rbox, pad, outer, gap, allowed, img)
