"""A client who left Stripe Checkout without paying lets their slot go now, instead of waiting for
the hold to run out.

Releasing cancels the booking (nothing was charged, so nothing is refunded), cancels its Calendly
event from the outbox (the slot is free again) and expires its Checkout Session at Stripe right
after, so the released time cannot be paid for (the outbox expires it too, should Stripe not answer).
Stripe is asked first, outside our transaction: a session paid (or paid by bank) before we heard of
it is acted on (`payment_events.apply_checkout`) and the release refused. A payment that still
arrives later is refunded in full by the late-payment rule (`payment_events.confirm_payment`).
Releasing twice is harmless: the second time changes nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from core.db import session_scope
from core.errors import DomainError, NotFound
from core.models import Booking
from core.services import payment_events
from core.services.booking_service import cancel_booking_locked
from core.services.scheduling import event_type_uuid
from core.services.transitions import lock_booking
from core.states import BookingStatus as S
from core.stripe import StripeGateway, StripeGatewayError, stripe_gateway

log = logging.getLogger(__name__)

RELEASE_REASON = "Released by the client before paying"
ALREADY_PAID = ("Your payment has already arrived, so this booking is confirmed. To cancel it, use the "
                "cancellation link on your booking page; the refund follows the cancellation policy.")
ON_ITS_WAY = ("Your bank payment for this booking is on its way, so the slot stays held until it arrives. "
              "If it fails, the slot is released by itself and nothing is charged.")
RELEASABLE = (S.PENDING_SCHEDULING, S.PENDING_PAYMENT)


class ReleaseRefused(DomainError):
    """The hold cannot be released (paid, or a payment on its way); the message says why."""


@dataclass(frozen=True)
class Released:
    booking_id: str
    changed: bool  # False: it was already canceled or expired (a repeated click)
    event_type_id: str  # the session's Calendly event type (its uuid): to book it again at another time


def _check_releasable(booking: Booking) -> bool:
    """True when the booking still holds a slot unpaid; False when it is already let go; raises
    ReleaseRefused when money has arrived or is on its way."""
    if booking.status in (S.CANCELED, S.EXPIRED):
        return False
    if booking.status not in RELEASABLE:
        raise ReleaseRefused(ALREADY_PAID)
    if booking.payment_processing_since is not None:
        raise ReleaseRefused(ON_ITS_WAY)
    return True


def release_hold(engine: Engine, booking_id: str, *, actor: str,
                 gateway: StripeGateway | None = None) -> Released:
    """Cancel an unpaid booking at its client's request and free its slot (see the module)."""
    with session_scope(engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        if booking is None:
            raise NotFound(f"no booking {booking_id}")
        again = event_type_uuid(booking.session_type.calendly_event_type_uri)
        if not _check_releasable(booking):
            return Released(booking_id, False, again)
        checkout_id = booking.stripe_checkout_session_id
    stripe = (gateway or stripe_gateway()) if checkout_id else None
    if checkout_id:
        try:
            checkout = stripe.checkout(checkout_id, with_payment_intent=True)
        except StripeGatewayError as error:
            checkout = None  # released all the same; the session is expired from the outbox
            log.warning("checkout %s not read before its release (%s)", checkout_id, type(error).__name__)
        if checkout is not None and checkout.get("status") == "complete":
            with session_scope(engine) as session:  # paid (or on its way) before we heard of it
                payment_events.apply_checkout(session, checkout, actor=actor, expired_cause="checkout_expired")
    with session_scope(engine) as session:
        booking = lock_booking(session, booking_id)
        if not _check_releasable(booking):
            return Released(booking_id, False, again)
        # Canceled first: Stripe's checkout.session.expired, sent as we expire the session below,
        # then finds the booking already canceled and leaves it so.
        cancel_booking_locked(session, booking, actor=actor, reason=RELEASE_REASON)
    if checkout_id:
        try:  # at once, so the released time cannot be paid for; the outbox entry is the backstop
            stripe.expire_checkout(checkout_id)
        except StripeGatewayError as error:
            log.warning("checkout %s not expired at once (%s); the outbox will", checkout_id, type(error).__name__)
    return Released(booking_id, True, again)


__all__ = ["release_hold", "Released", "ReleaseRefused", "RELEASE_REASON"]
