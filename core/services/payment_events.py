"""What Stripe tells us about payments, and what it means for the booking.

Stripe's word comes as a signed webhook (through `webhook_ingest`, which finds the handler in
`STRIPE_EVENTS` below) or as an object read from its API (a Checkout Session read by the worker,
reconcile or the success page: `apply_checkout`; a refund read back: `apply_refund_object`). Every
handler looks at the booking's current state, so hearing the same thing twice, or late, is safe.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.db import insert_ignore, session_scope
from core.keys import Effect, effect_key
from core.models import Booking, Payment, Refund, utcnow
from core.money import MoneyError, format_amount
from core.services.notifications import notify
from core.services.outbox import cancel_calendly_event_later, enqueue
from core.services.outcome import Outcome
from core.services.payment_processing import note_processing
from core.services.refunds import create_refund
from core.services.transitions import WITH_PARTIES, lock_booking, record, transition
from core.states import BookingStatus as S, OutboxKind, PaymentStatus, RefundRule, WebhookOutcome as O
from core.stripe import StripeGateway, stripe_gateway

STRIPE = "stripe:webhook"
# History cause of a payment that was not what its booking owes (the Failures page lists them).
PAYMENT_MISMATCH = "payment_mismatch"


# ---------------------------------------------------------------- Checkout Sessions
def _booking_for_checkout(session: Session, checkout: dict) -> Booking | None:
    """The booking this Checkout Session is the session of (by its id, which only we stored), else
    the booking its metadata names (an older or foreign session, never confirming it); locked."""
    booking = session.execute(
        select(Booking).where(Booking.stripe_checkout_session_id == checkout.get("id"))
        .options(*WITH_PARTIES).with_for_update(of=Booking).execution_options(populate_existing=True)
    ).unique().scalar_one_or_none()
    if booking is not None:
        return booking
    booking_id = (checkout.get("metadata") or {}).get("booking_id") or checkout.get("client_reference_id")
    if not booking_id:
        return None
    return session.get(Booking, booking_id, with_for_update={"of": Booking}, populate_existing=True,
                       options=WITH_PARTIES)


def wrong_amount(booking: Booking, checkout: dict) -> str | None:
    """Why this Checkout Session's money is not what `booking` owes, or None when it is exactly
    the booking's amount in the booking's currency."""
    amount, currency = checkout.get("amount_total"), str(checkout.get("currency") or "").upper()
    if amount == booking.amount_cents and currency == booking.currency:
        return None
    try:
        shown = format_amount(amount, currency)
    except (MoneyError, TypeError):
        shown = "an unreadable amount"
    return f"it paid {shown} where the booking owes {format_amount(booking.amount_cents, booking.currency)}"


def _intent_id(checkout: dict) -> str | None:
    intent_id = checkout.get("payment_intent")
    return intent_id.get("id") if isinstance(intent_id, dict) else intent_id


def confirm_payment(session: Session, checkout: dict, *, actor: str = STRIPE) -> Outcome:
    """A Checkout Session Stripe says is paid: record the payment once; confirm the booking only
    when it is the booking's own session for exactly what the booking owes; else give it back."""
    booking = _booking_for_checkout(session, checkout)
    if booking is None:
        return Outcome(O.UNMATCHED, note="no booking for this checkout session")
    wrong = wrong_amount(booking, checkout)
    if wrong is not None:
        return _refuse_payment(session, booking, checkout, wrong, actor=actor)
    if checkout.get("payment_status") == "unpaid":
        # A bank payment on its way: hold the slot until it settles (once, however often we hear it).
        return note_processing(session, booking, checkout, actor=actor)
    intent_id = _intent_id(checkout)
    if not intent_id:
        raise ValueError("a paid checkout session without payment_intent")
    amount, currency = int(checkout["amount_total"]), str(checkout["currency"]).upper()
    payment_id = insert_ignore(session, Payment.__table__, {
        "booking_id": booking.id, "stripe_payment_intent_id": intent_id,
        "stripe_checkout_session_id": checkout.get("id"), "amount_cents": amount,
        "currency": currency, "status": PaymentStatus.SUCCEEDED, "created_at": utcnow(),
    }, ["stripe_payment_intent_id"])
    if payment_id is None:
        return Outcome(O.IGNORED, booking.id, "payment already recorded")
    details = {"payment_intent": intent_id, "amount_cents": amount, "currency": currency}
    record(session, booking, cause="payment_received", actor=actor, details=details)
    if booking.status != S.PENDING_PAYMENT or checkout.get("id") != booking.stripe_checkout_session_id:
        # Paid for a booking that can no longer take it (canceled, expired), or through a second
        # session of ours: the whole payment goes back, automatically.
        why = (f"was already {booking.status.lower()}" if booking.status != S.PENDING_PAYMENT
               else "was paid through another of its checkout sessions")
        create_refund(session, booking, session.get(Payment, payment_id), amount,
                      reason=f"Payment arrived for a booking that {why}", rule=RefundRule.LATE_PAYMENT,
                      actor=actor)
        return Outcome(O.PROCESSED, booking.id, "late payment refunded")
    transition(session, booking, S.CONFIRMED, cause="payment_confirmed", actor=actor, details=details)
    booking.hold_expires_at = None
    notify(session, booking, "booking_confirmed")
    notify(session, booking, "builder_new_booking", to=booking.builder.email)
    return Outcome(O.PROCESSED, booking.id)


