"""Calendly's webhooks, live: what each event means for a booking in each state, duplicates,
reschedules in both orders, the older payload shape, and never a 410.

Most deliveries come from the Calendly stand-in (real payloads, real signatures); the rest are
crafted here and signed with `sign_calendly_payload`, to reach states the stand-in cannot.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

from core.calendly import CalendlyClient
from core.db import session_scope
from core.models import Booking, Notification, utcnow
from sqlalchemy import select
from tests import factories
from tests.live_system import BUILDER_TOKEN
from tests.webhook_helpers import (
    cancellation, future_slot, history_causes, invitee_envelope, outbox_entries, payments,
    post_calendly, refunds, settle, webhook_events,
)
from webhook_service import outbox_kick


@pytest.fixture
def no_kick(monkeypatch):
    """Keep the web service from draining the outbox after requests: the test drains itself."""
    monkeypatch.setattr(outbox_kick, "_drain", lambda engine: None)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def scheduled(live, start: str | None = None, type_index: int = 0, email: str = "client@example.com"):
    """A booking scheduled through the stand-in: (booking id, the stand-in's booking answer)."""
    booking_id, url = live.start_booking(live.signed_in_client(email), type_index)
    return booking_id, live.pick_slot(url, start or future_slot())


def confirmed(live, start: str | None = None, email: str = "client@example.com"):
    booking_id, answer = scheduled(live, start, email=email)
    live.pay(booking_id)
    assert live.status(booking_id) == "CONFIRMED"
    return booking_id, answer


def book_again_in_calendly(live, booking_id: str, start: str) -> dict:
    """The client books a second Calendly slot carrying the same booking reference."""
    client = CalendlyClient(BUILDER_TOKEN, live.calendly)
    event_type_uri = f"{live.calendly}/event_types/{live.event_type_ids[0]}"
    link = client.create_scheduling_link(event_type_uri).rsplit("/", 1)[1]
    answer = live.calendly_sandbox("POST", f"/links/{link}/book", {
        "name": "Casey Client", "email": "client@example.com", "utm_content": booking_id,
        "start_time": start})
    assert answer.status_code == 201, answer.text
    return answer.json()


def calendly_event(live, event_uri: str) -> dict:
    return next(e for e in live.calendly_state()["events"] if e["uri"] == event_uri)


def deliveries(live, event: str | None = None) -> list[dict]:
    return [d for d in live.calendly_state()["deliveries"] if event is None or d["event"] == event]


def assert_subscription_alive(live) -> None:
    state = live.calendly_state()
    assert state["subscriptions"], "the webhook subscription was deleted (a 410?)"
    assert all(d["status_code"] != 410 and d["status"] != "gone" for d in state["deliveries"])


def rows_for(live, booking_id: str, event_type: str):
    return [e for e in webhook_events(live.engine, "calendly")
            if e.booking_id == booking_id and e.event_type == event_type]


# ---------------------------------------------------------------- invitee.created
def test_invitee_created_moves_a_new_booking_to_pending_payment_with_its_calendly_details(live):
    start = future_slot(days=2, hour=11)
    booking_id, answer = scheduled(live, start)

    data = live.booking(booking_id)
    assert data["status"] == "PENDING_PAYMENT"
    assert data["calendly_event_uri"] == answer["event"]
    assert data["calendly_invitee_uri"] == answer["invitee"]
    assert _when(data["start_time"]) == _when(start)
    assert _when(data["end_time"]) == _when(start) + timedelta(minutes=30)  # the discovery call
    assert data["hold_expires_at"] is not None and data["payment_status"] == "unpaid"

    [row] = rows_for(live, booking_id, "invitee.created")
    assert row.outcome == "processed" and row.signature_valid
    assert row.dedupe_key == f"calendly:invitee.created:{answer['invitee']}"
    assert [d["status_code"] for d in deliveries(live, "invitee.created")] == [200]
    assert history_causes(live.engine, booking_id)[:2] == ["booking_started", "invitee_created"]
    assert_subscription_alive(live)


def test_invitee_created_for_the_invitee_already_on_the_booking_is_ignored(live, no_kick):
    with session_scope(live.engine) as session:
        booking = factories.make_booking(session, "PENDING_PAYMENT")
        booking_id, invitee, event = booking.id, booking.calendly_invitee_uri, booking.calendly_event_uri
        before = (booking.start_time, booking.status)
    envelope = invitee_envelope("invitee.created", invitee_uri=invitee, event_uri=event,
                                booking_ref=booking_id, start=utcnow() + timedelta(days=5))

    answer = post_calendly(live.web, envelope, live.settings.calendly_webhook_signing_key)

    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
    [row] = rows_for(live, booking_id, "invitee.created")
    assert row.outcome == "ignored" and "already on the booking" in row.error
    with session_scope(live.engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        assert (booking.start_time, booking.status) == before
    assert outbox_entries(live.engine, booking_id) == []


@pytest.mark.parametrize("state", ["PENDING_PAYMENT", "CONFIRMED", "CANCELED", "EXPIRED"])
def test_a_second_calendly_booking_for_the_same_reference_is_canceled_in_calendly(live, state):
    """A stray invitee (the client books again with an old link): its slot is given back."""
    booking_id, answer = scheduled(live, future_slot(days=2, hour=9))
    if state == "CONFIRMED":
        live.pay(booking_id)
    elif state == "CANCELED":
        live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    elif state == "EXPIRED":
        checkout_id = live.checkout(booking_id)
        assert live.stripe_sandbox("POST", f"/checkout/{checkout_id}/expire-now").status_code == 200
    settle(live)
    assert live.status(booking_id) == state
    before = live.booking(booking_id)

    stray = book_again_in_calendly(live, booking_id, future_slot(days=4, hour=14))
    settle(live)

    after = live.booking(booking_id)
    assert after["status"] == state
    for field in ("calendly_event_uri", "calendly_invitee_uri", "start_time", "payment_status"):
        assert after[field] == before[field], field  # the booking keeps its own slot
    assert after["calendly_event_uri"] == answer["event"]
    [entry] = [e for e in outbox_entries(live.engine, booking_id, "calendly_cancel")
               if e.payload["event_uri"] == stray["event"]]
    assert entry.status == "done" and entry.idempotency_key == f"calendly-cancel:{stray['event']}"
    assert calendly_event(live, stray["event"])["status"] == "canceled"
    if state in ("PENDING_PAYMENT", "CONFIRMED"):
        assert calendly_event(live, answer["event"])["status"] == "active"
    assert "stray_invitee_released" in history_causes(live.engine, booking_id)
    # Our own cancellation comes back as invitee.canceled for the stray invitee: nothing happens.
    [echo] = [e for e in webhook_events(live.engine, "calendly")
              if e.event_type == "invitee.canceled" and e.dedupe_key.endswith(stray["invitee"])]
    assert echo.outcome == "ignored"
    assert refunds(live.engine, booking_id) == []
    assert_subscription_alive(live)


# ---------------------------------------------------------------- invitee.canceled
def test_invitee_canceled_while_pending_payment_cancels_and_expires_the_checkout(live):
    booking_id, answer = scheduled(live)
    checkout_id = live.checkout(booking_id)

    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {"reason": "Changed my mind"})
    settle(live)

    data = live.booking(booking_id)
    assert data["status"] == "CANCELED" and data["cancel_reason"] == "Changed my mind"
    [entry] = outbox_entries(live.engine, booking_id, "stripe_expire_checkout")
    assert entry.idempotency_key == f"checkout-expire:{checkout_id}" and entry.status == "done"
    session = next(s for s in live.stripe_state()["sessions"] if s["id"] == checkout_id)
    assert session["status"] == "expired"
    assert refunds(live.engine, booking_id) == [] and payments(live.engine, booking_id) == []
    # Calendly canceled its own event: we do not cancel it a second time.
    assert outbox_entries(live.engine, booking_id, "calendly_cancel") == []
    [row] = rows_for(live, booking_id, "invitee.canceled")
    assert row.outcome == "processed"
    assert_subscription_alive(live)


@pytest.mark.parametrize("by", ["invitee", "host"])
def test_confirmed_booking_canceled_well_ahead_is_refunded_in_full(live, by):
    booking_id, answer = confirmed(live, future_slot(days=3, hour=10))
    intent = live.booking(booking_id)["stripe_payment_intent_id"]

    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {"by": by})
    settle(live)

    data = live.booking(booking_id)
    assert data["status"] == "CANCELED"
    assert data["payment_status"] == "refunded" and data["refunded_cents"] == 4900
    [refund] = refunds(live.engine, booking_id)
    assert (refund.amount_cents, refund.rule, refund.status) == (4900, "policy", "succeeded")
    at_stripe = [r for r in live.stripe_state()["refunds"] if r["payment_intent"] == intent]
    assert [r["amount"] for r in at_stripe] == [4900]
    assert at_stripe[0]["id"] == refund.stripe_refund_id
    assert outbox_entries(live.engine, booking_id, "calendly_cancel") == []
    assert_subscription_alive(live)


