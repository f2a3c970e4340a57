"""No dead ends for a client (issue 11): every way out of the booking flow lands on a page of ours
that says what happened to the money and what can be done next.

Against the live system (web service and both stand-ins on real ports, the test's database):
back from Stripe (pay, another time, release the time now), releasing a hold (the booking
canceled, no charge, the Calendly event canceled, the Checkout Session expired; refused once
paid or while a bank payment is on its way; a payment that still arrives is refunded), a used
single-use link, a cancellation in Calendly leading back to our page with the refund, "Sign in
to book" returning to the chosen session, the invitee's time zone, and our pages for unknown
addresses, wrong methods and errors. The API docs work offline.
"""
from __future__ import annotations

import re
from html import unescape

import pytest
import requests
from fastapi.testclient import TestClient

from core.db import session_scope
from core.models import OutboxEntry
from core.services import hold_release
from core.states import OutboxKind
from tests.live_system import _csrf

HTML = {"accept": "text/html"}


def _stripe_session(live, checkout_id: str) -> dict:
    return next(s for s in live.stripe_state()["sessions"] if s["id"] == checkout_id)


def _calendly_event(live, booking_id: str) -> dict:
    uri = live.booking(booking_id)["calendly_event_uri"]
    return next(e for e in live.calendly_state()["events"] if e["uri"] == uri)


def _left_stripe(live, browser, booking_id: str) -> tuple[str, requests.Response]:
    """The client opens Stripe Checkout, then follows its "back" link: (checkout id, our page)."""
    checkout_id = live.checkout(booking_id)
    page = browser.get(_stripe_session(live, checkout_id)["cancel_url"], headers=HTML, timeout=30)
    return checkout_id, page


def _release(live, browser, booking_id: str, page_text: str, **extra) -> requests.Response:
    form = {"csrf_token": _csrf(page_text),
            "t": re.search(r'name="t" value="([0-9a-f]+)"', page_text).group(1), **extra}
    return browser.post(f"{live.web}/payment/{booking_id}/release", data=form, headers=HTML,
                        allow_redirects=False, timeout=30)


def _calendly_cancels(live, booking_id: str) -> list[OutboxEntry]:
    with session_scope(live.engine, read_only=True) as session:
        return list(session.query(OutboxEntry).filter_by(booking_id=booking_id, kind=OutboxKind.CALENDLY_CANCEL))


# ---------------------------------------------------------------- back from Stripe
def test_back_from_stripe_offers_paying_another_time_or_releasing(live):
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    _, page = _left_stripe(live, browser, booking_id)
    assert page.status_code == 200
    text = page.text
    assert "You left the payment page" in text and "You have not been charged" in text
    assert "Pay $49.00 now" in text and "Choose another time" in text and "Release my time now" in text
    assert f'action="/payment/{booking_id}/release"' in text
    assert live.status(booking_id) == "PENDING_PAYMENT"  # looking changes nothing


def test_releasing_the_time_cancels_without_charge_and_frees_the_slot(live):
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    checkout_id, page = _left_stripe(live, browser, booking_id)

    answer = _release(live, browser, booking_id, page.text)
    assert answer.status_code == 303 and answer.headers["location"].startswith(f"/payment/{booking_id}?t=")
    live.drain()

    data = live.booking(booking_id)
    assert data["status"] == "CANCELED" and data["payment_status"] == "unpaid"
    assert data["paid_cents"] == 0 and data["refunds"] == []
    assert data["cancel_reason"] == hold_release.RELEASE_REASON
    assert _stripe_session(live, checkout_id)["status"] == "expired"  # nobody can pay for it now
    assert _calendly_event(live, booking_id)["status"] == "canceled"  # the slot is free again
    shown = browser.get(live.web + answer.headers["location"], headers=HTML, timeout=30).text
    assert "This booking was canceled" in shown and "No charge was made" in shown

    again = _release(live, browser, booking_id, page.text)  # a second click, or Back and click
    assert again.status_code == 303
    assert live.status(booking_id) == "CANCELED" and len(_calendly_cancels(live, booking_id)) == 1


