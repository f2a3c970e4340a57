"""Receiving webhooks: verify on raw bytes, store once, process idempotently, record the outcome.

The event row is inserted in the same transaction as its effects, so a concurrent duplicate waits
on the unique key and then sees the first delivery's result. A failure rolls the effects back,
stores the event as failed with its traceback, and answers 5xx so the provider retries.
"""
from __future__ import annotations

import hashlib
import json
import logging
import traceback
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.calendly import (
    CalendlyWebhook, PayloadError, SignatureError, parse_calendly_webhook, verify_calendly_signature,
)
from core.config import get_settings
from core.db import insert_ignore, session_scope
from core.keys import calendly_unhandled_key, stripe_event_key, webhook_dedupe_key
from core.models import WebhookEvent, utcnow
from core.services import slot_binding
from core.services.booking_service import CALENDLY_EVENTS
from core.services.outcome import Outcome
from core.services.payment_events import PAID_CHECKOUT_EVENTS, STRIPE_EVENTS
from core.states import WebhookOutcome as O
from core.stripe import check_stripe_event, verify_stripe_signature

log = logging.getLogger(__name__)

# A delivery of an event in one of these changes nothing: it answers "duplicate".
FINISHED = (O.PROCESSED, O.IGNORED, O.UNMATCHED, O.STRAY)
KEPT_HEADERS = ("content-type", "user-agent", "calendly-webhook-signature", "stripe-signature")


@dataclass(frozen=True)
class IngestResult:
    status_code: int
    # A WebhookOutcome, or what happened to the request itself: duplicate, missing, refused.
    outcome: str
    detail: str = ""
    booking_id: str | None = None
    event_id: int | None = None

    def body(self) -> dict:
        return {"outcome": self.outcome, "detail": self.detail}


def _stored_text(raw: bytes) -> str:
    # PostgreSQL text cannot hold NUL; a body with a raw NUL byte is never valid JSON anyway.
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


def _kept(headers: dict[str, str]) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    return {k: lowered[k][:1000] for k in KEPT_HEADERS if k in lowered}


REJECTED_BODY_PREFIX_BYTES = 2048  # enough to see what a refused delivery was; never the whole body


def _store_rejected(engine: Engine, provider: str, raw: bytes, headers: dict, outcome: O,
                    error: str, event_type: str = "") -> None:
    """Keep a refused delivery small: anyone can send them, so its row is bounded (headers, size,
    SHA-256 and a prefix of the body), whatever the body's size."""
    with session_scope(engine) as session:
        session.add(WebhookEvent(
            provider=provider, dedupe_key=None, event_type=event_type[:100],
            raw_body=_stored_text(raw[:REJECTED_BODY_PREFIX_BYTES]), body_size=len(raw),
            body_sha256=hashlib.sha256(raw).hexdigest(), headers=_kept(headers),
            signature_valid=outcome != O.REJECTED, outcome=outcome, error=error[:1000], processed_at=utcnow(),
        ))


# ---------------------------------------------------------------- parsing per provider
# Names whose payload must parse (legacy "invitee.rescheduled" is read as invitee.created).
HANDLED_CALENDLY_EVENTS = frozenset(CALENDLY_EVENTS) | {"invitee.rescheduled"}


@dataclass(frozen=True)
class UnhandledCalendlyEvent:
    event: str


def _calendly_parse(raw: bytes):
    try:
        hook = parse_calendly_webhook(raw, api_base=get_settings().calendly_api_base)
    except PayloadError:
        unhandled = _unhandled_calendly(raw)
        if unhandled is None:
            raise
        return unhandled
    return hook.dedupe_key, hook.event, hook


def _unhandled_calendly(raw: bytes):
    """An event we do not handle need not have an invitee payload: keep it and answer 2xx, since
    Calendly retries a refused delivery for a day and then disables the subscription (rule 6)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    name = body.get("event") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name or name in HANDLED_CALENDLY_EVENTS or "\x00" in name:
        return None
    payload = body.get("payload")
    ref = payload.get("uri") if isinstance(payload, dict) else None
    if not isinstance(ref, str) or not ref or "\x00" in ref:
        ref = hashlib.sha256(raw).hexdigest()
    return calendly_unhandled_key(name, ref), name, UnhandledCalendlyEvent(name)


def _stripe_parse(raw: bytes):
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise PayloadError("body is not JSON") from None
    data = event.get("data") if isinstance(event, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not (isinstance(obj, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)):
        raise PayloadError("not a Stripe event (id, type and data.object are required)")
    # Every field its handler reads, so a bad one is a 422, not a 500.
    check_stripe_event(event, paid_checkout_events=PAID_CHECKOUT_EVENTS)
    return stripe_event_key(event["id"]), event["type"], event


def _calendly_dispatch(session: Session, hook) -> Outcome:
    handler = CALENDLY_EVENTS.get(hook.event)
    if handler is None:
        return Outcome(O.IGNORED, note=f"{hook.event} is not handled")
    return handler(session, hook)


def _stripe_dispatch(session: Session, event: dict) -> Outcome:
    handler = STRIPE_EVENTS.get(event["type"])
    if handler is None:
        return Outcome(O.IGNORED, note=f"{event['type']} is not handled")
    return handler(session, event)


PROVIDERS = {
    "calendly": (_calendly_parse, _calendly_dispatch),
    "stripe": (_stripe_parse, _stripe_dispatch),
}


def verify_signature(provider: str, raw: bytes, headers: dict[str, str]) -> None:
    """Raise SignatureError unless the provider's signature header matches the raw body."""
    settings = get_settings()
    lowered = {k.lower(): v for k, v in headers.items()}
    if provider == "calendly":
        verify_calendly_signature(raw, lowered.get("calendly-webhook-signature"),
                                  settings.calendly_webhook_signing_key)
        return
    verify_stripe_signature(raw, lowered.get("stripe-signature"), settings.stripe_webhook_secret)