def _refuse_payment(session: Session, booking: Booking, checkout: dict, why: str, *, actor: str) -> Outcome:
    """Money that is not what this booking owes (another amount or currency, e.g. a session made
    outside our checkout): the booking stays as it was, the money never enters its ledger, and all
    of it goes back from the outbox, refunded by payment intent; the history tells an admin."""
    intent_id = _intent_id(checkout)
    details = {"checkout_session": checkout.get("id"), "payment_intent": intent_id,
               "amount_total": checkout.get("amount_total"), "currency": checkout.get("currency"),
               "payment_status": checkout.get("payment_status"), "why": why}
    if checkout.get("payment_status") == "unpaid" or not intent_id:
        record(session, booking, cause=PAYMENT_MISMATCH, actor=actor, details=details)
        return Outcome(O.PROCESSED, booking.id, f"payment refused: {why}")
    queued = enqueue(session, OutboxKind.STRIPE_REFUND_REFUSED_PAYMENT, effect_key(Effect.REFUSED_PAYMENT_REFUND, intent_id),
                     {"payment_intent": intent_id, "booking_id": booking.id, "reason": why},
                     booking_id=booking.id)
    if queued is None:
        return Outcome(O.IGNORED, booking.id, "this refused payment is already being refunded")
    record(session, booking, cause=PAYMENT_MISMATCH, actor=actor, details=details)
    return Outcome(O.PROCESSED, booking.id, f"payment refused and refunded in full: {why}")


def release_hold(session: Session, checkout: dict, *, actor: str = STRIPE, cause: str) -> Outcome:
    """Checkout expired or the async payment failed: the booking expires and its slot is freed."""
    booking = _booking_for_checkout(session, checkout)
    if booking is None:
        return Outcome(O.UNMATCHED, note="no booking for this checkout session")
    if booking.stripe_checkout_session_id != checkout.get("id"):
        return Outcome(O.IGNORED, booking.id, "not the booking's current checkout session")
    if booking.status != S.PENDING_PAYMENT:
        return Outcome(O.IGNORED, booking.id, f"booking already {booking.status}")
    expire_locked(session, booking, actor=actor, cause=cause)
    return Outcome(O.PROCESSED, booking.id)


