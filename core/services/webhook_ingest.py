"""Receiving webhooks: verify on raw bytes, store once, process idempotently, record the outcome.

The event row is inserted in the same transaction as its effects, so a concurrent duplicate waits
on the unique key and then sees the first delivery's result. A failure rolls the effects back,
stores the event as failed with its traceback, and answers 5xx so the provider retries.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from dataclasses import dataclass

import stripe
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.calendly import (
    CalendlyWebhook, PayloadError, SignatureError, parse_calendly_webhook, verify_calendly_signature,
)
from core.config import get_settings
from core.db import insert_ignore, session_scope
from core.keys import bounded_key
from core.models import WebhookEvent, utcnow
from core.services import booking_service, payment_service, slot_binding
from core.services.outcome import Outcome
from core.services.stripe_payload import check_stripe_event

log = logging.getLogger(__name__)

FINISHED = ("processed", "ignored", "unmatched", "stray")
KEPT_HEADERS = ("content-type", "user-agent", "calendly-webhook-signature", "stripe-signature")
MAX_DEDUPE_KEY = 600  # webhook_events.dedupe_key


@dataclass(frozen=True)
class IngestResult:
    status_code: int
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


def _store_rejected(engine: Engine, provider: str, raw: bytes, headers: dict, outcome: str,
                    error: str, event_type: str = "") -> None:
    """Keep a refused delivery small: anyone can send them, so its row is bounded (headers, size,
    SHA-256 and a prefix of the body), whatever the body's size."""
    with session_scope(engine) as session:
        session.add(WebhookEvent(
            provider=provider, dedupe_key=None, event_type=event_type[:100],
            raw_body=_stored_text(raw[:REJECTED_BODY_PREFIX_BYTES]), body_size=len(raw),
            body_sha256=hashlib.sha256(raw).hexdigest(), headers=_kept(headers),
            signature_valid=outcome != "rejected", outcome=outcome, error=error[:1000], processed_at=utcnow(),
        ))


# ---------------------------------------------------------------- parsing per provider
# Names whose payload must parse (legacy "invitee.rescheduled" is read as invitee.created).
HANDLED_CALENDLY_EVENTS = frozenset({
    "invitee.created", "invitee.canceled", "invitee_no_show.created", "invitee.rescheduled",
})


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
    return f"calendly:{name}:{ref}"[:600], name, UnhandledCalendlyEvent(name)


