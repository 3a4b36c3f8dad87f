"""Benchmark: loading a DICOM series with volumetry vs SimpleITK and dcm2niix.

Generates two uncompressed MR series (256x256x60 and 512x512x200, uint16, one
file per slice, shuffled names) in a temporary folder, then times on the same
files, each the median of ``--runs`` runs after one warm-up run:

* volumetry: ``load_dicom(folder)`` in-process (index + geometry checks + pixels);
* SimpleITK: ``ImageSeriesReader`` in-process (file name discovery with
  ``GetGDCMSeriesFileNames`` + ``Execute``);
* dcm2niix: the whole process (PyPI ``dcm2niix``), writing uncompressed NIfTI.

Prints the figures and ratios and, unless ``--no-record``, writes them to
``benchmarks/RESULTS.md`` under ``## Loading (benchmarks/load.py)``.
Target (issue 2): ours <= 0.75x SimpleITK and <= dcm2niix on both sizes.

Usage: ``python benchmarks/load.py [--runs 7] [--no-record]``
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # dicom_factory: the synthetic-series writer of the tests

from _results import write_section  # noqa: E402  -- benchmarks/_results.py (the script's folder is on sys.path)

SECTION = "## Loading (benchmarks/load.py)"
SIZES = [(256, 256, 60), (512, 512, 200)]
TARGET_VS_SITK = 0.75
TARGET_VS_DCM2NIIX = 1.0


def _dcm2niix_exe() -> str:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    if not Path(exe).exists():
        raise SystemExit("dcm2niix not found: pip install 'volumetry[bench]'")
    return exe


def make_series(folder: Path, cols: int, rows: int, nk: int) -> None:
    from dicom_factory import rotation, write_series

    rng = np.random.default_rng(nk)
    arr = rng.integers(0, 4000, size=(nk, rows, cols), dtype=np.uint16)
    r = rotation(5.0, -3.0)
    write_series(folder, arr, pixel_spacing=(256.0 / rows, 256.0 / cols), origin=(-128, -128, -60),
                 row=r[:, 0], col=r[:, 1], slice_step=1.2, shuffle_names=True, seed=nk)


def time_runs(fn, runs: int) -> list[float]:
    fn()  # warm-up: page cache, imports
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench(folder: Path, runs: int, out_dir: Path) -> dict[str, list[float]]:
    import SimpleITK as sitk

    from volumetry.io.dicom import load_dicom

    def ours():
        vol = load_dicom(folder)
        assert vol.array.shape[0] > 1

    def simpleitk():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
        img = reader.Execute()
        assert img.GetSize()[2] > 1

    exe = _dcm2niix_exe()

    def dcm2niix():
        for p in out_dir.glob("*"):
            p.unlink()
        subprocess.run([exe, "-z", "n", "-b", "n", "-o", str(out_dir), "-f", "bench", str(folder)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return {"volumetry": time_runs(ours, runs), "SimpleITK": time_runs(simpleitk, runs),
            "dcm2niix": time_runs(dcm2niix, runs)}


def check_same_volume(folder: Path) -> float:
    """Largest voxel difference between our volume and SimpleITK's (must be 0)."""
    import SimpleITK as sitk

    from volumetry.io.dicom import load_dicom

    ours = load_dicom(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    theirs = sitk.GetArrayFromImage(reader.Execute())
    geom = max(np.abs(np.subtract(ours.origin, reader.Execute().GetOrigin())).max(), 0)
    return float(max(np.abs(ours.array.astype(np.int64) - theirs).max(), geom))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per tool (median reported), >= 5")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    runs = max(5, args.runs)
    load_before = os.getloadavg()
    rows_md = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="volumetry-bench-") as tmp:
        tmp = Path(tmp)
        for cols, rows, nk in SIZES:
            folder = tmp / f"s{cols}x{rows}x{nk}"
            make_series(folder, cols, rows, nk)
            out_dir = tmp / f"out{cols}"
            out_dir.mkdir()
            diff = check_same_volume(folder)
            res = bench(folder, runs, out_dir)
            med = {k: statistics.median(v) for k, v in res.items()}
            r_sitk = med["volumetry"] / med["SimpleITK"]
            r_dcm = med["volumetry"] / med["dcm2niix"]
            met = r_sitk <= TARGET_VS_SITK and r_dcm <= TARGET_VS_DCM2NIIX
            ok &= met
            print(f"{cols}x{rows}x{nk}: volumetry {med['volumetry'] * 1000:.1f} ms, "
                  f"SimpleITK {med['SimpleITK'] * 1000:.1f} ms, dcm2niix {med['dcm2niix'] * 1000:.1f} ms; "
                  f"ratio vs SimpleITK {r_sitk:.2f} (target <= {TARGET_VS_SITK}), "
                  f"vs dcm2niix {r_dcm:.2f} (target <= {TARGET_VS_DCM2NIIX}); "
                  f"max |voxel/origin diff| vs SimpleITK {diff:g}; {'MET' if met else 'NOT MET'}")
            rows_md.append(
                f"| {cols}×{rows}×{nk} | {med['volumetry'] * 1000:.1f} | {med['SimpleITK'] * 1000:.1f} | "
                f"{med['dcm2niix'] * 1000:.1f} | {r_sitk:.2f} | {r_dcm:.2f} | {'met' if met else 'NOT met'} |"
            )
    load_after = os.getloadavg()
    text = "\n".join([
        SECTION,
        "",
        f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}); median of {runs} runs after one warm-up, "
        "warm page cache. Uncompressed uint16, one file per slice, shuffled names, double-oblique. "
        "volumetry = `load_dicom(folder)` in-process (header index, geometry checks, pixels); SimpleITK = "
        "`GetGDCMSeriesFileNames` + `ImageSeriesReader.Execute` in-process; dcm2niix = whole process "
        "writing uncompressed NIfTI (`-z n -b n`).",
        f"Machine load (1-min load average) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        "(shared with other engineers: absolute figures are noisy, ratios less so).",
        "",
        "| series | volumetry (ms) | SimpleITK (ms) | dcm2niix (ms) | ours/SimpleITK (target ≤ 0.75) "
        "| ours/dcm2niix (target ≤ 1) | target |",
        "|---|---|---|---|---|---|---|",
        *rows_md,
        "",
    ])
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if not args.no_record:
        write_section(SECTION, text[len(SECTION):])
        print("recorded in benchmarks/RESULTS.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
