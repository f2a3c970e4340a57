"""Unpaid holds end on time: reminders before, expiry after, so no slot stays blocked.

Stripe expires the Checkout Session itself and tells us by webhook; this job is the safety net
for a webhook that never came, and asks Stripe for the truth before expiring anything.
"""
from __future__ import annotations

import logging
from datetime import timedelta

import stripe
from sqlalchemy import Engine, select

from core.config import get_settings
from core.db import session_scope
from core.models import Booking, utcnow
from core.services import payment_service
from core.services.notifications import notify
from core.services.outcome import Outcome
from core.services.transitions import lock_booking
from core.states import BookingStatus as S

log = logging.getLogger(__name__)

WORKER = "system:worker"
GRACE = timedelta(minutes=2)  # let Stripe's own checkout.session.expired arrive first
ABANDONED_SCHEDULING = timedelta(hours=24)


def send_payment_reminders(engine: Engine, *, now=None) -> int:
    now = now or utcnow()
    ahead = timedelta(minutes=get_settings().reminder_minutes_before_expiry)
    with session_scope(engine) as session:
        bookings = session.execute(
            select(Booking).where(
                Booking.status == S.PENDING_PAYMENT, Booking.reminder_sent_at.is_(None),
                Booking.hold_expires_at.is_not(None), Booking.hold_expires_at > now,
                Booking.hold_expires_at <= now + ahead,
            ).limit(200).with_for_update(skip_locked=True)
        ).scalars().all()
        for booking in bookings:
            booking.reminder_sent_at = now
            notify(session, booking, "payment_reminder")
        return len(bookings)


def settle_overdue_hold(engine: Engine, booking_id: str, stripe_client) -> Outcome:
    """Ask Stripe about the booking's checkout, then confirm, or expire it everywhere."""
    with session_scope(engine, read_only=True) as session:
        checkout_id = session.get(Booking, booking_id).stripe_checkout_session_id
    checkout = None
    if checkout_id:
        current = stripe_client.v1.checkout.sessions.retrieve(checkout_id)
        if current.status == "open":
            current = stripe_client.v1.checkout.sessions.expire(
                checkout_id, options={"idempotency_key": f"checkout-expire:{checkout_id}"})
        checkout = current.to_dict()
    with session_scope(engine) as session:
        if checkout is not None and checkout.get("status") == "complete":
            return payment_service.confirm_payment(session, checkout, actor=WORKER)
        if checkout is not None:
            return payment_service.release_hold(session, checkout, actor=WORKER, cause="hold_expired")
        booking = lock_booking(session, booking_id)
        if booking.status != S.PENDING_PAYMENT:
            return Outcome("ignored", booking.id)
        payment_service.expire_locked(session, booking, actor=WORKER, cause="hold_expired")
        return Outcome("processed", booking.id)


def expire_overdue_holds(engine: Engine, stripe_client, *, now=None) -> int:
    now = now or utcnow()
    with session_scope(engine, read_only=True) as session:
        overdue = list(session.execute(
            select(Booking.id).where(Booking.status == S.PENDING_PAYMENT,
                                     Booking.hold_expires_at < now - GRACE).limit(200)
        ).scalars())
    expired = 0
    for booking_id in overdue:
        try:
            expired += settle_overdue_hold(engine, booking_id, stripe_client).outcome == "processed"
        except stripe.StripeError as error:  # one unreadable checkout must not hold up the others
            log.warning("hold of %s not settled (Stripe: %s); retried next tick", booking_id,
                        type(error).__name__)
    with session_scope(engine) as session:
        abandoned = session.execute(
            select(Booking).where(Booking.status == S.PENDING_SCHEDULING,
                                  Booking.created_at < now - ABANDONED_SCHEDULING)
            .limit(500).with_for_update(skip_locked=True)
        ).scalars().all()
        for booking in abandoned:
            payment_service.expire_locked(session, booking, actor=WORKER, cause="never_scheduled")
    return expired + len(abandoned)