def expire_locked(session: Session, booking: Booking, *, actor: str, cause: str) -> None:
    """A locked booking that was never paid expires; its Calendly event is canceled (outbox)."""
    transition(session, booking, S.EXPIRED, cause=cause, actor=actor)
    booking.hold_expires_at = None
    if booking.calendly_event_uri:
        cancel_calendly_event_later(session, booking_id=booking.id, event_uri=booking.calendly_event_uri,
                                    builder_id=booking.builder_id,
                                    reason="Payment was not completed in time; the slot is released.")
    if booking.start_time is not None:
        notify(session, booking, "booking_expired")


def apply_checkout(session: Session, checkout: dict, *, actor: str, expired_cause: str) -> Outcome:
    """A Checkout Session as read from Stripe's API: `complete` confirms it (paid, on its way, or
    refunded when the booking cannot take it: `confirm_payment`), `expired` releases the hold,
    `open` changes nothing (outcome `OPEN`)."""
    status = checkout.get("status")
    if status == "complete":
        return confirm_payment(session, checkout, actor=actor)
    if status == "expired":
        return release_hold(session, checkout, actor=actor, cause=expired_cause)
    return Outcome(O.OPEN, note=f"checkout session is {status}")


def sync_checkout(engine: Engine, checkout_id: str, gateway: StripeGateway | None = None, *, actor: str,
                  expired_cause: str = "checkout_expired") -> Outcome:
    """Ask Stripe for a Checkout Session and act on what it says (`apply_checkout`).

    Raises StripeGatewayError when Stripe cannot be read (nothing changes then)."""
    checkout = (gateway or stripe_gateway()).checkout(checkout_id)
    with session_scope(engine) as session:
        return apply_checkout(session, checkout, actor=actor, expired_cause=expired_cause)


# ---------------------------------------------------------------- refunds and disputes
def apply_refund_object(session: Session, refund: dict, *, actor: str = STRIPE) -> Outcome:
    """A refund as Stripe reports it: update our row, or import one made elsewhere (dashboard)."""
    ours = session.execute(
        select(Refund).where(Refund.stripe_refund_id == refund["id"]).with_for_update()
    ).scalar_one_or_none()
    refund_row_id = (refund.get("metadata") or {}).get("refund_id")
    if ours is None and refund_row_id and str(refund_row_id).isdigit():
        ours = session.get(Refund, int(refund_row_id), with_for_update=True)
    if ours is not None:
        if ours.status != refund["status"] or ours.stripe_refund_id is None:
            ours.stripe_refund_id = refund["id"]
            ours.status = refund["status"]
            ours.failure_reason = refund.get("failure_reason")
            booking = ours.booking
            record(session, booking, cause=f"refund_{refund['status']}", actor=actor,
                   details={"refund": refund["id"], "amount_cents": ours.amount_cents})
            return Outcome(O.PROCESSED, booking.id)
        return Outcome(O.IGNORED, ours.booking_id, "refund already up to date")
    payment = session.execute(
        select(Payment).where(Payment.stripe_payment_intent_id == refund.get("payment_intent"))
    ).scalar_one_or_none()
    if payment is None:
        return Outcome(O.UNMATCHED, note="refund for a payment we do not know")
    booking = lock_booking(session, payment.booking_id)
    session.add(Refund(
        payment_id=payment.id, booking_id=booking.id, amount_cents=int(refund["amount"]),
        currency=str(refund["currency"]).upper(), status=refund["status"],
        reason=refund.get("reason") or "Refunded in the Stripe dashboard", rule=RefundRule.STRIPE_DASHBOARD,
        issued_by="stripe:dashboard", stripe_refund_id=refund["id"],
    ))
    record(session, booking, cause="refund_imported", actor=actor,
           details={"refund": refund["id"], "amount_cents": int(refund["amount"])})
    return Outcome(O.PROCESSED, booking.id)


