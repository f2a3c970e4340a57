"""Helpers for the webhook, provider-fault and API tests: signed deliveries we craft ourselves,
reads of the ledgers (webhook events, outbox, payments, refunds, history), and waiting for the
outbox to settle while the web service's after-request drain may run concurrently.
"""
from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timedelta, timezone

import requests
import stripe
from sqlalchemy import select

from core.calendly import sign_calendly_payload
from core.db import session_scope
from core.models import BookingHistory, OutboxEntry, Payment, Refund, WebhookEvent, utcnow

CALENDLY_PATH = "/api/webhooks/calendly"
STRIPE_PATH = "/api/webhooks/stripe"


# ---------------------------------------------------------------- signing and posting
def calendly_headers(raw: bytes, key: str, timestamp: int | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "Calendly-Webhook-Signature": sign_calendly_payload(raw, key, timestamp)}


def stripe_headers(raw: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                raw.decode("utf-8"), secret, timestamp=timestamp)}


def _raw(body: dict | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def post_calendly(target, body: dict | bytes, key: str, *, headers: dict | None = None):
    """POST a signed Calendly delivery to `target` (a base URL or a TestClient); never a 410."""
    raw = _raw(body)
    sent = headers if headers is not None else calendly_headers(raw, key)
    response = _post(target, CALENDLY_PATH, raw, sent)
    assert response.status_code != 410, "a 410 would delete Calendly's webhook subscription"
    return response


def post_stripe(target, body: dict | bytes, secret: str, *, headers: dict | None = None):
    raw = _raw(body)
    sent = headers if headers is not None else stripe_headers(raw, secret)
    return _post(target, STRIPE_PATH, raw, sent)


def _post(target, path: str, raw: bytes, headers: dict):
    if isinstance(target, str):
        return requests.post(f"{target}{path}", data=raw, headers=headers, timeout=30)
    return target.post(path, content=raw, headers=headers)


# ---------------------------------------------------------------- crafted payloads
def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def invitee_envelope(event: str, *, invitee_uri: str, event_uri: str, booking_ref: str | None,
                     start: datetime | None = None, minutes: int = 30, status: str = "active",
                     rescheduled: bool = False, old_invitee: str | None = None,
                     new_invitee: str | None = None, cancellation: dict | None = None,
                     no_show: dict | None = None, email: str = "client@example.com",
                     event_type: str = "https://api.calendly.com/event_types/test-type",
                     host: str | None = None) -> dict:
    """A Calendly v2 webhook envelope (payload = Invitee with its scheduled event embedded).

    A slot attaches to a booking only when `event_type` is the booking's session type's and `host`
    its builder's Calendly user (`slot_of(booking)` gives both); without `host` the envelope has no
    `event_memberships`, so the service must read the event from Calendly's API.
    """
    start = start or (utcnow() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    return {
        "event": event, "created_at": iso(utcnow()),
        "created_by": "https://api.calendly.com/users/test-host",
        "payload": {
            "uri": invitee_uri, "email": email, "name": "Casey Client", "status": status,
            "timezone": "Europe/London", "event": event_uri,
            "scheduled_event": {
                "uri": event_uri, "name": "Discovery call", "status": status,
                "start_time": iso(start), "end_time": iso(start + timedelta(minutes=minutes)),
                "event_type": event_type,
                **({"event_memberships": [{"user": host, "user_email": "host@example.test",
                                           "user_name": "Ada Lovelace"}]} if host else {}),
            },
            "tracking": {"utm_campaign": None, "utm_source": "buildappswith", "utm_medium": "booking",
                         "utm_content": booking_ref, "utm_term": None, "salesforce_uuid": None},
            "questions_and_answers": [], "cancel_url": None, "reschedule_url": None,
            "rescheduled": rescheduled, "old_invitee": old_invitee, "new_invitee": new_invitee,
            "cancellation": cancellation, "payment": None, "no_show": no_show,
            "created_at": iso(utcnow()), "updated_at": iso(utcnow()),
        },
    }


def slot_of(booking) -> dict[str, str]:
    """`invitee_envelope` arguments that make the slot really `booking`'s: its session type's event
    type, hosted by its builder."""
    return {"event_type": booking.session_type.calendly_event_type_uri,
            "host": booking.builder.calendly_user_uri}


def cancellation(canceler_type: str = "invitee", reason: str = "Something came up") -> dict:
    return {"canceled_by": "Casey Client" if canceler_type == "invitee" else "Ada Lovelace",
            "reason": reason, "canceler_type": canceler_type, "created_at": iso(utcnow())}


def stripe_event(kind: str, obj: dict, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_test_{secrets.token_hex(8)}", "object": "event", "type": kind,
            "created": int(time.time()), "data": {"object": obj}, "livemode": False,
            "api_version": "2025-03-31.basil", "pending_webhooks": 1}


# ---------------------------------------------------------------- reading the ledgers
def webhook_events(engine, provider: str | None = None) -> list[WebhookEvent]:
    with session_scope(engine, read_only=True) as session:
        query = select(WebhookEvent).order_by(WebhookEvent.id)
        if provider:
            query = query.where(WebhookEvent.provider == provider)
        return list(session.execute(query).scalars())


def outbox_entries(engine, booking_id: str | None = None, kind: str | None = None) -> list[OutboxEntry]:
    with session_scope(engine, read_only=True) as session:
        query = select(OutboxEntry).order_by(OutboxEntry.id)
        if booking_id:
            query = query.where(OutboxEntry.booking_id == booking_id)
        if kind:
            query = query.where(OutboxEntry.kind == kind)
        return list(session.execute(query).scalars())


def payments(engine, booking_id: str) -> list[Payment]:
    with session_scope(engine, read_only=True) as session:
        return list(session.execute(select(Payment).where(Payment.booking_id == booking_id)
                                    .order_by(Payment.id)).scalars())


def refunds(engine, booking_id: str) -> list[Refund]:
    with session_scope(engine, read_only=True) as session:
        return list(session.execute(select(Refund).where(Refund.booking_id == booking_id)
                                    .order_by(Refund.id)).scalars())


def history_causes(engine, booking_id: str) -> list[str]:
    with session_scope(engine, read_only=True) as session:
        return list(session.execute(select(BookingHistory.cause).where(BookingHistory.booking_id == booking_id)
                                    .order_by(BookingHistory.id)).scalars())


# ---------------------------------------------------------------- the outbox, settled
def _busy(engine) -> int:
    """Entries another drain is working on: claimed and running a first attempt, or due but still
    row-locked by a claim in progress (SKIP LOCKED passes over them)."""
    now = utcnow()
    with session_scope(engine, read_only=True) as session:
        return len(session.execute(select(OutboxEntry.id).where(
            OutboxEntry.status == "pending",
            (OutboxEntry.next_attempt_at <= now)
            | (OutboxEntry.last_error.is_(None) & (OutboxEntry.attempts > 0)))).all())


def settle(live, timeout: float = 20.0) -> None:
    """Drain the outbox until nothing is due and no other drain (the after-request kick) is busy."""
    deadline = time.monotonic() + timeout
    while True:
        ran = live.drain().total
        if not ran and not _busy(live.engine):
            return
        assert time.monotonic() < deadline, "the outbox did not settle"
        if not ran:
            time.sleep(0.05)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)


def future_slot(days: int = 3, hour: int = 10) -> str:
    """A start time on the Calendly stand-in's grid (on the hour, 09..16 UTC, 1..7 days ahead)."""
    day = (datetime.now(timezone.utc) + timedelta(days=days)).date()
    return f"{day.isoformat()}T{hour:02d}:00:00Z"
