"""The QC report in a real browser: headless Chromium driven by Selenium.

Checks what a reader would notice: console errors, images that do not load,
a waterfall plot without one bar per subject, an injected script that runs.
Screenshots are saved to ``test-artifacts/`` (gitignored): ``report.png`` is the
report ``volumetry run`` writes for the sample trial (subjects PH003 and PH004 of
``sample_data/``: DICOM and NIfTI visits, oblique and gapped protocol drift, a
missed visit, a complete response; one DICOM series' SeriesDescription replaced
by ``<script>alert(1)</script>``), ``report-synthetic.png`` a synthetic folder
with a failed scan.

Skips when Debian's ``chromium`` / ``chromium-driver`` are absent (``.ci/run``
installs them); Selenium never downloads a browser or driver here.
"""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from volumetry.report.build import build_report

from test_report_fixture import INJECTED, make_output_folder

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SAMPLE = ROOT / "sample_data"
#: Subjects of the sample trial run here (the whole trial takes about a minute on 2 cores).
SAMPLE_SUBJECTS = ("PH003", "PH004")
#: The DICOM visit whose SeriesDescription becomes a script.
INJECTED_VISIT = ("PH004", "course1")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1000")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"headless Chromium is absent ({CHROMIUM}, {CHROMEDRIVER}); "
                    "install the Debian packages chromium and chromium-driver (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
    from selenium.webdriver.chrome.service import Service

    saved_offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # never let selenium-manager download anything
    profile = tempfile.mkdtemp(prefix="volumetry-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if saved_offline is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = saved_offline


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    out, df = make_output_folder(tmp_path_factory.mktemp("browser"))
    return build_report(out), df.subject_id.nunique(), len(df)


def run_sample_subset(root: Path) -> tuple[Path, int]:
    """Run ``volumetry run`` on SAMPLE_SUBJECTS of the sample trial with one injected
    series description; return the output folder and the number of scans."""
    import pydicom

    from volumetry.config import load_pipeline
    from volumetry.pipeline import run_study

    if not (SAMPLE / "manifest.csv").is_file():
        pytest.skip(f"{SAMPLE} is absent; make it with 'volumetry phantom --trial sample_data'")
    study = root / "study"
    with open(SAMPLE / "manifest.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, [r for r in reader if r["subject_id"] in SAMPLE_SUBJECTS]
    for subject in SAMPLE_SUBJECTS:
        shutil.copytree(SAMPLE / subject, study / subject)
    with open(study / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    (row,) = [r for r in rows if (r["subject_id"], r["visit"]) == INJECTED_VISIT]
    files = sorted((study / row["image"]).glob("*"))
    assert files, f"no DICOM files for {INJECTED_VISIT}"
    for f in files:
        ds = pydicom.dcmread(f)
        ds.SeriesDescription = INJECTED
        ds.save_as(f)
    out = root / "out"
    run_study(study, load_pipeline(ROOT / "pipelines" / "vascular-anomalies-rapamycin.yaml"), out,
              jobs=1, progress=False)
    return out, len(rows)


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    out, n_scans = run_sample_subset(tmp_path_factory.mktemp("sample"))
    page = out / "report" / "index.html"
    assert page.is_file(), "volumetry run wrote no report"
    return page, n_scans


def test_sample_report_content(sample_report):
    """Without a browser: the page the run wrote has a bar per subject matching the table,
    an overlay per scan, and the injected description escaped."""
    import html
    import re

    import pandas as pd

    page, n_scans = sample_report
    text = page.read_text(encoding="utf-8")
    table = pd.read_csv(page.parents[1] / "volumes.csv", dtype={"subject_id": str, "lesion_id": str})
    rows = table[(table.method == "voxel") & (table.lesion_id == "total") & (table.days_from_baseline > 0)
                 & table.status.isin(["ok", "empty"])]
    expected = rows.groupby("subject_id").percent_change.min()
    bars = dict(re.findall(r'class="bar" data-subject="([^"]*)" data-percent-change="([^"]*)"', text))
    assert sorted(bars) == sorted(SAMPLE_SUBJECTS) == sorted(expected.index)
    for s, v in expected.items():
        assert float(bars[s]) == pytest.approx(v, abs=0.051)
    assert len(re.findall(r'<img src="img/ov-\d+\.png"', text)) == n_scans
    assert INJECTED not in text and html.escape(INJECTED) in text
    assert str(page.parents[1].parent / "study") not in text  # no input path in the page


def check_in_browser(browser, page: Path, n_subjects: int, n_overlays: int, screenshot: str) -> None:
    """Open ``page`` from disk and check it as a reader would; save a screenshot."""
    from selenium.common.exceptions import NoAlertPresentException

    browser.get_log("browser")  # drop entries of earlier pages
    browser.set_window_size(1400, 1000)
    browser.get(page.resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"

    # the injected script did not run: no alert, no script element, the text is shown as text
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    assert INJECTED in browser.find_element("tag name", "body").text

    # every image loaded
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src').slice(0, 40), i.complete, i.naturalWidth])")
    assert len(images) == n_overlays + 1  # one montage per visit + the spider plot
    assert all(complete and width > 0 for _, complete, width in images), images

    # the waterfall drawn by matplotlib has one bar per subject, each with a painted path
    bars = browser.execute_script(
        "return Array.from(document.querySelectorAll('#waterfall g.bar')).map(g => "
        "[g.dataset.subject, g.querySelector('path').getBBox().height])")
    assert len(bars) == n_subjects and len({s for s, _ in bars}) == n_subjects
    assert all(h > 0 for _, h in bars)

    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(int(height) + 40, 6000))
    assert browser.save_screenshot(str(ARTIFACTS / screenshot))

    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert severe == []


def test_synthetic_report_in_headless_chromium(browser, synthetic_report):
    page, n_subjects, n_overlays = synthetic_report
    check_in_browser(browser, page, n_subjects, n_overlays, "report-synthetic.png")


def test_sample_report_in_headless_chromium(browser, sample_report):
    """The report 'volumetry run' wrote for (part of) the sample trial."""
    page, n_scans = sample_report
    check_in_browser(browser, page, len(SAMPLE_SUBJECTS), n_scans, "report.png")
