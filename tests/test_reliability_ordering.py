"""Webhooks in every order they can arrive in end where the in-order delivery would.

At the providers things happen in one order: the slot is booked in Calendly (invitee.created),
the client pays (checkout.session.completed), and later cancels (invitee.canceled). The client's
payment page comes between the booking and the payment — and if invitee.created has not arrived
by then, the page asks Calendly's API (same dedupe key as the webhook). Our endpoints may receive
the three webhooks in any order. What "the same as in order" means here:

- booked, paid, canceled (3 days ahead, full refund by policy) in all 6 arrival orders: CANCELED,
  one payment of 49.00, refunded in full, one refund at Stripe. If the cancellation is processed
  before the payment, the payment is refunded in full as a late payment (rule "late_payment")
  rather than by policy — the same money here.
- inside the partial-refund window the two differ on purpose: paid then canceled refunds by
  policy (50%); a payment processed after its booking was canceled is refunded in full (the
  client is never charged for a booking that was no longer active when the payment landed).
- booked then canceled without paying, in both orders (and with the payment page visited in
  between): CANCELED, nothing payable, no money.
- a reschedule (invitee.canceled with rescheduled=true + invitee.created with old_invitee) in
  either order and duplicated: the same booking at the new time, one payment, no refund.

The events are real ones recorded by the stand-ins with delivery off, then delivered (signed
again) by the test in the order under test.
"""
from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from sqlalchemy import update

from core.db import session_scope
from core.models import SessionType
from core.services.reconcile import reconcile
from tests.reliability_helpers import (
    calendly_envelope, checkout_via_page, deliver, delivery, paid_then_quiet, payment_page, rows_per_key, snapshot, stand_in_refunds, stand_in_sessions,
    stripe_event,
)
from tests.webhook_helpers import future_slot, payments, refunds, settle

PAID_ORDERS = list(itertools.permutations(["created", "completed", "canceled"]))


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Arrivals:
    """Delivers recorded events once each, remembering what has arrived and how it was answered."""

    def __init__(self, live):
        self.live, self.events, self.answers = live, {}, []

    def add(self, name: str, provider: str, body: dict) -> None:
        self.events[name] = (provider, body)

    def arrive(self, name: str) -> None:
        provider, body = self.events[name]
        [answer] = deliver(self.live, provider, body, times=1, concurrent=False)
        self.answers.append((name, answer))


def _scheduled_with_delivery_off(live, start: str):
    delivery(live, calendly="off", stripe="off")
    booking_id, url = live.start_booking(live.signed_in_client())
    answer = live.pick_slot(url, start)
    arrivals = Arrivals(live)
    arrivals.add("created", "calendly", calendly_envelope(live, "invitee.created", answer["invitee"]))
    return booking_id, answer, arrivals


def _booked_paid_canceled(live, order, start: str):
    """Book, visit the payment page, pay, cancel — webhooks arriving in `order`."""
    booking_id, answer, arrivals = _scheduled_with_delivery_off(live, start)
    if order[0] == "created":
        arrivals.arrive("created")
    checkout_id = checkout_via_page(live, booking_id)  # asks Calendly if invitee.created is late
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay")
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    arrivals.add("completed", "stripe", stripe_event(live, "checkout.session.completed", id=checkout_id))
    arrivals.add("canceled", "calendly", calendly_envelope(live, "invitee.canceled", answer["invitee"]))
    for name in order[1:] if order[0] == "created" else order:
        arrivals.arrive(name)
    settle(live)
    return booking_id, answer, checkout_id, arrivals


