"""Payments and refunds: Checkout creation, what Stripe's events mean, and the refund ledger.

Stripe is only called outside transactions (creating a checkout) or from the outbox (refunds,
expiring sessions); here we decide and record, with a deterministic idempotency key per effect.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import insert_ignore, session_scope
from core.errors import DomainError, NotFound, RefundRefused
from core.models import Booking, Payment, Refund, SessionType, utcnow
from core.money import MoneyError, format_amount
from core.refund_policy import RefundPolicy, decide_refund
from core.services.booking_access import with_token
from core.services.ledger import payment_refundable_cents, summarize
from core.services.notifications import notify
from core.services.outbox import enqueue
from core.services.outcome import Outcome
from core.services.transitions import WITH_PARTIES, lock_booking, record, transition
from core.states import BookingStatus as S

STRIPE = "stripe:webhook"
# History cause of a payment that was not what its booking owes (the Failures page lists them).
PAYMENT_MISMATCH = "payment_mismatch"
STRIPE_MIN_EXPIRY = timedelta(minutes=30, seconds=10)


# ---------------------------------------------------------------- checkout
@dataclass(frozen=True)
class CheckoutResult:
    status: str  # redirect | not_payable | waiting | processing
    url: str | None = None
    booking_status: str | None = None


def policy_for(session_type: SessionType) -> RefundPolicy:
    settings = get_settings()
    return RefundPolicy(
        full_refund_hours=session_type.refund_full_hours if session_type.refund_full_hours is not None
        else settings.refund_full_hours,
        partial_percent=session_type.refund_partial_percent if session_type.refund_partial_percent is not None
        else settings.refund_partial_percent,
    )


def checkout_params(booking: Booking, expires_at: datetime) -> dict:
    base = get_settings().public_base_url
    when = booking.start_time.strftime("%a %d %b %Y %H:%M UTC") if booking.start_time else "time to be set"
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


def open_checkout(engine: Engine, booking_id: str, stripe_client) -> CheckoutResult:
    """The booking's one Checkout Session: reused if it exists, else created exactly once."""
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
        key = f"checkout:{booking.id}:{params['expires_at']}"
    created = stripe_client.v1.checkout.sessions.create(params=params, options={"idempotency_key": key})
    with session_scope(engine) as session:
        booking = lock_booking(session, booking_id)
        if booking.stripe_checkout_session_id is None:
            booking.stripe_checkout_session_id = created.id
            booking.checkout_url = created.url
            booking.hold_expires_at = booking.checkout_expires_at
            record(session, booking, cause="checkout_created", actor="system",
                   details={"checkout_session": created.id, "expires_at": params["expires_at"]})
        elif booking.stripe_checkout_session_id != created.id:
            _expire_checkout_later(session, booking, created.id)
        if booking.status != S.PENDING_PAYMENT:
            close_checkout(session, booking)
            return CheckoutResult("not_payable", booking_status=booking.status)
        return CheckoutResult("redirect", booking.checkout_url, booking.status)


def _expire_checkout_later(session: Session, booking: Booking, checkout_id: str) -> None:
    enqueue(session, "stripe_expire_checkout", f"checkout-expire:{checkout_id}",
            {"checkout_session_id": checkout_id}, booking_id=booking.id)


def close_checkout(session: Session, booking: Booking) -> None:
    """No more paying for this booking: expire its open Checkout Session at Stripe (outbox)."""
    if booking.stripe_checkout_session_id:
        _expire_checkout_later(session, booking, booking.stripe_checkout_session_id)


