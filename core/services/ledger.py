"""Money per booking, summed by the database from the payment and refund ledgers."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.models import Booking, Payment, Refund
from core.states import COMMITTED_REFUND_STATUSES, PaymentState, PaymentStatus, derive_payment_state


# Stripe dispute statuses in which the money is (or may be) gone; won/warning_closed are over.
OPEN_DISPUTE_STATUSES = (
    "warning_needs_response", "warning_under_review", "needs_response", "under_review", "lost",
)


@dataclass(frozen=True)
class LedgerSummary:
    currency: str
    paid_cents: int
    refunded_cents: int  # requested + pending + succeeded: money no longer refundable
    disputed: bool

    @property
    def refundable_cents(self) -> int:
        return max(self.paid_cents - self.refunded_cents, 0)

    @property
    def state(self) -> PaymentState:
        return derive_payment_state(self.paid_cents, self.refunded_cents, self.disputed)


def summarize(session: Session, booking: Booking) -> LedgerSummary:
    paid, disputed = session.execute(
        select(
            func.coalesce(func.sum(Payment.amount_cents), 0),
            func.coalesce(func.sum(case((Payment.dispute_status.in_(OPEN_DISPUTE_STATUSES), 1), else_=0)), 0),
        ).where(Payment.booking_id == booking.id, Payment.status == PaymentStatus.SUCCEEDED)
    ).one()
    refunded = session.execute(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.booking_id == booking.id, Refund.status.in_(COMMITTED_REFUND_STATUSES)
        )
    ).scalar_one()
    return LedgerSummary(booking.currency, int(paid), int(refunded), disputed > 0)


def payment_refundable_cents(session: Session, payment: Payment) -> int:
    refunded = session.execute(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.payment_id == payment.id, Refund.status.in_(COMMITTED_REFUND_STATUSES)
        )
    ).scalar_one()
    return max(payment.amount_cents - int(refunded), 0)
