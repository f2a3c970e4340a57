"""The dashboard in a real browser: Streamlit as a subprocess on the test database with demo data,
driven by Playwright with the system Chromium. Screenshots go to test-artifacts/."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from core.db import session_scope
from core.demo_data import DEMO_ADMIN, generate
from core.models import Booking, Payment, Refund
from tests.browser_support import CHROMIUM as _CHROMIUM, CHROMIUM_ARGS as BROWSER_ARGS, require_chromium

pytestmark = pytest.mark.browser

CHROMIUM = str(_CHROMIUM)
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"

from playwright.sync_api import sync_playwright  # noqa: E402  (pinned in requirements.txt: never skipped)


@pytest.fixture(autouse=True)
def _chromium_required():
    require_chromium()  # a missing browser fails these tests unless ALLOW_NO_BROWSER=1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dashboard_url(engine, db_url, tmp_path):
    generate(engine, bookings=400)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "SANDBOX": "true", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "streamlit_app.py"),
         "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
         "--client.toolbarMode", "viewer"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{(tmp_path / 'streamlit.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def paid_booking_without_refunds(engine) -> tuple[str, int]:
    with session_scope(engine, read_only=True) as s:
        row = s.execute(
            select(Booking.id, Payment.amount_cents).join(Payment, Payment.booking_id == Booking.id)
            .where(Booking.status == "CONFIRMED", Booking.currency == "USD", Payment.dispute_status.is_(None),
                   ~Booking.id.in_(select(Refund.booking_id)))
            .order_by(Booking.id).limit(1)).one()
    return row[0], row[1]


def test_admin_signs_in_sees_the_overview_and_confirms_a_refund(engine, dashboard_url):
    ARTIFACTS.mkdir(exist_ok=True)
    booking_id, amount = paid_booking_without_refunds(engine)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 2400})
            page.goto(dashboard_url, wait_until="domcontentloaded")
            page.get_by_label("Email").fill(DEMO_ADMIN[0])
            page.get_by_label("Password", exact=True).fill(DEMO_ADMIN[1])
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.get_by_role("heading", name="Overview").wait_for(timeout=30_000)
            page.locator(".js-plotly-plot").nth(2).wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # let the charts finish drawing
            page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.get_by_text("Scheduled → paid").is_visible()
            assert page.get_by_text("Paid (USD)").is_visible()

            page.get_by_role("link", name="Bookings").click()
            search = page.get_by_label("Search client name or email")
            search.fill(booking_id)  # the search finds a booking by its id too
            search.press("Enter")
            page.get_by_text("1–1 of 1 bookings").wait_for(timeout=15_000)
            grid = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
            page.mouse.click(grid["x"] + 16, grid["y"] + 35 + 17)  # the row's marker opens the booking
            page.get_by_role("button", name="Refund the rest in full…").click()
            dialog = page.get_by_role("dialog")
            dialog.wait_for(timeout=15_000)
            expected = f"${amount / 100:,.2f}"
            assert expected in dialog.inner_text() and "(USD)" in dialog.inner_text()
            page.screenshot(path=str(ARTIFACTS / "dashboard-refund-confirmation.png"))
            dialog.get_by_role("button", name="Confirm").click()
            page.get_by_text(f"Refund of {expected} requested").wait_for(timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-refund-done.png"))
        finally:
            browser.close()
    with session_scope(engine, read_only=True) as s:
        refunds = s.execute(select(Refund.amount_cents, Refund.issued_by).where(Refund.booking_id == booking_id)).all()
    assert [tuple(r) for r in refunds] == [(amount, f"admin:{DEMO_ADMIN[0]}")]
