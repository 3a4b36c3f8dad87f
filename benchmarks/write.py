"""Benchmark of the pipeline's ``write`` stage on the sample trial (``sample_data/``).

Runs the trial once (2 workers, QC report off) to get the results store, then
times, on the run's own masks, each thing ``write`` does:

* the DICOM SEG of each DICOM scan: highdicom (``write_seg(engine="highdicom")``,
  the reference) against the fast path (``engine="fast"``), the latter split into
  finding and reading the source headers (``series_files`` + ``prepare_sources``,
  once per series) and building + encoding the SEG from them;
* the NIfTI mask of each scan: nibabel's writer (the code before) against
  :func:`volumetry.io.nifti.write_nifti` (direct header + gzip, same bytes);
* the tables (``volumes.csv``, ``volumes.parquet``, ``summary.csv``);
* the whole ``write_outputs`` into a fresh folder, as the pipeline calls it.

Medians of repeated warm calls; per-scan figures are means over the scans. Writes
the ``## Write (benchmarks/write.py)`` section of ``benchmarks/RESULTS.md``.

Usage: ``python benchmarks/write.py [--no-write] [--repeat N]``
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _results import write_section  # benchmarks/_results.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Write (benchmarks/write.py)"


def median_time(func, repeat: int) -> float:
    """Median wall time (s) of ``repeat`` calls after one warm-up call."""
    func()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def nibabel_write(volume, path: Path) -> None:
    """The NIfTI mask writer before the direct path (nibabel image + ``nib.save``)."""
    import nibabel as nib
    import numpy as np

    from volumetry.io.nifti import SFORM_QFORM_TOL_MM, _corner_shift_mm, lps_to_ras_affine

    arr = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    data = arr.transpose(2, 1, 0)
    affine_ras = lps_to_ras_affine(volume.affine)
    img = nib.Nifti1Image(data, affine_ras)
    img.set_sform(affine_ras, code=1)
    img.set_qform(affine_ras, code=1)
    if _corner_shift_mm(affine_ras, img.header.get_qform(), data.shape) > SFORM_QFORM_TOL_MM / 2:
        img.set_qform(affine_ras, code=0)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def clinical_size(folder: Path, repeat: int) -> tuple[float, float, float]:
    """SEG times (s) on a synthetic 512×512×200 single-frame MR series (oblique): highdicom, fast path,
    fast path from prepared headers."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    from volumetry.io.dicom import load_dicom
    from volumetry.io.seg import prepare_sources, write_seg

    folder.mkdir()
    theta = np.radians(12.0)
    direction = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]])
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    pixels = np.zeros((512, 512), np.uint16).tobytes()
    for k in range(200):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "BENCH^SEG", "BENCH", "", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240101", "090000", "A1", "1"
        ds.ReferringPhysicianName, ds.Modality, ds.Manufacturer = "", "MR", "volumetry-bench"
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in np.array([-115.0, -115.0, -100.0]) + direction[:, 2] * k]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.r_[direction[:, 0], direction[:, 1]]]
        ds.PixelSpacing, ds.SliceThickness = ["0.45", "0.45"], "1.0"
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 512, 512, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = pixels
        pydicom.dcmwrite(folder / f"{k:04d}.dcm", ds, enforce_file_format=True)
    image = load_dicom(folder)
    arr = np.zeros(image.array.shape, bool)
    arr[60:140, 200:320, 180:300] = True
    mask, files = image.with_array(arr), image.meta["files"]
    out = folder / "seg.dcm"
    t_hd = median_time(lambda: write_seg(mask, files, out, engine="highdicom"), repeat)
    t_fast = median_time(lambda: write_seg(mask, files, out), repeat)
    prepared = prepare_sources(files)
    t_build = median_time(lambda: write_seg(mask, prepared, out), repeat)
    return t_hd, t_fast, t_build