@pytest.mark.parametrize(("canceler", "refunded"), [("invitee", 2450), ("host", 4900)])
def test_cancellation_inside_the_full_refund_window_follows_the_policy(live, no_kick, canceler, refunded):
    """Two hours before the start: the client gets the partial refund, a host cancel refunds all."""
    with session_scope(live.engine) as session:
        booking = factories.make_booking(session, "CONFIRMED", start_time=utcnow() + timedelta(hours=2))
        factories.make_payment(session, booking)
        booking_id, invitee, event = booking.id, booking.calendly_invitee_uri, booking.calendly_event_uri
    envelope = invitee_envelope("invitee.canceled", invitee_uri=invitee, event_uri=event, booking_ref=booking_id,
                                status="canceled", cancellation=cancellation(canceler))

    answer = post_calendly(live.web, envelope, live.settings.calendly_webhook_signing_key)

    assert answer.status_code == 200 and answer.json()["outcome"] == "processed"
    assert live.status(booking_id) == "CANCELED"
    [refund] = refunds(live.engine, booking_id)
    assert (refund.amount_cents, refund.rule, refund.status) == (refunded, "policy", "requested")
    [entry] = outbox_entries(live.engine, booking_id, "stripe_refund")
    assert entry.payload == {"refund_id": refund.id} and entry.idempotency_key == f"refund:{booking_id}:{refund.id}"


