"""The report's overlays of a multi-volume scan (dual-echo DICOM series, 4D NIfTI) are drawn
on the volume the pipeline measured (``image.volume_index`` of the measurement's data), not
on volume 0 and not refused as "several volumes"."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from test_pipeline import LESION_CENTRE, tiny_config
from test_pipeline_volume import DUAL, FOUR_D, _write_4d, _write_dual_echo
from volumetry.io.reader import read_image
from volumetry.pipeline import run_study
from volumetry.report.build import build_report, overlay_index
from volumetry.report.overlays import CONTOUR_RGB, WINDOW_PERCENTILES

#: (subject, visit) -> (image path relative to the study, volume measured)
CHOSEN = {("D1", "baseline"): ("D1/baseline", 1), ("D1", "w12"): ("D1/w12", 1),
          ("N1", "baseline"): ("N1/baseline.nii.gz", 2)}
N_VOLUMES = {"D1": len(DUAL["baseline"][0]), "N1": len(FOUR_D)}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-volumes") / "study"
    for n, (visit, (radii, shift)) in enumerate(DUAL.items()):
        _write_dual_echo(root / "D1" / visit, radii, shift, seed=500 + 10 * n)
    _write_4d(root / "N1" / "baseline.nii.gz", FOUR_D, seed=600)
    seed = ",".join(f"{c:g}" for c in LESION_CENTRE)
    rows = [f"{s},{v},{0 if v == 'baseline' else 1},{'2024-01-15' if v == 'baseline' else '2024-04-08'},"
            f"{p},{vol},{seed if v == 'baseline' else ',,'}" for (s, v), (p, vol) in CHOSEN.items()]
    (root / "manifest.csv").write_text("subject_id,visit,course,scan_date,image,volume,seed_x,seed_y,seed_z\n"
                                       + "\n".join(rows) + "\n")
    return root


def _overlays(page_text: str, subject_of: dict[str, str] | None = None) -> dict[tuple[str, str], str]:
    """Montage name (``ov-<n>``) of each (subject, visit), read from the page (visits in order);
    ``subject_of`` maps the page's subject ids (pseudonyms) to the study's."""
    out = {}
    for shown, body in re.findall(r'<section class="subject" id="subject-\d+" data-subject="([^"]+)">(.*?)</section>',
                                  page_text, re.S):
        subject = (subject_of or {}).get(shown, shown)
        names = re.findall(r'<img src="img/(ov-\d+)\.png"', body)
        visits = [v for (s, v) in CHOSEN if s == subject]
        assert len(names) == len(visits), f"{subject}: overlays {names} for visits {visits}"
        out.update({(subject, v): n for v, n in zip(visits, names)})
    return out


def _grey_agreement(rgb: np.ndarray, tiles: list[dict], image) -> float:
    """Fraction of the montage's grey (non-contour) tile pixels equal to the grey that
    :func:`render_montage` gives the voxel they show in ``image`` (window: the
    0.5-99.5th percentiles of the zoomed tiles' voxels)."""
    arr = np.asarray(image.array, float)
    shown = [t for t in tiles if t["k"] is not None]
    zoomed = [t for t in shown if not t["caption"].startswith("whole slice")]
    values = np.concatenate([arr[t["k"], t["j0"]:t["j0"] + t["n_j"], t["i0"]:t["i0"] + t["n_i"]].ravel()
                             for t in zoomed])
    lo, hi = np.percentile(values, WINDOW_PERCENTILES)
    same = total = 0
    for t in shown:
        sl = arr[t["k"], t["j0"]:t["j0"] + t["n_j"], t["i0"]:t["i0"] + t["n_i"]]
        grey = np.clip((sl - lo) / (hi - lo) * 255.0, 0, 255).round().astype(np.uint8)
        want = np.repeat(np.repeat(grey, t["scale_j"], axis=0), t["scale_i"], axis=1)
        got = rgb[t["y0"]:t["y0"] + want.shape[0], t["x0"]:t["x0"] + want.shape[1]]
        drawn = ~np.all(got == CONTOUR_RGB, axis=-1)
        assert np.all(got[drawn] == got[drawn][:, :1])  # grey: R = G = B
        same += int(np.count_nonzero(got[..., 0][drawn] == want[drawn]))
        total += int(np.count_nonzero(drawn))
    assert total > 1000
    return same / total


def _check_overlays_on_the_chosen_volume(root, out, names):
    tiles = overlay_index(out / "report")
    for (subject, visit), (rel, chosen) in CHOSEN.items():
        name = names[(subject, visit)]
        rgb = np.asarray(Image.open(out / "report" / "img" / f"{name}.png").convert("RGB"))
        assert np.all(rgb == CONTOUR_RGB, axis=-1).any(), f"{subject}/{visit}: no contour drawn"
        agreement = {v: _grey_agreement(rgb, tiles[name], read_image(root / rel, volume_index=v))
                     for v in range(N_VOLUMES[subject])}
        # every grey pixel is the chosen volume's voxel; the other volumes (other noise, other
        # lesion) agree on a minority of pixels only
        assert agreement[chosen] == 1.0, (subject, visit, agreement)
        assert all(a < 0.5 for v, a in agreement.items() if v != chosen), (subject, visit, agreement)


def test_overlays_are_drawn_on_the_measured_volume(study, tmp_path):
    root = study
    s = run_study(root, tiny_config(seg=False, report=True, summary=False), tmp_path / "out", jobs=1,
                  progress=False)
    assert s.ok, [f.line() for f in s.failures]
    text = (tmp_path / "out" / "report" / "index.html").read_text(encoding="utf-8")
    assert "no overlay" not in text
    _check_overlays_on_the_chosen_volume(root, tmp_path / "out", _overlays(text))


def test_pseudonymised_run_given_the_images_in_process_draws_the_measured_volume(study, tmp_path, monkeypatch):
    # the database withholds the paths (and the files) but keeps the volume index: the paths
    # given in-process are drawn on the volume measured
    from volumetry.pseudonym import KEY_ENV, Pseudonymizer

    monkeypatch.setenv(KEY_ENV, "report-volume-test-key")
    pseudo = Pseudonymizer(b"report-volume-test-key")
    root = study
    out = tmp_path / "out"
    s = run_study(root, tiny_config(seg=False, summary=False), out, jobs=1, progress=False, pseudonymize=True)
    assert s.ok, [f.line() for f in s.failures]
    assert set(s.table["subject_id"]) == {pseudo("D1"), pseudo("N1")}
    text = build_report(out).read_text(encoding="utf-8")
    assert "no overlay: the image of this scan is not available" in text
    images = {(pseudo(subject), visit, "1"): root / rel for (subject, visit), (rel, _) in CHOSEN.items()}
    text = build_report(out, images=images).read_text(encoding="utf-8")
    assert "no overlay" not in text
    names = _overlays(text, {pseudo(s_): s_ for s_ in N_VOLUMES})
    _check_overlays_on_the_chosen_volume(root, out, names)


def test_a_volume_given_in_process_overrides_the_recorded_one(study, tmp_path):
    root = study
    out = tmp_path / "out"
    s = run_study(root, tiny_config(seg=False, summary=False), out, jobs=1, progress=False)
    assert s.ok
    text = build_report(out, images={("N1", "baseline", "1"): (root / "N1" / "baseline.nii.gz", None, 0)}
                        ).read_text(encoding="utf-8")
    name = _overlays(text)[("N1", "baseline")]
    rgb = np.asarray(Image.open(out / "report" / "img" / f"{name}.png").convert("RGB"))
    tiles = overlay_index(out / "report")[name]
    assert _grey_agreement(rgb, tiles, read_image(root / "N1" / "baseline.nii.gz", volume_index=0)) == 1.0
