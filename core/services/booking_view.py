"""A booking as the outside world sees it: the admin API's JSON, the CLI's show-booking."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.models import Booking, OutboxEntry
from core.services.ledger import summarize
from core.states import BookingStatus


def _iso(value):
    return value.isoformat() if value else None


def booking_json(session: Session, booking_id: str, *, with_history: bool = False) -> dict:
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise NotFound(f"no booking {booking_id}")
    summary = summarize(session, booking)
    intent = booking.payments[0].stripe_payment_intent_id if booking.payments else None
    data = {
        "id": booking.id,
        "status": booking.status,
        "payment_status": summary.state.value,
        "amount_cents": booking.amount_cents,
        "currency": booking.currency,
        "paid_cents": summary.paid_cents,
        "refunded_cents": summary.refunded_cents,
        "refundable_cents": summary.refundable_cents,
        "start_time": _iso(booking.start_time),
        "end_time": _iso(booking.end_time),
        "hold_expires_at": _iso(booking.hold_expires_at),
        # A bank payment on its way (Checkout completed, not settled yet): the slot stays held.
        "payment_processing": (booking.status == BookingStatus.PENDING_PAYMENT
                               and booking.payment_processing_since is not None),
        "payment_processing_since": _iso(booking.payment_processing_since),
        "invitee_timezone": booking.invitee_timezone,
        "calendly_cancel_url": booking.calendly_cancel_url,
        "calendly_reschedule_url": booking.calendly_reschedule_url,
        "builder": {"id": booking.builder_id, "name": booking.builder.name},
        "session_type": {"id": booking.session_type_id, "name": booking.session_type.name,
                         "duration_minutes": booking.session_type.duration_minutes},
        "client": {"email": booking.client.email, "name": booking.client.name},
        "calendly_event_uri": booking.calendly_event_uri,
        "calendly_invitee_uri": booking.calendly_invitee_uri,
        "stripe_checkout_session_id": booking.stripe_checkout_session_id,
        "stripe_payment_intent_id": intent,
        "cancel_reason": booking.cancel_reason,
        "created_at": _iso(booking.created_at),
        "refunds": [
            {"id": r.id, "amount_cents": r.amount_cents, "currency": r.currency, "status": r.status,
             "reason": r.reason, "rule": r.rule, "issued_by": r.issued_by,
             "stripe_refund_id": r.stripe_refund_id, "created_at": _iso(r.created_at)}
            for r in booking.refunds
        ],
    }
    if with_history:
        data["history"] = [
            {"at": _iso(h.created_at), "from": h.from_status, "to": h.to_status, "cause": h.cause,
             "actor": h.actor, "details": h.details}
            for h in booking.history
        ]
        data["outbox"] = [
            {"id": e.id, "kind": e.kind, "status": e.status, "attempts": e.attempts,
             "last_error": e.last_error}
            for e in session.execute(select(OutboxEntry).where(OutboxEntry.booking_id == booking.id)
                                     .order_by(OutboxEntry.id)).scalars()
        ]
    return data
