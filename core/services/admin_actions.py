"""What an admin (or a builder, for their own prices) may do by hand: refund, cancel, resend the
payment link, retry a side effect, reprocess a webhook, change a price.

The dashboard's buttons and the admin JSON API both call these functions: each checks the viewer's
rights (`core.auth`), then calls one core service with the viewer as the actor. The services write
the state change, its history row and any outbox entry in one transaction; nothing here calls
Stripe or Calendly (the worker does, from the outbox).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.auth import Viewer, check_booking_access, check_builder_access, require_admin
from core.db import session_scope
from core.errors import NotFound
from core.models import Booking, SessionType
from core.services import booking_service, catalog, notifications, outbox, refunds, webhook_ingest
from core.services.transitions import record


def _booking(session: Session, viewer: Viewer, booking_id: str) -> Booking:
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise NotFound(f"no booking {booking_id}")
    check_booking_access(viewer, booking.builder_id)
    return booking


def refund(session: Session, viewer: Viewer, booking_id: str, amount_cents: int | None, *,
           reason: str = "") -> int:
    """Refund part of a booking (or, with None, all that is left); RefundRefused beyond the remainder."""
    require_admin(viewer)
    _booking(session, viewer, booking_id)
    return refunds.request_refund(session, booking_id, amount_cents,
                                  reason=reason.strip() or f"Refund by {viewer.email}",
                                  actor=viewer.actor)


def cancel(session: Session, viewer: Viewer, booking_id: str, *, reason: str = "") -> int:
    """Cancel the booking: its Calendly event is canceled and the policy's refund issued (returned)."""
    require_admin(viewer)
    _booking(session, viewer, booking_id)
    return booking_service.cancel_booking(session, booking_id, actor=viewer.actor,
                                          reason=reason.strip() or f"Canceled by {viewer.email}")


def resend_payment_link(session: Session, viewer: Viewer, booking_id: str) -> str:
    """Email the client the link to pay again; returns the address it went to."""
    require_admin(viewer)
    _booking(session, viewer, booking_id)
    return notifications.resend_payment_link(session, booking_id, actor=viewer.actor)


def retry_outbox(session: Session, viewer: Viewer, entry_id: int) -> str:
    """Make a failed side effect due again (the worker runs it next); returns its kind."""
    require_admin(viewer)
    entry = outbox.retry_now(session, entry_id)
    if entry.booking_id:
        booking = session.get(Booking, entry.booking_id)
        if booking is not None:
            record(session, booking, cause="outbox_retry_requested", actor=viewer.actor,
                   details={"outbox_id": entry.id, "kind": entry.kind})
    return entry.kind


@dataclass(frozen=True)
class ReprocessResult:
    ok: bool
    outcome: str
    detail: str
    booking_id: str | None


def reprocess_webhook(engine: Engine, viewer: Viewer, event_id: int) -> ReprocessResult:
    """Run a stored webhook event through processing again, and note it on its booking."""
    require_admin(viewer)
    result = webhook_ingest.replay(engine, event_id)
    ok = result.status_code < 300
    if result.booking_id:
        with session_scope(engine) as session:
            booking = session.get(Booking, result.booking_id)
            if booking is not None:
                record(session, booking, cause="webhook_reprocessed", actor=viewer.actor,
                       details={"webhook_event_id": event_id, "outcome": result.outcome})
    return ReprocessResult(ok, result.outcome, result.detail, result.booking_id)


def update_price(session: Session, viewer: Viewer, session_type_id: int, amount_cents: int,
                 currency: str, *, active: bool | None = None) -> SessionType:
    """A builder changes one of their own prices; an admin any builder's."""
    session_type = session.get(SessionType, session_type_id)
    if session_type is None:
        raise NotFound(f"no session type {session_type_id}")
    check_builder_access(viewer, session_type.builder_id, "session type")
    return catalog.update_price(session, session_type_id, amount_cents, currency, active=active)


__all__ = ["refund", "cancel", "resend_payment_link", "retry_outbox", "reprocess_webhook",
           "update_price", "ReprocessResult"]