def queue_refund_sync(session: Session, charge: dict, event_id: str) -> Outcome:
    """charge.refunded: fetch the charge's refunds from Stripe (outbox) and import what we lack."""
    intent = charge.get("payment_intent")
    payment = session.execute(
        select(Payment).where(Payment.stripe_payment_intent_id == intent)
    ).scalar_one_or_none()
    if payment is None:
        return Outcome(O.UNMATCHED, note="charge for a payment we do not know")
    enqueue(session, OutboxKind.STRIPE_SYNC_REFUNDS, effect_key(Effect.REFUND_SYNC, event_id),
            {"payment_intent": intent}, booking_id=payment.booking_id)
    return Outcome(O.PROCESSED, payment.booking_id, "refund sync queued")


def apply_dispute(session: Session, dispute: dict, *, actor: str = STRIPE) -> Outcome:
    """A dispute opened or moved on (needs_response, won, lost…): the payment shows it."""
    payment = session.execute(
        select(Payment).where(Payment.stripe_payment_intent_id == dispute.get("payment_intent"))
        .with_for_update()
    ).scalar_one_or_none()
    if payment is None:
        return Outcome(O.UNMATCHED, note="dispute for a payment we do not know")
    if payment.dispute_status == dispute.get("status"):
        return Outcome(O.IGNORED, payment.booking_id, "dispute already recorded")
    payment.dispute_status = dispute.get("status") or "needs_response"
    booking = lock_booking(session, payment.booking_id)
    record(session, booking, cause="dispute", actor=actor,
           details={"dispute": dispute.get("id"), "status": payment.dispute_status,
                    "reason": dispute.get("reason")})
    return Outcome(O.PROCESSED, booking.id)


# ---------------------------------------------------------------- the Stripe event registry
# Every Stripe event we handle, and its handler. Webhook ingest dispatches through it, reconcile
# replays exactly these types from Stripe's event list, and the README lists them for the webhook
# endpoint (tests/test_event_registry.py keeps the two in step). Handlers take the event.
StripeHandler = Callable[[Session, dict], Outcome]


def _checkout_paid(session: Session, event: dict) -> Outcome:
    return confirm_payment(session, event["data"]["object"])


def _async_payment_failed(session: Session, event: dict) -> Outcome:
    return release_hold(session, event["data"]["object"], cause="async_payment_failed")


def _checkout_expired(session: Session, event: dict) -> Outcome:
    return release_hold(session, event["data"]["object"], cause="checkout_expired")


def _charge_refunded(session: Session, event: dict) -> Outcome:
    return queue_refund_sync(session, event["data"]["object"], event["id"])


def _refund_changed(session: Session, event: dict) -> Outcome:
    return apply_refund_object(session, event["data"]["object"])


def _dispute_changed(session: Session, event: dict) -> Outcome:
    return apply_dispute(session, event["data"]["object"])


STRIPE_EVENTS: dict[str, StripeHandler] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "checkout.session.async_payment_failed": _async_payment_failed,
    "checkout.session.expired": _checkout_expired,
    "charge.refunded": _charge_refunded,
    "refund.created": _refund_changed,
    "refund.updated": _refund_changed,
    "refund.failed": _refund_changed,
    "charge.dispute.created": _dispute_changed,
    "charge.dispute.updated": _dispute_changed,
    "charge.dispute.closed": _dispute_changed,
    "charge.dispute.funds_withdrawn": _dispute_changed,
    "charge.dispute.funds_reinstated": _dispute_changed,
}
# The events that say a session is paid: their payload must carry the payment (core.stripe.payload).
PAID_CHECKOUT_EVENTS = frozenset(kind for kind, handler in STRIPE_EVENTS.items() if handler is _checkout_paid)


__all__ = ["confirm_payment", "release_hold", "expire_locked", "apply_checkout", "sync_checkout",
           "apply_refund_object", "queue_refund_sync", "apply_dispute", "wrong_amount", "STRIPE_EVENTS",
           "PAID_CHECKOUT_EVENTS", "PAYMENT_MISMATCH"]
