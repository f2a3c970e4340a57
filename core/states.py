"""The booking state machine and the payment state derived from the ledgers.

`TRANSITIONS` is the only description of which status may follow which; `booking_service`
applies it through `transition()` and writes a history row in the same transaction.
"""
from __future__ import annotations

from enum import StrEnum


class BookingStatus(StrEnum):
    PENDING_SCHEDULING = "PENDING_SCHEDULING"
    PENDING_PAYMENT = "PENDING_PAYMENT"
    CONFIRMED = "CONFIRMED"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


class PaymentState(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


S = BookingStatus
TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    # A scheduling link never used also expires, so abandoned bookings do not pile up.
    S.PENDING_SCHEDULING: frozenset({S.PENDING_PAYMENT, S.CANCELED, S.EXPIRED}),
    S.PENDING_PAYMENT: frozenset({S.CONFIRMED, S.CANCELED, S.EXPIRED}),
    S.CONFIRMED: frozenset({S.COMPLETED, S.CANCELED}),
    S.COMPLETED: frozenset(),
    S.CANCELED: frozenset(),
    S.EXPIRED: frozenset(),
}
FINAL_STATUSES = frozenset(status for status, nexts in TRANSITIONS.items() if not nexts)
# The statuses a booking may be canceled from, read off the table: "who may cancel" is `can_cancel`.
CANCELABLE = frozenset(status for status, nexts in TRANSITIONS.items() if S.CANCELED in nexts)
# Statuses in which Calendly holds a slot on the builder's calendar for this booking.
HOLDS_SLOT = frozenset({S.PENDING_PAYMENT, S.CONFIRMED})


class IllegalTransition(Exception):
    """A status change the transition table does not allow; nothing was changed."""

    def __init__(self, current: BookingStatus, target: BookingStatus):
        super().__init__(f"a booking in {current} cannot become {target}")
        self.current = current
        self.target = target


def can_transition(current: BookingStatus, target: BookingStatus) -> bool:
    return target in TRANSITIONS[BookingStatus(current)]


def can_cancel(status: BookingStatus | str) -> bool:
    """Whether a booking in `status` may still be canceled (the service's rule and the dashboard's button)."""
    return BookingStatus(status) in CANCELABLE


def check_transition(current: BookingStatus, target: BookingStatus) -> None:
    if not can_transition(current, target):
        raise IllegalTransition(BookingStatus(current), BookingStatus(target))


# Refund rows in these statuses hold money back from the refundable remainder: a refund we have
# decided on (requested) or Stripe is working on (pending) must not be refunded a second time.
COMMITTED_REFUND_STATUSES = frozenset({"requested", "pending", "succeeded"})


def derive_payment_state(paid_cents: int, refunded_cents: int, disputed: bool) -> PaymentState:
    """Payment state from ledger totals: what was captured, what is (being) refunded, disputes."""
    if paid_cents <= 0:
        return PaymentState.UNPAID
    if disputed:
        return PaymentState.DISPUTED
    if refunded_cents >= paid_cents:
        return PaymentState.REFUNDED
    if refunded_cents > 0:
        return PaymentState.PARTIALLY_REFUNDED
    return PaymentState.PAID
