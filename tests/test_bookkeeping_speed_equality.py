"""The batch pipeline's bookkeeping (everything around load/register/segment/measure/SEG) was made
cheaper without changing a value: each function replaced is kept here as it was (``_former_*``)
and the new one must give the same result, byte for byte, on the sample trial, on edge cases and
on random inputs.

* store: ``scans`` reads the table once for many identities; ``set_mask_files`` and
  ``record_assessments`` write many rows in one transaction;
* ``write_masks``: the output paths checked once per folder, folders made once, the masks written
  recorded in one transaction;
* assess: the rows conformed by ``table_from_rows``; ``_ordered_table`` and ``write_tables`` skip
  ``conform`` of a conformed table;
* plan: ``file_sha256`` with ``hashlib.file_digest``, ``content_hash`` with the relative names
  cut from the paths, ``FileHashCache`` without re-parsing paths;
* ``pack_mask``: one pass over the mask; ``nifti_mask_bytes``: the header made once per grid.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from volumetry.errors import InputError
from volumetry.image import Volume
from volumetry.io import nifti
from volumetry.io.nifti import SFORM_QFORM_TOL_MM, _corner_shift_mm, lps_to_ras_affine, nifti_mask_bytes
from volumetry.paths import safe_join
from volumetry.pipeline import outputs, tasks
from volumetry.pipeline.tasks import content_hash, file_sha256, pack_mask, unpack_mask
from volumetry.store import FileHashCache, ResultStore
from volumetry.tables import conform, table_from_rows, write_tables

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


# ------------------------------------------------------------------------------ the former code
def _former_scans(store: ResultStore, identities) -> list[dict]:
    out = []
    for ident in identities:
        row = store.conn.execute("SELECT * FROM scans WHERE subject_id=? AND visit=? AND lesion_id=?",
                                 tuple(ident)).fetchone()
        if row is not None:
            out.append(dict(row))
    return out


def _former_file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _former_content_hash(paths, root=None, digest=_former_file_sha256) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        name = os.path.relpath(p, root) if root is not None else p.name
        h.update(name.encode("utf-8", "surrogateescape") + b"\0" + digest(Path(p)).encode() + b"\0")
    return h.hexdigest()


def _former_real_path(cache: FileHashCache, path) -> tuple:
    path = Path(path)
    name = path.name
    if name not in ("", ".", "..") and path.is_absolute():
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and not stat.S_ISLNK(st.st_mode):
            parent = os.fspath(path.parent)
            folder = cache._folders.get(parent)
            if folder is None:
                folder = cache._folders[parent] = str(path.parent.resolve())
            return os.path.join(folder, name), st
    real = str(path.resolve())
    return real, os.stat(real)


def _former_pack_mask(mask: Volume):
    arr = np.asarray(mask.array)
    if arr.dtype != bool:
        arr = arr.astype(bool)
    n = int(np.count_nonzero(arr))
    if n:
        kj = arr.any(axis=2)
        profiles = (kj.any(axis=1), kj.any(axis=0), arr.any(axis=(0, 1)))
        nz = [np.flatnonzero(p) for p in profiles]
        lo = [int(i[0]) for i in nz]
        hi = [int(i[-1]) + 1 for i in nz]
    else:
        lo, hi = [0, 0, 0], [0, 0, 0]
    crop = arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    data = zlib.compress(np.packbits(crop.ravel()).tobytes(), 6)
    grid = {
        "shape": list(arr.shape), "lo": lo, "hi": hi,
        "spacing": list(mask.spacing), "origin": list(mask.origin),
        "direction": np.asarray(mask.direction).ravel().tolist(),
    }
    return data, grid, n


def _former_nifti_mask_bytes(volume: Volume, *, description: str = "", gzip: bool = True) -> bytes:
    import nibabel as nib

    arr = volume.array
    if arr.dtype == bool:
        arr = arr.view(np.uint8)
        if arr.size and arr.max() > 1:
            arr = arr != 0
            arr = arr.view(np.uint8)
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise InputError(f"nifti_mask_bytes writes 3D uint8/boolean volumes, got {arr.dtype} {arr.shape}")
    shape = arr.shape[::-1]
    affine_ras = lps_to_ras_affine(volume.affine)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.uint8)
    hdr.set_sform(affine_ras, code=1)
    hdr.set_qform(affine_ras, code=1)
    if _corner_shift_mm(affine_ras, hdr.get_qform(), shape) > SFORM_QFORM_TOL_MM / 2:
        hdr.set_qform(affine_ras, code=0)
    hdr.set_xyzt_units("mm")
    if description:
        hdr["descrip"] = description.encode("ascii", "replace")[:79]
    hdr["vox_offset"] = 352
    hdr["scl_slope"] = 1.0
    hdr["scl_inter"] = 0.0
    head = hdr.binaryblock + b"\0\0\0\0"
    data = memoryview(np.ascontiguousarray(arr)).cast("B")
    if not gzip:
        return head + data.tobytes()
    # the former payload, compressed as the writer compresses now (ISA-L instead of zlib since 0.3.0's
    # seventh session; tests/test_nifti_write.py checks that stream against nibabel's decompressed file)
    return nifti.gzip_member(head, data)


def _former_write_masks(store, idents, out_dir, *, sources=None, pseudonymized=False, date_shifts=None,
                        uid_map=None, source_files=None) -> int:
    for stale in list(Path(out_dir).glob("sub-*/ses-*/anat/.*.tmp*")):
        stale.unlink(missing_ok=True)
    lesions: dict[str, set] = {}
    for s, _, l in idents:
        lesions.setdefault(s, set()).add(l)
    n_written = 0
    seg_cache: dict = {}
    uid_cache: dict = {}
    for scan in _former_scans(store, idents):
        rel = outputs.mask_relpath(scan["subject_id"], scan["visit"], scan["lesion_id"],
                                   len(lesions[scan["subject_id"]]) > 1)
        target = safe_join(out_dir, *rel.split("/"))
        seg_target = target.with_name(target.name.replace(".nii.gz", ".dcm"))
        mask = store.mask(scan["task_key"]) if scan["status"] == "ok" else None
        if mask is None:
            target.unlink(missing_ok=True)
            seg_target.unlink(missing_ok=True)
            continue
        ident = (scan["subject_id"], scan["visit"], scan["lesion_id"])
        source = (sources or {}).get(ident)
        stored_uid = scan["series_uid"]
        want_seg = source is not None and outputs._is_dicom(Path(source[0]))
        fresh = target.is_file() and mask["path"] == rel and mask["file_sha256"] == _former_file_sha256(target)
        if fresh and (seg_target.is_file() or not want_seg):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        vol = unpack_mask(mask["data"], mask["grid"])
        if not fresh:
            data = _former_nifti_mask_bytes(vol)
            tmp = target.with_name("." + target.name.replace(".nii.gz", ".tmp.nii.gz"))
            tmp.write_bytes(data)
            os.replace(tmp, target)
            with store.transaction():
                store.conn.execute("UPDATE masks SET path=?, file_sha256=? WHERE task_key=?",
                                   (rel, hashlib.sha256(data).hexdigest(), scan["task_key"]))
            n_written += 1
        if want_seg:
            try:
                if stored_uid:
                    source = (source[0], outputs.real_series_uid(stored_uid, source,
                                                                 uid_map if pseudonymized else None, uid_cache))
                image_info = outputs._image_info_of(store, scan["task_key"])
                if image_info.get("volume_index") is not None:
                    source = (*source[:2], int(image_info["volume_index"]))
                outputs.write_seg_for(vol, source, seg_target, scan["subject_id"], scan["lesion_id"], pseudonymized,
                                      files=(source_files or {}).get(ident) or image_info.get("files"),
                                      cache=seg_cache, date_shift_days=(date_shifts or {}).get(ident, 0),
                                      uid_map=uid_map)
            except Exception:  # noqa: BLE001
                pass
        else:
            seg_target.unlink(missing_ok=True)
    desc = safe_join(out_dir, "dataset_description.json")
    if not desc.exists():
        desc.write_text(json.dumps({
            "Name": "volumetry lesion masks", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "volumetry", "Version": outputs.__version__}],
        }, indent=2) + "\n")
    return n_written


def _former_ordered_table(frames, idents):
    if not frames:
        return conform(pd.DataFrame(columns=["subject_id", "lesion_id", "visit", "method"]))
    if len(frames) == 1:
        table = conform(frames[0])
    else:
        table = conform(pd.concat([conform(f) for f in frames], ignore_index=True))
    order = {ident: n for n, ident in enumerate(idents)}
    table["_order"] = [order.get((s, v, l), len(order)) for s, v, l in
                       zip(table["subject_id"], table["visit"], table["lesion_id"])]
    table = table.sort_values(["subject_id", "_order", "lesion_id", "method"], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)


# ------------------------------------------------------------------------------ the sample trial
@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The sample trial run once (masks and SEGs written by the new code); its folder and study."""
    from volumetry.config import load_pipeline
    from volumetry.manifest import read_study
    from volumetry.pipeline import run_study

    cfg = load_pipeline(ROOT / "pipelines/vascular-anomalies-rapamycin.yaml")
    cfg = dataclasses.replace(cfg, outputs={**cfg.outputs, "report": False})
    out = tmp_path_factory.mktemp("sample") / "out"
    summary = run_study(SAMPLE, cfg, out, jobs=1, progress=False)
    study = read_study(SAMPLE, cfg.series)
    return out, study, cfg, summary


