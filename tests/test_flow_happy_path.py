"""The seed's flow end to end over real HTTP, against the sandbox stand-ins."""
from core.db import session_scope
from core.models import BookingHistory, Notification, OutboxEntry
from sqlalchemy import select

from tests.webhook_helpers import settle


def test_profile_book_pay_confirms_the_booking_and_notifies(live):
    browser = live.signed_in_client("eve@example.com", "Eve Example")
    profile = browser.get(f"{live.web}/profile/{live.builder_id}")
    assert profile.status_code == 200
    assert "Discovery call" in profile.text and "$49.00" in profile.text
    assert "Legacy office hours" in profile.text and "Not bookable" in profile.text
    assert "Cancel at least 24 h before the start for a full refund; later: 50% back" in profile.text

    booking_id, calendly_url = live.start_booking(browser)
    assert live.status(booking_id) == "PENDING_SCHEDULING"
    assert "email=eve%40example.com" in calendly_url and f"utm_content={booking_id}" in calendly_url

    live.pick_slot(calendly_url)
    assert live.status(booking_id) == "PENDING_PAYMENT"

    checkout_id = live.pay(booking_id)
    success = browser.get(f"{live.web}/payment/success?session_id={checkout_id}")
    assert success.status_code == 200 and "You're booked" in success.text

    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid"
    assert data["paid_cents"] == 4900 and data["currency"] == "USD"
    assert data["stripe_checkout_session_id"] == checkout_id and data["stripe_payment_intent_id"].startswith("pi_")
    session = [s for s in live.stripe_state()["sessions"] if s["id"] == checkout_id][0]
    assert session["metadata"]["booking_id"] == booking_id and session["client_reference_id"] == booking_id
    assert session["amount_total"] == 4900

    settle(live)  # our drain and the web service's own after-request drain, both finished
    with session_scope(live.engine, read_only=True) as db:
        causes = [h.cause for h in db.execute(select(BookingHistory).where(BookingHistory.booking_id == booking_id)
                                              .order_by(BookingHistory.id)).scalars()]
        kinds = {n.kind for n in db.execute(select(Notification).where(Notification.booking_id == booking_id)).scalars()}
        pending = db.execute(select(OutboxEntry).where(OutboxEntry.status != "done")).scalars().all()
    assert causes[:2] == ["booking_started", "invitee_created"] and "payment_confirmed" in causes
    assert {"awaiting_payment", "booking_confirmed", "builder_new_booking"} <= kinds
    assert pending == []


def test_payment_page_asks_calendly_when_the_invitee_webhook_is_late(live):
    assert live.calendly_sandbox("POST", "/config", {"webhook_delivery": "off"}).status_code == 200
    browser = live.signed_in_client()
    booking_id, calendly_url = live.start_booking(browser)
    live.pick_slot(calendly_url)
    assert live.status(booking_id) == "PENDING_SCHEDULING"  # no webhook came

    first = browser.get(f"{live.web}/payment/{booking_id}", allow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"/payment/{booking_id}"
    assert live.status(booking_id) == "PENDING_PAYMENT"  # confirmed through Calendly's API
    second = browser.get(f"{live.web}/payment/{booking_id}", allow_redirects=False)
    assert second.status_code == 303 and "/pay/cs_" in second.headers["location"]


def test_payment_page_waits_while_calendly_knows_nothing(live):
    browser = live.signed_in_client()
    booking_id, _calendly_url = live.start_booking(browser)  # no slot picked yet
    page = browser.get(f"{live.web}/payment/{booking_id}", allow_redirects=False)
    assert page.status_code == 200
    assert 'http-equiv="refresh"' in page.text and "Confirming your time" in page.text
    assert live.status(booking_id) == "PENDING_SCHEDULING"
