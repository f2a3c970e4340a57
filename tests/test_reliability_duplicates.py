"""Every webhook type we act on, delivered five times — one after another and all at once from
threads, over real HTTP to the live web service — has exactly one effect: one webhook row per
dedupe key, the history rows and outbox entries of one delivery, one payment or refund, one
refund or cancellation at the provider.

Each case records a real event at the stand-in with its delivery switched off, then delivers that
very body (signed again, as a provider's retry is) itself.
"""
from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from core.db import session_scope
from core.models import Booking
from tests.reliability_helpers import (
    calendly_cancellations, calendly_envelope, deliver, delivery, new_items, one_processed_rest_duplicate,
    rows_per_key, snapshot, stand_in_refunds, stripe_event,
)
from tests.webhook_helpers import future_slot, payments, refunds, settle


@dataclass
class Case:
    booking_id: str
    provider: str
    body: dict
    dedupe_key: str
    status: str
    history: list[str]                      # causes one delivery adds (after the outbox ran)
    outbox: dict[str, int]                  # entry kinds one delivery adds
    stripe_refunds: list[int] = field(default_factory=list)  # amounts at the stand-in afterwards
    refunds_sent: int = 0                   # refunds the deliveries make us create at Stripe
    calendly_cancels: int = 0               # our cancellations of the booking's Calendly event
    intent: str | None = None
    event_uuid: str | None = None
    refund_status: str = "succeeded"        # our refunds' status afterwards
    dispute_status: str | None = None       # the payment's dispute status afterwards


def _scheduled(live):
    booking_id, url = live.start_booking(live.signed_in_client())
    return booking_id, live.pick_slot(url, future_slot(days=3, hour=10))


def _paid(live):
    booking_id, answer = _scheduled(live)
    live.pay(booking_id)
    settle(live)
    assert live.status(booking_id) == "CONFIRMED"
    return booking_id, answer, live.booking(booking_id)["stripe_payment_intent_id"]


def _both_off(live):
    delivery(live, calendly="off", stripe="off")


def _stripe_case(live, booking_id, event, **fields) -> Case:
    return Case(booking_id, "stripe", event, f"stripe:{event['id']}", **fields)


def _calendly_case(live, booking_id, envelope, **fields) -> Case:
    key = f"calendly:{envelope['event']}:{envelope['payload']['uri']}"
    if envelope["payload"].get("no_show"):
        key += f":{envelope['payload']['no_show']['uri']}"
    return Case(booking_id, "calendly", envelope, key, **fields)


def invitee_created(live) -> Case:
    booking_id, url = live.start_booking(live.signed_in_client())
    _both_off(live)
    answer = live.pick_slot(url, future_slot(days=3, hour=10))
    return _calendly_case(live, booking_id, calendly_envelope(live, "invitee.created", answer["invitee"]),
                          status="PENDING_PAYMENT", history=["invitee_created"], outbox={"notify": 1})


def invitee_canceled(live) -> Case:
    booking_id, answer, intent = _paid(live)
    _both_off(live)
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    # Three days ahead: the full price back by policy; the paid checkout needs no expiring.
    return _calendly_case(live, booking_id, calendly_envelope(live, "invitee.canceled", answer["invitee"]),
                          status="CANCELED", history=["canceled", "refund_requested", "refund_succeeded"],
                          outbox={"stripe_expire_checkout": 1, "stripe_refund": 1, "notify": 2},
                          stripe_refunds=[4900], refunds_sent=1, intent=intent)


def invitee_no_show(live) -> Case:
    booking_id, answer, intent = _paid(live)
    _both_off(live)
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/no_show")
    return _calendly_case(live, booking_id, calendly_envelope(live, "invitee_no_show.created", answer["invitee"]),
                          status="CONFIRMED", history=["no_show"], outbox={}, intent=intent)


def checkout_completed(live) -> Case:
    booking_id, _answer = _scheduled(live)
    checkout_id = live.checkout(booking_id)
    _both_off(live)
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay")
    return _stripe_case(live, booking_id, stripe_event(live, "checkout.session.completed", id=checkout_id),
                        status="CONFIRMED", history=["payment_received", "payment_confirmed"],
                        outbox={"notify": 2})


def _bank_transfer_started(live):
    booking_id, answer = _scheduled(live)
    checkout_id = live.checkout(booking_id)
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay", {"method": "bank_transfer"})
    settle(live)
    assert live.status(booking_id) == "PENDING_PAYMENT"
    _both_off(live)
    return booking_id, answer, checkout_id