def test_choose_another_time_releases_and_opens_the_same_session(live):
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    _, page = _left_stripe(live, browser, booking_id)
    answer = _release(live, browser, booking_id, page.text, then="rebook")
    assert answer.status_code == 303 and answer.headers["location"] == f"/book/{live.event_type_ids[0]}"
    assert live.status(booking_id) == "CANCELED"
    session_page = browser.get(live.web + answer.headers["location"], headers=HTML, timeout=30).text
    assert "Discovery call" in session_page and "Book now" in session_page


def test_a_paid_booking_is_not_released(live):
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    _, page = _left_stripe(live, browser, booking_id)
    live.pay(booking_id)
    answer = _release(live, browser, booking_id, page.text)
    assert answer.status_code == 409 and "already arrived" in unescape(answer.text)
    assert live.status(booking_id) == "CONFIRMED" and _calendly_cancels(live, booking_id) == []


def test_a_bank_payment_on_its_way_is_not_released(live):
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    checkout_id, page = _left_stripe(live, browser, booking_id)
    paid = live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay", {"method": "bank_transfer"})
    assert paid.status_code == 200, paid.text
    answer = _release(live, browser, booking_id, page.text)
    assert answer.status_code == 409 and "on its way" in answer.text
    assert live.booking(booking_id)["payment_processing"] is True


def test_paid_at_stripe_before_we_heard_of_it_is_not_released(live):
    """The payment's webhook has not arrived yet: Stripe is asked first, and its answer wins."""
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    checkout_id, page = _left_stripe(live, browser, booking_id)
    live.stripe_sandbox("POST", "/config", {"webhook_delivery": "off"})
    assert live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay").status_code == 200
    answer = _release(live, browser, booking_id, page.text)
    assert answer.status_code == 409
    assert live.status(booking_id) == "CONFIRMED"


def test_a_payment_that_still_arrives_after_the_release_is_refunded_in_full(live):
    """Stripe could not expire the session at once (and the outbox's retries fail too): the client
    pays through it anyway, and the late-payment rule gives all of it back."""
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    checkout_id, page = _left_stripe(live, browser, booking_id)
    live.stripe_sandbox("POST", "/faults", {"mode": "500", "count": 50,
                                            "path_prefix": f"/v1/checkout/sessions/{checkout_id}/expire"})
    assert _release(live, browser, booking_id, page.text).status_code == 303
    assert _stripe_session(live, checkout_id)["status"] == "open"
    assert live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay").status_code == 200
    live.drain()
    data = live.booking(booking_id)
    assert data["status"] == "CANCELED" and data["paid_cents"] == 4900 and data["refunded_cents"] == 4900
    assert [(r["rule"], r["amount_cents"]) for r in data["refunds"]] == [("late_payment", 4900)]


def test_only_the_client_may_release_and_only_from_our_form(live):
    owner = live.signed_in_client()
    booking_id = live.book(owner)
    _, page = _left_stripe(live, owner, booking_id)

    stranger = live.signed_in_client("someone@example.com", "Sam Stranger")
    profile = stranger.get(f"{live.web}/profile/{live.builder_id}", timeout=30)
    answer = stranger.post(f"{live.web}/payment/{booking_id}/release", headers=HTML, allow_redirects=False,
                           data={"csrf_token": _csrf(profile.text)}, timeout=30)
    assert answer.status_code == 200 and "Sign in to see this booking" in answer.text

    forged = owner.post(f"{live.web}/payment/{booking_id}/release", headers=HTML, allow_redirects=False,
                        data={"csrf_token": "forged"}, timeout=30)
    assert forged.status_code == 403
    assert live.status(booking_id) == "PENDING_PAYMENT"


