"""A client never chooses what they pay for: a Calendly slot attaches to a booking only when it is
the booking's slot (its event type, hosted by its builder), and a payment confirms a booking only
when it is the booking's own Checkout Session for exactly what the booking owes.

The attacks are played against the running system: a client starts a cheap booking, then books
another session type's (or another builder's) single-use link carrying the cheap booking's id in
`utm_content`; the genuinely signed invitee.created must attach nothing. Payments that name a
booking but are not what it owes are refunded in full and never enter its ledger.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import requests
import stripe
from sqlalchemy import select

from core.calendly import CalendlyClient
from core.db import session_scope
from core.models import Booking, BookingHistory, OutboxEntry, WebhookEvent, utcnow
from core.reporting import needs_attention
from core.services import booking_service, catalog, reconcile
from core.states import BookingStatus as S
from tests import factories
from tests.live_system import BUILDER_TOKEN
from tests.test_webhooks_calendly import legacy_envelope
from tests.webhook_helpers import (
    future_slot, history_causes, outbox_entries, payments, post_stripe, refunds, settle, stripe_event,
    webhook_events,
)

OTHER_BUILDER_TOKEN = "sandbox-grace"  # another builder of ours
STRANGER_TOKEN = "sandbox-mallory"     # a Calendly user who is not a builder of ours


def _add_other_builder(live) -> tuple[int, str]:
    """Grace, a second builder of ours with one priced session type: (builder id, event type URI)."""
    client = CalendlyClient(OTHER_BUILDER_TOKEN, live.calendly)
    user = client.get_current_user()
    event_type = next(et for et in client.list_event_types(user["uri"]) if et["active"])
    with session_scope(live.engine) as session:
        builder = catalog.add_builder(session, name="Grace Hopper", email="grace@example.com",
                                      calendly_token=OTHER_BUILDER_TOKEN, calendly_user=user)
        catalog.set_price(session, builder_id=builder.id, event_type=event_type, amount_cents=39900,
                          currency="USD")
        return builder.id, event_type["uri"]


def _book_link(live, token: str, event_type_uri: str, booking_ref: str, start: str) -> dict:
    """Book a fresh single-use link of `event_type_uri` with a forged utm_content."""
    link = CalendlyClient(token, live.calendly).create_scheduling_link(event_type_uri).rsplit("/", 1)[1]
    answer = live.calendly_sandbox("POST", f"/links/{link}/book", {
        "name": "Mallory", "email": "client@example.com", "utm_content": booking_ref, "start_time": start})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _event_status(live, event_uri: str) -> str:
    return next(e["status"] for e in live.calendly_state()["events"] if e["uri"] == event_uri)


def _assert_untouched(live, booking_id: str) -> None:
    data = live.booking(booking_id)
    assert data["status"] == "PENDING_SCHEDULING"
    assert data["calendly_event_uri"] is None and data["calendly_invitee_uri"] is None
    assert data["paid_cents"] == 0
    # Nothing to pay at the wrong price: the client's own payment link still waits for its slot.
    waiting = requests.get(live.payment_url(booking_id), allow_redirects=False, timeout=30)
    assert waiting.status_code == 200 and "stripe" not in waiting.headers.get("location", "")


def _stray_row(live, booking_id: str) -> WebhookEvent:
    [row] = [e for e in webhook_events(live.engine, "calendly")
             if e.event_type == "invitee.created" and e.booking_id == booking_id]
    return row


# ---------------------------------------------------------------- Calendly: forged utm_content
def test_another_session_types_link_with_a_forged_booking_id_attaches_nothing(live):
    browser = live.signed_in_client()
    cheap_id, _cheap_link = live.start_booking(browser, 0)          # $49
    _dear_id, dear_link = live.start_booking(browser, 2)            # $249: its single-use link
    dear_link = dear_link.replace(f"utm_content={_dear_id}", f"utm_content={cheap_id}")

    booked = live.pick_slot(dear_link, future_slot(days=3, hour=10))
    settle(live)

    _assert_untouched(live, cheap_id)
    row = _stray_row(live, cheap_id)
    assert row.outcome == "stray" and "event type" in row.error and "canceled" in row.error
    assert history_causes(live.engine, cheap_id).count("stray_slot_refused") == 1
    # The stray slot is released with the token of the builder who hosts it.
    [cancel] = outbox_entries(live.engine, cheap_id, "calendly_cancel")
    assert cancel.status == "done" and cancel.payload["builder_id"] == live.builder_id
    assert _event_status(live, booked["event"]) == "canceled"
    # Calendly's invitee.canceled for the released slot changes nothing either.
    assert live.status(cheap_id) == "PENDING_SCHEDULING"
    # The client is told, instead of waiting on a page that refreshes forever.
    told = browser.get(f"{live.web}/payment/{cheap_id}", allow_redirects=False, timeout=30)
    assert told.status_code == 200 and "That time was not for this session" in told.text
    assert 'http-equiv="refresh"' not in told.text and f'href="/profile/{live.builder_id}"' in told.text
    # No checkout for the cheap booking at the dear slot's time.
    answer = live.stripe_state()
    assert not [s for s in answer.get("checkout_sessions", answer.get("sessions", []))
                if (s.get("metadata") or {}).get("booking_id") == cheap_id]


def test_another_builders_link_with_a_forged_booking_id_is_released_with_that_builders_token(live):
    grace_id, grace_type = _add_other_builder(live)
    cheap_id, _ = live.start_booking(live.signed_in_client(), 0)

    booked = _book_link(live, OTHER_BUILDER_TOKEN, grace_type, cheap_id, future_slot(days=4, hour=11))
    settle(live)

    _assert_untouched(live, cheap_id)
    row = _stray_row(live, cheap_id)
    assert row.outcome == "stray"
    [cancel] = outbox_entries(live.engine, cheap_id, "calendly_cancel")
    assert (cancel.status, cancel.payload["builder_id"]) == ("done", grace_id)
    assert _event_status(live, booked["event"]) == "canceled"
    with session_scope(live.engine, read_only=True) as session:
        [stray] = session.execute(select(BookingHistory).where(
            BookingHistory.booking_id == cheap_id, BookingHistory.cause == "stray_slot_refused")).scalars()
        assert stray.details["owner_builder_id"] == grace_id
        assert stray.details["event"] == booked["event"]


def test_a_slot_no_builder_of_ours_hosts_is_flagged_for_an_admin(live):
    stranger = CalendlyClient(STRANGER_TOKEN, live.calendly)
    event_type = next(et for et in stranger.list_event_types(stranger.get_current_user()["uri"]) if et["active"])
    cheap_id, _ = live.start_booking(live.signed_in_client(), 0)

    booked = _book_link(live, STRANGER_TOKEN, event_type["uri"], cheap_id, future_slot(days=5, hour=9))
    settle(live)

    _assert_untouched(live, cheap_id)
    [cancel] = outbox_entries(live.engine, cheap_id, "calendly_cancel")
    assert cancel.status == "failed" and "no builder of ours hosts" in cancel.last_error
    assert _event_status(live, booked["event"]) == "active"  # nobody of ours may cancel it
    items = _attention(live)
    assert [(i.booking_id, i.what.split()[1]) for i in items] == [(cheap_id, "Calendly")]


def _attention(live):
    from core.auth import Viewer
    with session_scope(live.engine, read_only=True) as session:
        return needs_attention(session, Viewer(user_id=1, email="admin@example.test", role="admin"))


def test_the_older_payload_shape_is_checked_against_the_event_read_from_calendly(live):
    """The older shape names hosts by display name only: the event is read from the API first."""
    cheap_id, _ = live.start_booking(live.signed_in_client("legacy@example.com"), 0)
    _dear_id, dear_link = live.start_booking(live.signed_in_client("other@example.com"), 2)
    live.calendly_sandbox("POST", "/config", {"webhook_delivery": "off"})
    booked = live.pick_slot(dear_link, future_slot(days=3, hour=14))
    live.calendly_sandbox("POST", "/config", {"webhook_delivery": "sync"})
    start = utcnow() + timedelta(days=3)
    envelope = legacy_envelope("invitee.created", booking_ref=cheap_id, event_uuid=booked["event_uuid"],
                               invitee_uuid=booked["invitee_uuid"], start=start)
    envelope["payload"]["event_type"] = {"uuid": live.event_type_ids[2], "name": "Deep dive"}

    from tests.webhook_helpers import post_calendly
    answer = post_calendly(live.web, envelope, live.settings.calendly_webhook_signing_key)
    settle(live)

    assert answer.status_code == 200 and answer.json()["outcome"] == "stray"
    _assert_untouched(live, cheap_id)
    assert _event_status(live, booked["event"]) == "canceled"


def test_the_honest_flow_still_confirms_at_the_booked_price(live):
    booking_id = live.book(type_index=1)
    live.pay(booking_id)
    settle(live)

    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["paid_cents"] == 14900
    assert [r.outcome for r in webhook_events(live.engine, "calendly")] == ["processed"]
    assert "stray_slot_refused" not in history_causes(live.engine, booking_id)


# ---------------------------------------------------------------- Calendly: cancellation answered 403
def test_a_403_on_cancellation_is_done_only_when_the_event_reads_back_canceled(live):
    grace_id, grace_type = _add_other_builder(live)
    browser = live.signed_in_client()
    # A pending booking of Ada's that (before this check existed) was attached to Grace's slot.
    theirs = _book_link(live, OTHER_BUILDER_TOKEN, grace_type, "bk_not_ours", future_slot(days=6, hour=10))
    booking_id, _ = live.start_booking(browser, 0)
    with session_scope(live.engine) as session:
        booking = session.get(Booking, booking_id)
        booking.status, booking.calendly_event_uri = S.PENDING_PAYMENT, theirs["event"]
        booking.calendly_invitee_uri = theirs["invitee"]
        booking.hold_expires_at = utcnow() + timedelta(minutes=30)
        booking_service.cancel_booking_locked(session, booking, actor="admin:test", reason="test")
    settle(live)

    [cancel] = outbox_entries(live.engine, booking_id, "calendly_cancel")
    assert cancel.status == "failed" and "refused the cancellation" in cancel.last_error
    assert "still active" in cancel.last_error or "not theirs" in cancel.last_error
    assert _event_status(live, theirs["event"]) == "active"

    # An event that really is canceled already: the 403 then means done.
    own_id = live.book()
    with session_scope(live.engine, read_only=True) as session:
        event_uri = session.get(Booking, own_id).calendly_event_uri
    CalendlyClient(BUILDER_TOKEN, live.calendly).cancel_scheduled_event(event_uri, "canceled elsewhere")
    with session_scope(live.engine) as session:
        own = session.get(Booking, own_id)
        booking_service._cancel_calendly_event(session, own, event_uri, "again")
    settle(live)
    [again] = outbox_entries(live.engine, own_id, "calendly_cancel")
    assert again.status == "done" and again.last_error is None


# ---------------------------------------------------------------- reconcile: the same binding
def _attach_dear_slot(live, status: S) -> tuple[str, dict]:
    """A booking of the $49 type holding a $249 slot, as one attached before the check existed."""
    booking_id, _ = live.start_booking(live.signed_in_client(), 0)
    _dear_id, dear_link = live.start_booking(live.signed_in_client("other@example.com"), 2)
    live.calendly_sandbox("POST", "/config", {"webhook_delivery": "off"})
    booked = live.pick_slot(dear_link, future_slot(days=3, hour=15))
    live.calendly_sandbox("POST", "/config", {"webhook_delivery": "sync"})
    with session_scope(live.engine) as session:
        booking = session.get(Booking, booking_id)
        booking.status = status
        booking.calendly_event_uri, booking.calendly_invitee_uri = booked["event"], booked["invitee"]
        booking.start_time = utcnow() + timedelta(days=3)
        booking.hold_expires_at = utcnow() + timedelta(minutes=30) if status == S.PENDING_PAYMENT else None
    return booking_id, booked


def test_reconcile_releases_an_unpaid_booking_holding_a_slot_that_is_not_its_own(live):
    booking_id, booked = _attach_dear_slot(live, S.PENDING_PAYMENT)

    counts = reconcile.reconcile_calendly(live.engine)
    settle(live)

    assert counts.get("held:mismatch:released") == 1, counts
    assert live.status(booking_id) == "EXPIRED"
    assert "slot_mismatch_found" in history_causes(live.engine, booking_id)
    assert _event_status(live, booked["event"]) == "canceled"


def test_reconcile_flags_a_paid_booking_holding_a_slot_that_is_not_its_own_once(live):
    booking_id, booked = _attach_dear_slot(live, S.CONFIRMED)

    first = reconcile.reconcile_calendly(live.engine)
    second = reconcile.reconcile_calendly(live.engine)

    assert first.get("held:mismatch:flagged") == second.get("held:mismatch:flagged") == 1
    assert live.status(booking_id) == "CONFIRMED"  # a paid booking: an admin decides
    assert history_causes(live.engine, booking_id).count("slot_mismatch_found") == 1
    assert _event_status(live, booked["event"]) == "active"
    assert [i.booking_id for i in _attention(live)] == [booking_id]


def test_reconcile_leaves_an_honest_held_booking_alone(live):
    booking_id = live.book()
    live.pay(booking_id)

    counts = reconcile.reconcile_calendly(live.engine)

    assert counts == {"held:unchanged": 1}
    assert live.status(booking_id) == "CONFIRMED"


# ---------------------------------------------------------------- Stripe: only the booking's payment
def test_a_checkout_session_made_outside_ours_for_1_jpy_confirms_nothing_and_is_refunded(live):
    booking_id = live.book()
    own_checkout = live.checkout(booking_id)
    client = stripe.StripeClient(live.settings.stripe_secret_key, base_addresses={"api": live.stripe})
    foreign = client.v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": f"{live.web}/", "cancel_url": f"{live.web}/",
        "line_items": [{"quantity": 1, "price_data": {"currency": "jpy", "unit_amount": 50,
                                                        "product_data": {"name": "cheap"}}}],
        "metadata": {"booking_id": booking_id}, "client_reference_id": booking_id})

    assert live.stripe_sandbox("POST", f"/checkout/{foreign.id}/pay").status_code == 200
    settle(live)

    data = live.booking(booking_id)
    assert data["status"] == "PENDING_PAYMENT" and data["paid_cents"] == 0
    assert payments(live.engine, booking_id) == [] and refunds(live.engine, booking_id) == []
    assert "payment_mismatch" in history_causes(live.engine, booking_id)
    [refund_entry] = outbox_entries(live.engine, booking_id, "stripe_refund_refused_payment")
    assert refund_entry.status == "done"
    intent = client.v1.checkout.sessions.retrieve(foreign.id).payment_intent
    assert [(r["payment_intent"], r["amount"]) for r in live.stripe_state()["refunds"]] == [(intent, 50)]
    # The booking's own checkout still pays it at its price.
    live.stripe_sandbox("POST", f"/checkout/{own_checkout}/pay")
    settle(live)
    assert live.booking(booking_id)["status"] == "CONFIRMED"
    assert live.booking(booking_id)["paid_cents"] == 4900


@pytest.mark.parametrize(("amount", "currency"), [(1, "jpy"), (0, "usd"), (4899, "usd"), (4900, "eur")])
def test_a_signed_payment_of_another_amount_or_currency_never_confirms(live, amount, currency):
    with session_scope(live.engine) as session:
        booking = factories.make_booking(session, S.PENDING_PAYMENT)
        checkout = factories.paid_checkout(booking, amount_cents=amount)
        booking_id = booking.id
    checkout["currency"] = currency
    event = stripe_event("checkout.session.completed", checkout)

    answer = post_stripe(live.web, event, live.settings.stripe_webhook_secret)

    assert answer.status_code == 200 and "refused" in answer.json()["detail"]
    assert live.status(booking_id) == "PENDING_PAYMENT"
    assert payments(live.engine, booking_id) == []
    assert history_causes(live.engine, booking_id).count("payment_mismatch") == 1
    with session_scope(live.engine, read_only=True) as session:
        kinds = list(session.execute(select(OutboxEntry.kind).where(OutboxEntry.booking_id == booking_id)).scalars())
    assert kinds == ["stripe_refund_refused_payment"]
    # Delivered again: still one refund decided.
    again = post_stripe(live.web, stripe_event("checkout.session.completed", checkout),
                        live.settings.stripe_webhook_secret)
    assert again.json()["outcome"] == "ignored"
    assert len(outbox_entries(live.engine, booking_id, "stripe_refund_refused_payment")) == 1


def test_the_late_invitee_lookup_applies_the_same_binding(live):
    """The payment page asks Calendly for an invitee whose webhook has not come; a slot it finds
    that carries the booking's id but is another session type's is refused the same way."""
    cheap_id, _ = live.start_booking(live.signed_in_client(), 0)
    live.calendly_sandbox("POST", "/config", {"webhook_delivery": "off"})
    booked = _book_link(live, BUILDER_TOKEN, live.slot(2)["event_type"], cheap_id, future_slot(days=2, hour=9))
    live.calendly_sandbox("POST", "/config", {"webhook_delivery": "sync"})

    outcome = reconcile.find_scheduled_invitee(live.engine, cheap_id)
    settle(live)

    assert outcome == "stray"
    _assert_untouched(live, cheap_id)
    assert _event_status(live, booked["event"]) == "canceled"


def test_the_payment_page_of_a_booking_whose_builder_has_no_calendly_token_waits_instead_of_failing(live):
    """The late-invitee lookup has no Calendly to ask (a builder added without a token): the page
    keeps waiting for the webhook instead of answering 500."""
    with session_scope(live.engine) as session:
        booking = factories.make_booking(session, S.PENDING_SCHEDULING)
        booking_id = booking.id
    assert reconcile.find_scheduled_invitee(live.engine, booking_id) == "not_connected"
    answer = requests.get(live.payment_url(booking_id), allow_redirects=False, timeout=30)
    assert answer.status_code == 200 and "Calendly" in answer.text