# ---------------------------------------------------------------- booked, paid, canceled
@pytest.mark.parametrize("order", PAID_ORDERS, ids="-".join)
def test_booked_paid_and_canceled_in_any_arrival_order_is_canceled_and_refunded_in_full(live, order):
    start = future_slot(days=3, hour=10)
    booking_id, answer, checkout_id, arrivals = _booked_paid_canceled(live, order, start)

    assert all(status == 200 for _name, (status, _outcome) in arrivals.answers), arrivals.answers
    data = live.booking(booking_id)
    assert data["status"] == "CANCELED"
    assert (data["paid_cents"], data["refunded_cents"], data["payment_status"]) == (4900, 4900, "refunded")
    assert data["calendly_invitee_uri"] == answer["invitee"] and _when(data["start_time"]) == _when(start)
    [payment] = payments(live.engine, booking_id)
    [refund] = refunds(live.engine, booking_id)
    paid_first = order.index("completed") < order.index("canceled")
    assert (refund.amount_cents, refund.status) == (4900, "succeeded")
    assert refund.rule == ("policy" if paid_first else "late_payment")
    [at_stripe] = stand_in_refunds(live, payment.stripe_payment_intent_id)
    assert (at_stripe["id"], at_stripe["amount"]) == (refund.stripe_refund_id, 4900)
    assert [s["id"] for s in stand_in_sessions(live, booking_id)] == [checkout_id]
    causes = [cause for cause, _f, _t in snapshot(live.engine, booking_id)["history"]]
    assert causes.count("invitee_created") == 1 and causes.count("canceled") == 1
    assert causes.count("payment_received") == 1 and causes.count("refund_requested") == 1
    assert causes.count("payment_confirmed") == (1 if paid_first else 0)
    # Calendly canceled its own event; nothing of ours asks it again.
    assert not [e for e in snapshot(live.engine, booking_id)["outbox"] if e[0] == "calendly_cancel"]
    for name, (provider, body) in arrivals.events.items():
        key = (f"stripe:{body['id']}" if provider == "stripe"
               else f"calendly:{body['event']}:{body['payload']['uri']}")
        assert rows_per_key(live.engine, key) == 1, name


@pytest.mark.parametrize("order", [("completed", "canceled"), ("canceled", "completed")], ids="-".join)
def test_inside_the_partial_window_paid_then_canceled_follows_the_policy_else_refunds_all(live, order):
    with session_scope(live.engine) as session:  # 10 days' notice for a full refund: 3 days is partial
        session.execute(update(SessionType).where(SessionType.id == live.session_type_ids[0])
                        .values(refund_full_hours=240, refund_partial_percent=50))

    booking_id, _answer, _checkout, _arrivals = _booked_paid_canceled(
        live, ("created", *order), future_slot(days=3, hour=10))

    data = live.booking(booking_id)
    [refund] = refunds(live.engine, booking_id)
    assert data["status"] == "CANCELED" and refund.status == "succeeded"
    if order[0] == "completed":  # in order: the policy's half
        assert (refund.amount_cents, refund.rule, data["payment_status"]) == (2450, "policy", "partially_refunded")
    else:  # the payment landed on a canceled booking: all of it back
        assert (refund.amount_cents, refund.rule, data["payment_status"]) == (4900, "late_payment", "refunded")
    assert [r["amount"] for r in stand_in_refunds(live, data["stripe_payment_intent_id"])] == [refund.amount_cents]


# ---------------------------------------------------------------- booked and canceled, never paid
@pytest.mark.parametrize("order", [("created", "canceled"), ("canceled", "created"),
                                   ("canceled", "page", "created")], ids="-".join)
def test_booked_and_canceled_before_paying_in_any_order_is_canceled_and_not_payable(live, order):
    start = future_slot(days=2, hour=14)
    booking_id, answer, arrivals = _scheduled_with_delivery_off(live, start)
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {"reason": "Wrong day"})
    arrivals.add("canceled", "calendly", calendly_envelope(live, "invitee.canceled", answer["invitee"]))

    for name in order:
        if name == "page":  # the client opens the payment page before invitee.created arrives
            page = payment_page(live, booking_id)
            assert page.status_code == 200, (page.status_code, page.headers.get("location"))
        else:
            arrivals.arrive(name)
    settle(live)

    assert [status for _name, (status, _outcome) in arrivals.answers] == [200, 200]
    data = live.booking(booking_id)
    assert data["status"] == "CANCELED", data["status"]
    assert data["calendly_invitee_uri"] == answer["invitee"] and _when(data["start_time"]) == _when(start)
    assert data["cancel_reason"] == "Wrong day"
    assert (data["paid_cents"], data["refunded_cents"]) == (0, 0)
    page = payment_page(live, booking_id)
    assert page.status_code == 200 and "location" not in page.headers  # nothing to pay any more
    assert stand_in_sessions(live, booking_id) == []
    causes = [cause for cause, _f, _t in snapshot(live.engine, booking_id)["history"]]
    assert causes.count("canceled") == 1
    assert not [e for e in snapshot(live.engine, booking_id)["outbox"] if e[0] == "calendly_cancel"]
    before = snapshot(live.engine, booking_id)
    reconcile(live.engine)
    settle(live)
    assert snapshot(live.engine, booking_id) == before