def async_payment_succeeded(live) -> Case:
    booking_id, _answer, checkout_id = _bank_transfer_started(live)
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/bank_transfer", {"result": "succeeded"})
    event = stripe_event(live, "checkout.session.async_payment_succeeded", id=checkout_id)
    return _stripe_case(live, booking_id, event, status="CONFIRMED",
                        history=["payment_received", "payment_confirmed"], outbox={"notify": 2})


def async_payment_failed(live) -> Case:
    booking_id, answer, checkout_id = _bank_transfer_started(live)
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/bank_transfer", {"result": "failed"})
    event = stripe_event(live, "checkout.session.async_payment_failed", id=checkout_id)
    return _stripe_case(live, booking_id, event, status="EXPIRED", history=["async_payment_failed"],
                        outbox={"calendly_cancel": 1, "notify": 1}, calendly_cancels=1,
                        event_uuid=answer["event_uuid"])


def checkout_expired(live) -> Case:
    booking_id, answer = _scheduled(live)
    checkout_id = live.checkout(booking_id)
    _both_off(live)
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/expire-now")
    event = stripe_event(live, "checkout.session.expired", id=checkout_id)
    return _stripe_case(live, booking_id, event, status="EXPIRED", history=["checkout_expired"],
                        outbox={"calendly_cancel": 1, "notify": 1}, calendly_cancels=1,
                        event_uuid=answer["event_uuid"])


def charge_refunded(live) -> Case:
    booking_id, _answer, intent = _paid(live)
    _both_off(live)
    live.stripe_sandbox("POST", f"/charges/{intent}/refund", {"amount": 1500})  # in Stripe's dashboard
    event = stripe_event(live, "charge.refunded", payment_intent=intent)
    return _stripe_case(live, booking_id, event, status="CONFIRMED", history=["refund_imported"],
                        outbox={"stripe_sync_refunds": 1}, stripe_refunds=[1500], intent=intent)


def dispute_created(live) -> Case:
    booking_id, _answer, intent = _paid(live)
    _both_off(live)
    live.stripe_sandbox("POST", f"/charges/{intent}/dispute", {"reason": "fraudulent"})
    event = stripe_event(live, "charge.dispute.created", payment_intent=intent)
    return _stripe_case(live, booking_id, event, status="CONFIRMED", history=["dispute"], outbox={},
                        intent=intent)


