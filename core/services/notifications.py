"""Messages to clients and builders: always stored, sent by SMTP (through the outbox) when set up."""
from __future__ import annotations

from sqlalchemy.orm import Session

from core.db import insert_ignore
from core.keys import notification_key
from core.models import Booking, Notification, utcnow
from core.money import format_amount
from core.services import booking_access
from core.services.outbox import enqueue
from core.states import OutboxKind


def _when(booking: Booking) -> str:
    if booking.start_time is None:
        return "time not chosen yet"
    return booking.start_time.strftime("%A %d %B %Y, %H:%M UTC")


def _templates(booking: Booking, kind: str, extra: dict) -> tuple[str, str]:
    session_name = booking.session_type.name or "your session"
    price = format_amount(booking.amount_cents, booking.currency)
    with_builder = f"{session_name} with {booking.builder.name}"
    payment_link = booking_access.payment_link(booking.id)  # carries the token that shows the booking to its owner
    if kind == "awaiting_payment":
        return (f"Complete your payment for {with_builder}",
                f"Your slot on {_when(booking)} is held for you. Pay {price} to confirm it:\n{payment_link}")
    if kind == "payment_reminder":
        return (f"Your slot for {with_builder} is about to be released",
                f"Your hold for {_when(booking)} ends soon. Pay {price} to keep it:\n{payment_link}")
    if kind == "payment_processing":
        held = booking.hold_expires_at.strftime("%A %d %B %Y, %H:%M UTC") if booking.hold_expires_at else "it clears"
        return (f"Payment on its way: {with_builder}",
                f"Your bank payment of {price} is being processed; banks take a few business days. "
                f"Your slot on {_when(booking)} stays held for you until {held}. There is nothing more "
                "to pay: we will email you as soon as the payment is confirmed.")
    if kind == "booking_confirmed":
        return (f"Confirmed: {with_builder}",
                f"Your payment of {price} was received. {session_name} is confirmed for {_when(booking)}.")
    if kind == "builder_new_booking":
        return (f"New paid booking: {session_name}",
                f"{booking.client.name or booking.client.email} booked and paid {price} for {_when(booking)}.")
    if kind == "booking_canceled":
        refund = extra.get("refund_cents", 0)
        refund_text = (f"{format_amount(refund, booking.currency)} will be refunded to your card."
                       if refund else "No refund is due under the cancellation policy.")
        return (f"Canceled: {with_builder}", f"Your booking for {_when(booking)} was canceled. {refund_text}")
    if kind == "booking_expired":
        return (f"Hold released: {with_builder}",
                f"We did not receive payment in time, so the slot on {_when(booking)} was released. "
                "You have not been charged.")
    if kind == "refund_issued":
        return (f"Refund for {with_builder}",
                f"{format_amount(extra['amount_cents'], booking.currency)} is on its way back to your card.")
    if kind == "booking_rescheduled":
        return (f"Rescheduled: {with_builder}", f"Your session is now on {_when(booking)}. Your payment carries over.")
    raise ValueError(f"unknown notification kind {kind}")


def notify(session: Session, booking: Booking, kind: str, *, to: str | None = None,
           dedupe: str = "", **extra) -> None:
    """Store the message and queue its delivery; `dedupe` distinguishes repeats of one kind."""
    to_email = to or booking.client.email
    subject, body = _templates(booking, kind, extra)
    key = notification_key(booking.id, kind, to_email, dedupe)  # it is the outbox key too
    notification_id = insert_ignore(
        session, Notification.__table__,
        {"booking_id": booking.id, "kind": kind, "to_email": to_email, "subject": subject,
         "body": body, "dedupe_key": key, "created_at": utcnow()},
        ["dedupe_key"],
    )
    if notification_id is not None:  # None: this very message was already queued
        enqueue(session, OutboxKind.NOTIFY, key, {"notification_id": notification_id}, booking_id=booking.id)


def resend_payment_link(session: Session, booking_id: str, *, actor: str) -> str:
    """Send the client their payment link again (an admin's nudge); returns the address it went to."""
    from core.errors import DomainError
    from core.services.transitions import lock_booking, record
    from core.states import BookingStatus

    booking = lock_booking(session, booking_id)
    if booking.status != BookingStatus.PENDING_PAYMENT:
        raise DomainError(f"only a booking waiting for payment has a link to resend "
                          f"(this one is {booking.status.lower().replace('_', ' ')})")
    if booking.payment_processing_since is not None:
        raise DomainError("the client has already paid by bank transfer and it is on its way; "
                          "a payment link would ask them to pay twice")
    sent_at = utcnow()
    notify(session, booking, "awaiting_payment", dedupe=f"resend:{sent_at.isoformat()}")
    record(session, booking, cause="payment_link_resent", actor=actor,
           details={"to": booking.client.email, "at": sent_at.isoformat()})
    return booking.client.email