def _copy_db(out: Path, folder: Path) -> ResultStore:
    folder.mkdir(parents=True)
    shutil.copy(out / "results.sqlite", folder / "results.sqlite")
    return ResultStore(folder / "results.sqlite")


def _rows(store: ResultStore, table: str) -> list[dict]:
    return [dict(r) for r in store.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3")]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and (p.name.endswith(".nii.gz") or p.name == "dataset_description.json")}


def _dcm_names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.dcm"))


def test_write_masks_equals_former_on_the_sample_trial(sample_run, tmp_path):
    out, study, cfg, _ = sample_run
    with ResultStore(out / "results.sqlite") as store:
        idents = [(s["subject_id"], s["visit"], s["lesion_id"]) for s in store.scans()]
    sources = {(r.subject_id, r.visit, r.lesion_id): (str(r.image), r.series_uid) for r in study.rows}
    a, b = tmp_path / "new", tmp_path / "old"
    sa, sb = _copy_db(out, a), _copy_db(out, b)
    try:
        for store in (sa, sb):  # nothing written yet
            store.conn.execute("UPDATE masks SET path=NULL, file_sha256=NULL")

        def both():
            na = outputs.write_masks(sa, idents, a, sources=sources)
            nb = _former_write_masks(sb, idents, b, sources=sources)
            assert na == nb
            assert _files(a) == _files(b) and _dcm_names(a) == _dcm_names(b)
            assert _rows(sa, "masks") == _rows(sb, "masks")
            return na

        assert both() == 29 and len(_dcm_names(a)) > 0
        assert both() == 0  # a re-run: every mask is fresh
        # a mask file changed, one removed, one SEG removed, a scan that now failed, a mask moved
        for folder in (a, b):
            files = sorted(folder.rglob("*.nii.gz"))
            files[0].write_bytes(b"changed")
            files[1].unlink()
            sorted(folder.rglob("*.dcm"))[0].unlink()
        for store in (sa, sb):
            with store.transaction():
                store.conn.execute("UPDATE scans SET status='failed' WHERE rowid=3")
                store.conn.execute("UPDATE masks SET path='elsewhere' WHERE rowid=5")
        assert both() >= 2
        # idents in another order, and fewer of them (a subject's single lesion: no label)
        assert both() == 0
        few = [i for i in idents if i[0] == idents[-1][0]][:1]
        outputs.write_masks(sa, few, a, sources=sources)
        _former_write_masks(sb, few, b, sources=sources)
        assert _files(a) == _files(b) and _rows(sa, "masks") == _rows(sb, "masks")
    finally:
        sa.close()
        sb.close()


def test_scans_equal_former(sample_run, tmp_path):
    out, *_ = sample_run
    with ResultStore(out / "results.sqlite") as store:
        every = [(s["subject_id"], s["visit"], s["lesion_id"]) for s in store.scans()]
        rng = np.random.default_rng(5)
        cases = [every, every[::-1], every[:3], every[:5], [], [("nobody", "v", "1")] + every + every[:2],
                 [list(i) for i in every], [(i[0], i[1], i[2].upper()) for i in every],
                 [(i[0] + " ", i[1], i[2]) for i in every]]
        cases += [[every[k] for k in rng.integers(0, len(every), size=n)] for n in (1, 6, 40)]
        for idents in cases:
            assert store.scans(idents) == _former_scans(store, idents)
            assert store.scans(iter(idents)) == _former_scans(store, idents)
        assert store.scans(every)[0]["subject_id"] == every[0][0]
        # identities that are no text, or not three values, take the former way (and its errors)
        with_int = [(s, v, l) for s, v, l in every[:6]] + [("PH001", "baseline", 1)]
        assert store.scans(with_int) == _former_scans(store, with_int)
        with pytest.raises(sqlite3.ProgrammingError):
            store.scans(every[:5] + [("PH001", "baseline")])


def test_assessment_rows_are_conformed_as_before(sample_run):
    """outputs.assess conforms its rows with table_from_rows: the frame conform(from_records) gave."""
    out, study, cfg, _ = sample_run
    with ResultStore(out / "results.sqlite") as store:
        scans = store.scans()
        rows = [r for s in scans for r in outputs._scan_rows(store, s, cfg, None)]
    assert len(rows) == 3 * len(scans)
    for part in (rows, rows[:7], rows[::-1], [dict(r, course=None, scan_date=None) for r in rows[:5]]):
        new = table_from_rows(part)
        old = conform(pd.DataFrame.from_records(part))
        pd.testing.assert_frame_equal(new, old, check_exact=True)


def test_ordered_table_equals_former_and_leaves_its_frame(sample_run):
    out, study, cfg, summary = sample_run
    table = summary.table
    idents = list(dict.fromkeys(zip(table["subject_id"], table["visit"], table["lesion_id"])))
    rng = np.random.default_rng(2)
    for order in (idents, idents[::-1], [idents[k] for k in rng.permutation(len(idents))], idents[:4], []):
        for frames in ([table], [table.iloc[::-1]], [table.iloc[:50], table.iloc[50:]],
                       [pd.DataFrame.from_records(json.loads(table.to_json(orient="records", date_format="iso")))]):
            before = [f.copy() for f in frames]
            new, old = outputs._ordered_table(frames, order), _former_ordered_table(frames, order)
            pd.testing.assert_frame_equal(new, old, check_exact=True)
            for f, b in zip(frames, before):
                pd.testing.assert_frame_equal(f, b, check_exact=True)
    pd.testing.assert_frame_equal(outputs._ordered_table([], []), _former_ordered_table([], []))


def test_write_tables_of_a_conformed_table_write_the_same_files(sample_run, tmp_path):
    out, study, cfg, summary = sample_run
    table = summary.table
    shuffled = table[list(reversed(table.columns))]  # not conformed: conform puts the columns back
    write_tables(table, tmp_path / "a")
    write_tables(shuffled, tmp_path / "b")
    for name in ("volumes.csv", "volumes.parquet", "summary.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() == (out / name).read_bytes()


# ------------------------------------------------------------------------------ store writes
def _store_with_masks(path: Path, n: int) -> ResultStore:
    store = ResultStore(path)
    run = store.begin_run(study="s", pipeline_path=None, pipeline_hash="p", pseudonymized=False)
    vol = Volume(np.zeros((3, 4, 5), bool), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), {})
    data, grid, nv = pack_mask(vol)
    for k in range(n):
        store.record_scan(run, {"subject_id": f"S{k % 3}", "visit": f"v{k}", "lesion_id": "1", "course": 0,
                                "scan_date": None, "image": None, "task_key": f"key{k}", "status": "ok"},
                          {"input_hash": "h", "series_uid": None, "pipeline_hash": "p"},
                          mask={"source": "segmented", "method": "m", "n_voxels": nv, "grid": grid, "data": data})
    return store


def _stable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "created_at"} for r in rows]