def _stand_in(live, path: str) -> dict:
    """An object as Stripe's API returns it (the stand-in's /v1 API)."""
    auth = {"Authorization": f"Bearer {live.settings.stripe_secret_key}"}
    answer = requests.get(f"{live.stripe}/v1/{path}", headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _crafted(kind: str, obj: dict) -> dict:
    """An event the stand-in does not emit itself, around the stand-in's own object."""
    return {"id": f"evt_{secrets.token_hex(12)}", "object": "event", "type": kind, "created": int(time.time()),
            "data": {"object": obj}, "livemode": False, "api_version": "2025-03-31.basil", "pending_webhooks": 1}


def _pending_refund(live):
    """A paid booking with an admin's 1500 refund that Stripe holds as pending."""
    booking_id, _answer, intent = _paid(live)
    live.stripe_sandbox("POST", "/config", {"refund_status": "pending"})
    assert live.admin("POST", f"/api/bookings/{booking_id}/refund", json={"amount_cents": 1500}).status_code == 202
    settle(live)
    [ours] = refunds(live.engine, booking_id)
    assert ours.status == "pending" and ours.stripe_refund_id
    _both_off(live)
    return booking_id, intent, ours.stripe_refund_id


def refund_updated(live) -> Case:
    booking_id, intent, refund_id = _pending_refund(live)
    live.stripe_sandbox("POST", f"/refunds/{refund_id}/settle", {"status": "succeeded"})
    event = stripe_event(live, "refund.updated", id=refund_id)
    return _stripe_case(live, booking_id, event, status="CONFIRMED", history=["refund_succeeded"], outbox={},
                        stripe_refunds=[1500], intent=intent)


def refund_failed(live) -> Case:
    booking_id, intent, refund_id = _pending_refund(live)
    live.stripe_sandbox("POST", f"/refunds/{refund_id}/settle", {"status": "failed"})
    event = stripe_event(live, "refund.failed", id=refund_id)
    return _stripe_case(live, booking_id, event, status="CONFIRMED", history=["refund_failed"], outbox={},
                        stripe_refunds=[1500], intent=intent, refund_status="failed")


def refund_created(live) -> Case:
    """A refund made in Stripe's dashboard, announced by refund.created (crafted around the real refund)."""
    booking_id, _answer, intent = _paid(live)
    _both_off(live)
    refund = live.stripe_sandbox("POST", f"/charges/{intent}/refund", {"amount": 2000}).json()
    event = _crafted("refund.created", _stand_in(live, f"refunds/{refund['id']}"))
    return _stripe_case(live, booking_id, event, status="CONFIRMED", history=["refund_imported"], outbox={},
                        stripe_refunds=[2000], intent=intent)


def _disputed(live):
    booking_id, _answer, intent = _paid(live)
    dispute = live.stripe_sandbox("POST", f"/charges/{intent}/dispute", {"reason": "fraudulent"}).json()
    settle(live)
    _both_off(live)
    return booking_id, intent, _stand_in(live, f"disputes/{dispute['id']}")


def dispute_updated(live) -> Case:
    booking_id, intent, dispute = _disputed(live)
    event = _crafted("charge.dispute.updated", {**dispute, "status": "under_review"})
    return _stripe_case(live, booking_id, event, status="CONFIRMED", history=["dispute"], outbox={},
                        intent=intent, dispute_status="under_review")


def dispute_closed(live) -> Case:
    booking_id, intent, dispute = _disputed(live)
    event = _crafted("charge.dispute.closed", {**dispute, "status": "lost"})
    return _stripe_case(live, booking_id, event, status="CONFIRMED", history=["dispute"], outbox={},
                        intent=intent, dispute_status="lost")


CASES = {
    "invitee.created": invitee_created,
    "invitee.canceled": invitee_canceled,
    "invitee_no_show.created": invitee_no_show,
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": async_payment_succeeded,
    "checkout.session.async_payment_failed": async_payment_failed,
    "checkout.session.expired": checkout_expired,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": dispute_created,
    "refund.created": refund_created,
    "refund.updated": refund_updated,
    "refund.failed": refund_failed,
    "charge.dispute.updated": dispute_updated,
    "charge.dispute.closed": dispute_closed,
}


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
@pytest.mark.parametrize("event_type", list(CASES))
def test_an_event_delivered_five_times_has_exactly_one_effect(live, event_type, mode):
    case = CASES[event_type](live)
    settle(live)
    before = snapshot(live.engine, case.booking_id)
    refunds_at_stripe_before = len(live.stripe_state()["refunds"])

    answers = deliver(live, case.provider, case.body, times=5, concurrent=mode == "concurrent")
    settle(live)

    if mode == "sequential":
        assert answers == [(200, "processed")] + [(200, "duplicate")] * 4
    else:
        assert one_processed_rest_duplicate(answers), answers
    after = snapshot(live.engine, case.booking_id)
    assert rows_per_key(live.engine, case.dedupe_key) == 1
    assert after["booking"][0] == case.status
    assert new_items([c for c, _f, _t in before["history"]], [c for c, _f, _t in after["history"]]) \
        == Counter(case.history)
    assert new_items(before["outbox"], after["outbox"]) == Counter(
        {entry: 1 for entry in after["outbox"][len(before["outbox"]):]})  # no entry twice
    assert Counter(kind for kind, _key, _status in after["outbox"][len(before["outbox"]):]) == Counter(case.outbox)
    assert all(status == "done" for _kind, _key, status in after["outbox"])
    assert len(set(after["notifications"])) == len(after["notifications"])

    paid = payments(live.engine, case.booking_id)
    assert len(paid) == (0 if case.status in ("PENDING_PAYMENT", "EXPIRED") else 1)
    ours = refunds(live.engine, case.booking_id)
    assert [r.amount_cents for r in ours] == case.stripe_refunds
    assert all(r.status == case.refund_status and r.stripe_refund_id for r in ours)
    if case.intent:
        at_stripe = stand_in_refunds(live, case.intent)
        assert sorted(r["amount"] for r in at_stripe) == sorted(case.stripe_refunds)
        assert sorted(r["id"] for r in at_stripe) == sorted(r.stripe_refund_id for r in ours)
    assert len(live.stripe_state()["refunds"]) - refunds_at_stripe_before == case.refunds_sent
    if case.event_uuid:
        assert calendly_cancellations(live, case.event_uuid) == case.calendly_cancels
    if event_type == "invitee_no_show.created":
        with session_scope(live.engine, read_only=True) as session:
            assert session.get(Booking, case.booking_id).no_show_at is not None
    if event_type == "charge.dispute.created":
        assert paid[0].dispute_status == "needs_response"
        assert live.booking(case.booking_id)["payment_status"] == "disputed"
    if case.dispute_status:
        assert paid[0].dispute_status == case.dispute_status
    if event_type.startswith("refund."):
        # The ledger counts a failed refund as money still refundable, a succeeded one as refunded.
        refunded = sum(r.amount_cents for r in ours if r.status != "failed")
        assert live.booking(case.booking_id)["refunded_cents"] == refunded
