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
