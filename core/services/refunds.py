"""Refunds we issue: by policy, by an admin, or of a late payment; and the refund ledger's writes.

Here we decide and record (a `requested` refund row, its history and an outbox entry); the outbox
sends it to Stripe with the entry's idempotency key (`side_effects.execute_stripe_refund`), and
Stripe's answer or events update the row (`payment_events.apply_refund_object`).
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import NotFound, RefundRefused
from core.keys import Effect, effect_key
from core.models import Booking, Payment, Refund, utcnow
from core.money import format_amount
from core.refund_policy import decide_refund, policy_for
from core.services.ledger import payment_refundable_cents, summarize
from core.services.notifications import notify
from core.services.outbox import enqueue
from core.services.transitions import lock_booking, record
from core.states import OutboxKind, PaymentStatus, RefundRule, RefundStatus


def refund_by_policy(session: Session, booking: Booking, *, actor: str, by_host: bool) -> int:
    """A canceled booking's refund, as its session type's policy says; returns the amount."""
    summary = summarize(session, booking)
    if summary.refundable_cents <= 0:
        return 0
    policy = policy_for(booking.session_type)
    decision = decide_refund(policy, summary.refundable_cents, booking.start_time, utcnow(),
                             canceled_by_host=by_host)
    if decision.amount_cents > 0:
        refund_across_payments(session, booking, decision.amount_cents,
                               reason=decision.explain(policy), rule=RefundRule.POLICY, actor=actor)
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
    refund_across_payments(session, booking, amount, reason=reason or "Refund by admin",
                           rule=RefundRule.MANUAL, actor=actor)
    return amount


def refund_across_payments(session: Session, booking: Booking, amount: int, *, reason: str,
                           rule: RefundRule, actor: str) -> None:
    """`amount` back from the booking's succeeded payments, each up to what it can still return."""
    for payment in booking.payments:
        if amount <= 0:
            break
        if payment.status != PaymentStatus.SUCCEEDED:
            continue
        part = min(amount, payment_refundable_cents(session, payment))
        if part > 0:
            create_refund(session, booking, payment, part, reason=reason, rule=rule, actor=actor)
            amount -= part
    if amount > 0:
        raise RefundRefused("the refund exceeds what the payments can return")


def create_refund(session: Session, booking: Booking, payment: Payment, amount: int, *,
                  reason: str, rule: RefundRule, actor: str) -> Refund:
    """A `requested` refund of one payment, sent to Stripe from the outbox; the client is told."""
    refund = Refund(payment_id=payment.id, booking_id=booking.id, amount_cents=amount,
                    currency=payment.currency, status=RefundStatus.REQUESTED, reason=reason[:500], rule=rule,
                    issued_by=actor)
    session.add(refund)
    session.flush()
    enqueue(session, OutboxKind.STRIPE_REFUND, effect_key(Effect.REFUND, booking.id, refund.id),
            {"refund_id": refund.id}, booking_id=booking.id)
    record(session, booking, cause="refund_requested", actor=actor,
           details={"refund_id": refund.id, "amount_cents": amount, "currency": payment.currency,
                    "rule": rule, "reason": reason})
    notify(session, booking, "refund_issued", dedupe=str(refund.id), amount_cents=amount, reason=refund.reason)
    return refund


def mark_refund_failed(session: Session, refund_id: int, reason: str, *, actor: str) -> None:
    """Stripe refused our refund for good: the amount is refundable again and the admin sees why."""
    refund = session.get(Refund, refund_id, with_for_update=True)
    refund.status = RefundStatus.FAILED
    refund.failure_reason = reason
    record(session, refund.booking, cause="refund_failed", actor=actor,
           details={"refund_id": refund.id, "amount_cents": refund.amount_cents, "reason": reason})


__all__ = ["refund_by_policy", "suggested_refund", "request_refund", "refund_across_payments",
           "create_refund", "mark_refund_failed"]