def test_set_mask_files_and_record_assessments_equal_one_by_one(tmp_path):
    a, b = _store_with_masks(tmp_path / "a.sqlite", 7), _store_with_masks(tmp_path / "b.sqlite", 7)
    written = [(f"key{k}", f"sub-S/ses-{k}/x.nii.gz", hashlib.sha256(bytes([k])).hexdigest()) for k in (0, 3, 6, 3)]
    written.append(("no-such-key", "p", "h"))
    a.set_mask_files(written)
    for key, path, sha in written:
        b.set_mask_file(key, path, sha)
    a.set_mask_files([])
    assert _stable(_rows(a, "masks")) == _stable(_rows(b, "masks"))
    records = [("S1", "*", "k1", [{"x": 1.5, "d": None}]), ("S2", "*", "k2", []), ("S1", "*", "k3", [{"y": "é"}])]
    a.record_assessments(1, records, "p")
    for subject, lesion, key, data in records:
        b.record_assessment(1, subject, lesion, key, data, "p")
    a.record_assessments(1, [], "p")
    assert _stable(_rows(a, "assessments")) == _stable(_rows(b, "assessments"))
    assert a.assessment("S1", "*")["data"] == [{"y": "é"}]
    a.close()
    b.close()


# ------------------------------------------------------------------------------ hashing the inputs
def _tree(root: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    sizes = [0, 1, 100, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 5, 33000]
    files = []
    for n, size in enumerate(sizes):
        p = root / ("sub" if n % 2 else "") / f"f{n}.dcm"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        files.append(p)
    (root / "é name").write_bytes(b"x")
    files.append(root / "é name")
    return files


def test_file_sha256_and_content_hash_equal_former(tmp_path):
    root = tmp_path / "study"
    files = _tree(root)
    for f in files:
        assert file_sha256(f) == _former_file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
        assert file_sha256(str(f)) == _former_file_sha256(f)
    os.symlink(root, tmp_path / "link")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        roots = [root, str(root), Path("study"), Path("study/sub/.."), tmp_path / "link", Path("/"),
                 root / "sub", tmp_path, Path(str(root) + "/"), "study/", root.parent / "." / "study",
                 "study/.", str(root) + "/.", str(root) + "/sub/..", "study/sub/../", ".", str(tmp_path / "link")]
        variants = [files, [str(f) for f in files], [Path(os.path.relpath(f)) for f in files],
                    [tmp_path / "link" / f.relative_to(root) for f in files],
                    [Path(str(f).replace("/study/", "/study/sub/../")) for f in files],
                    [Path("/" + str(f)) for f in files],
                    [str(f).replace("/study/", "/study/./") for f in files],
                    [str(f).replace("/study/", "/study//") for f in files],
                    [os.path.relpath(f).replace("study/", "study/sub/../") for f in files]]
        for r in roots:
            for paths in variants:
                assert content_hash(paths, r) == _former_content_hash(paths, r), (r, paths[0])
            assert content_hash(files, r, digest=_former_file_sha256) == _former_content_hash(files, r)
        assert content_hash(files) == _former_content_hash(files)
    finally:
        os.chdir(cwd)
    with pytest.raises(FileNotFoundError):
        content_hash([root / "missing"], root)
    # the read buffer is kept per thread: hashing in several threads at once gives the same digests
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(file_sha256, files * 4)) == [_former_file_sha256(f) for f in files * 4]


