"""The shell kernel's third version gives exactly the values and masks of the one before it.

Changed: ``kernels.shell_kernel`` dilates the region by the 3x3x3 cube one axis at a time (whole
rows ORed, instead of counting each run's 9 grown neighbours) and works in the region's box grown
by no more than a shell voxel can lie from the region (one voxel and the outer ball's reach) when
that is less than the caller's ``pad``.

The oracle is the frozen kernel of tests/frozen_segment_kernels_v2.py (the code before, unchanged
since commit 8737b9c). Every comparison is exact: the values with ``array_equal`` (same dtype, shape
and order), the mask the kernel writes with ``array_equal``. Inputs: every shell the 29 sample-trial
``segment()`` calls compute, the shells of suite phantoms on several grids, and random regions
(blobs, one voxel, boxes on the crop's faces and corners, the whole crop, hollow regions, thin
crops) with random and real element rows, pads smaller and larger than the balls' reach, float32,
float64 and int16 images, with and without a mask of allowed voxels.
"""
from __future__ import annotations

import numpy as np
import pytest

import frozen_segment_kernels_v2 as FK
from test_segment_kernels import (CASES, SPACINGS, _crop, _phantom, _rbox, _region, _same_array, _sample_calls,
                                  _seeds, _shape)
from volumetry.segment import Prompt, api, kernels
from volumetry.segment import region_growing as rg


def _check(region, rbox, pad, outer_rows, gap_rows, allowed, img):
    """The new kernel's values and mask equal the frozen kernel's."""
    args = (region, rbox, np.asarray(pad, np.int64), outer_rows, gap_rows, allowed, img)
    new, old = kernels.shell_kernel(*args, rg._NOWHERE), FK.shell_kernel(*args, rg._NOWHERE)
    assert _same_array(new, old)
    new_mask, old_mask = np.zeros(region.shape, bool), np.zeros(region.shape, bool)
    new_m, old_m = kernels.shell_kernel(*args, new_mask), FK.shell_kernel(*args, old_mask)
    assert _same_array(new_m, old_m) and _same_array(new_m, old)
    assert _same_array(new_mask, old_mask)
    return len(old)


class _ShellRecorder:
    def __init__(self, m):
        self.calls = []
        call = rg._Shell.__call__

        def rec(sh, region, rbox):
            if sh.rows is not None:
                self.calls.append((region.copy(), rbox.copy(), sh.pad, sh.rows[0], sh.rows[1], sh.allowed, sh.a))
            return call(sh, region, rbox)

        m.setattr(rg._Shell, "__call__", rec)


def test_every_shell_of_the_sample_trial_equals_the_old_kernel(monkeypatch):
    calls = _sample_calls()
    with monkeypatch.context() as m:
        r = _ShellRecorder(m)
        for image, prompt, method, params in calls:
            api.segment(image, prompt, method=method, params=params)
    assert len(r.calls) > 150  # 183 shells in the run
    assert sum(_check(*c) for c in r.calls) > 150 * 1000  # non-trivial shells
    # the kernel's box is smaller than the caller's pad on these grids: the change is exercised
    assert any(c[2][2] > 1 + int(np.max(np.abs(c[3][:, 2]) + c[3][:, 3])) for c in r.calls)


@pytest.mark.parametrize("name", CASES + ["suite00-sphere-0.5ml-axial-1mm", "suite24-infiltrative-9ml-oblique-5mm",
                                          "suite34-multifocal-1ml-axial-1.5mm"])
def test_every_shell_of_phantoms_equals_the_old_kernel(name, monkeypatch):
    ph = _phantom(name)
    seed = np.asarray(_seeds(ph)[0], float)
    prompts = [Prompt.from_points(_seeds(ph), "lps", ph.image),
               Prompt.from_points([seed], "lps", ph.image, box=[seed - 10.0, seed + 10.0])]
    with monkeypatch.context() as m:
        r = _ShellRecorder(m)
        for prompt in prompts:
            for params in ({}, {"shell_mm": 6.0, "gap_mm": 0.0}, {"shell_mm": 2.0, "gap_mm": 3.5}):
                api.segment(ph.image, prompt, params=params)
    assert len(r.calls) > 5
    for c in r.calls:
        _check(*c)


def _rows(rng):
    """Random element rows (dk, dj, di, w), di not always 0, some reaching far along one axis."""
    n = int(rng.integers(0, 12))
    reach = int(rng.choice([1, 2, 4, 7]))
    rows = np.stack([rng.integers(-reach, reach + 1, n), rng.integers(-reach, reach + 1, n),
                     rng.integers(-reach, reach + 1, n), rng.integers(0, reach + 1, n)], axis=1)
    return kernels._read_only(rows.astype(np.int64).reshape(-1, 4))


def _regions(rng, shape):
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


@pytest.mark.parametrize("seed", range(80))
def test_shell_equals_the_old_kernel_on_random_regions(seed):
    rng = np.random.default_rng(7000 + seed)
    shape = _shape(rng, seed % 3)
    if seed % 7 == 0:
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4)))  # tiny
    dtype = (np.float32, np.float64, np.int16)[seed % 3]
    img = (_crop(rng, shape, np.float64) * 1000).astype(dtype)
    allowed = rng.random(shape) < 0.85 if seed % 2 else np.ones(shape, bool)
    sp = SPACINGS[seed % len(SPACINGS)]
    element_rows = []
    for width, gap in ((4.0, 2.0), (6.0, 0.0), (2.0, 3.5), (0.0, 0.0), (1.0, 1.4)):
        rows = rg._shell_offsets(tuple(float(x) for x in sp), width, gap)
        if rows is not None:
            element_rows.append(rows)
    element_rows.append((_rows(rng), _rows(rng)))
    element_rows.append((_rows(rng), kernels._read_only(np.zeros((0, 4), np.int64))))
    for region in _regions(rng, shape):
        rbox = _rbox(region)
        for outer, gap in element_rows:
            for pad in (rng.integers(0, 9, 3), (0, 0, 0), (1, 1, 1), (2, 6, 6), (30, 30, 30)):
                _check(region, rbox, pad, outer, gap, allowed, img)
