"""My bookings in a real browser (the system Chromium, driven by Playwright), set to New York time.

Sign in → My bookings (times in the browser's zone, named) → receipt → cancel (the refund stated
before confirming, then the outcome) → sign out, at desktop and phone size. The refund the preview
stated is the one Stripe's stand-in received, and the Calendly stand-in's event is canceled.
Screenshots are saved under test-artifacts/browser/my-bookings/.
"""
from __future__ import annotations

import re

import pytest

from core.db import session_scope
from core.models import Booking
from tests.browser_support import ARTIFACTS, chromium  # noqa: F401  (chromium: the fixture)
from tests.test_browser_flow import DESKTOP, PHONE
from tests.webhook_helpers import wait_for

SHOTS = ARTIFACTS / "my-bookings"
ZONE = "America/New_York"
ADMIN_REASON = "Goodwill: the call started ten minutes late"

pytestmark = pytest.mark.browser


def paid_booking_without_a_calendly_zone(live, email: str) -> str:
    """Booked and paid through the stand-ins; an admin refunds $5 with a reason. Calendly gave no
    invitee zone here, so the pages fall back to the browser's."""
    booking_id = live.book(live.signed_in_client(email, "Casey Client"))
    wait_for(lambda: live.status(booking_id) == "PENDING_PAYMENT")
    live.pay(booking_id)
    wait_for(lambda: live.status(booking_id) == "CONFIRMED")
    refunded = live.admin("POST", f"/api/bookings/{booking_id}/refund",
                          json={"amount_cents": 500, "reason": ADMIN_REASON})
    assert refunded.status_code == 202, refunded.text
    live.drain()
    with session_scope(live.engine) as session:
        session.get(Booking, booking_id).invitee_timezone = None
    return booking_id


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_client_walks_through_my_bookings_in_new_york_time(live, chromium, size):
    from webhook_service.rendering import local_time

    viewport = DESKTOP if size == "desktop" else PHONE
    email = f"casey.{size}@example.com"
    booking_id = paid_booking_without_a_calendly_zone(live, email)
    with session_scope(live.engine, read_only=True) as session:
        start = session.get(Booking, booking_id).start_time
    data = live.booking(booking_id)
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport=viewport, device_scale_factor=1, timezone_id=ZONE,
                                   is_mobile=size == "phone", has_touch=size == "phone")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # (Chromium asks every site for /favicon.ico; we have none, and that 404 is no page's fault.)
    page.on("response", lambda answer: answer.status >= 400 and not answer.url.endswith("/favicon.ico")
            and errors.append(f"{answer.status} {answer.url}"))

    def shot(name: str) -> None:
        page.wait_for_load_state("load")
        page.screenshot(path=str(SHOTS / f"{size}-{name}.png"), full_page=True)

    try:
        page.goto(f"{live.web}/login?next=/my-bookings")
        page.fill("#name", "Casey Client")
        page.fill("#email", email)
        page.get_by_role("button", name=re.compile("Email me a sign-in link")).click()
        page.click("#magic-link")
        page.wait_for_url(f"{live.web}/my-bookings")
        assert {c["name"]: c["value"] for c in context.cookies()}.get("tz") == ZONE  # zone.js saved it
        body = page.inner_text("body")
        assert local_time(start, ZONE) in body and f"({ZONE})" in body
        assert "(UTC)" not in body and "Europe/London" not in body
        assert "Confirmed and paid" in body and "Paid $49.00" in body and ADMIN_REASON in body
        assert page.get_by_role("link", name="My bookings").is_visible()
        assert page.get_by_role("button", name="Sign out").is_visible()
        shot("1-my-bookings")

        page.get_by_role("link", name="Receipt").click()
        page.wait_for_url(f"**/my-bookings/{booking_id}/receipt")
        body = page.inner_text("body")
        assert data["stripe_payment_intent_id"] in body and "$49.00" in body and "USD" in body
        assert ADMIN_REASON in body and f"({ZONE})" in body
        shot("2-receipt")

        page.get_by_role("link", name="← My bookings").click()
        page.get_by_role("link", name="Cancel…").click()
        page.wait_for_url(f"**/my-bookings/{booking_id}/cancel")
        stated = int(page.input_value("input[name=expected_refund_cents]"))
        body = page.inner_text("body")
        assert f"If you cancel now, you get ${stated / 100:.2f} back" in body
        assert 0 < stated <= 4900 - 500 and f"({ZONE})" in body
        page.fill("#reason", "My plans changed")
        shot("3-cancel-preview")

        page.get_by_role("button", name=re.compile(r"^Cancel and refund")).click()
        page.wait_for_url(f"**/my-bookings/{booking_id}/canceled")
        body = page.inner_text("body")
        assert "Your booking is canceled" in body and f"${stated / 100:.2f}" in body and "business days" in body
        shot("4-canceled")

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{live.web}/signed-out")
        body = page.inner_text("body")
        assert "You are signed out" in body and email not in body
        assert page.get_by_role("link", name="Sign in").first.is_visible()
        shot("5-signed-out")
        assert errors == []
    finally:
        context.close()

    live.drain()
    after = live.booking(booking_id)
    policy = [r for r in after["refunds"] if r["rule"] == "policy"]
    assert [r["amount_cents"] for r in policy] == [stated]  # the refund stated is the refund issued
    assert after["status"] == "CANCELED" and after["refunded_cents"] == 500 + stated
    stripe_refunds = sorted(r["amount"] for r in live.stripe_state()["refunds"] if r["payment_intent"] ==
                            data["stripe_payment_intent_id"])
    assert stripe_refunds == sorted([500, stated])
    [event] = [e for e in live.calendly_state()["events"] if e["uri"] == data["calendly_event_uri"]]
    assert event["status"] == "canceled"


def test_a_first_page_with_times_shows_them_again_in_the_browser_zone_once(live, chromium):
    """Opened straight from the email (no cookie yet), the page is rendered in UTC; zone.js saves the
    browser's zone and shows the page once more, now in New York time, and does not loop."""
    from webhook_service.rendering import local_time

    booking_id = paid_booking_without_a_calendly_zone(live, "casey.first@example.com")
    with session_scope(live.engine, read_only=True) as session:
        start = session.get(Booking, booking_id).start_time
    context = chromium.new_context(viewport=PHONE, device_scale_factor=1, timezone_id=ZONE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    loads: list[str] = []  # the page's own loads (a reload during the first load fires one "load" event)
    page.on("request", lambda r: r.is_navigation_request() and loads.append(r.url))
    try:
        page.goto(live.payment_url(booking_id))
        page.get_by_text(local_time(start, ZONE)).wait_for()
        page.wait_for_timeout(500)  # time enough for a loop to show itself
        assert len(loads) == 2, loads  # the first render (UTC) and one more
        assert "(UTC)" not in page.inner_text("body").split("that is")[0]
        page.screenshot(path=str(SHOTS / "phone-6-first-page-from-email.png"), full_page=True)
    finally:
        context.close()