def test_invitee_canceled_for_a_finished_booking_is_ignored(live):
    """Expired first; our own cancellation of its Calendly event then comes back as invitee.canceled."""
    booking_id, answer = scheduled(live)
    live.let_checkout_expire(booking_id)
    settle(live)

    assert live.status(booking_id) == "EXPIRED"
    assert calendly_event(live, answer["event"])["status"] == "canceled"
    [row] = rows_for(live, booking_id, "invitee.canceled")
    assert row.outcome == "ignored" and "EXPIRED" in row.error
    assert refunds(live.engine, booking_id) == []
    assert [d["status_code"] for d in deliveries(live, "invitee.canceled")] == [200]
    assert_subscription_alive(live)


def test_canceled_booking_canceled_again_by_a_crafted_delivery_changes_nothing(live, no_kick):
    with session_scope(live.engine) as session:
        booking = factories.make_booking(session, "CANCELED")
        factories.make_payment(session, booking)
        booking_id, invitee, event = booking.id, booking.calendly_invitee_uri, booking.calendly_event_uri
    envelope = invitee_envelope("invitee.canceled", invitee_uri=invitee, event_uri=event, booking_ref=booking_id,
                                status="canceled", cancellation=cancellation("host"))

    answer = post_calendly(live.web, envelope, live.settings.calendly_webhook_signing_key)

    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
    assert live.status(booking_id) == "CANCELED"
    assert refunds(live.engine, booking_id) == [] and outbox_entries(live.engine, booking_id) == []


# ---------------------------------------------------------------- unmatched and unhandled
@pytest.mark.parametrize("event", ["invitee.created", "invitee.canceled", "invitee_no_show.created"])
def test_a_delivery_for_no_booking_of_ours_is_stored_unmatched_and_answered_2xx(live, event):
    event_uri = f"{live.calendly}/scheduled_events/{uuid.uuid4()}"
    envelope = invitee_envelope(event, invitee_uri=f"{event_uri}/invitees/{uuid.uuid4()}", event_uri=event_uri,
                                booking_ref="bk_0000000000000000dead",
                                no_show={"uri": f"{live.calendly}/invitee_no_shows/{uuid.uuid4()}",
                                         "created_at": "2030-01-01T00:00:00.000000Z"})

    answer = post_calendly(live.web, envelope, live.settings.calendly_webhook_signing_key)

    assert answer.status_code == 200 and answer.json()["outcome"] == "unmatched"
    [row] = webhook_events(live.engine, "calendly")
    assert (row.outcome, row.event_type, row.booking_id, row.signature_valid) == ("unmatched", event, None, True)
    assert outbox_entries(live.engine) == []


