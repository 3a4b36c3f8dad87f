"""Segmentation benchmark: phantom suite, longitudinal phantoms, BraTS cases.

Run::

    python benchmarks/segmentation.py [--quick] [--only suite|longitudinal|brats] [--method NAME]

Prints one line per case and the summary figures recorded in
``benchmarks/RESULTS.md`` (section "Segmentation").

* Phantom suite (``volumetry.phantoms.phantom_suite()``): the seed suggested by
  the phantom (one per focus for multifocal lesions: the foci centres), no box.
  Volume error against the analytic (or Monte-Carlo) true volume; Dice against
  the phantom's truth mask.
* Longitudinal phantoms: a seed on the baseline only, propagated to every
  follow-up by registration; percent change against baseline compared with the
  truth's percent change.
* BraTS 2015 (``../shared/data/lesions``): the seed from ``reference.json``, a box
  10 mm larger on every side than the reference bounding box, no brain mask;
  whole tumour = labels > 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LESIONS = ROOT.parent / "shared" / "data" / "lesions"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def phantom_prompt(ph, image):
    from volumetry.segment import Prompt

    t = ph.truth
    if t["shape"] == "multifocal":
        seeds = t["lesion_centres_lps_mm"]
    else:
        seeds = [t["seed_point_lps_mm"]]
    return Prompt.from_points(seeds, "lps", image)


def run_suite(methods: list[str], quick: bool) -> dict:
    """Every method on every suite phantom (each phantom generated once)."""
    from volumetry.phantoms import make_lesion_phantom, phantom_suite
    from volumetry.segment import segment

    specs = phantom_suite()
    if quick:
        specs = specs[::4]
    rows = {m: [] for m in methods}
    t_gen = 0.0
    for spec in specs:
        t0 = time.perf_counter()
        ph = make_lesion_phantom(spec)
        t_gen += time.perf_counter() - t0
        true_ml = ph.truth["true_volume_ml"]
        line = f"{spec.name:46s} true {true_ml:8.3f} mL"
        for method in methods:
            t0 = time.perf_counter()
            res = segment(ph.image, phantom_prompt(ph, ph.image), method=method)
            dt = time.perf_counter() - t0
            row = {"name": spec.name, "true_ml": true_ml, "status": res.status, "time_s": dt, "flags": res.flags}
            if res.ok:
                row["volume_ml"] = res.volume_ml
                row["error_pct"] = 100 * (res.volume_ml / true_ml - 1)
                row["dice"] = dice(res.mask.array, ph.mask.array)
                line += f" | {method[:6]} {row['error_pct']:+6.2f} % d {row['dice']:.3f} {dt:4.2f}s"
            else:
                row["reason"] = res.reason
                line += f" | {method[:6]} FAILED"
            rows[method].append(row)
        print(line + ("  " + " ".join(rows[methods[0]][-1]["flags"]) if rows[methods[0]][-1]["flags"] else ""),
              flush=True)
    return {"rows": rows, "summary": {m: summarize(r) for m, r in rows.items()}, "generation_s": t_gen}


def _p95(values: np.ndarray) -> float:
    with np.errstate(invalid="ignore"):  # inf (failed cases) in the interpolation
        v = float(np.percentile(values, 95))
    return v if np.isfinite(v) else float("inf")


def summarize(rows: list[dict]) -> dict:
    big = [r for r in rows if r["true_ml"] >= 1.0]
    # a failed case counts as an infinite error and a Dice of 0
    errs = np.array([abs(r.get("error_pct", np.inf)) for r in big])
    dices = np.array([r.get("dice", 0.0) for r in big])
    small = [abs(r.get("error_pct", np.inf)) for r in rows if r["true_ml"] < 1.0]
    return {
        "n_cases": len(rows), "n_ge_1ml": len(big), "n_failed": sum(r["status"] != "ok" for r in rows),
        "median_abs_error_pct": float(np.median(errs)), "p95_abs_error_pct": _p95(errs),
        "max_abs_error_pct": float(errs.max()), "median_dice": float(np.median(dices)),
        "min_dice": float(dices.min()),
        "median_signed_error_pct": float(np.median([r["error_pct"] for r in big if "error_pct" in r] or [np.nan])),
        "small_lt_1ml_median_abs_error_pct": float(np.median(small)) if small else float("nan"),
        "segment_time_total_s": float(sum(r["time_s"] for r in rows)),
        "segment_time_median_s": float(np.median([r["time_s"] for r in rows])),
    }


def run_brats(methods: list[str]) -> dict:
    from volumetry.io.reader import read_image
    from volumetry.segment import Prompt, segment

    rows = []
    for case in sorted(LESIONS.glob("brats*")):
        ref = json.loads((case / "reference.json").read_text())["mask"]["largest_component"]
        image = read_image(case / "image.nii.gz")
        truth = read_image(case / "mask.nii.gz")
        image.require_same_grid(truth, "reference mask")
        tmask = truth.array > 0
        # the reference's voxel indices are the file's (i, j, k); our reader keeps that order
        lo = np.asarray(ref["bbox_ijk_min"], float)
        hi = np.asarray(ref["bbox_ijk_max_exclusive"], float) - 1
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        lps = image.index_to_lps(corners)
        box = [lps.min(axis=0) - 10.0, lps.max(axis=0) + 10.0]
        seed = np.asarray(ref["seed_voxel_ijk"], float)
        prompt = Prompt.from_points(image.index_to_lps(seed), "lps", image, box=box)
        true_ml = float(tmask.sum() * truth.voxel_volume_mm3 / 1000)
        seed_only = Prompt.from_points(image.index_to_lps(seed), "lps", image)
        runs = [(m, m, prompt) for m in methods] + [(methods[0], f"{methods[0]} (seed only, no box)", seed_only)]
        for method, label, prm in runs:
            t0 = time.perf_counter()
            res = segment(image, prm, method=method)
            dt = time.perf_counter() - t0
            row = {"case": case.name, "method": label, "true_ml": true_ml, "status": res.status, "time_s": dt,
                   "flags": res.flags}
            if res.ok:
                row.update(volume_ml=res.volume_ml, error_pct=100 * (res.volume_ml / true_ml - 1),
                           dice=dice(res.mask.array, tmask))
            else:
                row["reason"] = res.reason
            rows.append(row)
            print(f"{case.name:20s} {label:15s} true {true_ml:8.2f} mL  " + (
                f"seg {row['volume_ml']:8.2f} mL  err {row['error_pct']:+6.2f} %  dice {row['dice']:.3f}"
                if res.ok else f"FAILED: {res.reason}") + f"  {dt:5.2f} s {' '.join(res.flags)}", flush=True)
    return {"rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every 4th suite case only")
    ap.add_argument("--only", choices=["suite", "longitudinal", "brats"], action="append")
    ap.add_argument("--method", action="append",
                    help="method(s) for the suite and BraTS (default: every method; the first one, by default "
                         "region_growing = the default, is also used for the longitudinal subjects)")
    ap.add_argument("--json", type=Path, help="write all rows and summaries to this JSON file")
    args = ap.parse_args(argv)
    parts = args.only or ["suite", "longitudinal", "brats"]
    methods = args.method or ["region_growing", "threshold", "levelset"]
    out = {}
    t0 = time.perf_counter()
    if "suite" in parts:
        s = time.perf_counter()
        out["suite"] = run_suite(methods, args.quick)
        out["suite"]["wall_s"] = time.perf_counter() - s
        print(json.dumps(out["suite"]["summary"], indent=1))
    if "longitudinal" in parts:
        s = time.perf_counter()
        out["longitudinal"] = run_longitudinal(methods[0])
        out["longitudinal"]["summary"]["wall_s"] = time.perf_counter() - s
        print(json.dumps(out["longitudinal"]["summary"], indent=1))
    if "brats" in parts:
        s = time.perf_counter()
        out["brats"] = run_brats(methods)
        out["brats"]["wall_s"] = time.perf_counter() - s
    out["wall_s"] = time.perf_counter() - t0
    print(f"total wall time {out['wall_s']:.1f} s")
    print(markdown(out, methods))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))
    return 0


def markdown(out: dict, methods: list[str]) -> str:
    """The results as the Markdown of RESULTS.md's section (figures only; context is written by hand)."""
    lines = []
    if "suite" in out:
        su = out["suite"]
        n = next(iter(su["summary"].values()))
        lines += [f"Phantom suite: {n['n_cases']} cases ({n['n_ge_1ml']} with a lesion >= 1 mL); seed only "
                  "(one per focus for multifocal), no box. Errors against the true volume; Dice against the truth mask.",
                  "", "| method | failed | median abs error (>= 1 mL) | 95th pct | max | median signed | median Dice | "
                  "min Dice | < 1 mL median abs error | segment time median / total |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        def pct(v, sign=""):
            return f"{v:{sign}.2f} %" if np.isfinite(v) else "— (failures)"

        for m, x in su["summary"].items():
            lines.append(f"| {m} | {x['n_failed']} | {pct(x['median_abs_error_pct'])} | {pct(x['p95_abs_error_pct'])} | "
                         f"{pct(x['max_abs_error_pct'])} | {pct(x['median_signed_error_pct'], '+')} | "
                         f"{x['median_dice']:.3f} | {x['min_dice']:.3f} | {pct(x['small_lt_1ml_median_abs_error_pct'])} | "
                         f"{x['segment_time_median_s']:.2f} s / {x['segment_time_total_s']:.1f} s |")
        lines += ["", f"Suite wall time {su['wall_s']:.0f} s, of which phantom generation {su['generation_s']:.0f} s.", ""]
    if "longitudinal" in out:
        x = out["longitudinal"]["summary"]
        lines += [f"Longitudinal phantoms ({methods[0]}): {x['n_subjects']} subjects, {x['n_followup_lesion_visits']} "
                  f"follow-up lesion-visits ({x['n_lesion_present']} with a lesion, {x['n_no_lesion_visits']} after "
                  "it disappeared); seed on the baseline only, propagated.", "",
                  f"- median |error of % change vs baseline|: {x['median_abs_pct_change_error_pp']:.2f} pp "
                  f"(95th pct {x['p95_abs_pct_change_error_pp']:.2f} pp, max {x['max_abs_pct_change_error_pp']:.2f} pp)",
                  f"- visits with a lesion lost (failed): {x['n_lost']} of {x['n_lesion_present']}",
                  f"- visits without lesion reported as failed / no measurable lesion: "
                  f"{x['n_no_lesion_reported_failed']} of {x['n_no_lesion_visits']}",
                  f"- registration error at the lesion: median {x['median_registration_error_mm']:.2f} mm, "
                  f"max {x['max_registration_error_mm']:.2f} mm; registration time median "
                  f"{x['median_registration_s']:.2f} s", f"- wall time {x['wall_s']:.0f} s (rendering included)", ""]
    if "brats" in out:
        lines += ["BraTS 2015 (FLAIR, whole tumour = labels > 0; seed from reference.json, box 10 mm larger than "
                  "the reference bounding box, no brain mask):", "",
                  "| case | method | true mL | segmented mL | volume error | Dice | time |", "|---|---|---|---|---|---|---|"]
        for r in out["brats"]["rows"]:
            if r["status"] == "ok":
                lines.append(f"| {r['case']} | {r['method']} | {r['true_ml']:.2f} | {r['volume_ml']:.2f} | "
                             f"{r['error_pct']:+.1f} % | {r['dice']:.3f} | {r['time_s']:.2f} s |")
            else:
                lines.append(f"| {r['case']} | {r['method']} | {r['true_ml']:.2f} | failed | | | {r['time_s']:.2f} s |")
        lines.append("")
    lines.append(f"Total wall time {out['wall_s']:.0f} s.")
    return "\n".join(lines)


def run_longitudinal(method: str, seeds=(None, 7)) -> dict:
    """Seed on the baseline only; every follow-up through :func:`volumetry.segment.propagate`."""
    from volumetry.phantoms.longitudinal import make_subject, scan_visit
    from volumetry.phantoms.trial import TRIAL_SEED, trial_plans
    from volumetry.segment import Prompt, propagate, segment

    rows = []
    plans = []
    for s in seeds:
        plans += trial_plans() if s is None else trial_plans(TRIAL_SEED + s)
    for plan in plans:
        subject = make_subject(plan)
        base = scan_visit(subject, plan.visits()[0])
        for les in base.lesions:
            prompt = Prompt.from_points([les["seed_point_lps_mm"]], "lps", base.phantom.image,
                                        lesion_id=les["lesion_id"])
            b = segment(base.phantom.image, prompt, method=method)
            if not b.ok:
                rows.append({"subject": plan.subject_id, "lesion": les["lesion_id"], "visit": base.visit,
                             "status": "baseline-failed", "reason": b.reason})
                print(f"{plan.subject_id} {les['lesion_id']} baseline FAILED: {b.reason}")
                continue
            print(f"{plan.subject_id} seed {plan.seed} {les['lesion_id']} baseline  true {les['true_volume_ml']:7.2f} "
                  f"seg {b.volume_ml:7.2f} mL ({100 * (b.volume_ml / les['true_volume_ml'] - 1):+.1f} %)", flush=True)
            for visit in plan.visits()[1:]:
                scan = scan_visit(subject, visit)
                truth = next(x for x in scan.lesions if x["lesion_id"] == les["lesion_id"])
                t0 = time.perf_counter()
                fprompt, reg = propagate(base.phantom.image, scan.phantom.image, prompt)
                t_reg = time.perf_counter() - t0
                f = segment(scan.phantom.image, fprompt, method=method)
                dt = time.perf_counter() - t0
                # registration accuracy: where the baseline lesion centre lands vs its true follow-up position
                c_base = np.asarray(base.phantom.truth["foci"][truth["label"] - 1]["centre_lps_mm"]) \
                    if len(base.phantom.truth["foci"]) >= truth["label"] else None
                row = {"subject": plan.subject_id, "plan_seed": plan.seed, "lesion": les["lesion_id"],
                       "visit": visit, "factor": truth["factor"], "true_pct": truth["true_percent_change"],
                       "status": f.status, "reason": f.reason, "flags": f.flags, "time_s": dt,
                       "registration_s": t_reg, "registration_flags": reg.flags,
                       "registration_error_mm": _registration_error(base, scan, truth["label"], fprompt, reg)}
                if f.ok:
                    row["volume_ml"] = f.volume_ml
                    row["pct"] = 100 * (f.volume_ml / b.volume_ml - 1)
                    row["pct_error_pp"] = row["pct"] - truth["true_percent_change"]
                rows.append(row)
                tail = (f"pct {row['pct']:+7.1f} vs true {truth['true_percent_change']:+7.1f} (err {row['pct_error_pp']:+5.1f} pp)"
                        if f.ok else f"FAILED ({'expected: no lesion' if truth['factor'] == 0 else 'LOST'}): {f.reason}")
                print(f"  {visit:8s} factor {truth['factor']:.2f} {tail}  reg err "
                      f"{row['registration_error_mm']:.2f} mm  {dt:.1f} s {' '.join(f.flags)}", flush=True)
    present = [r for r in rows if r.get("factor", 0) > 0]
    lost = [r for r in present if r["status"] != "ok"]
    absent = [r for r in rows if r.get("factor", 1) == 0]
    errs = np.array([abs(r["pct_error_pp"]) for r in present if "pct_error_pp" in r])
    summary = {
        "n_subjects": len(plans), "n_followup_lesion_visits": len(present) + len(absent),
        "n_lesion_present": len(present), "n_lost": len(lost),
        "n_no_lesion_visits": len(absent),
        "n_no_lesion_reported_failed": sum(r["status"] == "failed" for r in absent),
        "median_abs_pct_change_error_pp": float(np.median(errs)) if len(errs) else float("nan"),
        "p95_abs_pct_change_error_pp": float(np.percentile(errs, 95)) if len(errs) else float("nan"),
        "max_abs_pct_change_error_pp": float(errs.max()) if len(errs) else float("nan"),
        "median_registration_error_mm": float(np.median([r["registration_error_mm"] for r in rows
                                                         if "registration_error_mm" in r])),
        "max_registration_error_mm": float(np.max([r["registration_error_mm"] for r in rows
                                                   if "registration_error_mm" in r])),
        "median_registration_s": float(np.median([r["registration_s"] for r in rows if "registration_s" in r])),
    }
    return {"rows": rows, "summary": summary}


def _registration_error(base, scan, label, fprompt, reg) -> float:
    """Distance (mm) between the baseline lesion centre carried by the registration and the
    same body point at the follow-up (from both visits' known poses)."""
    import numpy as np

    rb = np.asarray(base.phantom.truth["pose"]["rotation"])
    tb = np.asarray(base.phantom.truth["pose"]["translation_mm"])
    rf = np.asarray(scan.phantom.truth["pose"]["rotation"])
    tf = np.asarray(scan.phantom.truth["pose"]["translation_mm"])
    c = np.asarray(base.phantom.truth["lesion_centres_lps_mm"][0])
    body = rb.T @ (c - tb)
    truth_f = rf @ body + tf
    m = np.asarray(reg.matrix)
    centre = np.asarray(reg.fixed_parameters[:3])
    carried = m @ (c - centre) + centre + np.asarray(reg.translation_mm)
    return float(np.linalg.norm(carried - truth_f))


if __name__ == "__main__":
    sys.exit(main())
