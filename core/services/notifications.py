"""Messages to clients and builders: always stored, sent by SMTP (through the outbox) when set up.

The words are `core.mail.wording`'s; they are decided when the message is queued and kept with its
outbox entry (`mail`), so a retry sends the same message. Two messages ask the client to pay, and
both must arrive only while that is still true:

- "Complete your payment" (awaiting_payment) waits PAYMENT_NUDGE_AFTER_MINUTES after the client
  picked a slot: right then they are on their way to Stripe, and a "you have not paid" mail would
  cross their payment. `nudge_now` sends it at once (a client back from Stripe without paying).
- At send time, either is dropped (`reason_not_to_send`) once the booking is paid, canceled,
  expired, or a bank payment is on its way; its outbox entry is done with the reason in its
  payload (`skipped`), and the Notification keeps `sent_at` empty: it was never sent.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import insert_ignore
from core.keys import notification_key
from core.mail import wording
from core.models import Booking, Notification, OutboxEntry, utcnow
from core.services.outbox import enqueue
from core.states import BookingStatus, OutboxKind, OutboxStatus

# The messages that ask the client to pay: only worth sending while the booking waits for it.
ASKS_FOR_PAYMENT = frozenset({"awaiting_payment", "payment_reminder"})
PAYMENT_NUDGE = "awaiting_payment"


def notify(session: Session, booking: Booking, kind: str, *, to: str | None = None,
           dedupe: str = "", delay: timedelta | None = None, **extra) -> None:
    """Store the message and queue its delivery; `dedupe` distinguishes repeats of one kind.

    `delay`: send no earlier than this from now. The first "complete your payment" of a booking
    waits PAYMENT_NUDGE_AFTER_MINUTES unless told otherwise."""
    to_email = to or booking.client.email
    content = wording.write(session, booking, kind, extra)
    key = notification_key(booking.id, kind, to_email, dedupe)  # it is the outbox key too
    notification_id = insert_ignore(
        session, Notification.__table__,
        {"booking_id": booking.id, "kind": kind, "to_email": to_email, "subject": content.subject[:300],
         "body": content.text(), "dedupe_key": key, "created_at": utcnow()},
        ["dedupe_key"],
    )
    if notification_id is None:  # this very message was already queued
        return
    entry_id = enqueue(session, OutboxKind.NOTIFY, key,
                       {"notification_id": notification_id, "mail": content.to_payload()}, booking_id=booking.id)
    if delay is None and kind == PAYMENT_NUDGE and not dedupe:
        delay = timedelta(minutes=get_settings().payment_nudge_after_minutes)
    if entry_id is not None and delay:
        session.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id)
                        .values(next_attempt_at=utcnow() + delay))


def reason_not_to_send(session: Session, notification: Notification) -> str | None:
    """Why a queued message should no longer go out, or None to send it."""
    if notification.kind not in ASKS_FOR_PAYMENT or notification.booking_id is None:
        return None
    booking = session.get(Booking, notification.booking_id)
    if booking.status != BookingStatus.PENDING_PAYMENT:
        return f"not sent: the booking is {booking.status.lower().replace('_', ' ')}, not waiting for payment"
    if booking.payment_processing_since is not None:
        return "not sent: a payment is on its way (processing)"
    if notification.kind == PAYMENT_NUDGE and booking.reminder_sent_at is not None \
            and booking.reminder_sent_at >= notification.created_at:
        return "not sent: the reminder that the hold ends soon went out instead"
    return None


def nudge_now(session: Session, booking_id: str) -> bool:
    """Send the booking's waiting "complete your payment" now instead of after the delay (the
    client came back from Stripe without paying). True when there was one waiting."""
    booking = session.get(Booking, booking_id)
    if booking is None or booking.status != BookingStatus.PENDING_PAYMENT:
        return False
    key = notification_key(booking.id, PAYMENT_NUDGE, booking.client.email)
    now = utcnow()
    moved = session.execute(
        update(OutboxEntry).where(OutboxEntry.idempotency_key == key, OutboxEntry.status == OutboxStatus.PENDING,
                                  OutboxEntry.attempts == 0, OutboxEntry.next_attempt_at > now)
        .values(next_attempt_at=now)
    ).rowcount
    return bool(moved)


def resend_payment_link(session: Session, booking_id: str, *, actor: str) -> str:
    """Send the client their payment link again (an admin's nudge); returns the address it went to."""
    from core.errors import DomainError
    from core.services.transitions import lock_booking, record

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