def test_a_calendly_booking_without_our_reference_is_unmatched(live):
    """Someone books the builder's Calendly link directly (no utm_content): kept, answered 200."""
    client = CalendlyClient(BUILDER_TOKEN, live.calendly)
    link = client.create_scheduling_link(f"{live.calendly}/event_types/{live.event_type_ids[0]}").rsplit("/", 1)[1]
    answer = live.calendly_sandbox("POST", f"/links/{link}/book", {"name": "Walk In", "email": "walk@in.test"})
    assert answer.status_code == 201

    [row] = webhook_events(live.engine, "calendly")
    assert row.outcome == "unmatched" and row.booking_id is None
    assert [d["status_code"] for d in deliveries(live)] == [200]
    assert_subscription_alive(live)


@pytest.mark.parametrize("envelope", [
    pytest.param({"event": "invitee_no_show.deleted", "created_at": "2030-01-01T00:00:00.000000Z",
                  "payload": {"uri": "https://api.calendly.com/scheduled_events/E/invitees/I",
                              "event": "https://api.calendly.com/scheduled_events/E"}}, id="no_show_deleted"),
    pytest.param({"event": "routing_form_submission.created", "created_at": "2030-01-01T00:00:00.000000Z",
                  "payload": {"uri": "https://api.calendly.com/routing_form_submissions/RFS1",
                              "routing_form": "https://api.calendly.com/routing_forms/RF1",
                              "questions_and_answers": [], "tracking": {}, "result": {"type": "message"},
                              "submitter": None, "submitter_type": None,
                              "created_at": "2030-01-01T00:00:00.000000Z",
                              "updated_at": "2030-01-01T00:00:00.000000Z"}}, id="routing_form_submission"),
    pytest.param({"event": "event_type.updated", "created_at": "2030-01-01T00:00:00.000000Z",
                  "payload": {"name": "Discovery call"}}, id="event_type_updated"),
])
def test_unhandled_event_names_are_answered_2xx_and_stored_ignored(live, envelope):
    key = live.settings.calendly_webhook_signing_key
    first = post_calendly(live.web, envelope, key)
    again = post_calendly(live.web, envelope, key)

    assert first.status_code == 200 and first.json()["outcome"] == "ignored"
    assert again.status_code == 200
    [row] = webhook_events(live.engine, "calendly")
    assert (row.outcome, row.event_type, row.signature_valid) == ("ignored", envelope["event"], True)
    assert outbox_entries(live.engine) == []


# ---------------------------------------------------------------- duplicates
def test_duplicate_deliveries_have_one_effect(live):
    booking_id, answer = confirmed(live, future_slot(days=3, hour=15))
    [created] = deliveries(live, "invitee.created")
    for _ in range(5):
        again = live.calendly_sandbox("POST", f"/deliveries/{created['id']}/deliver")
        assert again.json()["delivery"]["status_code"] == 200
    assert live.status(booking_id) == "CONFIRMED"

    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    [canceled] = deliveries(live, "invitee.canceled")
    for _ in range(5):
        again = live.calendly_sandbox("POST", f"/deliveries/{canceled['id']}/deliver")
        assert again.json()["delivery"]["status_code"] == 200
    settle(live)

    assert len(rows_for(live, booking_id, "invitee.created")) == 1
    assert len(rows_for(live, booking_id, "invitee.canceled")) == 1
    causes = history_causes(live.engine, booking_id)
    assert causes.count("invitee_created") == 1 and causes.count("canceled") == 1
    assert len(refunds(live.engine, booking_id)) == 1
    assert len(live.stripe_state()["refunds"]) == 1
    with session_scope(live.engine, read_only=True) as session:
        kinds = [n.kind for n in session.execute(select(Notification).where(Notification.booking_id == booking_id))
                 .scalars()]
    assert kinds.count("awaiting_payment") == 1 and kinds.count("booking_canceled") == 1
    assert live.booking(booking_id)["payment_status"] == "refunded"
    assert_subscription_alive(live)


