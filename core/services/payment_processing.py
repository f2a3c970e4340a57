"""A payment on its way is not an unpaid booking.

With a delayed payment method (a bank debit or transfer) Stripe completes the Checkout Session
with `payment_status: "unpaid"` and tells us days later whether the money arrived
(`checkout.session.async_payment_succeeded` / `_failed`). The rule we follow:

- the booking stays PENDING_PAYMENT but is marked `payment_processing_since`, once (a repeated
  delivery, the success page or reconcile reading the same session changes nothing);
- the slot stays held up to the settlement window (`PAYMENT_SETTLEMENT_BUSINESS_DAYS` business
  days, never past the session's start): `hold_expires_at` moves to that deadline;
- nobody is asked to pay again: no reminder, no resend, no new checkout;
- when the window ends without an answer, the worker asks Stripe once and acts on it (see
  `holds.settle_overdue_hold`); a payment that succeeds after its booking expired is refunded by
  the late-payment rule of `confirm_payment`.

The mark is cleared by any status change out of PENDING_PAYMENT (`transitions.transition`).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import Booking, utcnow
from core.services.notifications import notify
from core.services.outcome import Outcome
from core.services.transitions import record
from core.states import BookingStatus as S, WebhookOutcome as O


def add_business_days(start: datetime, days: int) -> datetime:
    """`start` plus `days` working days (Monday to Friday), at the same time of day."""
    moment = start
    while days > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            days -= 1
    return moment


def settlement_deadline(since: datetime, start_time: datetime | None) -> datetime:
    """How long a payment on its way keeps the slot: the settlement window, capped at the session."""
    deadline = add_business_days(since, get_settings().payment_settlement_business_days)
    return min(deadline, start_time) if start_time is not None else deadline


def is_processing(booking: Booking) -> bool:
    return booking.status == S.PENDING_PAYMENT and booking.payment_processing_since is not None


def note_processing(session: Session, booking: Booking, checkout: dict, *, actor: str) -> Outcome:
    """Checkout completed with a payment that settles later: hold the slot, once per state change.

    `booking` is locked by the caller. Only the booking's own, current checkout on a booking still
    waiting for payment counts; anything else changes nothing here (if that money does arrive, the
    late-payment rule refunds it).
    """
    if booking.status != S.PENDING_PAYMENT:
        return Outcome(O.IGNORED, booking.id, f"payment processing, but the booking is already "
                                              f"{booking.status.lower()}")
    if checkout.get("id") != booking.stripe_checkout_session_id:
        return Outcome(O.IGNORED, booking.id, "payment processing on a checkout that is not the booking's")
    if booking.payment_processing_since is not None:
        return Outcome(O.IGNORED, booking.id, "payment already processing")
    now = utcnow()
    booking.payment_processing_since = now
    booking.hold_expires_at = settlement_deadline(now, booking.start_time)
    record(session, booking, cause="payment_processing", actor=actor,
           details={"checkout_session": checkout.get("id"),
                    "hold_until": booking.hold_expires_at.isoformat()})
    notify(session, booking, "payment_processing")
    return Outcome(O.PROCESSED, booking.id, "payment processing (async)")


__all__ = ["add_business_days", "settlement_deadline", "is_processing", "note_processing"]
