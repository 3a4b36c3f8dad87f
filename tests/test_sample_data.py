"""The committed synthetic trial in sample_data/: regenerates bit for bit, and its
manifest, truth table and files agree with each other."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from volumetry.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
#: Budget of the committed trial (bytes).
MAX_BYTES = 25 * 1024 * 1024


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(name: str) -> list[dict]:
    with open(SAMPLE / name, newline="") as fh:
        return list(csv.DictReader(fh))


#: Largest difference allowed between a regenerated and a committed floating-point value of the
#: geometry (relative; mm for positions): different CPUs round the matrix products of the oblique
#: and re-sampled grids in the last binary digit (e.g. 0.282318710745 vs 0.282318710744 mm in a
#: 12-digit DICOM string), nothing else may differ.
ROUNDING = 1e-9


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= ROUNDING * max(1.0, abs(x), abs(y))


def _json_diff(a, b, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{where}: keys {sorted(a.keys() ^ b.keys())}"
        return next((d for k in a if (d := _json_diff(a[k], b[k], f"{where}.{k}"))), None)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} items"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _json_diff(x, y, f"{where}[{i}]"))), None)
    if isinstance(a, float) and isinstance(b, float):
        return None if _close(a, b) else f"{where}: {a!r} vs {b!r}"
    return None if a == b and type(a) is type(b) else f"{where}: {a!r} vs {b!r}"


def _dataset_diff(da, db) -> str | None:
    if set(da.keys()) != set(db.keys()):
        return f"elements {sorted(set(da.keys()) ^ set(db.keys()))}"
    for el in da:
        other = db[el.tag]
        if el.VR == "SQ":
            if len(el.value) != len(other.value):
                return f"{el.keyword}: {len(el.value)} vs {len(other.value)} items"
            why = next((d for x, y in zip(el.value, other.value) if (d := _dataset_diff(x, y))), None)
            if why:
                return f"{el.keyword} > {why}"
        elif el.VR == "DS":
            xs = [float(v) for v in (el.value if el.VM > 1 else [el.value])]
            ys = [float(v) for v in (other.value if other.VM > 1 else [other.value])]
            if len(xs) != len(ys) or not all(_close(x, y) for x, y in zip(xs, ys)):
                return f"{el.keyword}: {el.value} vs {other.value}"
        elif el.value != other.value:
            return f"{el.keyword or el.tag}: values differ"
    return None


def _dicom_diff(a: Path, b: Path) -> str | None:
    import pydicom

    da, db = pydicom.dcmread(a), pydicom.dcmread(b)
    return _dataset_diff(da.file_meta, db.file_meta) or _dataset_diff(da, db)


def _nifti_diff(a: Path, b: Path) -> str | None:
    import nibabel as nib

    ia, ib = nib.load(a), nib.load(b)
    xa, xb = np.asanyarray(ia.dataobj), np.asanyarray(ib.dataobj)
    if xa.dtype != xb.dtype or not np.array_equal(xa, xb):
        return "voxel data differ"
    ha, hb = ia.header, ib.header
    geometry = {"srow_x", "srow_y", "srow_z", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y",
                "qoffset_z", "pixdim"}
    for key in ha.keys():
        va, vb = np.asarray(ha[key]), np.asarray(hb[key])
        if key in geometry:
            # float32 in the header: one float32 step of the value (7 digits)
            if not np.allclose(va, vb, rtol=2e-7, atol=1e-6):
                return f"{key}: {va} vs {vb}"
        elif not np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"):
            return f"{key}: {va} vs {vb}"
    return None


def same_but_rounding(a: Path, b: Path) -> str | None:
    """None when two files of the trial hold the same content up to the last floating-point digit of
    the geometry (:data:`ROUNDING`; pixel and voxel data identical); else what differs."""
    import gzip
    import json

    if a.read_bytes() == b.read_bytes():
        return None
    name = a.name
    if name.endswith(".json"):
        return _json_diff(json.loads(a.read_text()), json.loads(b.read_text()))
    if name.endswith(".dcm"):
        return _dicom_diff(a, b)
    if name.endswith(".nii.gz"):
        if gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes()):
            return None  # another zlib, the same payload
        return _nifti_diff(a, b)
    return "bytes differ"


def test_regenerates_bit_for_bit(tmp_path):
    """Regenerating gives the committed files: byte for byte, except that the last floating-point digit
    of the geometry may differ from one CPU to another (:data:`ROUNDING`); pixel and voxel data, text
    files, UIDs, dates and every other value are identical."""
    assert main(["-q", "phantom", "--trial", str(tmp_path / "trial")]) == 0
    committed, fresh = _digests(SAMPLE), _digests(tmp_path / "trial")
    assert sorted(fresh) == sorted(committed), set(fresh) ^ set(committed)
    changed = [f for f in committed if committed[f] != fresh[f]]
    differ = {f: why for f in changed if (why := same_but_rounding(SAMPLE / f, tmp_path / "trial" / f))}
    if differ:
        raise AssertionError(
            f"{len(differ)} files differ from sample_data beyond floating-point rounding, e.g. "
            f"{list(differ.items())[:3]}; regenerate with 'volumetry phantom --trial sample_data' and commit it "
            "together with the generator change")


def test_rounding_tolerance_finds_real_changes(tmp_path):
    """The comparison of :func:`test_regenerates_bit_for_bit` lets a last-digit geometry difference
    through and nothing else: a changed pixel, position, JSON value or mask voxel is caught."""
    import json
    import shutil

    import nibabel as nib
    import pydicom

    dcm = next(iter(sorted((SAMPLE / "PH001" / "baseline" / "dicom").glob("*.dcm"))))
    ds = pydicom.dcmread(dcm)
    ipp = [float(v) for v in ds.ImagePositionPatient]

    def variant(name: str, change) -> Path:
        d = pydicom.dcmread(dcm)
        change(d)
        d.save_as(tmp_path / name)
        return tmp_path / name

    last_digit = variant("ulp.dcm", lambda d: setattr(d, "ImagePositionPatient", [f"{ipp[0] + 1e-12:.12f}", *ipp[1:]]))
    assert same_but_rounding(dcm, last_digit) is None
    moved = variant("moved.dcm", lambda d: setattr(d, "ImagePositionPatient", [ipp[0] + 1e-3, *ipp[1:]]))
    assert "ImagePositionPatient" in same_but_rounding(dcm, moved)
    pixels = ds.pixel_array.copy()
    pixels.flat[1234] += 1
    changed = variant("pixel.dcm", lambda d: setattr(d, "PixelData", pixels.tobytes()))
    assert same_but_rounding(dcm, changed) is not None

    truth = SAMPLE / "truth" / "PH001" / "baseline.json"
    doc = json.loads(truth.read_text())
    doc["grid"]["origin_lps_mm"][0] *= 1 + 1e-15
    (tmp_path / "ulp.json").write_text(json.dumps(doc))
    assert same_but_rounding(truth, tmp_path / "ulp.json") is None
    doc["grid"]["origin_lps_mm"][0] += 1e-4
    (tmp_path / "moved.json").write_text(json.dumps(doc))
    assert "origin_lps_mm" in same_but_rounding(truth, tmp_path / "moved.json")

    mask = SAMPLE / "truth" / "PH001" / "baseline_mask.nii.gz"
    img = nib.load(mask)
    data = np.asanyarray(img.dataobj).copy()
    data.flat[np.flatnonzero(data)[0]] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), tmp_path / "voxel.nii.gz")
    assert same_but_rounding(mask, tmp_path / "voxel.nii.gz") == "voxel data differ"
    shutil.copy(SAMPLE / "README.md", tmp_path / "README.md")
    (tmp_path / "README.md").write_text((SAMPLE / "README.md").read_text() + " ")
    assert same_but_rounding(SAMPLE / "README.md", tmp_path / "README.md") == "bytes differ"


def test_size_budget_and_layout():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= MAX_BYTES, f"sample_data is {total / 2**20:.1f} MB"
    rows = _rows("manifest.csv")
    assert list(rows[0]) == ["subject_id", "visit", "course", "scan_date", "image", "lesion_id",
                             "seed_x", "seed_y", "seed_z", "seed_space"]
    subjects = {r["subject_id"] for r in rows}
    assert len(subjects) >= 5
    scans = {(r["subject_id"], r["visit"]) for r in rows}
    # one missed visit: 5 subjects x 5 visits - 1
    assert len(scans) == 5 * len(subjects) - 1
    images = {r["image"] for r in rows}
    assert any(i.endswith(".nii.gz") for i in images) and any(i.endswith("/dicom") for i in images)
    for r in rows:
        has_seed = bool(r["seed_x"])
        assert has_seed == (r["visit"] == "baseline"), r
        if has_seed:
            assert r["seed_space"] == "lps"


def test_truth_table_matches_masks_and_seeds():
    from volumetry.io.nifti import read_nifti
    from volumetry.io.reader import read_image

    truth = _rows("truth.csv")
    manifest = {(r["subject_id"], r["visit"], r["lesion_id"]): r for r in _rows("manifest.csv")}
    cats = {r["expected_response"] for r in truth}
    assert {"CR", "PR", "SD", "PD"} <= cats
    baseline = {(r["subject_id"], r["lesion_id"]): float(r["true_volume_ml"])
                for r in truth if r["visit"] == "baseline"}
    images = {}
    for r in truth:
        key = (r["subject_id"], r["visit"], r["lesion_id"])
        m = manifest[key]
        if m["image"] not in images:
            images[m["image"]] = read_image(SAMPLE / m["image"])
        image = images[m["image"]]
        labels = read_nifti(SAMPLE / r["mask"])
        image.require_same_grid(labels)
        lab = labels.array == int(r["mask_label"])
        vol = float(r["true_volume_ml"])
        base = baseline[(r["subject_id"], r["lesion_id"])]
        assert float(r["true_percent_change"]) == pytest.approx((vol / base - 1) * 100, abs=1e-3)
        if vol == 0:
            assert r["expected_response"] == "CR" and not lab.any()
            continue
        # the truth mask holds the lesion: its volume is close to the truth (5 mm slices, small lesions)
        mask_ml = lab.sum() * image.voxel_volume_mm3 / 1000
        assert mask_ml == pytest.approx(vol, rel=0.05), key
        # the lesion is bright against the tissue around it
        assert np.median(image.array[lab]) > 2 * np.median(image.array[(labels.array == 0) & (image.array > 50)])
        if m["seed_x"]:
            seed = np.array([float(m["seed_x"]), float(m["seed_y"]), float(m["seed_z"])])
            i, j, k = np.rint(image.lps_to_index(seed)).astype(int)
            assert lab[k, j, i], f"seed of {key} is not inside its lesion"


def test_every_dicom_scan_loads_with_its_written_geometry():
    """Oblique (PH003 course1) and slice-gap (PH004 course1) series included."""
    import json

    from volumetry.io.dicom import load_dicom

    scans = {(r["subject_id"], r["visit"], r["image"]) for r in _rows("manifest.csv") if r["image"].endswith("/dicom")}
    planes, gaps = set(), set()
    for subject, visit, image in sorted(scans):
        truth = json.loads((SAMPLE / "truth" / subject / f"{visit}.json").read_text())
        g = truth["grid"]
        vol = load_dicom(SAMPLE / image)
        assert list(vol.size) == g["size"]
        assert np.abs(np.subtract(vol.origin, g["origin_lps_mm"])).max() < 1e-4
        assert np.abs(np.subtract(vol.spacing, g["spacing_mm"])).max() < 1e-4
        assert np.abs(vol.direction.ravel() - np.array(g["direction"])).max() < 1e-4
        planes.add(g["plane"])
        gaps.add(g["spacing_mm"][2] > g["slice_thickness_mm"] + 1e-6)
    assert "oblique" in planes and True in gaps