def test_crafted_duplicates_five_times_answer_2xx_and_store_one_row(live, no_kick):
    booking_id, url = live.start_booking(live.signed_in_client())
    event_uri = f"{live.calendly}/scheduled_events/{uuid.uuid4()}"
    envelope = invitee_envelope("invitee.created", invitee_uri=f"{event_uri}/invitees/{uuid.uuid4()}",
                                event_uri=event_uri, booking_ref=booking_id, **live.slot())
    outcomes = [post_calendly(live.web, envelope, live.settings.calendly_webhook_signing_key).json()["outcome"]
                for _ in range(5)]

    assert outcomes == ["processed"] + ["duplicate"] * 4
    assert len(webhook_events(live.engine, "calendly")) == 1
    assert history_causes(live.engine, booking_id).count("invitee_created") == 1
    assert live.status(booking_id) == "PENDING_PAYMENT"


# ---------------------------------------------------------------- reschedules
@pytest.mark.parametrize("order", ["cancel_first", "create_first"])
def test_a_reschedule_in_either_order_moves_the_same_paid_booking(live, order):
    booking_id, answer = confirmed(live, future_slot(days=3, hour=10))
    checkout_id = live.booking(booking_id)["stripe_checkout_session_id"]
    live.calendly_sandbox("POST", "/config", {"reschedule_order": order})

    new_start = future_slot(days=5, hour=13)
    moved = live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/reschedule",
                                  {"start_time": new_start}).json()
    settle(live)

    sent = [d["event"] for d in deliveries(live)][1:]
    assert sent == (["invitee.canceled", "invitee.created"] if order == "cancel_first"
                    else ["invitee.created", "invitee.canceled"])
    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid"
    assert data["calendly_invitee_uri"] == moved["invitee"] != answer["invitee"]
    assert data["calendly_event_uri"] == moved["event"]
    assert _when(data["start_time"]) == _when(new_start)
    assert data["stripe_checkout_session_id"] == checkout_id
    assert len(payments(live.engine, booking_id)) == 1
    assert refunds(live.engine, booking_id) == [] and live.stripe_state()["refunds"] == []
    assert outbox_entries(live.engine, booking_id, "calendly_cancel") == []
    assert calendly_event(live, moved["event"])["status"] == "active"
    causes = history_causes(live.engine, booking_id)
    assert "rescheduled" in causes and "reschedule_old_invitee_canceled" in causes and "canceled" not in causes
    outcomes = {e.event_type: e.outcome for e in webhook_events(live.engine, "calendly")
                if e.dedupe_key.endswith(moved["invitee"]) or e.dedupe_key.endswith(answer["invitee"])}
    assert outcomes == {"invitee.created": "processed", "invitee.canceled": "processed"}
    assert_subscription_alive(live)


def test_a_pending_payment_booking_can_be_rescheduled_before_paying(live):
    booking_id, answer = scheduled(live, future_slot(days=2, hour=12))
    moved = live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/reschedule",
                                  {"start_time": future_slot(days=6, hour=9)}).json()
    settle(live)

    assert live.status(booking_id) == "PENDING_PAYMENT"
    assert live.booking(booking_id)["calendly_invitee_uri"] == moved["invitee"]
    live.pay(booking_id)
    assert live.status(booking_id) == "CONFIRMED"


# ---------------------------------------------------------------- no-shows
def test_a_no_show_is_recorded_once(live):
    booking_id, answer = confirmed(live, future_slot(days=2, hour=16))
    marked = live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/no_show")
    assert marked.status_code == 201
    [delivery] = deliveries(live, "invitee_no_show.created")
    live.calendly_sandbox("POST", f"/deliveries/{delivery['id']}/deliver")

    with session_scope(live.engine, read_only=True) as session:
        assert session.get(Booking, booking_id).no_show_at is not None
    assert history_causes(live.engine, booking_id).count("no_show") == 1
    [row] = rows_for(live, booking_id, "invitee_no_show.created")
    assert row.outcome == "processed" and row.dedupe_key.endswith(marked.json()["no_show"]["uri"])
    assert live.status(booking_id) == "CONFIRMED"