# ---------------------------------------------------------------- Stripe's events
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
        return Outcome("unmatched", note="no booking for this checkout session")
    wrong = wrong_amount(booking, checkout)
    if wrong is not None:
        return _refuse_payment(session, booking, checkout, wrong, actor=actor)
    if checkout.get("payment_status") == "unpaid":
        # A bank payment on its way: hold the slot until it settles (once, however often we hear it).
        from core.services.payment_processing import note_processing
        return note_processing(session, booking, checkout, actor=actor)
    intent_id = _intent_id(checkout)
    if not intent_id:
        raise ValueError("a paid checkout session without payment_intent")
    amount, currency = int(checkout["amount_total"]), str(checkout["currency"]).upper()
    payment_id = insert_ignore(session, Payment.__table__, {
        "booking_id": booking.id, "stripe_payment_intent_id": intent_id,
        "stripe_checkout_session_id": checkout.get("id"), "amount_cents": amount,
        "currency": currency, "status": "succeeded", "created_at": utcnow(),
    }, ["stripe_payment_intent_id"])
    if payment_id is None:
        return Outcome("ignored", booking.id, "payment already recorded")
    details = {"payment_intent": intent_id, "amount_cents": amount, "currency": currency}
    record(session, booking, cause="payment_received", actor=actor, details=details)
    if booking.status != S.PENDING_PAYMENT or checkout.get("id") != booking.stripe_checkout_session_id:
        # Paid for a booking that can no longer take it (canceled, expired), or through a second
        # session of ours: the whole payment goes back, automatically.
        why = (f"was already {booking.status.lower()}" if booking.status != S.PENDING_PAYMENT
               else "was paid through another of its checkout sessions")
        _create_refund(session, booking, session.get(Payment, payment_id), amount,
                       reason=f"Payment arrived for a booking that {why}", rule="late_payment", actor=actor)
        return Outcome("processed", booking.id, "late payment refunded")
    transition(session, booking, S.CONFIRMED, cause="payment_confirmed", actor=actor, details=details)
    booking.hold_expires_at = None
    notify(session, booking, "booking_confirmed")
    notify(session, booking, "builder_new_booking", to=booking.builder.email)
    return Outcome("processed", booking.id)


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
        return Outcome("processed", booking.id, f"payment refused: {why}")
    queued = enqueue(session, "stripe_refund_refused_payment", f"refund-refused:{intent_id}",
                     {"payment_intent": intent_id, "booking_id": booking.id, "reason": why},
                     booking_id=booking.id)
    if queued is None:
        return Outcome("ignored", booking.id, "this refused payment is already being refunded")
    record(session, booking, cause=PAYMENT_MISMATCH, actor=actor, details=details)
    return Outcome("processed", booking.id, f"payment refused and refunded in full: {why}")


def release_hold(session: Session, checkout: dict, *, actor: str = STRIPE, cause: str) -> Outcome:
    """Checkout expired or the async payment failed: the booking expires and its slot is freed."""
    booking = _booking_for_checkout(session, checkout)
    if booking is None:
        return Outcome("unmatched", note="no booking for this checkout session")
    if booking.stripe_checkout_session_id != checkout.get("id"):
        return Outcome("ignored", booking.id, "not the booking's current checkout session")
    if booking.status != S.PENDING_PAYMENT:
        return Outcome("ignored", booking.id, f"booking already {booking.status}")
    expire_locked(session, booking, actor=actor, cause=cause)
    return Outcome("processed", booking.id)


def expire_locked(session: Session, booking: Booking, *, actor: str, cause: str) -> None:
    transition(session, booking, S.EXPIRED, cause=cause, actor=actor)
    booking.hold_expires_at = None
    if booking.calendly_event_uri:
        enqueue(session, "calendly_cancel", f"calendly-cancel:{booking.calendly_event_uri}",
                {"builder_id": booking.builder_id, "event_uri": booking.calendly_event_uri,
                 "reason": "Payment was not completed in time; the slot is released."},
                booking_id=booking.id)
    if booking.start_time is not None:
        notify(session, booking, "booking_expired")


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
            return Outcome("processed", booking.id)
        return Outcome("ignored", ours.booking_id, "refund already up to date")
    payment = session.execute(
        select(Payment).where(Payment.stripe_payment_intent_id == refund.get("payment_intent"))
    ).scalar_one_or_none()
    if payment is None:
        return Outcome("unmatched", note="refund for a payment we do not know")
    booking = lock_booking(session, payment.booking_id)
    session.add(Refund(
        payment_id=payment.id, booking_id=booking.id, amount_cents=int(refund["amount"]),
        currency=str(refund["currency"]).upper(), status=refund["status"],
        reason=refund.get("reason") or "Refunded in the Stripe dashboard", rule="stripe_dashboard",
        issued_by="stripe:dashboard", stripe_refund_id=refund["id"],
    ))
    record(session, booking, cause="refund_imported", actor=actor,
           details={"refund": refund["id"], "amount_cents": int(refund["amount"])})
    return Outcome("processed", booking.id)


def mark_refund_failed(session: Session, refund_id: int, reason: str, *, actor: str) -> None:
    """Stripe refused our refund for good: the amount is refundable again and the admin sees why."""
    refund = session.get(Refund, refund_id, with_for_update=True)
    refund.status = "failed"
    refund.failure_reason = reason
    record(session, refund.booking, cause="refund_failed", actor=actor,
           details={"refund_id": refund.id, "amount_cents": refund.amount_cents, "reason": reason})


def queue_refund_sync(session: Session, charge: dict, event_id: str) -> Outcome:
    """charge.refunded: fetch the charge's refunds from Stripe (outbox) and import what we lack."""
    intent = charge.get("payment_intent")
    payment = session.execute(
        select(Payment).where(Payment.stripe_payment_intent_id == intent)
    ).scalar_one_or_none()
    if payment is None:
        return Outcome("unmatched", note="charge for a payment we do not know")
    enqueue(session, "stripe_sync_refunds", f"refund-sync:{event_id}",
            {"payment_intent": intent}, booking_id=payment.booking_id)
    return Outcome("processed", payment.booking_id, "refund sync queued")