def test_file_hash_cache_real_path_equals_former(tmp_path):
    root = tmp_path / "study"
    files = _tree(root)
    os.symlink(files[2], root / "linked.dcm")
    os.symlink(root, tmp_path / "folder-link")
    store = ResultStore(tmp_path / "r.sqlite")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        cases = files + [root / "linked.dcm", tmp_path / "folder-link" / "f0.dcm", Path("study/f0.dcm"),
                         str(files[3]), Path("//" + str(files[0]).lstrip("/")), root / "sub" / ".." / "f0.dcm",
                         str(root) + "//f0.dcm", root / "missing.dcm", str(root) + "/./f0.dcm",
                         str(root) + "/sub/../f0.dcm", str(root) + "/sub/", str(root) + "/sub/.",
                         str(root) + "/sub/..", str(root / "linked.dcm"), str(tmp_path) + "/folder-link/f0.dcm",
                         "/", str(root / "sub" / files[1].name)]
        new, old = FileHashCache(store), FileHashCache(store)
        for case in cases + cases[::-1]:
            try:
                got = new._real_path(case)
            except OSError as exc:
                got = type(exc)
            try:
                want = _former_real_path(old, case)
            except OSError as exc:
                want = type(exc)
            assert got == want, case
        assert new._folders == old._folders
        assert [new(f) for f in files] == [_former_file_sha256(f) for f in files]
    finally:
        os.chdir(cwd)
        store.close()


