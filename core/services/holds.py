"""Unpaid holds end on time: reminders before, expiry after, so no slot stays blocked.

Stripe expires the Checkout Session itself and tells us by webhook; this job is the safety net
for a webhook that never came, and asks Stripe for the truth before expiring anything.

A payment on its way (bank transfer, `payment_processing`) is not an unpaid hold: it gets no
reminder, and its hold lasts the settlement window; when that ends, Stripe is asked once and the
answer acted on. Every overdue hold the worker looks at leaves PENDING_PAYMENT or gets a later
deadline, so no tick repeats a Stripe call or a history row for a booking where nothing changed.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Engine, select

from core.config import get_settings
from core.db import session_scope
from core.models import Booking, utcnow
from core.services import payment_events
from core.services.notifications import notify
from core.services.outcome import Outcome
from core.services.transitions import lock_booking
from core.states import BookingStatus as S, WebhookOutcome as O
from core.stripe import StripeGateway, StripeGatewayError

log = logging.getLogger(__name__)

WORKER = "system:worker"
GRACE = timedelta(minutes=2)  # let Stripe's own checkout.session.expired arrive first
ABANDONED_SCHEDULING = timedelta(hours=24)
FAILED_INTENT_STATUSES = ("requires_payment_method", "canceled")


def send_payment_reminders(engine: Engine, *, now=None) -> int:
    now = now or utcnow()
    ahead = timedelta(minutes=get_settings().reminder_minutes_before_expiry)
    with session_scope(engine) as session:
        bookings = session.execute(
            select(Booking).where(
                Booking.status == S.PENDING_PAYMENT, Booking.reminder_sent_at.is_(None),
                # Paid by bank and waiting for it to settle: "pay to keep it" would ask for twice.
                Booking.payment_processing_since.is_(None),
                Booking.hold_expires_at.is_not(None), Booking.hold_expires_at > now,
                Booking.hold_expires_at <= now + ahead,
            ).limit(200).with_for_update(skip_locked=True)
        ).scalars().all()
        for booking in bookings:
            booking.reminder_sent_at = now
            notify(session, booking, "payment_reminder")
        return len(bookings)


def settle_overdue_hold(engine: Engine, booking_id: str, gateway: StripeGateway, *, now=None) -> Outcome:
    """Ask Stripe once about the booking's checkout and act on the answer: confirm, wait for a
    payment on its way (the first time we learn of it), or expire it everywhere."""
    now = now or utcnow()
    with session_scope(engine, read_only=True) as session:
        checkout_id = session.get(Booking, booking_id).stripe_checkout_session_id
    # With its PaymentIntent: a bank payment that failed leaves the session "complete, unpaid".
    # An open session is expired first; a complete or expired one comes back as it is.
    checkout = gateway.expire_checkout(checkout_id, with_payment_intent=True) if checkout_id else None
    with session_scope(engine) as session:
        if checkout is None:
            booking = lock_booking(session, booking_id)
            if booking.status != S.PENDING_PAYMENT:
                return Outcome(O.IGNORED, booking.id)
            payment_events.expire_locked(session, booking, actor=WORKER, cause="hold_expired")
            return Outcome(O.PROCESSED, booking.id)
        if checkout.get("status") == "complete" and checkout.get("payment_status") == "unpaid":
            return _settle_payment_on_its_way(session, booking_id, checkout, now)
        outcome = payment_events.apply_checkout(session, checkout, actor=WORKER, expired_cause="hold_expired")
        # A paid session that did not confirm the booking (not the booking's payment) still ends
        # the hold, or every tick would ask Stripe again.
        return _expire_if_still_held(session, booking_id, now, cause="hold_expired") or outcome


def _settle_payment_on_its_way(session, booking_id: str, checkout: dict, now) -> Outcome:
    """Checkout completed but not paid yet (a bank payment), at the end of the booking's hold."""
    intent = checkout.get("payment_intent")
    intent_status = intent.get("status") if isinstance(intent, dict) else None
    if intent_status in FAILED_INTENT_STATUSES:  # its async_payment_failed webhook was lost
        return payment_events.release_hold(session, checkout, actor=WORKER, cause="async_payment_failed")
    booking = lock_booking(session, booking_id)
    if booking.status == S.PENDING_PAYMENT and booking.payment_processing_since is None:
        # We had not heard of it (webhook lost): the slot is held for the settlement window.
        outcome = payment_events.confirm_payment(session, checkout, actor=WORKER)
        return _expire_if_still_held(session, booking_id, now, cause="hold_expired") or outcome
    # The settlement window is over and the money has not arrived: the slot is released. If it
    # still arrives, the late-payment rule refunds it in full.
    return (_expire_if_still_held(session, booking_id, now, cause="payment_not_settled_in_time")
            or Outcome(O.IGNORED, booking_id))


def _expire_if_still_held(session, booking_id: str, now, *, cause: str) -> Outcome | None:
    """Expire the booking if it is still waiting for payment with its hold over; else None."""
    booking = lock_booking(session, booking_id)
    if booking.status != S.PENDING_PAYMENT or (
            booking.hold_expires_at is not None and booking.hold_expires_at >= now - GRACE):
        return None
    payment_events.expire_locked(session, booking, actor=WORKER, cause=cause)
    return Outcome(O.PROCESSED, booking.id)


def expire_overdue_holds(engine: Engine, gateway: StripeGateway | None, *, now=None) -> int:
    """Settle every hold that ran out (asking Stripe first); end bookings never scheduled.
    `gateway` is only used when a hold has a Checkout Session."""
    now = now or utcnow()
    with session_scope(engine, read_only=True) as session:
        overdue = list(session.execute(
            select(Booking.id).where(Booking.status == S.PENDING_PAYMENT,
                                     Booking.hold_expires_at < now - GRACE).limit(200)
        ).scalars())
    expired = 0
    for booking_id in overdue:
        try:
            expired += settle_overdue_hold(engine, booking_id, gateway, now=now).outcome == O.PROCESSED
        except StripeGatewayError as error:  # one unreadable checkout must not hold up the others
            log.warning("hold of %s not settled (Stripe: %s); retried next tick", booking_id,
                        type(error).__name__)
    with session_scope(engine) as session:
        abandoned = session.execute(
            select(Booking).where(Booking.status == S.PENDING_SCHEDULING,
                                  Booking.created_at < now - ABANDONED_SCHEDULING)
            .limit(500).with_for_update(skip_locked=True)
        ).scalars().all()
        for booking in abandoned:
            payment_events.expire_locked(session, booking, actor=WORKER, cause="never_scheduled")
    return expired + len(abandoned)
