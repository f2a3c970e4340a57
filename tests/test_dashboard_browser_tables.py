"""The dashboard's tables in a real browser, at desktop (1280x800) and phone (390x844) size: a click
on a row opens the booking (admin and builder), the refund filters narrow the ledger and its CSV
download, a builder's week view and earnings CSV. Screenshots go to test-artifacts/tables/.

Streamlit runs as in tests/test_dashboard_browser.py (its `dashboard_url` fixture, demo data);
pages are reached by signing in and clicking the sidebar's links.
"""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import Booking, Builder, utcnow
from dashboard.lib.week import week_of

from core.demo_builders import DEMO_BUILDERS
from core.demo_data import DEMO_ADMIN, DEMO_BUILDER_PASSWORD
from tests.test_dashboard_browser import ARTIFACTS, BROWSER_ARGS, CHROMIUM, dashboard_url  # noqa: F401
from tests.browser_support import require_chromium

from playwright.sync_api import Page, TimeoutError as PlaywrightTimeout, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "tables"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(autouse=True)
def _chromium_required():
    require_chromium()


def sign_in(page: Page, url: str, email: str, password: str, landing: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name=landing).wait_for(timeout=30_000)


def go_to(page: Page, link: str, heading: str) -> None:
    """Click a sidebar link (opening the sidebar first on a phone, where it starts closed)."""
    phone = page.viewport_size["width"] < 600
    if phone:
        page.locator('[data-testid="stExpandSidebarButton"]').click()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=link, exact=True).click()
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=30_000)
    close = page.locator('[data-testid="stSidebarCollapseButton"]')
    if phone and close.is_visible():  # the open sidebar covers a phone's page
        close.click()


def shot(page: Page, name: str, *, at: str | None = None) -> None:
    """A screenshot of the window (Streamlit scrolls inside it), scrolled to the heading `at`."""
    if at:
        page.get_by_role("heading", name=at, exact=True).first.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def click_first_row(page: Page, table: int = 0) -> None:
    """Select the first row of a table by its row marker (the grid is a canvas: by position)."""
    grid = page.locator('[data-testid="stDataFrame"]').nth(table)
    grid.scroll_into_view_if_needed()
    grid.wait_for(timeout=15_000)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 16, box["y"] + 35 + 17)


def open_dropdown(page: Page, label: str):
    """The options of the select box `label`, opened (a click while the page reruns can be lost)."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label)
    for _ in range(5):
        box.locator("input").click()
        try:
            page.get_by_role("option").nth(1).wait_for(timeout=3_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    return page.get_by_role("option")


def no_exception(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def move_a_session_into_this_week(engine) -> str:
    """A demo builder's confirmed session moved to Wednesday 10:00 (their zone) of this week, so the
    week view has one to show; the builder's email."""
    emails = [demo.email for demo in DEMO_BUILDERS]
    with session_scope(engine) as s:
        booking, builder = s.execute(
            select(Booking, Builder).join(Builder, Builder.id == Booking.builder_id)
            .where(Builder.email.in_(emails), Booking.status == "CONFIRMED").order_by(Booking.id).limit(1)).one()
        start = week_of(utcnow(), builder.timezone).start + timedelta(days=2, hours=10)
        booking.start_time, booking.end_time = start, start + timedelta(hours=1)
        return builder.email


def test_admin_and_builder_open_bookings_filter_refunds_and_download(engine, dashboard_url):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    builder_email = move_a_session_into_this_week(engine)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            for size, viewport in SIZES.items():
                context = browser.new_context(viewport=viewport, accept_downloads=True)
                page = context.new_page()

                # ---- admin: a row of Bookings opens the booking
                sign_in(page, dashboard_url, *DEMO_ADMIN, landing="Overview")
                go_to(page, "Bookings", "Bookings")
                click_first_row(page)
                page.get_by_role("button", name="Close").wait_for(timeout=15_000)
                expect(page.get_by_role("heading", name="History")).to_be_visible()
                no_exception(page)
                shot(page, f"admin-booking-open-{size}", at="Client's answers")

                # ---- admin: refunds filtered by currency, downloaded, a row opens its booking
                go_to(page, "Refunds", "Refunds")
                page.get_by_role("heading", name="Totals").wait_for(timeout=15_000)  # the page has run
                option = open_dropdown(page, "Currency").nth(1)  # the first currency after "All currencies"
                currency = option.inner_text().strip()
                option.click()
                expect(page.get_by_text("refunds matching the filters")).to_be_visible(timeout=15_000)
                no_exception(page)
                shot(page, f"admin-refunds-filtered-{size}", at="Totals")
                with page.expect_download() as download:
                    page.get_by_role("button", name="Download these").click()
                rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
                assert rows and {row["currency"] for row in rows} == {currency}
                assert not any(row["client_name"].startswith(("=", "+", "-", "@")) for row in rows)
                click_first_row(page, table=1)  # the totals come first
                page.get_by_role("button", name="Close").wait_for(timeout=15_000)
                expect(page.get_by_role("heading", name="Bookings", exact=True)).to_be_visible()
                no_exception(page)
                context.close()

                # ---- builder: the week, a booking opened, earnings downloaded
                context = browser.new_context(viewport=viewport, accept_downloads=True)
                page = context.new_page()
                sign_in(page, dashboard_url, builder_email, DEMO_BUILDER_PASSWORD, landing="Upcoming sessions")
                expect(page.get_by_role("heading", name="Not paid yet")).to_be_visible()
                no_exception(page)
                expect(page.get_by_text("10:00–11:00").first).to_be_visible()  # moved into this week
                shot(page, f"builder-week-{size}")
                go_to(page, "Bookings", "Bookings")
                click_first_row(page)
                page.get_by_role("button", name="Close").wait_for(timeout=15_000)
                expect(page.get_by_role("heading", name="Client's answers")).to_be_visible()
                expect(page.get_by_role("heading", name="Webhook events")).to_have_count(0)
                no_exception(page)
                shot(page, f"builder-booking-open-{size}", at="Client's answers")
                go_to(page, "Earnings", "Earnings")
                with page.expect_download() as download:
                    page.get_by_role("button", name="Download earnings (CSV)").click()
                lines = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
                assert lines and set(lines[0]) == {"month", "currency", "paid", "refunded", "net", "platform_fee",
                                                   "payout"}
                shot(page, f"builder-earnings-{size}")
                context.close()
        finally:
            browser.close()
