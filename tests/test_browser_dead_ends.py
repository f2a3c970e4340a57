"""No dead ends, in a real browser (the system Chromium, driven by Playwright), at desktop and phone
size: back from Stripe and releasing the time, cancelling in Calendly and landing on our page with
the refund, Back to a used single-use link, "Sign in to book" returning to the chosen session, an
unknown address, the API docs offline, and times in the browser's own zone on the stand-ins' pages.

Full-page screenshots go to test-artifacts/browser-dead-ends/ (or $SHOTS_DIR).
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.browser_support import ARTIFACTS, chromium  # noqa: F401  (chromium: the fixture)

SHOTS = ARTIFACTS / "dead-ends"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
ZONE = "America/New_York"

pytestmark = pytest.mark.browser


@pytest.fixture(params=sorted(SIZES))
def tab(request, chromium):
    """A browser tab at one size, in New York's zone, that saves numbered screenshots."""
    size = request.param
    context = chromium.new_context(viewport=SIZES[size], device_scale_factor=1, is_mobile=size == "phone",
                                   has_touch=size == "phone", timezone_id=ZONE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    # Console errors, but not a missing favicon (no page of ours or the stand-ins' has one).
    page.on("console", lambda message: message.type == "error" and "Failed to load resource" not in message.text
            and errors.append(message.text))
    page.on("response", lambda answer: answer.status >= 400 and not answer.url.endswith("/favicon.ico")
            and answer.request.resource_type != "document" and errors.append(f"{answer.status} {answer.url}"))
    page.on("pageerror", lambda error: errors.append(str(error)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    prefix = f"{request.node.originalname.removeprefix('test_')}-{size}"
    counter = iter(range(1, 100))

    def shot(name: str) -> None:
        page.wait_for_load_state("load")
        page.screenshot(path=str(SHOTS / f"{prefix}-{next(counter):02d}-{name}.png"), full_page=True)

    page.shot, page.errors = shot, errors
    yield page
    context.close()


def _sign_in(page, live, email: str, *, choose: int = 0) -> None:
    """From the profile: "Sign in to book" on session `choose`, the magic link, back at that session."""
    page.goto(f"{live.web}/profile/{live.builder_id}")
    page.get_by_role("button", name="Sign in to book").nth(choose).click()
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#name", "Casey Client")
    page.fill("#email", email)
    page.get_by_role("button", name=re.compile("Email me a sign-in link")).click()
    page.click("#magic-link")
    page.wait_for_url(f"**/book/{live.event_type_ids[choose]}")


def _to_stripe(page, live) -> str:
    """Book now → the first offered time in the Calendly stand-in → Stripe's page; the booking id."""
    page.get_by_role("button", name="Book now").click()
    page.wait_for_url(f"{live.calendly}/book/**")
    page.locator(".slot span").first.click()
    page.get_by_role("button", name="Schedule event").click()
    page.wait_for_url(f"{live.stripe}/pay/cs_**")
    return _latest_booking(live)


def _latest_booking(live) -> str:
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Booking
    with session_scope(live.engine, read_only=True) as session:
        return session.execute(select(Booking.id).order_by(Booking.created_at.desc()).limit(1)).scalar_one()


def test_back_from_stripe_then_release_the_time(live, tab):
    page = tab
    _sign_in(page, live, "release@example.com")
    booking_id = _to_stripe(page, live)
    page.shot("stripe-checkout")

    page.get_by_role("button", name="Cancel and go back").click()
    page.wait_for_url(re.compile(r"/payment/cancel\?"))
    page.get_by_text("You left the payment page").wait_for()
    assert page.get_by_role("link", name="Pay $49.00 now").is_visible()
    for choice in ("Choose another time", "Release my time now"):
        assert page.get_by_role("button", name=choice).is_visible(), choice
    page.shot("choices")

    page.get_by_role("button", name="Release my time now").click()
    page.get_by_text("This booking was canceled").wait_for()
    assert "No charge was made" in page.inner_text("body")
    page.shot("released")
    live.drain()

    data = live.booking(booking_id)
    assert data["status"] == "CANCELED" and data["paid_cents"] == 0 and data["refunds"] == []
    event = next(e for e in live.calendly_state()["events"] if e["uri"] == data["calendly_event_uri"])
    assert event["status"] == "canceled"  # the slot is free in Calendly again
    checkout = next(s for s in live.stripe_state()["sessions"] if s["id"] == data["stripe_checkout_session_id"])
    assert checkout["status"] == "expired"
    assert page.errors == []


def test_cancel_in_calendly_lands_on_our_page_with_the_refund(live, tab):
    page = tab
    _sign_in(page, live, "cancel@example.com")
    booking_id = _to_stripe(page, live)
    page.get_by_role("button", name="Pay $49.00").click()
    page.get_by_text("You're booked").wait_for()

    # From Calendly's own email: our page's "Cancel booking" is our refund preview (tests/test_browser_my_bookings.py).
    page.goto(live.booking(booking_id)["calendly_cancel_url"])
    page.wait_for_url(f"{live.calendly}/cancellations/**")
    assert f"({ZONE})" in page.inner_text("body")  # the time in the client's zone, named
    page.fill("#reason", "Something came up")
    page.get_by_role("button", name="Cancel event").click()
    page.get_by_text("Cancellation confirmed").wait_for()
    page.shot("calendly-cancel-confirmed")

    live.drain()
    page.get_by_role("link", name="Back to the booking site").click()
    page.wait_for_url(re.compile(rf"{re.escape(live.web)}/payment/{booking_id}"))
    body = page.inner_text("body")
    assert "This booking was canceled" in body and "$49.00" in body and "refunded" in body
    assert "Something came up" in body
    page.shot("our-page-with-the-refund")
    assert live.booking(booking_id)["refunded_cents"] == 4900
    assert page.errors == []


def test_back_to_a_used_scheduling_link_explains(live, tab):
    page = tab
    _sign_in(page, live, "back@example.com")
    booking_id = _to_stripe(page, live)
    page.go_back()  # from Stripe's page to the Calendly link, already used
    page.wait_for_url(f"{live.calendly}/book/**")
    if not page.get_by_text("already been used").is_visible():  # the browser showed its cached form
        page.locator(".slot span").first.click()
        page.get_by_role("button", name="Schedule event").click()
    page.get_by_text("This scheduling link has already been used").wait_for()
    assert "Your time is kept" in page.inner_text("body")
    page.shot("used-link")

    page.get_by_role("link", name="Back to the booking site").click()
    page.wait_for_url(f"{live.stripe}/pay/cs_**")  # still unpaid: our page sends the client on to pay
    assert live.status(booking_id) == "PENDING_PAYMENT"
    assert page.errors == []


def test_sign_in_to_book_returns_to_the_chosen_session(live, tab):
    page = tab
    _sign_in(page, live, "chooser@example.com", choose=1)
    body = page.inner_text("body")
    assert "$149.00" in body and "chooser@example.com" in body
    page.shot("back-at-the-chosen-session")
    page.get_by_role("button", name="Book now").click()
    page.wait_for_url(f"{live.calendly}/book/**")
    assert page.input_value("#timezone") == ZONE  # Calendly's page found the browser's zone
    labels = page.locator(".slot span").all_inner_texts()
    assert labels and labels[0] in ("04:00", "05:00")  # 09:00 UTC, in New York
    page.shot("calendly-in-new-york-time")
    page.locator(".slot span").first.click()
    page.get_by_role("button", name="Schedule event").click()
    page.wait_for_url(f"{live.stripe}/pay/cs_**")
    assert f"({ZONE})" in page.inner_text("body")  # the session's time and the expiry, in the client's zone
    page.shot("stripe-in-new-york-time")
    assert live.booking(_latest_booking(live))["invitee_timezone"] == ZONE
    assert page.errors == []


def test_an_unknown_address_is_our_page(live, tab):
    page = tab
    answer = page.goto(f"{live.web}/no/such/page")
    assert answer.status == 404
    assert "Page not found" in page.inner_text("body")
    page.shot("not-found")
    page.get_by_role("link", name="Go to the start page").click()
    page.wait_for_url(f"{live.web}/")


def test_the_api_docs_render_offline(live, tab):
    page = tab
    here = urlsplit(live.web).netloc
    outside: list[str] = []

    def only_here(route):
        if urlsplit(route.request.url).netloc == here:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    page.goto(f"{live.web}/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "BuildAppsWith bookings" in page.inner_text(".swagger-ui .info")
    page.locator(".opblock").first.wait_for()
    page.shot("swagger-offline")
    assert outside == [] and page.errors == []  # nothing from elsewhere; nothing the policy blocked
