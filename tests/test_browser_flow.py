"""A client's whole journey in a real browser (the system Chromium, driven by Playwright).

Profile → sign-in by magic link → Calendly stand-in's booking page → Stripe stand-in's hosted
checkout → our success page; then cancelling through Calendly's link and seeing the refund.
Every page is saved as a full-page screenshot under test-artifacts/browser/ (repository root).
"""
from __future__ import annotations

import re

import pytest

from tests.browser_support import ARTIFACTS, chromium  # noqa: F401  (chromium: the fixture)
from tests.webhook_helpers import wait_for

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
HOSTILE_NAME = "<script>alert(1)</script>"

pytestmark = pytest.mark.browser  # a missing Chromium fails these tests (see tests/browser_support.py)


class Tab:
    """One browser tab: numbered full-page screenshots, and every dialog and navigation it saw."""

    def __init__(self, browser, viewport: dict, first_number: int):
        self.context = browser.new_context(viewport=viewport, device_scale_factor=1,
                                           is_mobile=viewport["width"] < 600, has_touch=viewport["width"] < 600)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.number = first_number
        self.dialogs: list[str] = []
        self.navigations: list[str] = []
        self.page.on("dialog", self._on_dialog)
        self.page.on("request", lambda r: r.is_navigation_request() and self.navigations.append(r.url))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def shot(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        self.page.screenshot(path=str(ARTIFACTS / f"{self.number:02d}-{name}.png"), full_page=True)
        self.number += 1

    def text(self) -> str:
        return self.page.inner_text("body")

    def close(self) -> None:
        self.context.close()


def _clear_screenshots(first: int, last: int) -> None:
    for old in ARTIFACTS.glob("*.png"):
        if old.name[:2].isdigit() and first <= int(old.name[:2]) <= last:
            old.unlink()


def _journey_to_success(tab: Tab, live, *, name: str, email: str, slot: str = "first") -> str:
    """Home → profile → sign in → Book now → Calendly slot → Stripe checkout → Pay; returns the booking id."""
    page = tab.page
    page.goto(live.web + "/")
    assert "Ada Lovelace" in tab.text()
    tab.shot("home")

    page.get_by_role("link", name=re.compile("See sessions")).first.click()
    page.wait_for_url(f"**/profile/{live.builder_id}")
    assert "Discovery call" in tab.text() and "$49.00" in tab.text()
    tab.shot("profile-signed-out")

    page.get_by_role("button", name="Sign in to book").first.click()
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#name", name)
    page.fill("#email", email)
    tab.shot("sign-in-form")

    page.get_by_role("button", name=re.compile("Email me a sign-in link")).click()
    page.wait_for_selector("#magic-link")
    assert email in tab.text()
    tab.shot("magic-link-sent")

    page.click("#magic-link")
    page.wait_for_url(f"**/book/{live.event_type_ids[0]}")  # back at the session they chose
    assert email in tab.text() and "Discovery call" in tab.text()
    tab.shot("session-signed-in")

    tab.navigations.clear()
    page.get_by_role("button", name="Book now").first.click()
    page.wait_for_url(f"{live.calendly}/book/**")
    assert page.input_value("#name") == name and page.input_value("#email") == email
    tab.shot("calendly-booking-page")

    slots = page.locator(".slot span")
    assert slots.count() > 0
    (slots.first if slot == "first" else slots.last).click()
    tab.shot("calendly-slot-picked")

    page.get_by_role("button", name="Schedule event").click()
    page.wait_for_url(f"{live.stripe}/pay/cs_**")
    returned = [url for url in tab.navigations if "/payment/calendly-return" in url]
    assert returned, tab.navigations
    booking_id = re.search(r"utm_content=(bk_[0-9a-f]{20})", returned[0]).group(1)
    assert f"{live.web}/payment/{booking_id}" in tab.navigations
    assert "$49.00" in tab.text() and "Discovery call" in tab.text() and email in tab.text()
    tab.shot("stripe-checkout")

    page.get_by_role("button", name="Pay $49.00").click()
    page.wait_for_url(re.compile(re.escape(f"{live.web}/payment/success?session_id=cs_")))
    page.get_by_text("You're booked").wait_for()
    return booking_id


def test_client_books_and_pays_in_a_phone_browser(live, chromium):
    from webhook_service.rendering import local_time_iso

    _clear_screenshots(1, 19)
    tab = Tab(chromium, PHONE, first_number=1)
    try:
        booking_id = _journey_to_success(tab, live, name=HOSTILE_NAME, email="casey+phone@example.com")
        data = live.booking(booking_id)
        body = tab.text()
        for expected in ("You're booked", "Discovery call", "Ada Lovelace", "$49.00", booking_id,
                         local_time_iso(data["start_time"], data["invitee_timezone"])):
            assert expected in body, expected
        assert HOSTILE_NAME in body  # the client's name, shown as text...
        assert tab.page.locator("script:not([src^='/static/'])").count() == 0  # ...and never parsed as markup
        tab.shot("success")

        # Coming back to the payment link later shows the booking, not a second checkout.
        tab.page.goto(f"{live.web}/payment/{booking_id}")
        assert "You're booked" in tab.text()
        tab.shot("payment-link-after-paying")
        assert tab.dialogs == []  # the <script> name never ran, on any page
    finally:
        tab.close()

    assert live.status(booking_id) == "CONFIRMED"
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid"
    assert data["paid_cents"] == 4900 and data["currency"] == "USD"
    assert data["client"]["name"] == HOSTILE_NAME


def test_client_cancels_through_calendly_and_sees_the_refund(live, chromium):
    """Books on a desktop, cancels later on a phone; the refund follows the default policy (in full)."""
    _clear_screenshots(20, 39)
    tab = Tab(chromium, DESKTOP, first_number=20)
    try:
        # The last offered slot is days ahead: a full refund under the default policy.
        booking_id = _journey_to_success(tab, live, name="Casey Client", email="casey@example.com", slot="last")
        tab.shot("success")
        page = tab.page
        page.set_viewport_size(PHONE)  # the cancellation happens later, from the phone

        # From Calendly's own email (our page's "Cancel booking" is our refund preview, tested elsewhere).
        page.goto(live.booking(booking_id)["calendly_cancel_url"])
        page.wait_for_url(f"{live.calendly}/cancellations/**")
        assert "Casey Client" in tab.text()
        page.fill("#reason", "Something came up")
        tab.shot("calendly-cancel-page")

        page.get_by_role("button", name="Cancel event").click()
        page.get_by_text("Cancellation confirmed").wait_for()
        tab.shot("calendly-cancel-confirmed")

        live.drain()
        wait_for(lambda: live.booking(booking_id)["payment_status"] == "refunded")  # Stripe's refund webhook
        page.goto(f"{live.web}/payment/cancel?booking={booking_id}")
        body = tab.text()
        assert "This booking was canceled" in body and "$49.00 has been refunded" in body
        assert "Something came up" in body  # the reason given at Calendly
        tab.shot("booking-canceled")
        assert tab.dialogs == []
    finally:
        tab.close()

    data = live.booking(booking_id)
    assert live.status(booking_id) == "CANCELED"
    assert data["status"] == "CANCELED" and data["payment_status"] == "refunded"
    assert data["refunded_cents"] == 4900
    assert [r["status"] for r in data["refunds"]] == ["succeeded"]
