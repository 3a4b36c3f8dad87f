"""Longitudinal phantom subjects: trajectories and their response categories,
repositioning, protocol drift, complete response with an empty mask; and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from volumetry.cli import main
from volumetry.phantoms.longitudinal import (
    TRAJECTORIES, VISITS, LesionPlan, Protocol, SubjectPlan, expected_response, make_subject, scan_visit,
)


@pytest.mark.parametrize("factor,category", [(0.0, "CR"), (0.79, "PR"), (0.8, "PR"), (0.81, "SD"), (1.19, "SD"),
                                             (1.2, "PD"), (2.0, "PD"), (1.0, "SD")])
def test_expected_response_thresholds(factor, category):
    assert expected_response(factor) == category


def test_trajectories_have_their_categories_away_from_thresholds():
    assert [expected_response(f) for f in TRAJECTORIES["responder"][1:]][-1] == "PR"
    assert {expected_response(f) for f in TRAJECTORIES["stable"][1:]} == {"SD"}
    assert expected_response(TRAJECTORIES["progressor"][-1]) == "PD"
    assert expected_response(TRAJECTORIES["complete_response"][-1]) == "CR"
    for factors in TRAJECTORIES.values():
        assert len(factors) == len(VISITS) and factors[0] == 1.0
        for f in factors[1:]:
            if f > 0:  # at least 3 points of percent change from a threshold
                assert min(abs((f - 1) * 100 - t) for t in (-20, 20)) >= 3


@pytest.fixture(scope="module")
def subject():
    small = Protocol(pixel_spacing=(1.6, 1.6), matrix=(96, 96), slice_thickness=5.0)
    plan = SubjectPlan(
        "T01", (LesionPlan("L1", "lobulated", 20.0, "complete_response"),
                LesionPlan("L2", "ellipsoid", 3.0, "progressor")),
        small, drift={"course2": Protocol(plane="coronal", pixel_spacing=(1.6, 1.6), matrix=(96, 96),
                                          slice_thickness=3.0, description="T2 FS COR")},
        missed=("course1",), seed=77)
    return make_subject(plan)


def test_visits_truth_and_masks(subject):
    scans = {v: scan_visit(subject, v) for v in ("baseline", "course2", "course4")}
    with pytest.raises(ValueError, match="no visit 'course1'"):
        scan_visit(subject, "course1")
    base = {les["lesion_id"]: les for les in scans["baseline"].lesions}
    for visit, scan in scans.items():
        idx = VISITS.index(visit)
        for les in scan.lesions:
            factor = TRAJECTORIES[les["trajectory"]][idx]
            assert les["true_volume_ml"] == pytest.approx(base[les["lesion_id"]]["true_volume_ml"] * factor, rel=1e-6)
            assert les["true_percent_change"] == pytest.approx((factor - 1) * 100)
            lab = scan.phantom.labels.array == les["label"]
            mask_ml = lab.sum() * scan.phantom.labels.voxel_volume_mm3 / 1000
            if factor == 0:
                assert not lab.any() and les["expected_response"] == "CR" and les["seed_point_lps_mm"] is None
            else:
                assert mask_ml == pytest.approx(les["true_volume_ml"], rel=0.03)
    # complete response of L1 at course4: only L2 remains in the mask
    assert set(np.unique(scans["course4"].phantom.labels.array)) == {0, 2}
    assert scans["course4"].phantom.truth["true_volume_ml"] == pytest.approx(
        [les for les in scans["course4"].lesions if les["lesion_id"] == "L2"][0]["true_volume_ml"], rel=1e-5)


def test_repositioning_and_protocol_drift(subject):
    b, c2, c4 = (scan_visit(subject, v) for v in ("baseline", "course2", "course4"))
    # the patient moved: the lesion's scanner position and the pose differ between visits
    rb, r4 = (np.array(s.phantom.truth["pose"]["rotation"]) for s in (b, c4))
    angle = np.degrees(np.arccos(np.clip((np.trace(rb.T @ r4) - 1) / 2, -1, 1)))
    assert angle > 1.0
    lb = b.phantom.truth["foci"][1]["centre_lps_mm"]
    l4 = c4.phantom.truth["foci"][0]["centre_lps_mm"]  # L2 (L1 gone)
    assert np.linalg.norm(np.subtract(lb, l4)) > 1.0
    # the drift visit is coronal with 3 mm slices, the others axial 5 mm
    assert c2.phantom.truth["plane"] == "coronal" and c2.phantom.image.spacing[2] == pytest.approx(3.0)
    assert b.phantom.truth["plane"] == "axial" and b.phantom.image.spacing[2] == pytest.approx(5.0)
    assert c2.phantom.truth["protocol_drift"] and not b.phantom.truth["protocol_drift"]


def test_scan_dates_follow_courses(subject):
    import datetime as dt
    base = dt.date.fromisoformat(subject.plan.scan_date("baseline"))
    for n, v in enumerate(VISITS[1:], start=1):
        days = (dt.date.fromisoformat(subject.plan.scan_date(v)) - base).days
        assert abs(days - 84 * n) <= 6


def test_cli_single_phantom_both_formats(tmp_path, capsys):
    from volumetry.io.reader import read_image

    for fmt in ("nifti", "dicom"):
        out = tmp_path / fmt
        rc = main(["-q", "phantom", "--shape", "cystic", "--volume", "4", "--plane", "oblique", "--thickness", "2",
                   "--gap", "0.5", "--pixel", "0.8", "0.9", "--snr", "15", "--format", fmt, "--out", str(out),
                   "--seed", "3"])
        assert rc == 0
        printed = json.loads(capsys.readouterr().out)
        truth = json.loads((out / "truth.json").read_text())
        assert printed["true_volume_ml"] == truth["true_volume_ml"] == pytest.approx(4.0)
        img = read_image(out / ("image" if fmt == "dicom" else "image.nii.gz"))
        mask = read_image(out / "mask.nii.gz")
        img.require_same_grid(mask)
        assert img.spacing == pytest.approx((0.8, 0.9, 2.5))
        assert (mask.array > 0).sum() * mask.voxel_volume_mm3 / 1000 == pytest.approx(truth["mask_volume_ml"])


def test_cli_errors(tmp_path, capsys):
    assert main(["phantom", "--shape", "sphere"]) == 2
    assert "give --out DIR for a single phantom, --trial DIR" in capsys.readouterr().err
    assert main(["phantom", "--shape", "cube", "--out", str(tmp_path)]) == 2
    assert "unknown phantom shape 'cube'" in capsys.readouterr().err


def test_write_suite_index(tmp_path):
    import csv

    from volumetry.io.reader import read_image
    from volumetry.phantoms import phantom_suite
    from volumetry.phantoms.export import SUITE_COLUMNS, write_suite

    specs = [s for s in phantom_suite() if s.name.startswith(("suite15", "suite04"))]
    index = write_suite(specs, tmp_path, image_format="dicom")
    with open(index, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == SUITE_COLUMNS and [r["case"] for r in rows] == [s.name for s in specs]
    for r in rows:
        img, mask = read_image(tmp_path / r["image"]), read_image(tmp_path / r["mask"])
        img.require_same_grid(mask)
        seed = np.array([float(r[c]) for c in ("seed_x", "seed_y", "seed_z")])
        i, j, k = np.rint(img.lps_to_index(seed)).astype(int)
        assert mask.array[k, j, i] > 0
        assert (mask.array > 0).sum() * mask.voxel_volume_mm3 / 1000 == pytest.approx(float(r["mask_volume_ml"]))


def test_write_suite_refuses_unsafe_names(tmp_path):
    from volumetry.errors import InputError
    from volumetry.phantoms import PhantomSpec
    from volumetry.phantoms.export import write_suite

    with pytest.raises(InputError, match="cannot be a folder name"):
        write_suite([PhantomSpec(name="../escape")], tmp_path / "s")
    assert not (tmp_path / "escape").exists()