# ---------------------------------------------------------------- Calendly's pages lead back
def test_cancelling_in_calendly_links_back_to_our_page_stating_the_refund(live):
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    live.pay(booking_id)
    cancel_url = live.booking(booking_id)["calendly_cancel_url"]
    done = requests.post(cancel_url, data={"reason": "Plans changed"}, timeout=30)
    assert done.status_code == 200 and "Cancellation confirmed" in done.text
    back = unescape(re.search(r'class="button" href="([^"]+)"', done.text).group(1))
    assert back.startswith(f"{live.web}/payment/calendly-return?") and f"utm_content={booking_id}" in back
    live.drain()
    ours = browser.get(back, headers=HTML, timeout=30)
    assert ours.url.startswith(f"{live.web}/payment/{booking_id}")
    assert "This booking was canceled" in ours.text and "$49.00" in ours.text and "refunded" in ours.text
    assert "Plans changed" in ours.text


def test_a_used_single_use_link_explains_and_leads_back(live):
    browser = live.signed_in_client()
    booking_id, calendly_url = live.start_booking(browser)
    live.pick_slot(calendly_url)
    again = requests.get(calendly_url, timeout=30)  # the browser's Back button
    assert again.status_code == 409
    assert "This scheduling link has already been used" in again.text and "Your time is kept" in again.text
    back = unescape(re.search(r'class="button" href="([^"]+)"', again.text).group(1))
    assert f"utm_content={booking_id}" in back
    followed = browser.get(back, allow_redirects=False, timeout=30)
    assert followed.headers["location"] == f"/payment/{booking_id}"


def test_the_zone_chosen_on_calendlys_page_reaches_the_booking(live):
    browser = live.signed_in_client()
    booking_id, calendly_url = live.start_booking(browser)
    page = requests.get(calendly_url, timeout=30)
    assert 'name="timezone"' in page.text and "/assets/local-times.js" in page.text
    assert requests.get(f"{live.calendly}/assets/local-times.js", timeout=30).status_code == 200
    slot = re.search(r'name="start_time" value="([^"]+)"', page.text).group(1)
    link = calendly_url.split("?")[0]
    form = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    booked = requests.post(link, data={**form, "name": "Nia", "email": "client@example.com", "start_time": slot,
                                       "timezone": "America/New_York"}, allow_redirects=False, timeout=30)
    assert booked.status_code == 303, booked.text
    assert live.booking(booking_id)["invitee_timezone"] == "America/New_York"
    checkout_id = live.checkout(booking_id)
    stripe_page = requests.get(f"{live.stripe}/pay/{checkout_id}", timeout=30).text
    assert "(America/New_York)" in stripe_page  # the product line names the zone the client booked in
    assert '<time datetime="' in stripe_page and "/assets/local-times.js" in stripe_page


def test_a_zone_that_is_not_one_falls_back(live):
    browser = live.signed_in_client()
    booking_id, calendly_url = live.start_booking(browser)
    link = calendly_url.split("/book/")[1].split("?")[0]
    query = dict(p.split("=", 1) for p in calendly_url.split("?", 1)[1].split("&"))
    answer = live.calendly_sandbox("POST", f"/links/{link}/book", {
        "name": "Nia", "email": "client@example.com", "utm_content": query["utm_content"],
        "timezone": "../../etc/passwd"})
    assert answer.status_code == 201
    assert live.booking(booking_id)["invitee_timezone"] == "Europe/London"


