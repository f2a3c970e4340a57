"""Every webhook lost: with delivery switched off in both stand-ins, reconciliation alone (plus the
outbox) brings each booking to its true state; running it again changes nothing; and when the
webhooks finally arrive, they are duplicates with no second effect.

The client's payment page still works without invitee.created: it asks Calendly's API, as
reconcile's `find_scheduled_invitee` does for a client who never opened it.
"""
from __future__ import annotations

from datetime import datetime

from core.services.reconcile import reconcile
from tests.reliability_helpers import (
    calendly_cancellations, checkout_via_page, delivery, snapshot, stand_in_refunds, stand_in_sessions,
    webhook_rows,
)
from tests.webhook_helpers import future_slot, settle


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _reconcile(live) -> dict:
    summary = reconcile(live.engine)
    assert not any("error" in step for step in summary.values()), summary
    settle(live)
    return summary


def _everything(live, bookings: dict) -> dict:
    state = live.stripe_state()
    return {
        "bookings": {name: snapshot(live.engine, b["id"]) for name, b in bookings.items()},
        "webhooks": webhook_rows(live.engine),
        "stripe_refunds": sorted(r["id"] for r in state["refunds"]),
        "stripe_sessions": sorted((s["id"], s["status"]) for s in state["sessions"]),
        "calendly_cancellations": {name: calendly_cancellations(live, b["event_uuid"]) for name, b in bookings.items()},
    }


def _money(everything: dict) -> dict:
    """What the bookings are and owe: status, payments, refunds, history."""
    return {name: (snap["booking"], snap["payments"], snap["refunds"], snap["history"])
            for name, snap in everything["bookings"].items()}


def test_with_webhooks_lost_reconcile_finds_the_truth_once_and_late_webhooks_are_duplicates(live):
    delivery(live, calendly="off", stripe="off")
    bookings: dict[str, dict] = {}

    def schedule(name: str, email: str, slot: str) -> dict:
        booking_id, url = live.start_booking(live.signed_in_client(email))
        answer = live.pick_slot(url, slot)
        bookings[name] = {"id": booking_id, "start": slot, **answer}
        return bookings[name]

    paid = schedule("paid", "paid@example.com", future_slot(days=2, hour=10))
    paid["checkout"] = checkout_via_page(live, paid["id"])  # the page asks Calendly: no invitee.created came
    live.stripe_sandbox("POST", f"/checkout/{paid['checkout']}/pay")

    expiring = schedule("expiring", "expiring@example.com", future_slot(days=2, hour=12))
    expiring["checkout"] = checkout_via_page(live, expiring["id"])
    live.stripe_sandbox("POST", f"/checkout/{expiring['checkout']}/expire-now")

    canceled = schedule("canceled", "canceled@example.com", future_slot(days=3, hour=14))
    canceled["checkout"] = checkout_via_page(live, canceled["id"])
    live.stripe_sandbox("POST", f"/checkout/{canceled['checkout']}/pay")
    live.calendly_sandbox("POST", f"/invitees/{canceled['invitee_uuid']}/cancel", {"reason": "Plans changed"})

    never_paid = schedule("tab_closed", "closed@example.com", future_slot(days=4, hour=9))  # no payment page

    assert {name: live.status(b["id"]) for name, b in bookings.items()} == {
        "paid": "PENDING_PAYMENT", "expiring": "PENDING_PAYMENT", "canceled": "PENDING_PAYMENT",
        "tab_closed": "PENDING_SCHEDULING"}  # a paid checkout is not proof until Stripe says so
    assert all(d["status"] == "skipped" for d in live.calendly_state()["deliveries"])
    assert live.stripe_state()["deliveries"] == []

    _reconcile(live)

    data = {name: live.booking(b["id"]) for name, b in bookings.items()}
    assert (data["paid"]["status"], data["paid"]["payment_status"], data["paid"]["paid_cents"]) == \
        ("CONFIRMED", "paid", 4900)
    assert data["expiring"]["status"] == "EXPIRED" and data["expiring"]["paid_cents"] == 0
    event = next(e for e in live.calendly_state()["events"] if e["uri"] == expiring["event"])
    assert event["status"] == "canceled" and calendly_cancellations(live, expiring["event_uuid"]) == 1
    assert data["canceled"]["status"] == "CANCELED" and data["canceled"]["cancel_reason"] == "Plans changed"
    assert (data["canceled"]["paid_cents"], data["canceled"]["refunded_cents"]) == (4900, 4900)
    assert data["canceled"]["payment_status"] == "refunded"
    [refund] = data["canceled"]["refunds"]
    assert (refund["status"], refund["rule"]) == ("succeeded", "policy")
    assert [r["id"] for r in stand_in_refunds(live, data["canceled"]["stripe_payment_intent_id"])] == \
        [refund["stripe_refund_id"]]
    assert data["tab_closed"]["status"] == "PENDING_PAYMENT"
    assert data["tab_closed"]["calendly_invitee_uri"] == never_paid["invitee"]
    assert _when(data["tab_closed"]["start_time"]) == _when(never_paid["start"])
    for name in ("paid", "expiring", "canceled"):
        assert [s["id"] for s in stand_in_sessions(live, bookings[name]["id"])] == [bookings[name]["checkout"]]
    first = _everything(live, bookings)

    # Again: only what our own effects caused since (Stripe's charge.refunded for our refund) is new.
    _reconcile(live)
    second = _everything(live, bookings)
    assert _money(second) == _money(first)
    assert second["stripe_refunds"] == first["stripe_refunds"]
    assert second["stripe_sessions"] == first["stripe_sessions"]
    assert second["calendly_cancellations"] == first["calendly_cancellations"]
    assert [(t, o) for _k, t, o in second["webhooks"][len(first["webhooks"]):]] == [("charge.refunded", "processed")]

    _reconcile(live)
    assert _everything(live, bookings) == second  # and now nothing at all

    # The webhooks arrive at last, all of them.
    delivery(live, calendly="sync", stripe="sync")
    known = {key: outcome for key, _type, outcome in second["webhooks"]}
    for summary in live.stripe_state()["events"]:
        answer = live.stripe_sandbox("POST", f"/events/{summary['id']}/redeliver").json()
        assert answer["status"] == 200, answer
    for record in live.calendly_state()["deliveries"]:
        answer = live.calendly_sandbox("POST", f"/deliveries/{record['id']}/deliver").json()
        assert answer["delivery"]["status_code"] == 200, answer
    settle(live)

    late = _everything(live, bookings)
    assert _money(late) == _money(second)
    assert {name: snap["outbox"] for name, snap in late["bookings"].items()} == \
        {name: snap["outbox"] for name, snap in second["bookings"].items()}
    assert late["stripe_refunds"] == second["stripe_refunds"]
    assert late["stripe_sessions"] == second["stripe_sessions"]
    assert late["calendly_cancellations"] == second["calendly_cancellations"]
    keys = [key for key, _type, _outcome in late["webhooks"]]
    assert len(keys) == len(set(keys))  # one row per dedupe key
    for key, event_type, outcome in late["webhooks"]:
        assert outcome == known.get(key, "ignored"), (key, event_type, outcome)  # new ones changed nothing
    handled = {"checkout.session.completed", "checkout.session.expired", "charge.refunded", "invitee.created"}
    assert not [key for key, event_type, _o in late["webhooks"][len(second["webhooks"]):] if event_type in handled]
