"""Speed and accuracy of volumetry.measure, and speed of the longitudinal assessment.

Run: ``python benchmarks/measure.py`` (prints its figures; record them in
benchmarks/RESULTS.md under "## measure").

1. Clinical size: a 512×512×200 grid (0.45×0.45×1.0 mm, oblique) holds an
   analytic ellipsoid lesion of 3, 30 or 300 mL; wall time of one ``measure``
   call (best of 3, warm) and the relative error of the voxel and mesh volumes
   against 4/3·π·abc.
2. Sample trial: ``measure`` on the ground-truth masks of ``sample_data/truth``
   (the trial's 29 scans × lesions, ~128×128×30 grids, the image given for the
   intensity statistics): ms per scan, best of 5 passes.
3. Longitudinal assessment: ``volumetry.longitudinal.assess`` on the sample
   trial's table (29 scans × 3 methods = 87 rows, as the pipeline builds it) and
   on a synthetic study of 300 subjects (~10 000 rows): total ms, best of 5, and
   per scan / per row.

To time an older version of the package, put its source tree first on
PYTHONPATH (e.g. ``git archive <commit> volumetry | tar -x -C /tmp/old`` and
``PYTHONPATH=/tmp/old python benchmarks/measure.py``).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from volumetry.image import Volume
from volumetry.measure import measure

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def rot(axis: str, deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def lesion_volume(volume_ml: float, shape=(200, 512, 512), spacing=(0.45, 0.45, 1.0)) -> tuple:
    direction = rot("x", 12) @ rot("z", 7)
    m = direction @ np.diag(spacing)
    centre_ijk = (np.array(shape[::-1]) - 1) / 2
    origin = -m @ centre_ijk  # grid centred on the LPS origin
    r = (3 * volume_ml * 1000 / (4 * math.pi * 1.5 * 0.75)) ** (1 / 3)
    a, b, c = 1.5 * r, r, 0.75 * r
    # voxelise only inside the lesion's index box (the grid is 52 M voxels)
    half = np.ceil(np.abs(np.linalg.inv(m)) @ np.array([a, a, a])).astype(int) + 2
    lo = np.maximum(np.round(centre_ijk).astype(int) - half, 0)
    hi = np.minimum(np.round(centre_ijk).astype(int) + half + 1, np.array(shape[::-1]))
    k, j, i = np.mgrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    xyz = np.stack([i, j, k], -1).reshape(-1, 3) @ m.T + origin
    inside = ((xyz / [a, b, c]) ** 2).sum(1) <= 1
    mask = np.zeros(shape, bool)
    mask[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = inside.reshape(k.shape)
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, shape).astype(np.float32)
    mv = Volume(mask, spacing, tuple(origin), direction)
    return mv, mv.with_array(image), 4 / 3 * math.pi * a * b * c / 1000, (2 * a, 2 * b, 2 * c)


def clinical() -> None:
    print(f"{'lesion':>8} {'voxels':>9} {'time (s)':>9} {'voxel err':>10} {'mesh err':>10}  diameters (mm) vs truth")
    for ml in (3.0, 30.0, 300.0):
        mask, image, truth, axes = lesion_volume(ml)
        measure(mask, image)  # warm-up (imports)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            res = measure(mask, image)
            times.append(time.perf_counter() - t)
        print(f"{ml:>6.0f}mL {res.n_voxels:>9d} {min(times):>9.3f} {res.volume_ml / truth - 1:>+10.4%} "
              f"{res.mesh_volume_ml / truth - 1:>+10.4%}  {', '.join(f'{d:.1f}' for d in res.diameters_mm)} vs {', '.join(f'{d:.1f}' for d in axes)}")


def sample_scans() -> list[tuple[dict, Volume, Volume, int]]:
    """(truth row, mask, image, label) of every scan × lesion of the sample trial."""
    import pandas as pd

    from volumetry.io.nifti import read_nifti

    truth = pd.read_csv(SAMPLE / "truth.csv", dtype={"visit": str})
    manifest = pd.read_csv(SAMPLE / "manifest.csv", dtype={"visit": str})
    dates = {(r.subject_id, r.visit): r.scan_date for r in manifest.itertuples()}
    rng = np.random.default_rng(0)
    out = []
    for r in truth.itertuples():
        mask = read_nifti(SAMPLE / r.mask)
        image = mask.with_array(rng.normal(100, 10, mask.array.shape).astype(np.float32))
        row = {"subject_id": r.subject_id, "lesion_id": r.lesion_id, "visit": r.visit,
               "scan_date": dates.get((r.subject_id, r.visit)), "course": r.course}
        out.append((row, mask, image, int(r.mask_label)))
    return out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def sample_trial(scans) -> list:
    results = [measure(m, im, label=lab) for _, m, im, lab in scans]  # warm-up
    t = best_of(lambda: [measure(m, im, label=lab) for _, m, im, lab in scans], 5)
    n_ok = sum(r.status == "ok" for r in results)
    print(f"sample trial: {len(scans)} scans ({n_ok} with a lesion, "
          f"{int(np.median([r.n_voxels for r in results if r.status == 'ok']))} voxels median): "
          f"measure {t / len(scans) * 1e3:.2f} ms per scan (best of 5 passes)")
    return results


def synthetic_study(n_subjects: int, seed: int = 0):
    """Measurement rows of a synthetic study: 2 lesions, baseline + 4 courses, 3 methods, a few misses."""
    import pandas as pd

    from volumetry.tables import conform

    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2025-01-06")
    rows = []
    for s in range(n_subjects):
        days = [0] + [84 * k + int(rng.integers(-7, 8)) for k in range(1, 5)]
        for lesion in ("L1", "L2"):
            v0 = rng.uniform(2, 60)
            for k in range(5):
                if k and rng.random() < 0.05:
                    continue
                vol = v0 * rng.uniform(0.5, 1.3) if k else v0
                status = "ok" if rng.random() > 0.03 else "failed"
                for method in ("voxel", "mesh", "ellipsoid-mri"):
                    rows.append({"subject_id": f"S{s:04d}", "lesion_id": lesion, "visit": f"V{k}", "course": k,
                                 "scan_date": base + pd.Timedelta(days=days[k]),
                                 "method": method, "volume_ml": vol if status == "ok" else None,
                                 "status": status, "reason": None if status == "ok" else "segment: no seed",
                                 "flags": [], "software_version": "bench"})
    return conform(pd.DataFrame(rows))


def assessment(scans, results) -> None:
    import pandas as pd

    from volumetry.longitudinal import assess
    from volumetry.tables import conform, measurement_rows

    rows = []
    for (row, *_), m in zip(scans, results):
        rows += measurement_rows(m, methods=("voxel", "mesh", "ellipsoid-mri"), **row)
    table = conform(pd.DataFrame(rows))
    assess(table)  # warm-up
    t = best_of(lambda: assess(table), 5)
    print(f"assessment, sample trial ({len(scans)} scans, {len(table)} rows): {t * 1e3:.1f} ms total, "
          f"{t / len(scans) * 1e3:.3f} ms per scan, {t / len(table) * 1e3:.3f} ms per row (best of 5)")
    big = synthetic_study(300)
    n_scans = len(big) // 3
    t = best_of(lambda: assess(big), 3)
    print(f"assessment, synthetic study (300 subjects, {n_scans} scans, {len(big)} rows): {t * 1e3:.0f} ms total, "
          f"{t / n_scans * 1e3:.3f} ms per scan, {t / len(big) * 1e3:.3f} ms per row (best of 3)")


def main() -> int:
    import os

    import volumetry

    print(f"volumetry from {Path(volumetry.__file__).parent}; 1-min load average {os.getloadavg()[0]:.2f}")
    clinical()
    scans = sample_scans()
    results = sample_trial(scans)
    assessment(scans, results)
    print(f"1-min load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
