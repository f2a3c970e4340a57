"""My bookings: a signed-in client's bookings, their receipts, and cancelling one with the refund
stated before they confirm. Real pages (TestClient on the app) on a real database; the refund and
Calendly's cancellation are checked in the ledger and the outbox they go out from."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import Booking, OutboxEntry, Refund, utcnow
from core.states import OutboxKind, RefundRule
from tests import factories as f
from tests.my_bookings_helpers import (  # noqa: F401  (web: the fixture)
    HTML, browser, csrf, paid_booking, sign_in, text_of, unpaid_booking, web,
)

EMAIL, OTHER = "casey@example.com", "mallory@example.com"


def status_of(engine, booking_id: str) -> str:
    with session_scope(engine, read_only=True) as session:
        return session.get(Booking, booking_id).status


def refunds_of(engine, booking_id: str) -> list[tuple[int, str]]:
    with session_scope(engine, read_only=True) as session:
        return [(r.amount_cents, r.rule) for r in session.execute(
            select(Refund).where(Refund.booking_id == booking_id).order_by(Refund.id)).scalars()]


def outbox_kinds(engine, booking_id: str) -> list[str]:
    with session_scope(engine, read_only=True) as session:
        return sorted(e.kind for e in session.execute(
            select(OutboxEntry).where(OutboxEntry.booking_id == booking_id)).scalars())


def preview(client, booking_id: str) -> tuple[str, str, str]:
    """The confirmation page's text, its CSRF token and the refund it states (the form's amount)."""
    page = client.get(f"/my-bookings/{booking_id}/cancel", headers=HTML)
    assert page.status_code == 200, page.text
    import re
    shown = re.search(r'name="expected_refund_cents" value="(\d+)"', page.text).group(1)
    return text_of(page.text), csrf(page.text), shown


def confirm(client, booking_id: str, token: str, shown: str, **extra):
    return client.post(f"/my-bookings/{booking_id}/cancel", headers=HTML,
                       data={"csrf_token": token, "expected_refund_cents": shown, **extra})


# ---------------------------------------------------------------- signing in, the header
@pytest.mark.parametrize("path", ["/my-bookings", "/my-bookings/bk_00000000000000000000/receipt",
                                  "/my-bookings/bk_00000000000000000000/cancel"])
def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in_and_back(web, path):
    answer = browser(web).get(path, headers=HTML)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=" + path.replace("/", "%2F")


def test_every_page_offers_my_bookings_and_sign_out_when_signed_in(engine, web):
    client = sign_in(browser(web), EMAIL)
    for path in ("/", "/login", "/my-bookings", "/no-such-page", "/signed-out"):
        page = client.get(path, headers=HTML).text
        assert 'href="/my-bookings">My bookings</a>' in page, path
        assert 'action="/logout"' in page and ">Sign out</button>" in page, path


def test_signing_out_lands_on_a_page_that_says_so(engine, web):
    client = sign_in(browser(web), EMAIL)
    page = client.get("/my-bookings", headers=HTML).text

    out = client.post("/logout", headers=HTML, data={"csrf_token": csrf(page)})

    assert out.status_code == 303 and out.headers["location"] == "/signed-out"
    landed = client.get("/signed-out", headers=HTML).text
    assert "You are signed out" in landed and 'action="/logout"' not in landed and EMAIL not in landed
    assert client.get("/my-bookings", headers=HTML).status_code == 303  # back to signing in


# ---------------------------------------------------------------- the list
def test_upcoming_and_past_with_status_money_and_the_admins_reason(engine, web):
    now = utcnow()
    ahead = paid_booking(engine, EMAIL, start_time=now + timedelta(days=2), session_name="Code review",
                         calendly_reschedule_url="https://calendly.test/reschedulings/abc")
    unpaid = unpaid_booking(engine, EMAIL, start_time=now + timedelta(days=4))
    done = paid_booking(engine, EMAIL, status="COMPLETED", start_time=now - timedelta(days=9), refunds=(1500,),
                        session_name="Architecture review")
    canceled = unpaid_booking(engine, EMAIL, status="CANCELED", start_time=now - timedelta(days=1),
                              cancel_reason="Something came up")
    never_scheduled = unpaid_booking(engine, EMAIL, status="PENDING_SCHEDULING")
    theirs = paid_booking(engine, OTHER, start_time=now + timedelta(days=3), session_name="Secret project")
    client = sign_in(browser(web), EMAIL)

    answer = client.get("/my-bookings", headers=HTML)

    assert answer.status_code == 200
    page = text_of(answer.text)
    upcoming, past = page.split("Upcoming", 1)[1].split(" Past ", 1)
    assert upcoming.index(ahead) < upcoming.index(unpaid) and done not in upcoming
    assert "Confirmed and paid" in upcoming and "Waiting for your payment" in upcoming
    assert "Paid $49.00" in upcoming and "Reschedule" in upcoming and "Pay now" in upcoming
    assert 'href="https://calendly.test/reschedulings/abc"' in answer.text
    assert past.index(canceled) < past.index(done)  # latest first
    assert "Session done" in past and "$15.00 refunded: Admin: the call dropped for ten minutes" in past
    assert "Canceled" in past and "You were not charged" in past and "Something came up" in past
    assert never_scheduled not in page  # a "Book now" that never got a time is not a booking
    assert theirs not in page and "Secret project" not in page and OTHER not in page


def test_a_client_with_many_bookings_pages_through_them(engine, web):
    with session_scope(engine) as session:
        client_row = f.make_client(session, email=EMAIL)
        session_type = f.make_session_type(session)
        ids = [f.make_booking(session, "COMPLETED", client=client_row, session_type=session_type,
                              start_time=utcnow() - timedelta(days=n + 1)).id for n in range(45)]
    client = sign_in(browser(web), EMAIL)

    pages = [client.get(f"/my-bookings?page={n}", headers=HTML) for n in (1, 2, 3)]

    shown = [[i for i in ids if i in p.text] for p in pages]
    assert [len(s) for s in shown] == [20, 20, 5]
    assert shown[0] + shown[1] + shown[2] == ids  # newest first, each once
    assert 'href="/my-bookings?page=2">Older' in pages[0].text and "Older" not in text_of(pages[2].text)
    for odd in ("abc", "-1", "0", "99999999999999999999", "²"):
        assert client.get(f"/my-bookings?page={odd}", headers=HTML).status_code == 200, odd
    assert "No more bookings" in text_of(client.get("/my-bookings?page=400", headers=HTML).text)


# ---------------------------------------------------------------- receipts and privacy
def test_the_receipt_states_amount_currency_date_reference_and_refunds(engine, web):
    booking_id = paid_booking(engine, EMAIL, refunds=(1000,), invitee_timezone="Europe/Paris")
    with session_scope(engine, read_only=True) as session:
        payment = session.get(Booking, booking_id).payments[0]
        reference, paid_at = payment.stripe_payment_intent_id, payment.created_at
    client = sign_in(browser(web), EMAIL)

    answer = client.get(f"/my-bookings/{booking_id}/receipt", headers=HTML)

    assert answer.status_code == 200
    page = text_of(answer.text)
    from webhook_service.rendering import local_time
    for expected in ("Receipt", "$49.00 (USD)", f"Paid on {local_time(paid_at, 'Europe/Paris')}",
                     f"Payment reference {reference}", "$10.00 , refunded",
                     "Reason Admin: the call dropped for ten minutes", "you paid in the end $39.00", booking_id):
        assert expected.replace(" ,", ",") in page.replace(" ,", ","), expected


@pytest.mark.parametrize("path", ["receipt", "cancel", "canceled"])
def test_another_clients_booking_is_not_found_and_says_nothing_about_it(engine, web, path):
    theirs = paid_booking(engine, OTHER, session_name="Secret project")
    client = sign_in(browser(web), EMAIL)

    for booking_id in (theirs, "bk_00000000000000000000", "not-an-id", "bk_" + "f" * 500):
        answer = client.get(f"/my-bookings/{booking_id}/{path}", headers=HTML)
        assert answer.status_code == 404, (booking_id, answer.status_code)
        assert "There is no booking of yours at this address" in answer.text
        for secret in (OTHER, "Secret project", "$49.00"):
            assert secret not in answer.text


def test_another_client_cannot_cancel_a_booking_by_its_id(engine, web):
    theirs = paid_booking(engine, OTHER)
    attacker = sign_in(browser(web), EMAIL)
    token = csrf(attacker.get("/my-bookings", headers=HTML).text)

    answer = confirm(attacker, theirs, token, "4900")

    assert answer.status_code == 404
    assert status_of(engine, theirs) == "CONFIRMED" and refunds_of(engine, theirs) == []
    assert outbox_kinds(engine, theirs) == []


# ---------------------------------------------------------------- cancelling
@pytest.mark.parametrize(("hours_ahead", "refund", "words"), [
    (72, 4900, "full refund"),
    (5, 2450, "50% refund"),
    (-1, 0, "no refund"),
])
def test_the_refund_shown_before_confirming_is_the_refund_issued(engine, web, hours_ahead, refund, words):
    booking_id = paid_booking(engine, EMAIL, start_time=utcnow() + timedelta(hours=hours_ahead))
    client = sign_in(browser(web), EMAIL)

    page, token, shown = preview(client, booking_id)
    assert int(shown) == refund
    assert f"If you cancel now, you get ${refund / 100:.2f} back" in page and words in page
    answer = confirm(client, booking_id, token, shown, reason="Found someone closer")

    assert answer.status_code == 303 and answer.headers["location"] == f"/my-bookings/{booking_id}/canceled"
    assert status_of(engine, booking_id) == "CANCELED"
    assert refunds_of(engine, booking_id) == ([(refund, RefundRule.POLICY)] if refund else [])
    # Like every cancellation: Calendly's event is canceled from the outbox, and the refund goes to Stripe.
    kinds = outbox_kinds(engine, booking_id)
    assert OutboxKind.CALENDLY_CANCEL in kinds
    assert (OutboxKind.STRIPE_REFUND in kinds) == bool(refund)
    outcome = text_of(client.get(answer.headers["location"], headers=HTML).text)
    if refund:
        assert f"${refund / 100:.2f} is being refunded to the card you paid with" in outcome
        assert "5–10 business days" in outcome
    else:
        assert "No refund is due under the cancellation policy" in outcome
    assert "Found someone closer" in outcome


def test_an_unpaid_booking_says_no_charge_not_refund_policy(engine, web):
    booking_id = unpaid_booking(engine, EMAIL, start_time=utcnow() + timedelta(hours=2))
    client = sign_in(browser(web), EMAIL)

    page, token, shown = preview(client, booking_id)
    assert "No charge: you have not paid for this booking" in page
    assert "policy" not in page.lower() and "refund $" not in page.lower() and shown == "0"
    answer = confirm(client, booking_id, token, shown)

    assert answer.status_code == 303 and status_of(engine, booking_id) == "CANCELED"
    assert refunds_of(engine, booking_id) == []
    assert OutboxKind.CALENDLY_CANCEL in outbox_kinds(engine, booking_id)  # the held slot is freed
    outcome = text_of(client.get(answer.headers["location"], headers=HTML).text)
    assert "No charge" in outcome and "policy" not in outcome.lower()


def test_canceling_twice_does_it_once_and_says_so(engine, web):
    booking_id = paid_booking(engine, EMAIL)
    client = sign_in(browser(web), EMAIL)
    _page, token, shown = preview(client, booking_id)
    assert confirm(client, booking_id, token, shown).status_code == 303
    entries = outbox_kinds(engine, booking_id)

    again = confirm(client, booking_id, token, shown)

    assert again.status_code == 303 and again.headers["location"].endswith("/canceled?already=1")
    assert refunds_of(engine, booking_id) == [(4900, RefundRule.POLICY)]  # one refund, not two
    assert outbox_kinds(engine, booking_id) == entries
    page = text_of(client.get(again.headers["location"], headers=HTML).text)
    assert "already canceled" in page and "$49.00 is being refunded" in page
    # The confirmation page of a canceled booking leads to its outcome instead of offering to cancel.
    assert client.get(f"/my-bookings/{booking_id}/cancel", headers=HTML).headers["location"] == \
        f"/my-bookings/{booking_id}/canceled"


@pytest.mark.parametrize("token", [None, "", "wrong", "é" * 64])
def test_cancelling_needs_the_forms_csrf_token(engine, web, token):
    booking_id = paid_booking(engine, EMAIL)
    client = sign_in(browser(web), EMAIL)
    data = {"expected_refund_cents": "4900"} | ({} if token is None else {"csrf_token": token})

    answer = client.post(f"/my-bookings/{booking_id}/cancel", headers=HTML, data=data)

    assert answer.status_code == 403
    assert status_of(engine, booking_id) == "CONFIRMED" and refunds_of(engine, booking_id) == []


def test_a_token_from_another_session_does_not_cancel(engine, web):
    booking_id = paid_booking(engine, EMAIL)
    owner = sign_in(browser(web), EMAIL)
    other_token = csrf(sign_in(browser(web), OTHER).get("/my-bookings", headers=HTML).text)

    assert confirm(owner, booking_id, other_token, "4900").status_code == 403
    assert status_of(engine, booking_id) == "CONFIRMED"


def test_a_refund_that_changed_since_the_page_was_shown_is_not_issued_silently(engine, web):
    booking_id = paid_booking(engine, EMAIL, start_time=utcnow() + timedelta(hours=5))  # 50% now
    client = sign_in(browser(web), EMAIL)
    _page, token, _shown = preview(client, booking_id)

    answer = confirm(client, booking_id, token, "4900")  # the full refund it showed a day ago

    assert answer.status_code == 409
    assert status_of(engine, booking_id) == "CONFIRMED" and refunds_of(engine, booking_id) == []
    page = text_of(answer.text)
    assert "The refund has changed since you opened this page" in page and "you get $24.50 back" in page
    for bad in ("", "abc", "-1", "1e3", "9" * 40):
        answer = confirm(client, booking_id, token, bad)
        assert answer.status_code in (409, 422), bad
    assert status_of(engine, booking_id) == "CONFIRMED"


@pytest.mark.parametrize("status", ["COMPLETED", "EXPIRED"])
def test_a_booking_that_is_over_cannot_be_canceled_and_the_page_says_why(engine, web, status):
    booking_id = paid_booking(engine, EMAIL, status=status, start_time=utcnow() - timedelta(days=2))
    client = sign_in(browser(web), EMAIL)
    token = csrf(client.get("/my-bookings", headers=HTML).text)

    for answer in (client.get(f"/my-bookings/{booking_id}/cancel", headers=HTML),
                   confirm(client, booking_id, token, "0")):
        assert answer.status_code == 409
        assert "can no longer be canceled" in answer.text
    assert status_of(engine, booking_id) == status and refunds_of(engine, booking_id) == []


def test_the_booking_pages_cancel_button_leads_to_the_refund_preview_not_straight_to_calendly(engine, web):
    booking_id = paid_booking(engine, EMAIL, start_time=utcnow() + timedelta(hours=72),
                              calendly_cancel_url="https://calendly.test/cancellations/inv-1")
    client = sign_in(browser(web), EMAIL)

    page = client.get(f"/payment/{booking_id}", headers=HTML)
    assert page.status_code == 200, page.text
    assert f'href="/my-bookings/{booking_id}/cancel"' in page.text
    assert "calendly.test/cancellations" not in page.text  # the client sees the refund before anything is canceled
    assert "you see the refund the cancellation policy gives before you confirm" in text_of(page.text)
