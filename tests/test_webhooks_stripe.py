"""Stripe's webhooks, live: payments (card and delayed), expiry, payment after cancellation,
refunds and disputes made in Stripe's dashboard, duplicates and unhandled types.

Events come from the Stripe stand-in (the SDK's signatures, Stripe's shapes); a few are crafted
and signed with `stripe.WebhookSignature.generate_signature_header`.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import Booking, Payment
from tests.webhook_helpers import (
    future_slot, history_causes, outbox_entries, payments, post_stripe, refunds, settle,
    stripe_event, webhook_events,
)
from webhook_service import outbox_kick


@pytest.fixture
def no_kick(monkeypatch):
    monkeypatch.setattr(outbox_kick, "_drain", lambda engine: None)


def scheduled(live, start: str | None = None, type_index: int = 0, email: str = "client@example.com"):
    booking_id, url = live.start_booking(live.signed_in_client(email), type_index)
    return booking_id, live.pick_slot(url, start or future_slot())


def stripe_session(live, checkout_id: str) -> dict:
    return next(s for s in live.stripe_state()["sessions"] if s["id"] == checkout_id)


def calendly_event(live, event_uri: str) -> dict:
    return next(e for e in live.calendly_state()["events"] if e["uri"] == event_uri)


def stripe_rows(live, event_type: str):
    return [e for e in webhook_events(live.engine, "stripe") if e.event_type == event_type]


def events_of(live, kind: str) -> list[dict]:
    return [e for e in live.stripe_state()["events"] if e["type"] == kind]


def redeliver(live, event_id: str, times: int = 5) -> list[int]:
    return [live.stripe_sandbox("POST", f"/events/{event_id}/redeliver").json()["status"] for _ in range(times)]


# ---------------------------------------------------------------- payments
def test_a_paid_checkout_confirms_the_booking_and_records_the_payment(live):
    booking_id, _ = scheduled(live, type_index=1)
    checkout_id = live.pay(booking_id)

    at_stripe = stripe_session(live, checkout_id)
    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid"
    [payment] = payments(live.engine, booking_id)
    assert payment.stripe_payment_intent_id == at_stripe["payment_intent"] == data["stripe_payment_intent_id"]
    assert (payment.amount_cents, payment.currency, payment.status) == (14900, "USD", "succeeded")
    assert payment.stripe_checkout_session_id == checkout_id
    [row] = stripe_rows(live, "checkout.session.completed")
    assert row.outcome == "processed" and row.booking_id == booking_id and row.signature_valid
    assert row.dedupe_key == f"stripe:{events_of(live, 'checkout.session.completed')[0]['id']}"
    with session_scope(live.engine, read_only=True) as session:
        assert session.get(Booking, booking_id).hold_expires_at is None
    assert "payment_confirmed" in history_causes(live.engine, booking_id)


def test_a_delayed_payment_waits_until_it_succeeds(live):
    booking_id, _ = scheduled(live)
    checkout_id = live.checkout(booking_id)

    paid = live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay", {"method": "bank_transfer"})
    assert paid.json()["payment_status"] == "unpaid"
    assert live.status(booking_id) == "PENDING_PAYMENT" and payments(live.engine, booking_id) == []
    assert "payment_processing" in history_causes(live.engine, booking_id)

    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/bank_transfer", {"result": "succeeded"})

    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid" and data["paid_cents"] == 4900
    [row] = stripe_rows(live, "checkout.session.async_payment_succeeded")
    assert row.outcome == "processed"


def test_a_delayed_payment_that_fails_expires_the_booking_and_frees_the_slot(live):
    booking_id, answer = scheduled(live)
    checkout_id = live.checkout(booking_id)
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay", {"method": "bank_transfer"})

    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/bank_transfer", {"result": "failed"})
    settle(live)

    assert live.status(booking_id) == "EXPIRED"
    [entry] = outbox_entries(live.engine, booking_id, "calendly_cancel")
    assert entry.payload["event_uri"] == answer["event"] and entry.status == "done"
    assert calendly_event(live, answer["event"])["status"] == "canceled"
    assert payments(live.engine, booking_id) == []
    [row] = stripe_rows(live, "checkout.session.async_payment_failed")
    assert row.outcome == "processed"


def test_an_expired_checkout_expires_the_booking_and_cancels_the_calendly_event(live):
    booking_id, answer = scheduled(live)
    live.let_checkout_expire(booking_id)
    settle(live)

    assert live.status(booking_id) == "EXPIRED"
    event = calendly_event(live, answer["event"])
    assert event["status"] == "canceled" and event["cancellation"]["canceler_type"] == "host"
    [entry] = outbox_entries(live.engine, booking_id, "calendly_cancel")
    assert entry.idempotency_key == f"calendly-cancel:{answer['event']}" and entry.status == "done"
    [row] = stripe_rows(live, "checkout.session.expired")
    assert row.outcome == "processed" and row.booking_id == booking_id
    assert "checkout_expired" in history_causes(live.engine, booking_id)


def test_payment_after_cancellation_is_refunded_in_full(live, no_kick):
    booking_id, answer = scheduled(live)
    checkout_id = live.checkout(booking_id)
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    assert live.status(booking_id) == "CANCELED"

    # The client pays in the tab still open, before our request to expire the session went out.
    paid = live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay")
    assert paid.status_code == 200
    settle(live)

    data = live.booking(booking_id)
    assert data["status"] == "CANCELED"
    assert data["payment_status"] == "refunded" and data["paid_cents"] == data["refunded_cents"] == 4900
    [payment] = payments(live.engine, booking_id)
    [refund] = refunds(live.engine, booking_id)
    assert (refund.amount_cents, refund.rule, refund.status) == (4900, "late_payment", "succeeded")
    at_stripe = live.stripe_state()["refunds"]
    assert [(r["payment_intent"], r["amount"], r["id"]) for r in at_stripe] == [
        (payment.stripe_payment_intent_id, 4900, refund.stripe_refund_id)]
    assert live.stripe_state()["idempotency_keys"][f"refund:{booking_id}:{refund.id}"] == 1
    assert stripe_session(live, checkout_id)["status"] == "complete"
    assert all(e.status == "done" for e in outbox_entries(live.engine, booking_id))


# ---------------------------------------------------------------- refunds and disputes made at Stripe
def test_refunds_made_in_the_stripe_dashboard_are_imported(live):
    booking_id, _ = scheduled(live)
    live.pay(booking_id)
    intent = live.booking(booking_id)["stripe_payment_intent_id"]

    live.stripe_sandbox("POST", f"/charges/{intent}/refund", {"amount": 1500})
    settle(live)

    data = live.booking(booking_id)
    assert data["payment_status"] == "partially_refunded" and data["refunded_cents"] == 1500
    [imported] = refunds(live.engine, booking_id)
    assert (imported.amount_cents, imported.rule, imported.status) == (1500, "stripe_dashboard", "succeeded")
    assert imported.stripe_refund_id == live.stripe_state()["refunds"][0]["id"]
    [sync] = outbox_entries(live.engine, booking_id, "stripe_sync_refunds")
    assert sync.payload == {"payment_intent": intent} and sync.status == "done"

    live.stripe_sandbox("POST", f"/charges/{intent}/refund", {})
    settle(live)

    data = live.booking(booking_id)
    assert data["payment_status"] == "refunded" and data["refunded_cents"] == 4900
    assert sorted(r.amount_cents for r in refunds(live.engine, booking_id)) == [1500, 3400]
    assert len(outbox_entries(live.engine, booking_id, "stripe_sync_refunds")) == 2
    assert data["status"] == "CONFIRMED"  # a refund alone does not cancel the session
    assert [e.outcome for e in stripe_rows(live, "charge.refunded")] == ["processed", "processed"]


def test_a_dispute_marks_the_payment_disputed(live):
    booking_id, _ = scheduled(live)
    live.pay(booking_id)
    intent = live.booking(booking_id)["stripe_payment_intent_id"]

    live.stripe_sandbox("POST", f"/charges/{intent}/dispute", {"reason": "fraudulent"})
    [event] = events_of(live, "charge.dispute.created")
    redeliver(live, event["id"], 2)

    data = live.booking(booking_id)
    assert data["payment_status"] == "disputed"
    [payment] = payments(live.engine, booking_id)
    assert payment.dispute_status == "needs_response"
    assert history_causes(live.engine, booking_id).count("dispute") == 1
    [row] = stripe_rows(live, "charge.dispute.created")
    assert row.outcome == "processed"


def test_a_pending_refund_settles_through_refund_updated_or_fails_visibly(live):
    booking_id, _ = scheduled(live)
    live.pay(booking_id)
    live.stripe_sandbox("POST", "/config", {"refund_status": "pending"})
    answer = live.admin("POST", f"/api/bookings/{booking_id}/refund", json={"amount_cents": 1000})
    assert answer.status_code == 202
    settle(live)
    [first] = refunds(live.engine, booking_id)
    assert first.status == "pending" and first.stripe_refund_id

    live.stripe_sandbox("POST", f"/refunds/{first.stripe_refund_id}/settle", {"status": "succeeded"})
    assert refunds(live.engine, booking_id)[0].status == "succeeded"

    live.admin("POST", f"/api/bookings/{booking_id}/refund", json={"amount_cents": 2000})
    settle(live)
    second = refunds(live.engine, booking_id)[1]
    live.stripe_sandbox("POST", f"/refunds/{second.stripe_refund_id}/settle",
                        {"status": "failed", "failure_reason": "expired_or_canceled_card"})

    failed = refunds(live.engine, booking_id)[1]
    assert failed.status == "failed" and failed.failure_reason == "expired_or_canceled_card"
    data = live.booking(booking_id)
    assert data["refunded_cents"] == 1000 and data["refundable_cents"] == 3900  # the failed amount is back
    assert {e.event_type: e.outcome for e in webhook_events(live.engine, "stripe")
            if e.event_type.startswith("refund.")} == {"refund.updated": "processed", "refund.failed": "processed"}


# ---------------------------------------------------------------- duplicates
def test_duplicate_stripe_events_have_one_effect(live, no_kick):
    booking_id, answer = scheduled(live)
    checkout_id = live.pay(booking_id)
    [completed] = events_of(live, "checkout.session.completed")
    assert redeliver(live, completed["id"]) == [200] * 5

    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    settle(live)
    [refunded] = events_of(live, "charge.refunded")
    assert redeliver(live, refunded["id"]) == [200] * 5
    settle(live)

    assert len(payments(live.engine, booking_id)) == 1
    assert len([s for s in live.stripe_state()["sessions"] if s["client_reference_id"] == booking_id]) == 1
    assert len(refunds(live.engine, booking_id)) == 1
    assert len(live.stripe_state()["refunds"]) == 1
    assert history_causes(live.engine, booking_id).count("payment_confirmed") == 1
    assert len(stripe_rows(live, "checkout.session.completed")) == 1
    assert len(stripe_rows(live, "charge.refunded")) == 1
    assert len(outbox_entries(live.engine, booking_id, "stripe_sync_refunds")) == 1
    assert live.booking(booking_id)["payment_status"] == "refunded"
    assert stripe_session(live, checkout_id)["status"] == "complete"


def test_a_late_payment_delivered_five_times_is_refunded_once(live, no_kick):
    booking_id, answer = scheduled(live)
    checkout_id = live.checkout(booking_id)
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay")
    [completed] = events_of(live, "checkout.session.completed")
    redeliver(live, completed["id"])
    settle(live)

    assert len(payments(live.engine, booking_id)) == 1
    assert [r.rule for r in refunds(live.engine, booking_id)] == ["late_payment"]
    assert len(live.stripe_state()["refunds"]) == 1
    assert live.status(booking_id) == "CANCELED"


# ---------------------------------------------------------------- unmatched and unhandled
@pytest.mark.parametrize("kind", ["customer.created", "payment_intent.succeeded", "invoice.paid"])
def test_unhandled_event_types_are_answered_2xx_and_stored_ignored(live, kind):
    event = stripe_event(kind, {"id": "obj_123", "object": kind.split(".")[0]})

    answer = post_stripe(live.web, event, live.settings.stripe_webhook_secret)
    again = post_stripe(live.web, event, live.settings.stripe_webhook_secret)

    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    [row] = webhook_events(live.engine, "stripe")
    assert (row.outcome, row.event_type, row.dedupe_key) == ("ignored", kind, f"stripe:{event['id']}")
    assert outbox_entries(live.engine) == []


def test_a_checkout_for_no_booking_of_ours_is_unmatched(live):
    event = stripe_event("checkout.session.completed", {
        "id": "cs_test_unknown", "object": "checkout.session", "client_reference_id": None, "metadata": {},
        "status": "complete", "payment_status": "paid", "payment_intent": "pi_unknown",
        "amount_total": 4900, "currency": "usd"})

    answer = post_stripe(live.web, event, live.settings.stripe_webhook_secret)

    assert answer.status_code == 200 and answer.json()["outcome"] == "unmatched"
    with session_scope(live.engine, read_only=True) as session:
        assert session.execute(select(Payment)).first() is None
    [row] = webhook_events(live.engine, "stripe")
    assert row.outcome == "unmatched"