def _stripe_parse(raw: bytes):
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise PayloadError("body is not JSON") from None
    data = event.get("data") if isinstance(event, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not (isinstance(obj, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)):
        raise PayloadError("not a Stripe event (id, type and data.object are required)")
    check_stripe_event(event)  # every field its handler reads, so a bad one is a 422, not a 500
    return f"stripe:{event['id']}", event["type"], event


def _calendly_dispatch(session: Session, hook, _event_row) -> Outcome:
    if hook.event == "invitee.created":
        return booking_service.apply_invitee_created(session, hook)
    if hook.event == "invitee.canceled":
        return booking_service.apply_invitee_canceled(session, hook)
    if hook.event == "invitee_no_show.created":
        return booking_service.apply_no_show(session, hook)
    return Outcome("ignored", note=f"{hook.event} is not handled")


def _stripe_dispatch(session: Session, event: dict, _event_row) -> Outcome:
    kind, obj = event["type"], event["data"]["object"]
    if kind == "checkout.session.completed":
        return payment_service.confirm_payment(session, obj)
    if kind == "checkout.session.async_payment_succeeded":
        return payment_service.confirm_payment(session, obj)
    if kind == "checkout.session.async_payment_failed":
        return payment_service.release_hold(session, obj, cause="async_payment_failed")
    if kind == "checkout.session.expired":
        return payment_service.release_hold(session, obj, cause="checkout_expired")
    if kind == "charge.refunded":
        return payment_service.queue_refund_sync(session, obj, event["id"])
    if kind in ("refund.created", "refund.updated", "refund.failed"):
        return payment_service.apply_refund_object(session, obj)
    if kind.startswith("charge.dispute."):
        return payment_service.apply_dispute(session, obj)
    return Outcome("ignored", note=f"{kind} is not handled")


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
    tolerance = 300  # seconds, either way: the SDK's default for old ones, Calendly's bound for both
    header = lowered.get("stripe-signature")
    if not header:
        raise SignatureError("missing", "no Stripe-Signature header")
    if not header.isascii():  # the SDK's compare_digest raises TypeError on non-ASCII text
        raise SignatureError("malformed", "Stripe-Signature header is not ASCII")
    try:
        stripe.WebhookSignature.verify_header(raw.decode("utf-8", "replace"), header,
                                              settings.stripe_webhook_secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as error:
        reason = "stale" if "tolerance" in str(error).lower() else "mismatch"
        raise SignatureError(reason, str(error)) from None
    # The SDK refuses old timestamps only: a signed `t` a year ahead would stay replayable for a
    # year. Read `t` as the SDK did (the first element named exactly "t"; it parsed, or the SDK
    # would have refused), in integers so an absurd one cannot overflow a float.
    timestamp = next(int(item[1]) for item in (part.split("=", 2) for part in header.split(",")) if item[0] == "t")
    now = int(time.time())
    if timestamp > now + tolerance:
        ahead = "over a year" if timestamp - now > 366 * 86400 else f"{timestamp - now}s"
        raise SignatureError("future", f"signature timestamp is {ahead} in the future (tolerance {tolerance}s)")


# ---------------------------------------------------------------- the one entry point
def ingest(engine: Engine, provider: str, raw: bytes, headers: dict[str, str]) -> IngestResult:
    """Verify, store and process one delivery; the result carries the HTTP status to answer."""
    parse, _dispatch = PROVIDERS[provider]
    try:
        verify_signature(provider, raw, headers)
    except SignatureError as error:
        _store_rejected(engine, provider, raw, headers, "rejected", f"signature {error.reason}")
        return IngestResult(400, "rejected", f"signature {error.reason}")
    try:
        dedupe_key, event_type, parsed = parse(raw)
    except PayloadError as error:
        _store_rejected(engine, provider, raw, headers, "invalid", str(error))
        return IngestResult(422, "invalid", str(error))
    return process(engine, provider, raw, headers, dedupe_key, event_type, parsed)


def process(engine: Engine, provider: str, raw: bytes, headers: dict, dedupe_key: str,
            event_type: str, parsed) -> IngestResult:
    _parse, dispatch = PROVIDERS[provider]
    dedupe_key = bounded_key(dedupe_key, MAX_DEDUPE_KEY)
    try:
        if isinstance(parsed, CalendlyWebhook):
            # Outside the transaction: it may read the scheduled event from Calendly's API.
            parsed = slot_binding.complete_slot_facts(engine, parsed)
        with session_scope(engine) as session:
            event_id = insert_ignore(session, WebhookEvent.__table__, {
                "provider": provider, "dedupe_key": dedupe_key, "event_type": event_type[:100],
                "raw_body": _stored_text(raw), "headers": _kept(headers),
                "signature_valid": True, "outcome": "received", "attempts": 0,
                "received_at": utcnow(),
            }, ["dedupe_key"])
            row = session.execute(
                select(WebhookEvent).where(WebhookEvent.dedupe_key == dedupe_key).with_for_update()
            ).scalar_one()
            if event_id is None and row.outcome in FINISHED:
                return IngestResult(200, "duplicate", f"already {row.outcome}", row.booking_id, row.id)
            outcome = dispatch(session, parsed, row)
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
        return IngestResult(500, "failed", "processing failed; it will be retried")
    return result


def _mark_failed(engine, provider, raw, headers, dedupe_key, event_type, failure) -> None:
    with session_scope(engine) as session:
        insert_ignore(session, WebhookEvent.__table__, {
            "provider": provider, "dedupe_key": dedupe_key, "event_type": event_type[:100],
            "raw_body": _stored_text(raw), "headers": _kept(headers),
            "signature_valid": True, "outcome": "failed", "attempts": 0, "received_at": utcnow(),
        }, ["dedupe_key"])
        row = session.execute(
            select(WebhookEvent).where(WebhookEvent.dedupe_key == dedupe_key).with_for_update()
        ).scalar_one()
        if row.outcome not in FINISHED:
            row.outcome = "failed"
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
            select(WebhookEvent.id).where(WebhookEvent.outcome.in_(("failed", "received")),
                                          WebhookEvent.dedupe_key.is_not(None))
            .order_by(WebhookEvent.id)
        ).scalars())
