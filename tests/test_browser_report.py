"""The QC report in a real browser: headless Chromium driven by Selenium.

Checks what a reader would notice: console errors, images that do not load,
a waterfall plot without one bar per subject, an injected script that runs.
A screenshot is saved to ``test-artifacts/report.png`` (gitignored).

Skips when Debian's ``chromium`` / ``chromium-driver`` are absent (``.ci/run``
installs them); Selenium never downloads a browser or driver here.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from volumetry.report.build import build_report

from test_report_fixture import INJECTED, make_output_folder
from test_report_pipeline import TRIAL, run_trial

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
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


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    out, df = make_output_folder(tmp_path_factory.mktemp("browser"))
    return build_report(out), df.subject_id.nunique(), len(df)


@pytest.fixture(scope="module")
def pipeline_report(tmp_path_factory):
    out = run_trial(tmp_path_factory.mktemp("browser-run"))
    return out / "report" / "index.html", len(TRIAL), sum(len(v) for v in TRIAL.values())


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


def test_pipeline_report_in_headless_chromium(browser, pipeline_report):
    """The report 'volumetry run' wrote for a small trial (a stand-in for the sample trial)."""
    page, n_subjects, n_overlays = pipeline_report
    check_in_browser(browser, page, n_subjects, n_overlays, "report.png")
