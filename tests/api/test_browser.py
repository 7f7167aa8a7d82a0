"""A real ``verifier serve`` and headless Chromium: a training job's report page (its loss
curve, download links and provenance) reached from the job list at ``/``, and Swagger UI at
``/docs`` drawn from the server alone (no CDN).

Skipped, saying why, without chromium, chromedriver or selenium (``.ci/run`` installs them).
With ``VERIFIER_PAGE_SCREENSHOT=path.png`` the report page test also saves a screenshot of the
page there (how docs/report-page.png was made).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import TERMINAL, TOKEN, Server, submit, wait_for
from tests.api.test_integration import _browser

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TRAINING_SPEC = ROOT / "specs" / "training" / "gd_geometric.spec.yaml"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium driven by selenium, quit afterwards."""
    found = _browser()
    if found is None:
        print("skipping: chromium, chromedriver or selenium is not installed")
        pytest.skip("chromium, chromedriver or selenium is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = found  # type: ignore[misc]
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _with_token(server: Server) -> str:
    """The server's URL with Basic credentials, a browser's way to send the token."""
    return server.url.replace("http://", f"http://anyone:{TOKEN}@")


def _images_loaded(driver: Any, selector: str) -> list[tuple[bool, int]]:
    sizes: list[tuple[bool, int]] = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(i => [i.complete, i.naturalWidth]);",
        selector,
    )
    return sizes


def test_serve_logs_its_url(server: Server) -> None:
    assert f"verifier serve: listening on {server.url}/" in server.log.read_text()


def test_a_training_job_page_shows_curves_downloads_and_provenance(
    server: Server, client: httpx.Client, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    text = TRAINING_SPEC.read_text()
    job = submit(client, text).json()
    done = wait_for(client, job["id"], TERMINAL, timeout=1200)  # about a minute idle
    assert done["status"] == "passed", done["message"]
    base = _with_token(server)
    # the job list at / links to the page
    browser.get(f"{base}/")
    link = browser.find_element(By.CSS_SELECTOR, f"a[href='/v1/verifications/{job['id']}/report']")
    assert link.text == "gd-geometric"
    link.click()
    assert browser.title == "Verification gd-geometric: passed"
    assert browser.find_element(By.ID, "finished").text.endswith("UTC")
    # the transfer claims link to the claim they start from
    source = browser.find_element(By.CSS_SELECTOR, "a.from")
    assert source.get_attribute("href").endswith("#claim-gd-finds-it")
    assert browser.find_element(By.ID, "claim-gd-finds-it").tag_name == "tr"
    assert "xfailed" in browser.find_element(By.ID, "legend").text
    # the downloads, fetched as the page links them
    hrefs = {
        name: browser.find_element(By.ID, f"download-{name}").get_attribute("href")
        for name in ("json", "junit", "spec")
    }
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        fetched = {name: http.get(url.replace(base, server.url)) for name, url in hrefs.items()}
    assert all(r.status_code == 200 for r in fetched.values()), fetched
    assert fetched["json"].json() == done["report"]
    suite = ET.fromstring(fetched["junit"].text).find("testsuite")
    assert suite is not None and suite.get("tests") == str(len(done["report"]["results"]))
    assert fetched["spec"].text == text
    shot = os.environ.get("VERIFIER_PAGE_SCREENSHOT")
    if shot:
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1200, min(int(height) + 100, 6000))
        browser.save_screenshot(shot)
    # last, what the engine records for the page to draw (so that a failure here names it):
    # the provenance block names the versions and the training settings
    provenance = browser.find_element(By.ID, "provenance").text
    for word in ("torch", "numpy", "train_threads", "train_order", "python"):
        assert word in provenance, provenance
    # the loss curve, one figure for the claims that trained the same models
    curves = browser.find_elements(By.CSS_SELECTOR, "figure[id^='curves-'] img.plot.curves")
    assert curves, "no training curve on the page of a training job"
    assert "loss and accuracy against the step" in curves[0].get_attribute("alt")
    assert "one line per seed (0, 1, 2)" in curves[0].get_attribute("alt")
    sizes = _images_loaded(browser, "img.plot")
    assert sizes and all(complete and width > 100 for complete, width in sizes), sizes


def test_swagger_ui_renders_offline(server: Server, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    # a page whose URL carries credentials may not fetch() (Swagger UI's way to read
    # /openapi.json): authenticate once, then open /docs as a user who typed the token would
    browser.get(f"{_with_token(server)}/")
    browser.get(f"{server.url}/docs")
    WebDriverWait(browser, 60).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock"))
    )
    assert "verifier" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    operations = browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    assert any("/report.json" in o.text for o in operations)
    loaded: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert loaded and all(f"//127.0.0.1:{server.port}/" in name for name in loaded), loaded