# ---------------------------------------------------------------- the older payload shape
def legacy_envelope(event: str, *, booking_ref: str, event_uuid: str, invitee_uuid: str, start: datetime,
                    canceled: bool = False, **payload_fields) -> dict:
    """The seed's older shape: payload.event / payload.invitee / payload.event_type objects with uuids."""
    new_york = timezone(timedelta(hours=-4))  # older payloads carried local offsets, not Z
    local = start.astimezone(new_york).isoformat()
    end = (start + timedelta(minutes=30)).astimezone(new_york).isoformat()
    return {
        "event": event, "time": "2030-01-01T00:00:00Z",
        "payload": {
            "event_type": {"uuid": "legacy-type", "kind": "One-on-One", "slug": "discovery-call",
                           "name": "Discovery call", "duration": 30},
            "event": {"uuid": event_uuid, "assigned_to": ["Ada Lovelace"], "start_time": local, "end_time": end,
                      "canceled": canceled, "cancellation": {"reason": "Legacy cancel"} if canceled else None},
            "invitee": {"uuid": invitee_uuid, "email": "client@example.com", "name": "Casey Client",
                        "timezone": "Europe/London", "canceled": canceled, "is_reschedule": False,
                        **({"cancel_reason": "Legacy cancel", "canceler_name": "Casey Client"} if canceled else {})},
            "questions_and_answers": [],
            "tracking": {"utm_source": "buildappswith", "utm_medium": "booking", "utm_campaign": None,
                         "utm_content": booking_ref, "utm_term": None, "salesforce_uuid": None},
            "old_event": None, "old_invitee": None, "new_event": None, "new_invitee": None,
            **payload_fields,
        },
    }


def quietly(live, action):
    """Do something at the Calendly stand-in without its webhooks: the test delivers them itself."""
    live.calendly_sandbox("POST", "/config", {"webhook_delivery": "off"})
    try:
        return action()
    finally:
        live.calendly_sandbox("POST", "/config", {"webhook_delivery": "sync"})


