"""The HTML report built from an output folder: content, escaping, plots, overlays."""
from __future__ import annotations

import html
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from volumetry.cli import main
from volumetry.errors import InputError
from volumetry.report.build import build_report, overlay_index
from volumetry.report.overlays import CONTOUR_RGB
from volumetry.report.plots import subject_series, waterfall_svg

from test_report_fixture import INJECTED, make_output_folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out, df = make_output_folder(tmp_path_factory.mktemp("report"))
    page = build_report(out)
    return out, df, page, page.read_text(encoding="utf-8")


def _expected_best(df: pd.DataFrame) -> dict[str, float]:
    fu = df[(df.days_from_baseline > 0) & (df.status == "ok")]
    return fu.groupby("subject_id").percent_change.min().to_dict()


def test_waterfall_has_one_bar_per_subject_with_its_best_change(built):
    _, df, _, text = built
    bars = re.findall(r'<g id="wf-bar-\d+" class="bar" data-subject="([^"]*)" data-percent-change="([^"]*)"', text)
    expected = _expected_best(df)
    assert len(bars) == len(expected) == df.subject_id.nunique()
    got = {html.unescape(s): float(v) for s, v in bars}
    assert got.keys() == expected.keys()
    for s, v in expected.items():
        assert got[s] == pytest.approx(v, abs=0.051)
    values = [float(v) for _, v in bars]
    assert values == sorted(values, reverse=True)  # waterfall order
    # each bar group holds the path matplotlib drew for it
    for n in range(len(bars)):
        assert re.search(rf'<g id="wf-bar-{n}"[^>]*>\s*<path', text)


def test_injected_text_is_escaped_everywhere(built):
    _, _, _, text = built
    assert INJECTED not in text
    assert html.escape(INJECTED) in text
    assert "<script" not in text.lower()
    assert "S&amp;4" in text and "S&4<" not in text


def test_no_network_resources(built):
    out, _, _, text = built
    assert not re.search(r'(src|href)\s*=\s*"[a-z]+:(?!image/png;base64)', text)  # no scheme but data: PNG
    assert not re.search(r'(src|href)\s*=\s*"//', text) and not re.search(r"url\((?!#)", text) and "@import" not in text
    assert "https://" not in text and not re.findall(r"http://(?!www\.w3\.org/)", text)
    assert "Content-Security-Policy" in text
    for src in re.findall(r'<img[^>]*src="([^"]+)"', text):
        assert not src.startswith("/") and ".." not in src
        assert (out / "report" / src).is_file()


def test_study_sections_and_failed_scan(built):
    _, df, _, text = built
    assert 'id="summary-table"' in text and "median_percent_change" in text
    fail = text[text.index('id="failures-table"'):text.index('id="flags"')]
    assert "S03" in fail and "no region grew from the seed" in fail and "segment" in fail
    flags = text[text.index('id="flags-table"'):text.index('id="subjects"')]
    assert "resampled; touches-border" in flags and flags.count("<tr>") == 2  # header + one flagged scan
    assert text.count('<section class="subject"') == df.subject_id.nunique()
    assert 'id="spider"' in text


def test_every_visit_with_an_image_has_an_overlay_with_contour(built):
    out, df, _, text = built
    imgs = re.findall(r'<img src="(img/ov-\d+\.png)"', text)
    assert len(imgs) == len(df)  # one montage per visit (the failed scan gets the image alone)
    tiles = overlay_index(out / "report")
    n_with_contour = 0
    for src in imgs:
        rgb = np.asarray(Image.open(out / "report" / src).convert("RGB"))
        n_with_contour += bool(np.all(rgb == CONTOUR_RGB, axis=-1).any())
        zoomed = [t for t in tiles[src[4:-4]] if not t["caption"].startswith("whole slice")]
        assert len(zoomed) == 5 and len(tiles[src[4:-4]]) - len(zoomed) <= 1
    assert n_with_contour == int((df.status == "ok").sum())
    assert "no mask for this scan" in text


def test_overlays_of_a_subject_show_the_same_levels(built):
    out, _, _, text = built
    s1 = re.search(r'<section class="subject" id="subject-\d+" data-subject="S01">.*?</section>', text, re.S).group(0)
    names = re.findall(r'img/(ov-\d+)\.png', s1)
    tiles = overlay_index(out / "report")
    points = [[tuple(t["point_lps"]) for t in tiles[n] if not t["caption"].startswith("whole slice")]
              for n in names]
    assert len(points) == 3 and points[0] == points[1] == points[2]


def test_embedded_report_is_one_file(tmp_path):
    out, _ = make_output_folder(tmp_path)
    page = build_report(out, embed_images=True)
    text = page.read_text(encoding="utf-8")
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    Image.open(io.BytesIO(__import__("base64").b64decode(srcs[0].split(",", 1)[1]))).verify()


def test_waterfall_without_evaluable_subject():
    df = pd.DataFrame({"subject_id": ["A"], "lesion_id": ["1"], "visit": ["b"], "days_from_baseline": [0],
                       "method": ["m"], "percent_change": [0.0], "status": ["ok"]})
    assert subject_series(df) == []
    assert "No subject has an evaluable follow-up" in waterfall_svg([])


