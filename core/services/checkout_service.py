"""Checkout: the booking's one Stripe Checkout Session, opened when its client pays and closed when
the booking can no longer be paid.

Stripe is called outside our transactions; the session is created with an idempotency key per
booking and hold (`StripeGateway.create_checkout`), so a retry or a concurrent request gets the
same session. Closing goes through the outbox (`close_checkout`); the worker also expires the
session directly when a hold runs out (`holds.settle_overdue_hold`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import session_scope
from core.keys import Effect, effect_key
from core.models import Booking, utcnow
from core.services.booking_access import with_token
from core.services.outbox import enqueue
from core.services.transitions import lock_booking, record
from core.states import BookingStatus as S, OutboxKind
from core.stripe import StripeGateway, stripe_gateway

STRIPE_MIN_EXPIRY = timedelta(minutes=30, seconds=10)


@dataclass(frozen=True)
class CheckoutResult:
    status: str  # redirect | not_payable | waiting | processing
    url: str | None = None
    booking_status: str | None = None


def checkout_params(booking: Booking, expires_at: datetime) -> dict:
    """The Checkout Session for `booking`: its price, what it is, where Stripe sends the client back."""
    base = get_settings().public_base_url
    when = _in_zone(booking.start_time, booking.invitee_timezone) if booking.start_time else "time to be set"
    metadata = {"booking_id": booking.id, "calendly_event_uri": booking.calendly_event_uri or ""}
    return {
        "mode": "payment",
        "line_items": [{
            "quantity": 1,
            "price_data": {
                "currency": booking.currency.lower(),
                "unit_amount": booking.amount_cents,
                "product_data": {
                    "name": f"{booking.session_type.name or 'Session'} with {booking.builder.name}",
                    "description": f"{when} · {booking.session_type.duration_minutes or '?'} min",
                },
            },
        }],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "client_reference_id": booking.id,
        "customer_email": booking.client.email,
        # The link token lets the client who pays see their booking on our pages when Stripe sends
        # them back, signed in or not (core.services.booking_access).
        "success_url": f"{base}" + with_token("/payment/success?session_id={CHECKOUT_SESSION_ID}", booking.id),
        "cancel_url": f"{base}" + with_token(f"/payment/cancel?booking={booking.id}", booking.id),
        "expires_at": int(expires_at.timestamp()),
    }


def _in_zone(moment: datetime, zone_name: str | None) -> str:
    """The session's start as Stripe's page shows it: in the zone the client booked in (Calendly's
    invitee `timezone`), named, else UTC. Fixed per booking, so a retried creation sends the same text."""
    try:
        zone = ZoneInfo(zone_name) if zone_name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return f"{moment.astimezone(zone):%a %d %b %Y %H:%M} ({zone.key})"


def open_checkout(engine: Engine, booking_id: str, gateway: StripeGateway | None = None) -> CheckoutResult:
    """The booking's one Checkout Session: reused if it exists, else created exactly once.

    Raises StripeGatewayError when Stripe cannot create it (nothing is recorded then)."""
    hold = timedelta(minutes=get_settings().hold_minutes)
    with session_scope(engine) as session:
        booking = lock_booking(session, booking_id)
        if booking.status == S.PENDING_SCHEDULING:
            return CheckoutResult("waiting", booking_status=booking.status)
        if booking.status != S.PENDING_PAYMENT:
            return CheckoutResult("not_payable", booking_status=booking.status)
        if booking.payment_processing_since is not None:  # paid by bank, on its way: never twice
            return CheckoutResult("processing", booking_status=booking.status)
        if booking.stripe_checkout_session_id and booking.checkout_url:
            return CheckoutResult("redirect", booking.checkout_url, booking.status)
        now = utcnow()
        if booking.checkout_expires_at is None or booking.checkout_expires_at < now + STRIPE_MIN_EXPIRY:
            # Stripe refuses expires_at less than 30 minutes ahead, strictly: keep a minute's margin.
            # Whole seconds keep the parameters identical for every request reusing this value.
            booking.checkout_expires_at = (now + hold + timedelta(minutes=1)).replace(microsecond=0)
        params = checkout_params(booking, booking.checkout_expires_at)
    created = (gateway or stripe_gateway()).create_checkout(params)
    with session_scope(engine) as session:
        booking = lock_booking(session, booking_id)
        if booking.stripe_checkout_session_id is None:
            booking.stripe_checkout_session_id = created["id"]
            booking.checkout_url = created["url"]
            booking.hold_expires_at = booking.checkout_expires_at
            record(session, booking, cause="checkout_created", actor="system",
                   details={"checkout_session": created["id"], "expires_at": params["expires_at"]})
        elif booking.stripe_checkout_session_id != created["id"]:
            _expire_checkout_later(session, booking, created["id"])
        if booking.status != S.PENDING_PAYMENT:
            close_checkout(session, booking)
            return CheckoutResult("not_payable", booking_status=booking.status)
        return CheckoutResult("redirect", booking.checkout_url, booking.status)


def _expire_checkout_later(session: Session, booking: Booking, checkout_id: str) -> None:
    enqueue(session, OutboxKind.STRIPE_EXPIRE_CHECKOUT, effect_key(Effect.CHECKOUT_EXPIRE, checkout_id),
            {"checkout_session_id": checkout_id}, booking_id=booking.id)


def close_checkout(session: Session, booking: Booking) -> None:
    """No more paying for this booking: expire its open Checkout Session at Stripe (outbox)."""
    if booking.stripe_checkout_session_id:
        _expire_checkout_later(session, booking, booking.stripe_checkout_session_id)


__all__ = ["CheckoutResult", "checkout_params", "open_checkout", "close_checkout"]
