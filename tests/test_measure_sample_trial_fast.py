"""Every mask the sample trial measures, and every segmentation crop it checks, gives exactly the
numbers of the code the compiled kernels replaced (frozen in tests/frozen_measure_qc.py): all
fields of each Measurement and all values of each ``mask_qc`` dict, types included.

The inputs are recorded by wrapping ``volumetry.measure.measure`` and the segmentation's
``mask_qc`` during one in-process run of the trial pipeline (baselines segmented from their
prompts, follow-ups propagated by registration, as the batch runs them).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import frozen_measure_qc as ref
import numpy as np
import pytest
from test_measure_kernels_fast import assert_same_measurement, assert_same_qc

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trial_calls(tmp_path_factory):
    if not (ROOT / "sample_data" / "manifest.csv").is_file():
        pytest.skip("sample_data/ is absent; make it with 'volumetry phantom --trial sample_data'")
    import volumetry.measure
    from volumetry.config import load_pipeline
    from volumetry.pipeline import run_study
    from volumetry.segment import api

    calls = {"measure": [], "mask_qc": []}
    real_measure, real_qc = volumetry.measure.measure, api.mask_qc

    def record_measure(*args, **kwargs):
        out = real_measure(*args, **kwargs)
        calls["measure"].append((args, kwargs, out))
        return out

    def record_qc(*args, **kwargs):
        copied = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        out = real_qc(*args, **kwargs)
        calls["mask_qc"].append((copied, kwargs, out))
        return out

    cfg = load_pipeline(ROOT / "pipelines" / "vascular-anomalies-rapamycin.yaml")
    cfg = dataclasses.replace(cfg, outputs={**cfg.outputs, "report": False})
    volumetry.measure.measure, api.mask_qc = record_measure, record_qc
    try:
        summary = run_study(ROOT / "sample_data", cfg, tmp_path_factory.mktemp("trial") / "out", jobs=1,
                            progress=False)
    finally:
        volumetry.measure.measure, api.mask_qc = real_measure, real_qc
    return summary, calls


def test_every_measured_mask_of_the_sample_trial_equals_reference(trial_calls):
    summary, calls = trial_calls
    assert len(calls["measure"]) == summary.n_scans > 0
    ok = 0
    for args, kwargs, in_run in calls["measure"]:
        old = ref.measure(*args, **kwargs)
        assert_same_measurement(in_run, old)
        ok += old.status == "ok"
    assert ok > 0


def test_every_segmentation_qc_of_the_sample_trial_equals_reference(trial_calls):
    _, calls = trial_calls
    assert calls["mask_qc"]
    for args, kwargs, in_run in calls["mask_qc"]:
        assert "neck_fraction" in in_run
        assert_same_qc(in_run, ref.mask_qc(*args, **kwargs))


def test_every_sample_trial_surface_equals_scikit_images(trial_calls):
    """The marching-cubes surface of every measured mask, vertex for vertex and face for face,
    against the frozen scikit-image call (tests/test_measure_marching.py)."""
    from test_measure_marching import assert_same_surface

    from volumetry.measure import core

    _, calls = trial_calls
    n = 0
    for args, kwargs, _ in calls["measure"]:
        mask = args[0]
        sel = core._binary(mask, kwargs.get("label"))
        bounds = core._bounding_box(sel)
        if bounds is None:
            continue
        lo, hi = bounds
        crop = np.ascontiguousarray(sel[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
        n += assert_same_surface(crop, mask.direction @ np.diag(mask.spacing), mask.origin, lo[::-1]) > 0
    assert n > 0