# ------------------------------------------------------------------------------ masks
def _volumes():
    """Masks of the shapes the pipeline meets, edge cases and random ones."""
    rng = np.random.default_rng(3)
    direction = np.array([[0.99, 0.1, 0.0], [-0.1, 0.99, 0.0], [0.0, 0.0, 1.0]])
    direction /= np.linalg.norm(direction, axis=0)
    out = []
    for shape in [(14, 128, 128), (1, 1, 1), (2, 3, 5), (7, 1, 9), (5, 6, 7), (36, 160, 160), (0, 4, 4), (3, 0, 2)]:
        empty = np.zeros(shape, bool)
        out.append(empty)
        if not empty.size:
            continue
        full = np.ones(shape, bool)
        out.append(full)
        one = empty.copy()
        one[tuple(int(rng.integers(0, s)) for s in shape)] = True
        out.append(one)
        corner = empty.copy()
        corner[0, 0, 0] = corner[-1, -1, -1] = True  # touching every border
        out.append(corner)
        for p in (0.001, 0.05, 0.5):
            out.append(rng.random(shape) < p)
        blob = empty.copy()
        k, j, i = (int(rng.integers(0, s)) for s in shape)
        blob[k:k + 4, j:j + 9, i:i + 11] = True
        out.append(blob)
    vols = []
    for n, arr in enumerate(out):
        spacing = (0.7 + 0.1 * (n % 3), 0.9, 3.0 + n % 2)
        vols.append(Volume(arr, spacing, (-100.0 + n, 20.5, 7.25), direction if n % 2 else np.eye(3), {}))
    for dtype in (np.uint8, np.int16, np.float32, np.float64):  # masks given in other dtypes
        arr = (np.random.default_rng(1).random((4, 5, 6)) < 0.3).astype(dtype) * 2
        vols.append(Volume(arr, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), {}))
    return vols