def test_multi_lesion_subject_sums_volumes():
    df = pd.DataFrame({
        "subject_id": ["A"] * 4, "lesion_id": ["1", "2", "1", "2"], "visit": ["b", "b", "c1", "c1"],
        "days_from_baseline": [0, 0, 84, 84], "method": ["m"] * 4, "volume_ml": [10.0, 30.0, 5.0, 27.0],
        "baseline_volume_ml": [10.0, 30.0, 10.0, 30.0], "percent_change": [0, 0, -50.0, -10.0],
        "status": ["ok"] * 4, "response": ["", "", "PR", "SD"], "best_response": ["", "", "PR", "SD"]})
    (s,) = subject_series(df)
    assert s.best_percent_change == pytest.approx(100 * (32 / 40 - 1))


def test_bad_output_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such output folder"):
        build_report(tmp_path / "missing")
    with pytest.raises(InputError, match="no volumes.csv in it"):
        build_report(tmp_path)


def test_report_command(tmp_path, capsys):
    import logging

    root = logging.getLogger("volumetry")
    saved = (list(root.handlers), root.level, root.propagate)
    out, _ = make_output_folder(tmp_path)
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "index.html").is_file()
    assert str(out / "report" / "index.html") in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such output folder" in capsys.readouterr().err
    assert main(["report", str(out), "--levels", "0"]) == 2
    assert "--levels must be at least 1" in capsys.readouterr().err
    assert main(["report", str(out), "--embed", "--levels", "3"]) == 0
    text = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert 'src="img/' not in text and text.count('src="data:image/png;base64,') > 0
    assert not list((out / "report" / "img").glob("ov-*.png"))  # stale pictures of the first build removed
    root.handlers[:], root.level, root.propagate = saved  # the CLI's handler points at capsys' stream


def test_images_given_in_process_when_the_database_withholds_paths(tmp_path):
    """A pseudonymised run keeps no image path in results.sqlite; the runner passes them."""
    import sqlite3

    out, df = make_output_folder(tmp_path)
    con = sqlite3.connect(out / "results.sqlite")
    paths = {(s, v, l): (img, uid) for s, v, l, img, uid in
             con.execute("SELECT subject_id, visit, lesion_id, image, series_uid FROM scans")}
    con.execute("UPDATE scans SET image = NULL")
    con.commit()
    con.close()
    text = build_report(out).read_text(encoding="utf-8")
    assert not re.findall(r'<img src="img/ov-', text)
    assert text.count("the image of this scan is not available") == len(df)
    text = build_report(out, images=paths).read_text(encoding="utf-8")
    assert len(re.findall(r'<img src="img/ov-', text)) == len(df)
    assert str(tmp_path) not in text  # paths never reach the page


def test_follow_up_overlays_use_the_recorded_registration(tmp_path):
    """When the store holds the registration (baseline -> follow-up), the follow-up's levels are
    the baseline's points carried by it."""
    import json
    import sqlite3

    out, _ = make_output_folder(tmp_path)
    con = sqlite3.connect(out / "results.sqlite")
    key = con.execute("SELECT task_key FROM scans WHERE subject_id='S01' AND visit='C1'").fetchone()[0]
    reg = {"matrix": np.eye(3).tolist(), "translation_mm": [1.5, -2.0, 2.5], "fixed_parameters": [0, 0, 0, 0]}
    con.execute("CREATE TABLE measurements (task_key TEXT, data TEXT)")
    con.execute("INSERT INTO measurements VALUES (?, ?)", (key, json.dumps({"registration": reg})))
    con.commit()
    con.close()
    text = build_report(out).read_text(encoding="utf-8")
    s1 = re.search(r'<section class="subject" id="subject-\d+" data-subject="S01">.*?</section>', text, re.S).group(0)
    names = re.findall(r'img/(ov-\d+)\.png', s1)
    tiles = overlay_index(out / "report")
    base, fu, fu2 = (np.array([t["point_lps"] for t in tiles[n] if not t["caption"].startswith("whole slice")])
                     for n in names)
    np.testing.assert_allclose(fu - base, np.tile([1.5, -2.0, 2.5], (len(base), 1)), atol=1e-9)
    np.testing.assert_allclose(fu2, base)  # no registration recorded for C2: scanner coordinates
    assert s1.count("levels carried from the baseline by the registration") == 1


def test_subject_without_follow_up_is_listed_not_barred(tmp_path):
    out, df = make_output_folder(tmp_path)
    extra = df[df.subject_id == "S01"].head(1).assign(subject_id="S09")  # a baseline only
    pd.concat([df, extra]).to_csv(out / "volumes.csv", index=False)
    text = build_report(out).read_text(encoding="utf-8")
    assert len(re.findall(r'class="bar" data-subject=', text)) == df.subject_id.nunique()
    assert re.search(r'id="not-evaluable">[^<]*S09', text)
