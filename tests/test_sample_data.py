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


def test_regenerates_bit_for_bit(tmp_path):
    assert main(["-q", "phantom", "--trial", str(tmp_path / "trial")]) == 0
    committed, fresh = _digests(SAMPLE), _digests(tmp_path / "trial")
    assert sorted(fresh) == sorted(committed), set(fresh) ^ set(committed)
    changed = [f for f in committed if committed[f] != fresh[f]]
    if changed:
        import gzip
        same_payload = [f for f in changed if f.endswith(".gz") and
                        gzip.decompress((SAMPLE / f).read_bytes()) == gzip.decompress((tmp_path / "trial" / f).read_bytes())]
        hint = (f"; {len(same_payload)} of them are .gz files with identical content (another zlib?)"
                if same_payload else "; regenerate with 'volumetry phantom --trial sample_data' and commit it "
                "together with the generator change")
        raise AssertionError(f"{len(changed)} files differ from sample_data, e.g. {changed[:5]}{hint}")


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