def test_the_older_payload_shape_has_the_same_effect_as_v2(live):
    key = live.settings.calendly_webhook_signing_key
    start = (utcnow() + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    legacy_id, legacy_link = live.start_booking(live.signed_in_client("legacy@example.com"))
    v2_id, _ = live.start_booking(live.signed_in_client("v2@example.com"))
    # The older shape names hosts by display name only, so the service reads the event from
    # Calendly: it must exist at the stand-in (booked quietly, delivered below in the older shape).
    booked = quietly(live, lambda: live.pick_slot(legacy_link, start.strftime("%Y-%m-%dT%H:%M:%SZ")))
    ids = {"legacy": (booked["event_uuid"], booked["invitee_uuid"]), "v2": (str(uuid.uuid4()), str(uuid.uuid4()))}

    created = post_calendly(live.web, legacy_envelope("invitee.created", booking_ref=legacy_id,
                            event_uuid=ids["legacy"][0], invitee_uuid=ids["legacy"][1], start=start), key)
    event_uri = f"{live.calendly}/scheduled_events/{ids['v2'][0]}"
    v2_created = post_calendly(live.web, invitee_envelope(
        "invitee.created", invitee_uri=f"{event_uri}/invitees/{ids['v2'][1]}", event_uri=event_uri,
        booking_ref=v2_id, start=start, **live.slot()), key)
    assert created.status_code == v2_created.status_code == 200
    assert created.json()["outcome"] == v2_created.json()["outcome"] == "processed"

    legacy, v2 = live.booking(legacy_id), live.booking(v2_id)
    for field in ("status", "start_time", "end_time", "payment_status"):
        assert legacy[field] == v2[field], field
    assert legacy["status"] == "PENDING_PAYMENT" and _when(legacy["start_time"]) == start
    legacy_event = f"{live.calendly}/scheduled_events/{ids['legacy'][0]}"
    assert legacy["calendly_event_uri"] == legacy_event
    assert legacy["calendly_invitee_uri"] == f"{legacy_event}/invitees/{ids['legacy'][1]}"

    for booking_id in (legacy_id, v2_id):
        live.pay(booking_id)
    canceled = post_calendly(live.web, legacy_envelope("invitee.canceled", booking_ref=legacy_id,
                             event_uuid=ids["legacy"][0], invitee_uuid=ids["legacy"][1], start=start,
                             canceled=True), key)
    v2_canceled = post_calendly(live.web, invitee_envelope(
        "invitee.canceled", invitee_uri=f"{event_uri}/invitees/{ids['v2'][1]}", event_uri=event_uri,
        booking_ref=v2_id, start=start, status="canceled", cancellation=cancellation("invitee", "Legacy cancel")),
        key)
    settle(live)

    assert canceled.json()["outcome"] == v2_canceled.json()["outcome"] == "processed"
    legacy, v2 = live.booking(legacy_id), live.booking(v2_id)
    for field in ("status", "payment_status", "refunded_cents", "cancel_reason"):
        assert legacy[field] == v2[field], field
    assert legacy["status"] == "CANCELED" and legacy["refunded_cents"] == 4900
    assert [r["amount"] for r in live.stripe_state()["refunds"]] == [4900, 4900]
    rows = sorted((e.booking_id == legacy_id, e.event_type, e.outcome) for e in webhook_events(live.engine, "calendly"))
    assert rows == sorted((is_legacy, kind, "processed") for is_legacy in (True, False)
                          for kind in ("invitee.created", "invitee.canceled"))


@pytest.mark.parametrize("order", ["cancel_first", "create_first"])
def test_a_reschedule_in_the_older_shape_moves_the_same_booking(live, order):
    """The seed's `invitee.rescheduled` (with old_invitee/old_event objects) and its cancel half."""
    key = live.settings.calendly_webhook_signing_key
    booking_id, answer = confirmed(live, future_slot(days=3, hour=11))
    new_start = (utcnow() + timedelta(days=6)).replace(hour=15, minute=0, second=0, microsecond=0)
    # The new slot must exist at the stand-in: the older shape's hosts are read from Calendly.
    moved = quietly(live, lambda: live.calendly_sandbox(
        "POST", f"/invitees/{answer['invitee_uuid']}/reschedule",
        {"start_time": new_start.strftime("%Y-%m-%dT%H:%M:%SZ")}).json())
    new_event, new_invitee = moved["event_uuid"], moved["invitee_uuid"]
    old_start = _when(answer["start_time"])
    cancel_half = legacy_envelope("invitee.canceled", booking_ref=booking_id, event_uuid=answer["event_uuid"],
                                  invitee_uuid=answer["invitee_uuid"], start=old_start, canceled=True,
                                  new_invitee={"uuid": new_invitee}, new_event={"uuid": new_event})
    create_half = legacy_envelope("invitee.rescheduled", booking_ref=booking_id, event_uuid=new_event,
                                  invitee_uuid=new_invitee, start=new_start,
                                  old_invitee={"uuid": answer["invitee_uuid"]},
                                  old_event={"uuid": answer["event_uuid"]})
    halves = [cancel_half, create_half] if order == "cancel_first" else [create_half, cancel_half]

    outcomes = [post_calendly(live.web, half, key).json()["outcome"] for half in halves]
    settle(live)

    assert outcomes == ["processed", "processed"]
    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid"
    assert data["calendly_invitee_uri"] == f"{live.calendly}/scheduled_events/{new_event}/invitees/{new_invitee}"
    assert _when(data["start_time"]) == new_start
    assert refunds(live.engine, booking_id) == [] and live.stripe_state()["refunds"] == []
    assert "rescheduled" in history_causes(live.engine, booking_id)


def test_unsigned_or_tampered_deliveries_never_get_a_410(live):
    """Whatever goes wrong, the answer is 4xx/5xx other than 410 (a 410 deletes the subscription)."""
    raw = b'{"event": "invitee.created", "payload": {}}'
    answers = [
        requests.post(f"{live.web}/api/webhooks/calendly", data=raw, timeout=10),
        requests.post(f"{live.web}/api/webhooks/calendly", data=b"not json",
                      headers={"Calendly-Webhook-Signature": "t=1,v1=00"}, timeout=10),
        post_calendly(live.web, raw, live.settings.calendly_webhook_signing_key),
    ]
    assert [a.status_code for a in answers] == [400, 400, 422]
