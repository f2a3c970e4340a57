"""The system Chromium for the real-browser tests: required unless a run says otherwise.

A missing browser fails the browser tests (CI installs it: `make chromium`, part of `make test`);
only `ALLOW_NO_BROWSER=1` turns that into a skip, for a machine where the browser tests are
knowingly left out.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Where the browser tests save what they saw (screenshots), in the checkout, never in /tmp.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
ALLOW_NO_BROWSER = "ALLOW_NO_BROWSER"


def require_chromium(path: Path | None = None) -> Path:
    """The browser's path; fails the test when it is missing (skips only with ALLOW_NO_BROWSER=1)."""
    path = path or CHROMIUM
    if path.exists():
        return path
    if os.environ.get(ALLOW_NO_BROWSER) == "1":
        pytest.skip(f"no Chromium at {path} and {ALLOW_NO_BROWSER}=1")
    pytest.fail(f"the browser tests need Chromium at {path}: run `make chromium` (or set "
                f"{ALLOW_NO_BROWSER}=1 to leave them out knowingly)", pytrace=False)


@pytest.fixture(scope="module")
def chromium():
    """The system Chromium, launched once per test module (Playwright's sync API allows one at a time)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
