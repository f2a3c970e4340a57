"""Booking pages reveal a booking only to its client (issue 9): the signed-in client who owns it, or
whoever holds the link we emailed to them. Anyone else who has the booking id (it travels in
Calendly's utm_content) sees a neutral page that lets the owner sign in; nothing is created at
Stripe for them. Real HTTP against the live system."""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from core.db import session_scope
from core.models import Notification
from tests.webhook_helpers import wait_for

EMAIL, NAME = "casey.private@example.com", "Casey Private"
SECRETS = (EMAIL, NAME, "49.00", "Ada Lovelace")  # the client, the price, and whom they booked


def scheduled(live) -> tuple[requests.Session, str]:
    owner = live.signed_in_client(EMAIL, NAME)
    booking_id, url = live.start_booking(owner)
    live.pick_slot(url)
    wait_for(lambda: live.status(booking_id) == "PENDING_PAYMENT")
    return owner, booking_id


def assert_neutral(answer: requests.Response, booking_id: str, back_to: str) -> None:
    assert answer.status_code == 200, answer.text[:500]
    text = html.unescape(answer.text)
    assert "Sign in to see this booking" in text
    for secret in SECRETS:
        assert secret not in text, secret
    [login] = re.findall(r'href="(/login\?[^"]+)"', text)
    assert parse_qs(urlsplit(login).query)["next"] == [back_to]


def emailed_link(live, booking_id: str) -> str:
    with session_scope(live.engine, read_only=True) as session:
        body = session.execute(select(Notification.body).where(
            Notification.booking_id == booking_id, Notification.kind == "awaiting_payment")).scalar_one()
    return re.search(r"(http\S+/payment/\S+)", body).group(1)


def checkout_of(live, checkout_id: str) -> dict:
    [found] = [s for s in live.stripe_state()["sessions"] if s["id"] == checkout_id]
    return found


def test_a_stranger_with_the_booking_id_sees_nothing_and_creates_nothing(live):
    _owner, booking_id = scheduled(live)

    answer = requests.get(f"{live.web}/payment/{booking_id}", allow_redirects=False, timeout=30)

    assert_neutral(answer, booking_id, f"/payment/{booking_id}")
    assert live.stripe_state()["sessions"] == []  # no Checkout Session (whose page shows email and price)
    assert live.booking(booking_id)["stripe_checkout_session_id"] is None


def test_the_client_who_booked_goes_from_calendly_straight_to_stripe(live):
    owner, booking_id = scheduled(live)

    back = owner.get(f"{live.web}/payment/calendly-return", params={"utm_content": booking_id}, timeout=30,
                     allow_redirects=False)
    pay = owner.get(f"{live.web}{back.headers['location']}", allow_redirects=False, timeout=30)

    assert pay.status_code == 303 and pay.headers["location"].startswith(live.stripe)
    assert checkout_of(live, pay.headers["location"].rsplit("/", 1)[1])["customer_email"] == EMAIL


def test_the_emailed_link_works_without_signing_in_and_only_for_its_booking(live):
    _owner, booking_id = scheduled(live)
    link = emailed_link(live, booking_id)
    assert link.startswith(f"{live.web}/payment/{booking_id}?t=")

    answer = requests.get(link, allow_redirects=False, timeout=30)

    assert answer.status_code == 303 and answer.headers["location"].startswith(live.stripe)
    _other_owner, other_id = scheduled(live)
    token = parse_qs(urlsplit(link).query)["t"][0]
    for borrowed in (f"{live.web}/payment/{other_id}?t={token}", f"{live.web}/payment/{other_id}?t={token[:-1]}0",
                     f"{live.web}/payment/{other_id}?t=", f"{live.web}/payment/{other_id}?t=%C3%BF"):
        assert_neutral(requests.get(borrowed, allow_redirects=False, timeout=30), other_id, f"/payment/{other_id}")


def test_another_signed_in_client_sees_nothing_of_the_booking(live):
    _owner, booking_id = scheduled(live)
    other = live.signed_in_client("someone.else@example.com", "Someone Else")

    answer = other.get(f"{live.web}/payment/{booking_id}", allow_redirects=False, timeout=30)

    assert_neutral(answer, booking_id, f"/payment/{booking_id}")
    assert "someone.else@example.com" in answer.text  # told whom they are signed in as
    assert live.stripe_state()["sessions"] == []


def test_stripes_redirects_show_the_booking_to_the_payer_and_nothing_to_others(live):
    owner, booking_id = scheduled(live)
    checkout_id = live.checkout(booking_id)
    session = checkout_of(live, checkout_id)
    success_url = session["success_url"].replace("{CHECKOUT_SESSION_ID}", checkout_id)
    cancel_url = session["cancel_url"]

    # Back from Stripe without paying: the payer (even in a browser not signed in) sees the booking.
    for browser in (owner, requests.Session()):
        page = browser.get(cancel_url, timeout=30)
        assert page.status_code == 200 and "You left the payment page" in page.text and EMAIL in page.text
    stranger = requests.get(f"{live.web}/payment/cancel", params={"booking": booking_id}, timeout=30)
    assert_neutral(stranger, booking_id, f"/payment/{booking_id}")

    assert live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay").status_code == 200
    wait_for(lambda: live.status(booking_id) == "CONFIRMED")
    for browser in (owner, requests.Session()):
        page = browser.get(success_url, timeout=30)
        assert page.status_code == 200 and "You're booked" in page.text and NAME in page.text
    stranger = requests.get(f"{live.web}/payment/success", params={"session_id": checkout_id}, timeout=30)
    assert_neutral(stranger, booking_id, f"/payment/success?session_id={checkout_id}")


def test_the_owner_signs_in_from_the_neutral_page_and_lands_on_the_payment(live):
    _owner, booking_id = scheduled(live)
    new_device = requests.Session()
    neutral = new_device.get(f"{live.web}/payment/{booking_id}", timeout=30)
    login_path = html.unescape(re.search(r'href="(/login\?[^"]+)"', neutral.text).group(1))

    form = new_device.get(f"{live.web}{login_path}", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    next_url = html.unescape(re.search(r'name="next" value="([^"]+)"', form).group(1))
    sent = new_device.post(f"{live.web}/login", data={"email": EMAIL, "csrf_token": csrf, "next": next_url},
                           timeout=30)
    link = html.unescape(re.search(r'id="magic-link" class="btn" href="([^"]+)"', sent.text).group(1))
    signed_in = new_device.get(link, allow_redirects=False, timeout=30)
    assert signed_in.headers["location"] == f"/payment/{booking_id}"

    pay = new_device.get(f"{live.web}/payment/{booking_id}", allow_redirects=False, timeout=30)
    assert pay.status_code == 303 and pay.headers["location"].startswith(live.stripe)
