"""The synthetic sample trial of ``sample_data/``: five subjects, baseline and the
end of each 12-week course, DICOM and NIfTI mixed, one missed visit.

:func:`write_trial` regenerates the folder bit for bit: every random choice
comes from the trial seed, the DICOM UIDs are derived from it, the dates are
fixed, NIfTI gzip streams carry no time stamp. On another CPU the last binary
digit of a matrix product can differ, which may move the last printed digit of
an oblique or re-sampled grid's geometry (a 12-digit DICOM position, a truth
JSON float, a float32 NIfTI affine); pixel and voxel data and every other value
stay identical (``tests/test_sample_data.py`` checks both).

Layout (paths relative to the trial folder)::

    manifest.csv                    subject_id, visit, course, scan_date, image,
                                    lesion_id, seed_x, seed_y, seed_z, seed_space
    truth.csv                       subject_id, lesion_id, visit, course,
                                    true_volume_ml, true_volume_se_ml,
                                    true_percent_change, expected_response, ...
    <subject>/<visit>/dicom/IM*.dcm or <subject>/<visit>/<subject>_<visit>_T2FS.nii.gz
    truth/<subject>/<visit>_mask.nii.gz   label map (lesion label, see truth.csv)
    truth/<subject>/<visit>.json          everything known about the scan
    README.md
"""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from ..errors import InputError
from .longitudinal import LesionPlan, Protocol, SubjectPlan, VisitScan, make_subject, scan_visit

log = logging.getLogger(__name__)

#: Seed of the committed sample trial.
TRIAL_SEED = 20240108

MANIFEST_COLUMNS = ("subject_id", "visit", "course", "scan_date", "image", "lesion_id",
                    "seed_x", "seed_y", "seed_z", "seed_space")
TRUTH_COLUMNS = ("subject_id", "lesion_id", "visit", "course", "true_volume_ml", "true_volume_se_ml",
                 "true_percent_change", "expected_response", "trajectory", "mask", "mask_label",
                 "protocol_drift")


def trial_plans(seed: int = TRIAL_SEED) -> list[SubjectPlan]:
    """The five subjects of the sample trial (see ``sample_data/README.md``)."""
    base = Protocol()
    return [
        SubjectPlan(
            "PH001", (LesionPlan("L1", "lobulated", 42.0, "responder"),), base,
            drift={"course2": Protocol(slice_thickness=3.0, snr=16.0, description="T2 FS AX 3MM")},
            formats={}, baseline_date="2024-01-08", seed=seed + 1, trajectory="responder"),
        SubjectPlan(
            "PH002", (LesionPlan("L1", "infiltrative", 18.0, "stable"),), Protocol(snr=18.0),
            drift={"course3": Protocol(plane="coronal", slice_thickness=4.0, snr=18.0, description="T2 FS COR")},
            formats={v: "nifti" for v in ("baseline", "course1", "course2", "course3", "course4")},
            baseline_date="2024-02-05", seed=seed + 2, trajectory="stable"),
        SubjectPlan(
            "PH003", (LesionPlan("L1", "cystic", 12.0, "progressor"),), Protocol(snr=24.0),
            drift={"course1": Protocol(plane="oblique", tilt_deg=(14.0, -9.0), snr=24.0, description="T2 FS OBL")},
            missed=("course3",), formats={"course2": "nifti", "course4": "nifti"},
            baseline_date="2024-03-11", seed=seed + 3, trajectory="progressor"),
        SubjectPlan(
            "PH004", (LesionPlan("L1", "septated", 9.0, "complete_response"),), Protocol(snr=20.0),
            drift={"course1": Protocol(slice_thickness=4.0, slice_gap=1.5, snr=20.0, description="T2 FS AX GAP")},
            formats={"baseline": "nifti", "course2": "nifti"},
            baseline_date="2024-04-15", seed=seed + 4, trajectory="complete_response"),
        SubjectPlan(
            "PH005", (LesionPlan("L1", "lobulated", 28.0, "slow_responder"),
                      LesionPlan("L2", "ellipsoid", 4.0, "focus_disappears")), Protocol(snr=20.0),
            drift={"course4": Protocol(pixel_spacing=(1.1, 1.1), matrix=(160, 160), slice_thickness=4.0,
                                       snr=15.0, description="T2 FS AX HR")},
            formats={"course1": "nifti"}, baseline_date="2024-05-20", seed=seed + 5,
            trajectory="multifocal, one focus disappearing"),
    ]


def _image_relpath(plan: SubjectPlan, visit: str) -> str:
    if plan.formats.get(visit, "dicom") == "dicom":
        return f"{plan.subject_id}/{visit}/dicom"
    return f"{plan.subject_id}/{visit}/{plan.subject_id}_{visit}_T2FS.nii.gz"


def _write_scan(scan: VisitScan, plan: SubjectPlan, out: Path, seed: int) -> str:
    """Write the image of one visit; return its manifest path."""
    from ..io.dicom_write import SeriesInfo, write_dicom_series
    from ..io.nifti import write_nifti

    rel = _image_relpath(plan, scan.visit)
    dest = out / rel
    if rel.endswith("/dicom"):
        dest.mkdir(parents=True, exist_ok=True)
        for stale in dest.glob("IM*.dcm"):  # files of an earlier generation of this folder
            stale.unlink()
        number = plan.subject_id[-3:]
        info = SeriesInfo(
            patient_name=f"PHANTOM^{number}", patient_id=plan.subject_id,
            study_date=scan.scan_date.replace("-", ""), study_description="SIROLIMUS TRIAL PHANTOM",
            study_id=str(scan.course + 1), accession_number=f"ACC{number}{scan.course}",
            series_description=scan.protocol.description, series_number=3,
            slice_thickness_mm=scan.protocol.slice_thickness,
            uid_seed=f"volumetry-sample-trial-{seed}-{plan.subject_id}-{scan.visit}",
        )
        write_dicom_series(scan.phantom.image, dest, info)
    else:
        write_nifti(scan.phantom.image, dest, description=scan.protocol.description)
    return rel