# ---------------------------------------------------------------- reschedules of a paid booking
@pytest.mark.parametrize("sequence", [
    ("cancel", "create"), ("create", "cancel"),
    ("cancel", "create", "cancel", "create"), ("create", "create", "cancel", "cancel"),
], ids="-".join)
def test_a_reschedule_in_either_order_and_duplicated_moves_the_same_paid_booking(live, sequence):
    booking_id, url = live.start_booking(live.signed_in_client())
    answer = live.pick_slot(url, future_slot(days=3, hour=10))
    checkout_id = live.pay(booking_id)
    settle(live)
    intent = live.booking(booking_id)["stripe_payment_intent_id"]
    delivery(live, calendly="off", stripe="off")
    new_start = future_slot(days=5, hour=13)
    moved = live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/reschedule",
                                  {"start_time": new_start}).json()
    old_half = calendly_envelope(live, "invitee.canceled", answer["invitee"])
    new_half = calendly_envelope(live, "invitee.created", moved["invitee"])
    assert old_half["payload"]["rescheduled"] and new_half["payload"]["old_invitee"] == answer["invitee"]

    outcomes = [deliver(live, "calendly", old_half if name == "cancel" else new_half, times=1,
                        concurrent=False)[0] for name in sequence]
    settle(live)

    first_seen = {name: sequence.index(name) for name in set(sequence)}
    assert outcomes == [(200, "processed" if first_seen[name] == i else "duplicate")
                        for i, name in enumerate(sequence)]
    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid"
    assert data["id"] == booking_id and data["stripe_checkout_session_id"] == checkout_id
    assert data["calendly_invitee_uri"] == moved["invitee"] and data["calendly_event_uri"] == moved["event"]
    assert _when(data["start_time"]) == _when(new_start)
    assert len(payments(live.engine, booking_id)) == 1
    assert refunds(live.engine, booking_id) == [] and stand_in_refunds(live, intent) == []
    snap = snapshot(live.engine, booking_id)
    causes = [cause for cause, _f, _t in snap["history"]]
    assert causes.count("rescheduled") == 1 and causes.count("reschedule_old_invitee_canceled") == 1
    assert "canceled" not in causes
    assert not [e for e in snap["outbox"] if e[0] in ("calendly_cancel", "stripe_refund")]
    assert sum(":booking_rescheduled:" in key for key in snap["notifications"]) == 1


@pytest.mark.parametrize("order", list(itertools.permutations(["old_canceled", "new_created", "new_canceled"])),
                         ids="-".join)
def test_a_rescheduled_booking_canceled_at_its_new_time_in_any_arrival_order_is_refunded(live, order):
    """Rescheduled, then the new slot canceled: CANCELED and refunded by policy however the
    three deliveries are ordered (the new invitee's cancellation may come before its creation)."""
    booking_id, answer, intent = paid_then_quiet(live, future_slot(days=3, hour=10))
    moved = live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/reschedule",
                                  {"start_time": future_slot(days=5, hour=13)}).json()
    live.calendly_sandbox("POST", f"/invitees/{moved['invitee_uuid']}/cancel", {"reason": "Cannot make it"})
    envelopes = {"old_canceled": calendly_envelope(live, "invitee.canceled", answer["invitee"]),
                 "new_created": calendly_envelope(live, "invitee.created", moved["invitee"]),
                 "new_canceled": calendly_envelope(live, "invitee.canceled", moved["invitee"])}

    answers = [deliver(live, "calendly", envelopes[name], times=1, concurrent=False)[0] for name in order]
    settle(live)

    assert [status for status, _outcome in answers] == [200, 200, 200]
    data = live.booking(booking_id)
    assert data["status"] == "CANCELED" and data["cancel_reason"] == "Cannot make it"
    assert data["calendly_invitee_uri"] == moved["invitee"]
    assert (data["paid_cents"], data["refunded_cents"], data["payment_status"]) == (4900, 4900, "refunded")
    [refund] = refunds(live.engine, booking_id)
    assert (refund.amount_cents, refund.rule, refund.status) == (4900, "policy", "succeeded")
    assert [r["amount"] for r in stand_in_refunds(live, intent)] == [4900]
    causes = [cause for cause, _f, _t in snapshot(live.engine, booking_id)["history"]]
    assert causes.count("rescheduled") == 1 and causes.count("canceled") == 1