def apply_dispute(session: Session, dispute: dict, *, actor: str = STRIPE) -> Outcome:
    payment = session.execute(
        select(Payment).where(Payment.stripe_payment_intent_id == dispute.get("payment_intent"))
        .with_for_update()
    ).scalar_one_or_none()
    if payment is None:
        return Outcome("unmatched", note="dispute for a payment we do not know")
    if payment.dispute_status == dispute.get("status"):
        return Outcome("ignored", payment.booking_id, "dispute already recorded")
    payment.dispute_status = dispute.get("status") or "needs_response"
    booking = lock_booking(session, payment.booking_id)
    record(session, booking, cause="dispute", actor=actor,
           details={"dispute": dispute.get("id"), "status": payment.dispute_status,
                    "reason": dispute.get("reason")})
    return Outcome("processed", booking.id)


# ---------------------------------------------------------------- refunds we issue
def refund_by_policy(session: Session, booking: Booking, *, actor: str, by_host: bool) -> int:
    summary = summarize(session, booking)
    if summary.refundable_cents <= 0:
        return 0
    policy = policy_for(booking.session_type)
    decision = decide_refund(policy, summary.refundable_cents, booking.start_time, utcnow(),
                             canceled_by_host=by_host)
    if decision.amount_cents > 0:
        _refund_across_payments(session, booking, decision.amount_cents,
                                reason=decision.explain(policy), rule="policy", actor=actor)
    else:
        record(session, booking, cause="no_refund_due", actor=actor, details={"rule": decision.rule})
    return decision.amount_cents


def suggested_refund(session: Session, booking_id: str) -> tuple[int, str]:
    """What the policy would refund right now, and why — to prefill the admin's refund form."""
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise NotFound(f"no booking {booking_id}")
    summary = summarize(session, booking)
    policy = policy_for(booking.session_type)
    decision = decide_refund(policy, summary.refundable_cents, booking.start_time, utcnow())
    return decision.amount_cents, decision.explain(policy)


def request_refund(session: Session, booking_id: str, amount_cents: int | None, *, reason: str,
                   actor: str) -> int:
    """An admin's refund (None: the whole remainder). Refused beyond what is left; returns the amount."""
    if amount_cents is not None and (isinstance(amount_cents, bool) or not isinstance(amount_cents, int)):
        raise RefundRefused("the amount must be a whole number of minor units (cents)")
    booking = lock_booking(session, booking_id)
    summary = summarize(session, booking)
    if summary.paid_cents <= 0:
        raise RefundRefused("nothing was paid for this booking")
    remainder = summary.refundable_cents
    amount = remainder if amount_cents is None else amount_cents
    if amount <= 0:
        raise RefundRefused("the refund amount must be positive" if remainder else
                            "this booking is already fully refunded")
    if amount > remainder:
        raise RefundRefused(
            f"{format_amount(amount, booking.currency)} is more than the refundable remainder of "
            f"{format_amount(remainder, booking.currency)}")
    _refund_across_payments(session, booking, amount, reason=reason or "Refund by admin",
                            rule="manual", actor=actor)
    return amount


def _refund_across_payments(session: Session, booking: Booking, amount: int, *, reason: str,
                            rule: str, actor: str) -> None:
    for payment in booking.payments:
        if amount <= 0:
            break
        if payment.status != "succeeded":
            continue
        part = min(amount, payment_refundable_cents(session, payment))
        if part > 0:
            _create_refund(session, booking, payment, part, reason=reason, rule=rule, actor=actor)
            amount -= part
    if amount > 0:
        raise RefundRefused("the refund exceeds what the payments can return")


def _create_refund(session: Session, booking: Booking, payment: Payment, amount: int, *,
                   reason: str, rule: str, actor: str) -> Refund:
    refund = Refund(payment_id=payment.id, booking_id=booking.id, amount_cents=amount,
                    currency=payment.currency, status="requested", reason=reason[:500], rule=rule,
                    issued_by=actor)
    session.add(refund)
    session.flush()
    enqueue(session, "stripe_refund", f"refund:{booking.id}:{refund.id}",
            {"refund_id": refund.id}, booking_id=booking.id)
    record(session, booking, cause="refund_requested", actor=actor,
           details={"refund_id": refund.id, "amount_cents": amount, "currency": payment.currency,
                    "rule": rule, "reason": reason})
    notify(session, booking, "refund_issued", dedupe=str(refund.id), amount_cents=amount)
    return refund


def booking_or_404(session: Session, booking_id: str) -> Booking:
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise NotFound(f"no booking {booking_id}")
    return booking


__all__ = ["open_checkout", "confirm_payment", "release_hold", "apply_refund_object",
           "queue_refund_sync", "apply_dispute", "request_refund", "refund_by_policy",
           "suggested_refund", "close_checkout", "expire_locked", "policy_for", "DomainError"]
