"""Speed and accuracy of volumetry.measure on a clinical-size grid.

Run: ``python benchmarks/measure.py`` (prints its figures; record them in
benchmarks/RESULTS.md under "## measure"). A 512×512×200 grid (0.45×0.45×1.0 mm,
oblique) holds an analytic ellipsoid lesion of 3, 30 or 300 mL; the script
reports the wall time of one ``measure`` call (best of 3, warm) and the relative
error of the voxel and mesh volumes against 4/3·π·abc.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from volumetry.image import Volume
from volumetry.measure import measure


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


def main() -> int:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
