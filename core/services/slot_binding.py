"""Which Calendly slot belongs to which booking.

Our booking id travels in `utm_content`, and a client can edit it on any Calendly booking page: a
signed `invitee.created` proves that Calendly saw a booking, not that the booking is the one named
in it. A slot belongs to a booking only when its event type is the booking's session type's and
the booking's builder hosts it (docs/architecture.md, rule 5); anything else is a *stray*, never
attached, so a client can never hold a dearer or another builder's slot at a cheaper booking's price.
"""
from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.calendly import CalendlyAPIError, CalendlyWebhook
from core.db import session_scope
from core.models import Booking, BookingHistory, Builder, SessionType
from core.providers import calendly_for
from core.services import checkout_service
from core.services.outbox import STRAY_SLOT_REASON, cancel_calendly_event_later
from core.services.transitions import record, transition
from core.states import BookingStatus as S

log = logging.getLogger(__name__)

# History causes an admin must look at (the dashboard's Failures page lists them).
STRAY_SLOT = "stray_slot_refused"
SLOT_MISMATCH = "slot_mismatch_found"


def _same(uri_a: str | None, uri_b: str | None) -> bool:
    return bool(uri_a) and bool(uri_b) and uri_a.rstrip("/") == uri_b.rstrip("/")


def mismatch(booking: Booking, event_type_uri: str | None, host_uris: tuple[str, ...]) -> str | None:
    """Why a slot with this event type and these hosts is not `booking`'s, or None when it is."""
    expected_type = booking.session_type.calendly_event_type_uri
    if not _same(event_type_uri, expected_type):
        return (f"the slot's event type ({event_type_uri or 'unknown'}) is not this booking's "
                f"session type ({expected_type})")
    builder_uri = booking.builder.calendly_user_uri
    if not any(_same(host, builder_uri) for host in host_uris):
        hosts = ", ".join(host_uris) or "unknown"
        return f"the slot's host ({hosts}) is not this booking's builder ({builder_uri or 'not connected'})"
    return None


def owner_of(session: Session, event_type_uri: str | None, host_uris: tuple[str, ...]) -> Builder | None:
    """The builder of ours whose calendar holds this slot: its host, else its event type's builder."""
    hosts = [uri for uri in host_uris if uri]
    if hosts:
        builder = session.execute(
            select(Builder).where(Builder.calendly_user_uri.in_(hosts)).order_by(Builder.id).limit(1)
        ).scalar_one_or_none()
        if builder is not None:
            return builder
    if event_type_uri:
        return session.execute(
            select(Builder).join(SessionType, SessionType.builder_id == Builder.id)
            .where(SessionType.calendly_event_type_uri == event_type_uri).limit(1)
        ).scalar_one_or_none()
    return None


def hosts_of(scheduled_event: dict) -> tuple[str, ...]:
    """`event_memberships[].user` of a scheduled Event resource from Calendly's API."""
    members = scheduled_event.get("event_memberships")
    if not isinstance(members, list):
        return ()
    return tuple(m["user"] for m in members if isinstance(m, dict) and isinstance(m.get("user"), str))


def refused_slot(session: Session, booking_id: str) -> str | None:
    """Why the slot the client just picked was refused, while the booking still waits for its own
    (the last thing that happened to it was a stray refusal); None otherwise."""
    last = session.execute(
        select(BookingHistory).where(BookingHistory.booking_id == booking_id)
        .order_by(BookingHistory.id.desc()).limit(1)
    ).scalar_one_or_none()
    if last is None or last.cause != STRAY_SLOT or last.to_status != S.PENDING_SCHEDULING:
        return None
    return str((last.details or {}).get("why") or "the time was booked through a link for another session")


def complete_slot_facts(engine: Engine, hook: CalendlyWebhook) -> CalendlyWebhook:
    """An `invitee.created` whose payload lacks the event type or the hosts (the older shape names
    hosts only by display name), completed by reading the scheduled event from Calendly's API.

    Read with the token of a builder who may own the event: the booking's named in `utm_content`,
    then the builder of the event type. When none of ours can read it, the hook stays incomplete
    and is refused as a stray. Calendly being unavailable raises, so the delivery is retried.
    """
    if hook.event != "invitee.created" or (hook.event_type_uri and hook.host_uris):
        return hook
    with session_scope(engine, read_only=True) as session:
        candidates: list[Builder] = []
        booking = session.get(Booking, hook.booking_ref) if hook.booking_ref else None
        if booking is not None:
            candidates.append(booking.builder)
        owner = owner_of(session, hook.event_type_uri, ())
        if owner is not None and owner not in candidates:
            candidates.append(owner)
        clients = [calendly_for(builder) for builder in candidates if builder.calendly_token_encrypted]
    for client in clients:
        try:
            event = client.get_scheduled_event(hook.event_uri)
        except CalendlyAPIError as error:
            if error.status in (403, 404):
                continue  # not this builder's event: try the next one
            raise
        event_type = event.get("event_type") if isinstance(event.get("event_type"), str) else None
        return dataclasses.replace(hook, event_type_uri=event_type or hook.event_type_uri,
                                   host_uris=hosts_of(event))
    log.info("no builder of ours can read Calendly event %s", hook.event_uri)
    return hook


def release_mismatched_slot(session: Session, booking: Booking, *, event_type_uri: str | None,
                            host_uris: tuple[str, ...], why: str, actor: str) -> str:
    """Reconcile found a booking (locked) holding a slot that is not its own (attached before the
    binding was checked). Unpaid: the booking expires, its checkout closes and the slot is freed
    with its host's token. Paid: nothing is taken from the client automatically; an admin decides.
    Acts once: a booking already flagged for this slot is left alone."""
    flagged = session.execute(
        select(BookingHistory.id).where(BookingHistory.booking_id == booking.id,
                                        BookingHistory.cause == SLOT_MISMATCH).limit(1)
    ).first()
    if flagged is not None and booking.status != S.PENDING_PAYMENT:
        return "flagged"
    owner = owner_of(session, event_type_uri, host_uris)
    details = {"event": booking.calendly_event_uri, "event_type": event_type_uri, "hosts": list(host_uris),
               "why": why, "owner_builder_id": owner.id if owner else None}
    if booking.status != S.PENDING_PAYMENT:
        record(session, booking, cause=SLOT_MISMATCH, actor=actor, details=details)
        return "flagged"
    transition(session, booking, S.EXPIRED, cause=SLOT_MISMATCH, actor=actor, details=details)
    booking.hold_expires_at = None
    checkout_service.close_checkout(session, booking)
    if booking.calendly_event_uri:
        cancel_calendly_event_later(session, booking_id=booking.id, event_uri=booking.calendly_event_uri,
                                    builder_id=owner.id if owner else None, reason=STRAY_SLOT_REASON)
    return "released"