# ---------------------------------------------------------------- sign in to book
def test_sign_in_to_book_returns_to_the_chosen_session(live):
    browser = requests.Session()
    profile = browser.get(f"{live.web}/profile/{live.builder_id}", headers=HTML, timeout=30)
    chosen = live.event_type_ids[1]
    answer = browser.post(f"{live.web}/bookings", allow_redirects=False, timeout=30, data={
        "event_type_id": chosen, "builder_id": str(live.builder_id), "csrf_token": _csrf(profile.text)})
    assert answer.status_code == 303 and answer.headers["location"] == f"/login?next=/book/{chosen}"

    form = browser.get(live.web + answer.headers["location"], headers=HTML, timeout=30)
    sent = browser.post(f"{live.web}/login", timeout=30, data={
        "email": "new@example.com", "name": "Nia New", "csrf_token": _csrf(form.text),
        "next": re.search(r'name="next" value="([^"]+)"', form.text).group(1)})
    link = unescape(re.search(r'id="magic-link" class="btn" href="([^"]+)"', sent.text).group(1))
    landed = browser.get(link, headers=HTML, timeout=30)
    assert landed.url == f"{live.web}/book/{chosen}"
    assert "new@example.com" in landed.text and "$149.00" in landed.text and "Book now" in landed.text

    booked = browser.post(f"{live.web}/bookings", allow_redirects=False, timeout=30, data={
        "event_type_id": chosen, "builder_id": str(live.builder_id), "csrf_token": _csrf(landed.text)})
    assert booked.status_code == 303 and booked.headers["location"].startswith(f"{live.calendly}/book/")


@pytest.mark.parametrize("path", ["/book/not%20an%20id", "/book/00000000-0000-0000-0000-000000000000",
                                  "/book/" + "a" * 65])
def test_a_session_page_that_does_not_exist_is_our_404(live, path):
    answer = requests.get(live.web + path, headers=HTML, timeout=30)
    assert answer.status_code == 404 and "Session not found" in answer.text and 'href="/"' in answer.text


def test_the_session_page_signed_out_offers_sign_in_back_to_it(live):
    answer = requests.get(f"{live.web}/book/{live.event_type_ids[0]}", headers=HTML, timeout=30)
    assert answer.status_code == 200 and "Discovery call" in answer.text
    assert f'href="/login?next=/book/{live.event_type_ids[0]}"' in answer.text


# ---------------------------------------------------------------- unknown addresses and errors
@pytest.fixture
def web(engine, settings_env):
    from webhook_service.app import create_app
    app = create_app()

    @app.get("/_boom", include_in_schema=False)
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/api/_boom", include_in_schema=False)
    def api_boom():
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_an_unknown_address_is_our_page_for_a_browser_and_json_for_the_api(web):
    page = web.get("/no/such/page", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text and 'href="/"' in page.text and "detail" not in page.text
    for path in ("/api/no-such", "/api/webhooks/nope", "/webhooks/nope"):
        answer = web.get(path, headers=HTML)
        assert answer.status_code == 404 and answer.json() == {"detail": "Not Found"}, path
    assert web.get("/no/such/page").json() == {"detail": "Not Found"}  # not a browser: JSON


def test_a_form_address_opened_in_the_browser_is_our_405_page(web):
    page = web.get("/bookings", headers=HTML)
    assert page.status_code == 405 and page.headers["allow"] == "POST"
    assert "This address is not a page" in page.text and 'href="/"' in page.text
    assert web.get("/api/webhooks/stripe", headers=HTML).json() == {"detail": "Method Not Allowed"}


def test_an_error_is_our_500_page_never_a_traceback(web):
    page = web.get("/_boom", headers=HTML)
    assert page.status_code == 500 and "Something went wrong on our side" in page.text
    assert "secret internals" not in page.text and "Traceback" not in page.text
    answer = web.get("/api/_boom", headers=HTML)
    assert answer.status_code == 500 and answer.json() == {"detail": "internal error; it has been logged"}


# ---------------------------------------------------------------- offline docs
def test_the_docs_load_nothing_from_another_host(web):
    docs = web.get("/docs")
    assert docs.status_code == 200
    references = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert references and all(ref.startswith("/") and not ref.startswith("//") for ref in references), references
    assert "http://" not in docs.text and "https://" not in docs.text
    for ref in references:
        assert web.get(ref).status_code == 200, ref
    policy = docs.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "<script>" not in docs.text
    assert web.get("/redoc", headers=HTML).status_code == 404