def _csv_text(columns, rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})
    return buf.getvalue()


def write_trial(out_dir: str | Path, *, seed: int = TRIAL_SEED) -> dict:
    """Generate the sample trial into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Destination folder (created). Only the trial's own files are written;
        stale ``IM*.dcm`` files inside the trial's DICOM folders are removed.
    seed : int
        Trial seed; :data:`TRIAL_SEED` gives the committed ``sample_data``.

    Returns
    -------
    dict
        ``{"scans": n, "subjects": n, "files": [relative paths]}``.

    Raises
    ------
    InputError
        If ``out_dir`` exists and is a file.
    """
    from ..io.nifti import write_nifti

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder for the trial")
    out.mkdir(parents=True, exist_ok=True)
    manifest_rows, truth_rows = [], []
    n_scans = 0
    plans = trial_plans(seed)
    for plan in plans:
        subject = make_subject(plan)
        for visit in plan.visits():
            scan = scan_visit(subject, visit)
            rel = _write_scan(scan, plan, out, seed)
            mask_rel = f"truth/{plan.subject_id}/{visit}_mask.nii.gz"
            write_nifti(scan.phantom.labels, out / mask_rel, description="truth labels")
            truth = dict(scan.phantom.truth)
            truth.update({"image": rel, "scan_date": scan.scan_date, "mask": mask_rel,
                          "format": plan.formats.get(visit, "dicom")})
            (out / f"truth/{plan.subject_id}/{visit}.json").write_text(json.dumps(truth, indent=1) + "\n")
            n_scans += 1
            for les in scan.lesions:
                seed_pt = les["seed_point_lps_mm"] if visit == "baseline" else None
                manifest_rows.append({
                    "subject_id": plan.subject_id, "visit": visit, "course": scan.course,
                    "scan_date": scan.scan_date, "image": rel, "lesion_id": les["lesion_id"],
                    "seed_x": "" if seed_pt is None else f"{seed_pt[0]:.4f}",
                    "seed_y": "" if seed_pt is None else f"{seed_pt[1]:.4f}",
                    "seed_z": "" if seed_pt is None else f"{seed_pt[2]:.4f}",
                    "seed_space": "" if seed_pt is None else "lps",
                })
                truth_rows.append({
                    "subject_id": plan.subject_id, "lesion_id": les["lesion_id"], "visit": visit,
                    "course": scan.course, "true_volume_ml": f"{les['true_volume_ml']:.6f}",
                    "true_volume_se_ml": f"{les['true_volume_se_ml']:.6f}",
                    "true_percent_change": f"{les['true_percent_change']:.4f}",
                    "expected_response": les["expected_response"], "trajectory": les["trajectory"],
                    "mask": mask_rel, "mask_label": les["label"],
                    "protocol_drift": "yes" if visit in plan.drift else "no",
                })
            log.info("%s %s: %s (%s)", plan.subject_id, visit, rel, scan.protocol.description)
    (out / "manifest.csv").write_text(_csv_text(MANIFEST_COLUMNS, manifest_rows))
    (out / "truth.csv").write_text(_csv_text(TRUTH_COLUMNS, truth_rows))
    (out / "README.md").write_text(readme_text(plans, seed))
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return {"scans": n_scans, "subjects": len(plans), "files": files}


def readme_text(plans: list[SubjectPlan], seed: int) -> str:
    """The trial's README (generated, so it is part of the bit-for-bit check)."""
    lines = [
        "# sample_data: a synthetic trial (generated; do not edit)",
        "",
        f"Made by `volumetry phantom --trial sample_data` (seed {seed}); the command rewrites every",
        "file here bit for bit (on another CPU the last digit of a geometry value may differ; pixel data",
        "and all else stay identical: `tests/test_sample_data.py` checks it). All identities, dates and UIDs",
        "are synthetic. Model, truth and file formats: `docs/phantoms.md`.",
        "",
        "* `manifest.csv`: one row per subject × visit × lesion; `image` is a DICOM folder or a",
        "  `.nii.gz` relative to this folder; the seed (LPS mm, `seed_space` = `lps`) is on the",
        "  baseline row of each lesion only.",
        "* `truth.csv`: true volume (mL, with the Monte-Carlo standard error where the shape has",
        "  no closed form), true percent change vs baseline, and the response each trajectory is",
        "  built to have (CR = no lesion; PR ≤ −20 %; PD ≥ +20 %; SD otherwise; empty at baseline).",
        "* `truth/<subject>/<visit>_mask.nii.gz`: ground-truth label map on the image's grid",
        "  (`mask_label` in truth.csv); `truth/<subject>/<visit>.json`: everything else known.",
        "",
        "| subject | lesions | trajectory | protocol drift | missed | formats |",
        "|---|---|---|---|---|---|",
    ]
    for p in plans:
        les = ", ".join(f"{lp.lesion_id} {lp.kind} {lp.baseline_ml:g} mL ({lp.trajectory})" for lp in p.lesions)
        drift = ", ".join(f"{v}: {pr.description}" for v, pr in p.drift.items())
        fmts = sorted({p.formats.get(v, "dicom") for v in p.visits()})
        lines.append(f"| {p.subject_id} | {les} | {p.trajectory} | {drift} | {', '.join(p.missed) or '-'} | "
                     f"{' + '.join(fmts)} |")
    lines.append("")
    return "\n".join(lines)