# ---------------------------------------------------------------- the one entry point
def ingest(engine: Engine, provider: str, raw: bytes, headers: dict[str, str]) -> IngestResult:
    """Verify, store and process one delivery; the result carries the HTTP status to answer."""
    parse, _dispatch = PROVIDERS[provider]
    try:
        verify_signature(provider, raw, headers)
    except SignatureError as error:
        _store_rejected(engine, provider, raw, headers, O.REJECTED, f"signature {error.reason}")
        return IngestResult(400, O.REJECTED, f"signature {error.reason}")
    try:
        dedupe_key, event_type, parsed = parse(raw)
    except PayloadError as error:
        _store_rejected(engine, provider, raw, headers, O.INVALID, str(error))
        return IngestResult(422, O.INVALID, str(error))
    return process(engine, provider, raw, headers, dedupe_key, event_type, parsed)


def process(engine: Engine, provider: str, raw: bytes, headers: dict, dedupe_key: str,
            event_type: str, parsed) -> IngestResult:
    _parse, dispatch = PROVIDERS[provider]
    dedupe_key = webhook_dedupe_key(dedupe_key)
    try:
        if isinstance(parsed, CalendlyWebhook):
            # Outside the transaction: it may read the scheduled event from Calendly's API.
            parsed = slot_binding.complete_slot_facts(engine, parsed)
        with session_scope(engine) as session:
            event_id = insert_ignore(session, WebhookEvent.__table__, {
                "provider": provider, "dedupe_key": dedupe_key, "event_type": event_type[:100],
                "raw_body": _stored_text(raw), "headers": _kept(headers),
                "signature_valid": True, "outcome": O.RECEIVED, "attempts": 0,
                "received_at": utcnow(),
            }, ["dedupe_key"])
            row = session.execute(
                select(WebhookEvent).where(WebhookEvent.dedupe_key == dedupe_key).with_for_update()
            ).scalar_one()
            if event_id is None and row.outcome in FINISHED:
                return IngestResult(200, "duplicate", f"already {row.outcome}", row.booking_id, row.id)
            outcome = dispatch(session, parsed)
            row.outcome = outcome.outcome
            row.error = outcome.note or None
            row.booking_id = outcome.booking_id
            row.attempts += 1
            row.processed_at = utcnow()
            result = IngestResult(200, outcome.outcome, outcome.note, outcome.booking_id, row.id)
    except Exception:
        failure = traceback.format_exc()
        log.exception("processing %s webhook %s failed", provider, dedupe_key)
        _mark_failed(engine, provider, raw, headers, dedupe_key, event_type, failure)
        return IngestResult(500, O.FAILED, "processing failed; it will be retried")
    return result


def _mark_failed(engine, provider, raw, headers, dedupe_key, event_type, failure) -> None:
    with session_scope(engine) as session:
        insert_ignore(session, WebhookEvent.__table__, {
            "provider": provider, "dedupe_key": dedupe_key, "event_type": event_type[:100],
            "raw_body": _stored_text(raw), "headers": _kept(headers),
            "signature_valid": True, "outcome": O.FAILED, "attempts": 0, "received_at": utcnow(),
        }, ["dedupe_key"])
        row = session.execute(
            select(WebhookEvent).where(WebhookEvent.dedupe_key == dedupe_key).with_for_update()
        ).scalar_one()
        if row.outcome not in FINISHED:
            row.outcome = O.FAILED
            row.error = failure
            row.attempts += 1
            row.processed_at = utcnow()


def replay(engine: Engine, event_id: int) -> IngestResult:
    """Reprocess a stored event (its signature was checked when it arrived; timestamps are old now)."""
    with session_scope(engine, read_only=True) as session:
        row = session.get(WebhookEvent, event_id)
        if row is None:
            return IngestResult(404, "missing", f"no webhook event {event_id}")
        if not row.signature_valid or row.dedupe_key is None:
            return IngestResult(409, "refused", "only events with a valid signature can be replayed")
        provider, raw, headers = row.provider, row.raw_body.encode(), row.headers or {}
    parse, _dispatch = PROVIDERS[provider]
    dedupe_key, event_type, parsed = parse(raw)
    return process(engine, provider, raw, headers, dedupe_key, event_type, parsed)


def failed_event_ids(engine: Engine) -> list[int]:
    with session_scope(engine, read_only=True) as session:
        return list(session.execute(
            select(WebhookEvent.id).where(WebhookEvent.outcome.in_((O.FAILED, O.RECEIVED)),
                                          WebhookEvent.dedupe_key.is_not(None))
            .order_by(WebhookEvent.id)
        ).scalars())