def collect(out: Path, cfg, idents, table):
    """The SEG and NIfTI calls ``write_outputs`` makes for the run in ``out`` (arguments captured)."""
    import volumetry.io.nifti as nifti
    import volumetry.pipeline.outputs as outputs
    from volumetry.store import ResultStore

    segs, masks = [], []
    real_seg, real_nifti = outputs.write_seg_for, nifti.write_nifti

    def seg_spy(vol, source, target, subject, lesion, pseudonymized, **kw):
        segs.append((vol, source, subject, lesion, pseudonymized, kw.get("files")))
        return real_seg(vol, source, target, subject, lesion, pseudonymized, **kw)

    def nifti_spy(volume, path, **kw):
        masks.append(volume)
        return real_nifti(volume, path, **kw)

    fresh = out.parent / "capture"
    fresh.mkdir()
    shutil.copy(out / "results.sqlite", fresh / "results.sqlite")
    outputs.write_seg_for, nifti.write_nifti = seg_spy, nifti_spy
    try:
        store = ResultStore(fresh / "results.sqlite")
        sources = {i: s for i, s in zip(idents[0], idents[1])}
        outputs.write_outputs(store, table, idents[0], cfg, fresh, sources=sources)
        store.close()
    finally:
        outputs.write_seg_for, nifti.write_nifti = real_seg, real_nifti
    return segs, masks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only; do not update RESULTS.md")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per item (median)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import pyarrow as pa
    import pyarrow.parquet as pq

    import volumetry.pipeline.outputs as outputs
    from volumetry.config import load_pipeline
    from volumetry.io.nifti import write_nifti
    from volumetry.io.seg import prepare_sources, series_files, write_seg
    from volumetry.manifest import read_study
    from volumetry.pipeline import run_study
    from volumetry.store import ResultStore
    from volumetry.tables import arrow_schema, conform, course_summary, write_tables

    if not (ROOT / "sample_data" / "manifest.csv").is_file():
        print("sample_data/ is absent: run 'volumetry phantom --trial sample_data' first", file=sys.stderr)
        return 2
    cfg = load_pipeline(ROOT / "pipelines" / "vascular-anomalies-rapamycin.yaml")
    cfg = dataclasses.replace(cfg, outputs={**cfg.outputs, "report": False})
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = run_study(ROOT / "sample_data", cfg, tmp / "run", jobs=2, progress=False)
        study = read_study(ROOT / "sample_data", cfg.series)
        planned = {}
        for row in study.rows:
            planned[(row.subject_id, row.visit, row.lesion_id)] = (str(row.image), row.series_uid)
        store = ResultStore(tmp / "run" / "results.sqlite")
        idents = [(s["subject_id"], s["visit"], s["lesion_id"]) for s in store.scans(list(planned))]
        store.close()
        segs, masks = collect(tmp / "run", cfg, (idents, [planned[i] for i in idents]), run.table)
        r = args.repeat

        # --- SEG
        seg_hd, seg_fast, seg_read, seg_build = [], [], [], []
        for n, (vol, source, subject, lesion, pseudo, _) in enumerate(segs):
            overrides = {"PatientID": subject, "PatientName": subject, "PatientBirthDate": ""}
            files = series_files(source[0], series_uid=source[1])
            target = tmp / f"seg{n}.dcm"  # overwritten by every call of both writers alike
            seg_hd.append(median_time(lambda: write_seg(vol, files, target, label=f"lesion {lesion}",
                                                        overrides=overrides, engine="highdicom"), r))
            seg_fast.append(median_time(lambda: write_seg(vol, series_files(source[0], series_uid=source[1]),
                                                          target, label=f"lesion {lesion}", overrides=overrides,
                                                          engine="fast"), r))
            seg_read.append(median_time(lambda: prepare_sources(series_files(source[0], series_uid=source[1])), r))
            prepared = prepare_sources(files)
            seg_build.append(median_time(lambda: write_seg(vol, prepared, target, label=f"lesion {lesion}",
                                                           overrides=overrides, engine="fast"), r))
        n_series = len({s[1] for s in segs})

        # --- NIfTI masks (a new file each call, as the pipeline writes a temporary file then renames it)
        names = iter(range(10 ** 9))
        (tmp / "nii").mkdir()
        nii_nib = [median_time(lambda: nibabel_write(m, tmp / "nii" / f"{next(names)}.nii.gz"), r) for m in masks]
        nii_new = [median_time(lambda: write_nifti(m, tmp / "nii" / f"{next(names)}.nii.gz"), r) for m in masks]

        # --- tables
        table = conform(run.table)
        t_tables = median_time(lambda: write_tables(run.table, tmp / "tables"), r)
        t_parquet = median_time(lambda: pq.write_table(
            pa.Table.from_pandas(table, schema=arrow_schema(), preserve_index=False), tmp / "v.parquet"), r)
        t_summary = median_time(lambda: course_summary(table), r)

        # --- the whole write stage, as the pipeline calls it (fresh folder each time)
        def whole(engine: str) -> float:
            samples = []
            real = outputs.write_seg_for
            outputs.write_seg_for = lambda *a, **kw: real(*a, **{**kw, "engine": engine})
            try:
                for k in range(r + 1):
                    d = tmp / f"whole-{engine}-{k}"
                    d.mkdir()
                    shutil.copy(tmp / "run" / "results.sqlite", d / "results.sqlite")
                    store = ResultStore(d / "results.sqlite")
                    t0 = time.perf_counter()
                    outputs.write_outputs(store, run.table, idents, cfg, d,
                                          sources={i: planned[i] for i in idents})
                    samples.append(time.perf_counter() - t0)
                    store.close()
            finally:
                outputs.write_seg_for = real
            return statistics.median(samples[1:])

        t_whole_hd, t_whole_fast = whole("highdicom"), whole("fast")

        # --- a clinical-size series: 200 single-frame 512×512 MR files, a 30 mL-like box lesion
        big_hd, big_fast, big_build = clinical_size(tmp / "big", r)
    load_after = os.getloadavg()[0]

    ms = 1e3
    mean = statistics.mean
    n_scans = len(masks)
    lines = [
        f"Run {dt.datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}); the sample trial's own masks after one run (2 workers, report off): "
        f"{n_scans} NIfTI masks (uint8 {'×'.join(str(v) for v in masks[0].array.shape[::-1])} and similar), "
        f"{len(segs)} DICOM SEGs on {n_series} series. Median of {r} warm calls per item; per-scan figures are "
        f"means over the scans. 1-min load average before/after: {load_before:.2f} / {load_after:.2f} (machine "
        "shared with other engineers: absolute figures are noisy, ratios less so).",
        "",
        "| item | before (ms) | now (ms) | ratio |",
        "|---|---|---|---|",
        f"| DICOM SEG per scan: highdicom vs fast path, both reading the source headers | {mean(seg_hd) * ms:.1f} "
        f"| {mean(seg_fast) * ms:.1f} | {mean(seg_hd) / mean(seg_fast):.1f}× |",
        f"| … of which finding + reading the source headers (`series_files` + `prepare_sources`) | – "
        f"| {mean(seg_read) * ms:.1f} | – |",
        f"| … of which building + encoding the SEG from read headers (`SegSources`) | – "
        f"| {mean(seg_build) * ms:.2f} | – |",
        f"| NIfTI mask per scan (`.nii.gz`, gzip level 1, same bytes) | {mean(nii_nib) * ms:.2f} "
        f"| {mean(nii_new) * ms:.2f} | {mean(nii_nib) / mean(nii_new):.1f}× |",
        f"| tables: volumes.csv + volumes.parquet + summary.csv (whole trial) | {t_tables * ms:.1f} "
        f"| {t_tables * ms:.1f} | unchanged |",
        f"| … of which `course_summary` (summary.csv's table) | – | {t_summary * ms:.1f} | – |",
        f"| … of which the Parquet file | – | {t_parquet * ms:.1f} | – |",
        f"| whole `write_outputs` (tables + {n_scans} NIfTI + {len(segs)} SEG), per scan "
        f"| {t_whole_hd / n_scans * ms:.1f} | {t_whole_fast / n_scans * ms:.1f} "
        f"| {t_whole_hd / t_whole_fast:.1f}× |",
        f"| clinical size: one SEG on 200 files of 512×512 (reading the headers included) | {big_hd * ms:.0f} "
        f"| {big_fast * ms:.0f} | {big_hd / big_fast:.1f}× |",
        f"| … building + encoding only (`SegSources`) | – | {big_build * ms:.0f} | – |",
        "",
        "\"before\" for the SEG and the whole stage = `engine=\"highdicom\"` (the reference writer, kept), with "
        "the NIfTI and table writers of now. The fast SEG equals highdicom's element for element except the "
        "UIDs and creation dates/times (tests/test_seg_fast.py); the NIfTI files are nibabel's byte for byte "
        "(tests/test_nifti_write.py). What remains per SEG is mostly finding and reading the series' headers "
        "again in the main process (the worker that loaded the image had them): the task can record "
        "`image.meta[\"files\"]` in the image info (`outputs.seg_sources` then skips `series_files`). "
        "The tables are not the write stage's bottleneck per scan, but `course_summary` (pandas quantiles and "
        "scipy Wilson intervals per group) is most of their time.",
    ]
    text = "\n".join(lines)
    print(SECTION)
    print()
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
