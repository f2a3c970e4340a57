"""Reconciliation: ask Stripe and Calendly for the truth and apply it.

Events (Stripe's event list; a Calendly invitee found or canceled) are fed to
`webhook_ingest.process` under the same dedupe key their webhook would have had, so an event that
was (or later is) delivered is never applied twice. Objects read directly (a pending payment's
Checkout Session, a refund Stripe was still working on) go to the same functions the webhook
handlers call (`payment_events`), which act on the booking's current state and so change nothing
when a webhook got there first. A held slot that Calendly shows is not the booking's (another event
type or host) is released by `slot_binding.release_mismatched_slot`, as its webhook would have been.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select

from core.calendly import CalendlyAPIError, CalendlyError, parse_calendly_webhook
from core.config import get_settings
from core.db import session_scope
from core.keys import stripe_event_key
from core.models import Booking, Builder, Refund, SystemState, utcnow
from core.providers import calendly_for
from core.services import payment_events, slot_binding
from core.services.transitions import lock_booking
from core.services.webhook_ingest import process
from core.states import HOLDS_SLOT, BookingStatus as S, RefundStatus, WebhookOutcome as O
from core.stripe import StripeGateway, StripeGatewayError, stripe_gateway

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "reconcile.stripe_events.created_gte"
OVERLAP = 120  # seconds re-read at each run: events can become visible slightly out of order
RECONCILE_HEADERS = {"user-agent": "reconcile"}
RECONCILE = "system:reconcile"


def _tally(counts: dict[str, int], key: str) -> None:
    key = str(key)  # an enum member counts under its plain value (the counts are logged and printed)
    counts[key] = counts.get(key, 0) + 1


def _checkpoint(engine: Engine) -> int | None:
    with session_scope(engine, read_only=True) as session:
        row = session.get(SystemState, CHECKPOINT_KEY)
        return int(row.value) if row else None


def _save_checkpoint(engine: Engine, created: int) -> None:
    with session_scope(engine) as session:
        row = session.get(SystemState, CHECKPOINT_KEY)
        if row is None:
            session.add(SystemState(key=CHECKPOINT_KEY, value=str(created)))
        elif int(row.value) < created:
            row.value = str(created)


def reconcile_stripe_events(engine: Engine, gateway: StripeGateway | None = None) -> dict[str, int]:
    """Replay Stripe's events of every type we handle (`payment_events.STRIPE_EVENTS`) since the
    checkpoint (the last 3 days at first)."""
    gateway = gateway or stripe_gateway()
    since = _checkpoint(engine)
    since = (since - OVERLAP) if since else int((utcnow() - timedelta(days=3)).timestamp())
    counts: dict[str, int] = {}
    newest = since
    for data in gateway.events(payment_events.STRIPE_EVENTS, created_since=since):
        raw = json.dumps(data).encode()
        result = process(engine, "stripe", raw, RECONCILE_HEADERS, stripe_event_key(data["id"]), data["type"], data)
        _tally(counts, result.outcome)
        newest = max(newest, int(data["created"]))
    _save_checkpoint(engine, newest)
    return counts


def _apply_invitee(engine: Engine, event_name: str, invitee: dict, scheduled_event: dict) -> str:
    envelope = {"event": event_name, "created_at": utcnow().isoformat(),
                "payload": {**invitee, "scheduled_event": scheduled_event}}
    raw = json.dumps(envelope).encode()
    hook = parse_calendly_webhook(raw, api_base=get_settings().calendly_api_base)
    return process(engine, "calendly", raw, RECONCILE_HEADERS, hook.dedupe_key, hook.event, hook).outcome


def find_scheduled_invitee(engine: Engine, booking_id: str) -> str:
    """A booking still waiting for its invitee.created: look for its invitee in Calendly."""
    with session_scope(engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        if booking is None or booking.status != S.PENDING_SCHEDULING:
            return O.IGNORED
        builder, email = booking.builder, booking.client.email
        if not builder.calendly_token_encrypted:
            return "not_connected"  # nobody's Calendly to ask (demo data, a disconnected builder)
        client, user_uri = calendly_for(builder), builder.calendly_user_uri
        since = (booking.created_at - timedelta(minutes=5)).isoformat()
    for event in client.list_scheduled_events(user_uri, invitee_email=email):
        if event.get("created_at") and event["created_at"] < since:
            continue
        for invitee in client.list_invitees(event["uri"], email=email):
            if _booking_ref(invitee) == booking_id:
                return _apply_found_invitee(engine, invitee, event)[0]
    return "not_found"


def _booking_ref(invitee: dict) -> str:
    return ((invitee.get("tracking") or {}).get("utm_content") or "").strip()


def _apply_found_invitee(engine: Engine, invitee: dict, scheduled_event: dict) -> list[str]:
    """An invitee read from Calendly, as its webhooks would have brought it: created, then
    canceled if it is. The outcomes, in that order."""
    outcomes = [_apply_invitee(engine, "invitee.created", invitee, scheduled_event)]
    if invitee.get("status") == "canceled":
        outcomes.append(_apply_invitee(engine, "invitee.canceled", invitee, scheduled_event))
    return outcomes


def _of_our_bookings(engine: Engine, invitees: list[dict]) -> list[dict]:
    """The invitees that name one of our bookings (utm_content) or are, or replace, one on a booking."""
    refs = {_booking_ref(invitee) for invitee in invitees} - {""}
    uris = {uri for invitee in invitees for uri in (invitee.get("uri"), invitee.get("old_invitee")) if uri}
    with session_scope(engine, read_only=True) as session:
        known_ids = set(session.execute(select(Booking.id).where(Booking.id.in_(refs))).scalars()) if refs else set()
        known_uris = set(session.execute(select(Booking.calendly_invitee_uri).where(
            Booking.calendly_invitee_uri.in_(uris))).scalars()) if uris else set()
    return [invitee for invitee in invitees
            if _booking_ref(invitee) in known_ids or {invitee.get("uri"), invitee.get("old_invitee")} & known_uris]


def reconcile_builder(engine: Engine, builder_id: int, since: datetime) -> dict[str, int]:
    """One builder's bookings whose webhooks may never have come since `since` (their webhook
    subscription was disabled or missing): every invitee of theirs in Calendly's scheduled events
    from then on that belongs to a booking of ours is applied as `find_scheduled_invitee` applies
    one (its webhook's dedupe key: what did arrive changes nothing). Events are listed by start
    time, and a booking made after `since` starts after it. Stamps `calendly_last_reconcile_at`."""
    started = utcnow()
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        if builder is None or not builder.calendly_user_uri:
            return {"not_connected": 1}
        client, user_uri = calendly_for(builder), builder.calendly_user_uri
    counts: dict[str, int] = {}
    min_start = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for event in client.list_scheduled_events(user_uri, min_start_time=min_start):
        for invitee in _of_our_bookings(engine, client.list_invitees(event["uri"])):
            names = ("created", "canceled")
            for name, outcome in zip(names, _apply_found_invitee(engine, invitee, event)):
                _tally(counts, f"{name}:{outcome}")
    with session_scope(engine) as session:
        session.get(Builder, builder_id).calendly_last_reconcile_at = started
    return counts


def reconcile_calendly(engine: Engine) -> dict[str, int]:
    """Bookings whose Calendly side may have changed without a webhook reaching us."""
    counts: dict[str, int] = {}
    now = utcnow()
    with session_scope(engine, read_only=True) as session:
        waiting = list(session.execute(
            select(Booking.id).where(Booking.status == S.PENDING_SCHEDULING,
                                     Booking.created_at > now - timedelta(days=1))).scalars())
        held = list(session.execute(
            select(Booking.id, Booking.calendly_invitee_uri, Booking.builder_id)
            .where(Booking.status.in_(HOLDS_SLOT),
                   # Only URIs of the Calendly we talk to can be asked about (not demo data's).
                   Booking.calendly_invitee_uri.startswith(get_settings().calendly_api_base + "/"),
                   Booking.start_time > now)
        ).all())
    for booking_id in waiting:
        outcome = _guard(find_scheduled_invitee, engine, booking_id)
        _tally(counts, f"scheduling:{outcome}")
    for booking_id, invitee_uri, builder_id in held:
        outcome = _guard(_check_held_slot, engine, booking_id, invitee_uri, builder_id)
        _tally(counts, f"held:{outcome}")
    return counts


def _check_held_slot(engine: Engine, booking_id: str, invitee_uri: str, builder_id: int) -> str:
    """A booking holding a slot: is it still its own slot (event type and host), and is it still
    booked? Read with the booking's builder's token: a slot that builder cannot read is not theirs."""
    with session_scope(engine, read_only=True) as session:
        client = calendly_for(session.get(Builder, builder_id))
    try:
        invitee = client.get_invitee(invitee_uri)
        event = client.get_scheduled_event(invitee["event"])
    except CalendlyAPIError as error:
        if error.status not in (403, 404):
            raise
        event_type, hosts = None, ()
        why = f"the booking's builder cannot read this slot in Calendly ({error.status}): it is not theirs"
    else:
        event_type, hosts = event.get("event_type"), slot_binding.hosts_of(event)
        with session_scope(engine, read_only=True) as session:
            why = slot_binding.mismatch(session.get(Booking, booking_id), event_type, hosts)
    if why is not None:
        with session_scope(engine) as session:
            booking = lock_booking(session, booking_id)
            if booking.status not in HOLDS_SLOT or booking.calendly_invitee_uri != invitee_uri:
                return "changed"
            return "mismatch:" + slot_binding.release_mismatched_slot(
                session, booking, event_type_uri=event_type, host_uris=hosts, why=why, actor=RECONCILE)
    if invitee.get("status") != "canceled":
        return "unchanged"
    return _apply_invitee(engine, "invitee.canceled", invitee, event)


def _guard(fn, *args) -> str:
    try:
        return fn(*args)
    except (CalendlyError, ValueError) as error:
        log.warning("reconcile: %s failed: %s", fn.__name__, error)
        return "error"


def reconcile_checkouts(engine: Engine, gateway: StripeGateway | None = None) -> dict[str, int]:
    """Pending payments whose Checkout Session is no longer open at Stripe."""
    gateway = gateway or stripe_gateway()
    counts: dict[str, int] = {}
    with session_scope(engine, read_only=True) as session:
        pending = list(session.execute(
            select(Booking.id, Booking.stripe_checkout_session_id)
            .where(Booking.status == S.PENDING_PAYMENT, Booking.stripe_checkout_session_id.is_not(None),
                   # Completed, settling by bank: its outcome comes as an event (replayed above),
                   # and the worker asks Stripe once when the settlement window ends.
                   Booking.payment_processing_since.is_(None))
        ).all())
    for booking_id, checkout_id in pending:
        try:
            outcome = payment_events.sync_checkout(engine, checkout_id, gateway, actor=RECONCILE).outcome
        except StripeGatewayError as error:
            log.warning("reconcile: checkout %s of %s unreadable: %s", checkout_id, booking_id, error)
            _tally(counts, "error")
            continue
        _tally(counts, outcome)
    return counts


def reconcile_refunds(engine: Engine, gateway: StripeGateway | None = None) -> dict[str, int]:
    """Refunds Stripe was still working on: read their current status."""
    gateway = gateway or stripe_gateway()
    counts: dict[str, int] = {}
    with session_scope(engine, read_only=True) as session:
        pending = list(session.execute(
            select(Refund.stripe_refund_id).where(Refund.status == RefundStatus.PENDING,
                                                  Refund.stripe_refund_id.is_not(None))
        ).scalars())
    for refund_id in pending:
        refund = gateway.refund(refund_id)
        with session_scope(engine) as session:
            outcome = payment_events.apply_refund_object(session, refund, actor=RECONCILE).outcome
        _tally(counts, outcome)
    return counts


def reconcile(engine: Engine, *, progress: bool = False) -> dict[str, dict[str, int]]:
    """Every reconciliation step; each step's failure is reported, not fatal to the others."""
    steps = {
        "stripe_events": reconcile_stripe_events,
        "checkouts": reconcile_checkouts,
        "calendly": reconcile_calendly,
        "refunds": reconcile_refunds,
    }
    summary: dict[str, dict[str, int]] = {}
    for name, step in steps.items():
        if progress:
            print(f"reconcile: {name}…", file=sys.stderr, flush=True)
        try:
            summary[name] = step(engine)
        except Exception as error:
            log.exception("reconcile step %s failed", name)
            summary[name] = {"error": 1, "message": str(error)[:200]}  # type: ignore[dict-item]
    return summary


__all__ = ["reconcile", "find_scheduled_invitee", "reconcile_builder"]
