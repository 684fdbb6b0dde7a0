"""The report opens in a real headless Chromium with no errors, and every image renders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
)  # fmt: skip


def _browser_paths() -> tuple[str, str] | None:
    browser = next(
        (
            p
            for p in ("/usr/bin/chromium", shutil.which("chromium") or "")
            if p and Path(p).exists()
        ),
        None,
    )
    driver = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver") or "") if p and Path(p).exists()),
                  None)  # fmt: skip
    return (browser, driver) if browser and driver else None


@pytest.fixture
def chromium(tmp_path):
    paths = _browser_paths()
    if paths is None:
        message = "Debian chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the browser check")
        pytest.skip(message)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_report_loads_without_errors_and_every_image_renders(sweep, chromium):
    chromium.get(sweep.report_path.resolve().as_uri())
    assert chromium.title.startswith("normlab compare: digits <b>&</b> 'q'")
    images = chromium.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])"
    )
    assert len(images) == 2, images  # curves and final: nothing injected by the user-provided names
    for complete, width, height, alt in images:
        assert complete and width > 400 and height > 200, alt
    errors = [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    fetched = chromium.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert fetched == []  # self-contained: no network or file fetches
    rows = chromium.execute_script(
        "return document.querySelectorAll('table')[0].tBodies[0].rows.length"
    )
    assert rows == len(sweep.summary)
