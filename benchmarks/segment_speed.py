"""Speed of the default segmentation (``region_growing``) on the sample trial, before and after.

Runs the pipeline once on ``sample_data/`` (1 worker, QC report off) and records
every call of :func:`volumetry.segment.segment` it makes: one per scan in the
``segment`` stage, plus the baseline re-segmentation of each propagated follow-up
(counted under ``register`` by the pipeline, when its cache does not already hold it). Then times each recorded call with
the current ``region_growing`` and with the implementation it replaced (kept in
``tests/test_segment_fast.py`` as ``_ref_region_growing``), alternately, best of
``--repeat`` runs each (the machine is shared: the best run is the least
disturbed one), and checks that both give the same mask and QC numbers.

Usage: ``python benchmarks/segment_speed.py [--repeat N]``; prints the figures of
the ``### Speed`` note in the ``## Segmentation`` section of ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def record_pipeline_calls() -> list[dict]:
    """The ``segment()`` calls of one pipeline run on the sample trial, with their stage."""
    import volumetry.segment as seg_pkg
    from volumetry.config import load_pipeline
    from volumetry.pipeline import run_study
    from volumetry.pipeline import tasks

    calls: list[dict] = []
    original = seg_pkg.segment
    stage = {"name": "?"}

    def recording(image, prompt, *, method="default", params=None):
        calls.append({"image": image, "prompt": prompt, "method": method, "params": params, "stage": stage["name"]})
        return original(image, prompt, method=method, params=params)

    original_stage = getattr(tasks, "_stage", None)

    def staged(name, timings, func, *args, **kwargs):
        stage["name"] = name
        return original_stage(name, timings, func, *args, **kwargs)

    cfg = load_pipeline(ROOT / "pipelines" / "vascular-anomalies-rapamycin.yaml")
    cfg = dataclasses.replace(cfg, outputs={**cfg.outputs, "report": False})
    seg_pkg.segment = recording
    if original_stage is not None:
        tasks._stage = staged
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_study(ROOT / "sample_data", cfg, Path(tmp) / "out", jobs=1, progress=False)
    finally:
        seg_pkg.segment = original
        if original_stage is not None:
            tasks._stage = original_stage
    return calls


def load_reference():
    """``_ref_region_growing`` from tests/test_segment_fast.py (the code before the speed-up)."""
    path = ROOT / "tests" / "test_segment_fast.py"
    spec = importlib.util.spec_from_file_location("_segment_reference", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod._ref_region_growing


def same(a, b) -> bool:
    if a.status != b.status or a.reason != b.reason or a.flags != b.flags:
        return False
    if (a.mask is None) != (b.mask is None):
        return False
    if a.mask is not None and not np.array_equal(a.mask.array, b.mask.array):
        return False
    return set(a.qc) == set(b.qc) and all(
        a.qc[k] == b.qc[k] or (isinstance(a.qc[k], float) and np.isnan(a.qc[k]) and np.isnan(b.qc[k])) for k in a.qc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs of each call per implementation (best kept)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (ROOT / "sample_data" / "manifest.csv").is_file():
        print("sample_data/ is absent: run 'volumetry phantom --trial sample_data' first", file=sys.stderr)
        return 2

    import volumetry.segment.region_growing as rg
    from volumetry.segment import segment

    t0 = time.perf_counter()
    calls = record_pipeline_calls()
    print(f"pipeline run: {len(calls)} segment() calls recorded in {time.perf_counter() - t0:.1f} s")
    new_fn, old_fn = rg.region_growing, load_reference()
    rows = []
    try:
        for c in calls:
            best = {"old": np.inf, "new": np.inf}
            results = {}
            for _ in range(args.repeat):
                for which, fn in (("old", old_fn), ("new", new_fn)):
                    rg.region_growing = fn
                    s = time.perf_counter()
                    results[which] = segment(c["image"], c["prompt"], method=c["method"], params=c["params"])
                    best[which] = min(best[which], time.perf_counter() - s)
            rows.append({"stage": c["stage"], "old_ms": 1000 * best["old"], "new_ms": 1000 * best["new"],
                         "same": same(results["old"], results["new"]), "status": results["new"].status})
    finally:
        rg.region_growing = new_fn

    n_diff = sum(not r["same"] for r in rows)
    print(f"calls whose mask or QC numbers differ between the two implementations: {n_diff}")
    lines = []
    for label, sel in (("segment stage (one call per scan)", [r for r in rows if r["stage"] == "segment"]),
                       ("baseline re-segmentation (register stage)", [r for r in rows if r["stage"] == "register"]),
                       ("all calls", rows)):
        if not sel or (label == "all calls" and len({r["stage"] for r in rows}) == 1):
            continue
        old = [r["old_ms"] for r in sel]
        new = [r["new_ms"] for r in sel]
        lines.append(f"| {label} | {len(sel)} | {statistics.median(old):.1f} / {statistics.mean(old):.1f} ms | "
                     f"{statistics.median(new):.1f} / {statistics.mean(new):.1f} ms | x{sum(old) / sum(new):.1f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nbest of {args.repeat} per call, load average {load:.1f}\n")
    print("| calls | n | before: median / mean | after: median / mean | speed-up (total) |")
    print("|---|---|---|---|---|")
    print("\n".join(lines))
    return 1 if n_diff else 0


if __name__ == "__main__":
    sys.exit(main())
