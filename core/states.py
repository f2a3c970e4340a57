"""The booking state machine, the payment state derived from the ledgers, and every other
vocabulary we store as a string (refund, payment, outbox and webhook statuses, refund rules,
outbox kinds).

`TRANSITIONS` is the only description of which status may follow which; `core.services.transitions`
applies it (`transition()`) and writes a history row in the same transaction.

The vocabularies are `StrEnum`s: a member equals its string, so the database and the JSON hold the
same values as before, and a value read back from the database compares equal to its member.
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


class PaymentStatus(StrEnum):
    """A payment row's status: we record a payment only once Stripe says it succeeded."""

    SUCCEEDED = "succeeded"


class RefundStatus(StrEnum):
    """A refund row's status: ours until Stripe has it (requested), then Stripe's refund status,
    copied as Stripe reports it (`payment_events.apply_refund_object`)."""

    REQUESTED = "requested"  # decided by us, not yet sent to Stripe (the outbox sends it)
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"  # Stripe's: the customer must act before the money goes back
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundRule(StrEnum):
    """Why a refund was made (the refund row's `rule`)."""

    POLICY = "policy"  # a cancellation, refunded as the session type's policy says
    MANUAL = "manual"  # an admin's refund
    LATE_PAYMENT = "late_payment"  # a payment that arrived for a booking that could not take it
    STRIPE_DASHBOARD = "stripe_dashboard"  # made outside our app (Stripe's dashboard), imported


class OutboxStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at (also while it waits to be retried)
    DONE = "done"
    FAILED = "failed"  # for good: an admin may retry it


class OutboxKind(StrEnum):
    """What an outbox entry does; each kind has its executor in `side_effects.EXECUTORS`."""

    STRIPE_REFUND = "stripe_refund"
    STRIPE_SYNC_REFUNDS = "stripe_sync_refunds"
    STRIPE_EXPIRE_CHECKOUT = "stripe_expire_checkout"
    STRIPE_REFUND_REFUSED_PAYMENT = "stripe_refund_refused_payment"
    CALENDLY_CANCEL = "calendly_cancel"
    NOTIFY = "notify"


class WebhookOutcome(StrEnum):
    """What became of a webhook event (its row's `outcome`) and what a handler answers (`Outcome`).

    received → processed | ignored | unmatched | stray, or failed (retried, replayable); rejected
    (bad signature) and invalid (unusable payload) are stored as such and never processed."""

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"  # nothing to do
    UNMATCHED = "unmatched"  # no booking of ours: kept for review
    STRAY = "stray"  # a Calendly slot that names a booking but is not its slot (see slot_binding)
    FAILED = "failed"
    REJECTED = "rejected"
    INVALID = "invalid"
    # Never stored: a Checkout Session read from Stripe that is still open (`apply_checkout`).
    OPEN = "open"


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
# decided on (requested), Stripe is working on (pending) or waits on the customer for
# (requires_action) must not be refunded a second time.
COMMITTED_REFUND_STATUSES = frozenset({RefundStatus.REQUESTED, RefundStatus.PENDING, RefundStatus.REQUIRES_ACTION,
                                       RefundStatus.SUCCEEDED})


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