def test_pack_mask_equals_former():
    for vol in _volumes():
        new, old = pack_mask(vol), _former_pack_mask(vol)
        assert new[0] == old[0] and new[1] == old[1] and new[2] == old[2]
        assert np.array_equal(unpack_mask(*new[:2]).array, np.asarray(vol.array).astype(bool))


def test_pack_mask_equals_former_on_the_sample_trial(sample_run):
    out, *_ = sample_run
    with ResultStore(out / "results.sqlite") as store:
        masks = [store.mask(s["task_key"]) for s in store.scans()]
    assert len(masks) == 29
    for m in masks:
        vol = unpack_mask(m["data"], m["grid"])
        new, old = pack_mask(vol), _former_pack_mask(vol)
        assert new == old
        assert new[0] == m["data"] and new[1] == m["grid"]


def _outcome(func, *args, **kwargs):
    """The value, or the type and message of the error (an empty grid fails as it did)."""
    try:
        return func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return (type(exc), str(exc))


def test_nifti_mask_bytes_equals_former():
    nifti._mask_header.cache_clear()
    vols = [v for v in _volumes() if v.array.ndim == 3 and v.array.dtype in (bool, np.uint8)]
    skewed = np.array([[1.0, 0.0006, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # qform left unset
    vols.append(Volume(np.ones((3, 4, 5), bool), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), skewed, {}))
    strided = (np.random.default_rng(4).random((6, 8, 10)) < 0.3)[::-1, :, ::2]  # a non-contiguous view
    vols.append(Volume(strided, (0.5, 0.5, 2.0), (0.0, 0.0, 0.0), np.eye(3), {}))
    raw = np.frombuffer(bytes([0, 2, 1, 0, 5, 0]), dtype=bool).reshape(1, 2, 3)  # bytes other than 0/1
    vols.append(Volume(raw, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), {}))
    for _ in range(2):  # the second pass finds every header made
        for vol in vols:
            for kwargs in ({}, {"description": "lesion mask"}, {"gzip": False}, {"description": "é" * 90}):
                assert _outcome(nifti_mask_bytes, vol, **kwargs) == _outcome(_former_nifti_mask_bytes, vol, **kwargs)
    assert nifti._mask_header.cache_info().hits > 0
    with pytest.raises(InputError, match="3D uint8/boolean"):
        nifti_mask_bytes(Volume(np.zeros((2, 2, 2), np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), {}))


def _former_store_connection(path: Path) -> sqlite3.Connection:
    """The former ResultStore set-up (synchronous=NORMAL from the start)."""
    from volumetry.store import SCHEMA, SCHEMA_VERSION

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("BEGIN IMMEDIATE")
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("COMMIT")
    return conn


@pytest.mark.parametrize("existing", ["none", "empty file", "made before"])
def test_a_new_store_is_the_former_database_and_writes_results_synchronous_normal(tmp_path, existing):
    """A database made without fsyncs has the former schema, journal and settings; results are
    then written with synchronous=NORMAL (1), whether the file was new or not."""
    path = tmp_path / "r.sqlite"
    if existing == "empty file":
        path.write_bytes(b"")
    elif existing == "made before":
        ResultStore(path).close()
    ref = _former_store_connection(tmp_path / "ref.sqlite")
    with ResultStore(path) as store:
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        for pragma in ("user_version", "journal_mode", "page_size", "auto_vacuum", "encoding"):
            assert (store.conn.execute(f"PRAGMA {pragma}").fetchone()[0]
                    == ref.execute(f"PRAGMA {pragma}").fetchone()[0])
        schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        assert [tuple(r) for r in store.conn.execute(schema)] == [tuple(r) for r in ref.execute(schema)]
        run = store.begin_run(study="s", pipeline_path=None, pipeline_hash="p", pseudonymized=False)
        assert run == 1
    ref.close()
    assert not Path(str(path) + "-wal").exists()  # checkpointed into the file when closed
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
