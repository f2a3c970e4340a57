"""SQL building blocks shared by the reports: per-booking ledger sums and calendar buckets.

The payment status is computed by the database with the same rules as
`core.states.derive_payment_state`, so a filter on it pages correctly over millions of rows.
"""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from sqlalchemy import Date, String, case, cast, func, literal, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.models import Booking, Payment, Refund
from core.services.ledger import OPEN_DISPUTE_STATUSES
from core.states import COMMITTED_REFUND_STATUSES, PaymentState, PaymentStatus


# Constants are inlined, not bound: PostgreSQL only matches a SELECT expression to its GROUP BY
# twin when both are textually the same, and two bound parameters never are.
_UTC = literal_column("'UTC'")
# Inlined too, so that each branch of a UNION has a typed constant.
_ZERO, _ONE = literal_column("0"), literal_column("1")


@lru_cache(maxsize=8)  # built once per column: a list page uses them on every call
def paid_cents_of(booking_id) -> ColumnElement[int]:
    return (
        select(func.coalesce(func.sum(Payment.amount_cents), 0))
        .where(Payment.booking_id == booking_id, Payment.status == PaymentStatus.SUCCEEDED)
        .scalar_subquery()
    )


@lru_cache(maxsize=8)
def refunded_cents_of(booking_id) -> ColumnElement[int]:
    """Requested, pending and succeeded refunds: money that is no longer refundable."""
    return (
        select(func.coalesce(func.sum(Refund.amount_cents), 0))
        .where(Refund.booking_id == booking_id, Refund.status.in_(COMMITTED_REFUND_STATUSES))
        .scalar_subquery()
    )


@lru_cache(maxsize=8)
def payment_status_of(booking_id=Booking.id) -> ColumnElement[str]:
    """`derive_payment_state` as one SQL subquery over the booking's ledger rows.

    One correlated subquery reads the booking's succeeded payments and committed refunds once
    (two index look-ups) and applies the rule to their sums; a CASE over separate sums per total
    would look each ledger up again for every condition that mentions it (up to five look-ups).
    """
    outer = booking_id.table
    payments = (
        select(Payment.amount_cents.label("paid"), _ZERO.label("refunded"),
               case((Payment.dispute_status.in_(OPEN_DISPUTE_STATUSES), _ONE), else_=_ZERO).label("disputes"))
        .where(Payment.booking_id == booking_id, Payment.status == PaymentStatus.SUCCEEDED)
        .correlate(outer)
    )
    refunds = (
        select(_ZERO, Refund.amount_cents, _ZERO)
        .where(Refund.booking_id == booking_id, Refund.status.in_(COMMITTED_REFUND_STATUSES))
        .correlate(outer)
    )
    ledger = payments.union_all(refunds).subquery("ledger")
    paid = func.coalesce(func.sum(ledger.c.paid), 0)
    refunded = func.coalesce(func.sum(ledger.c.refunded), 0)
    status = case(
        (paid <= 0, literal(PaymentState.UNPAID.value)),
        (func.coalesce(func.sum(ledger.c.disputes), 0) > 0, literal(PaymentState.DISPUTED.value)),
        (refunded >= paid, literal(PaymentState.REFUNDED.value)),
        (refunded > 0, literal(PaymentState.PARTIALLY_REFUNDED.value)),
        else_=literal(PaymentState.PAID.value),
    )
    return select(status).select_from(ledger).correlate(outer).scalar_subquery()


def implied_by_payment_statuses(statuses, booking_id=Booking.id) -> ColumnElement[bool] | None:
    """A cheap condition every booking in one of `statuses` meets, or None.

    Added next to the exact `payment_status_of(...) IN statuses`, never instead of it: it only lets
    the database skip, by a semi-join on a ledger index, the bookings that cannot match, so the
    status subquery runs for the few that can. Refunded and partially refunded bookings have a
    committed refund (refunded > 0); disputed ones an open dispute on a succeeded payment.
    """
    wanted = set(statuses)
    if wanted and wanted <= {PaymentState.REFUNDED.value, PaymentState.PARTIALLY_REFUNDED.value}:
        return booking_id.in_(select(Refund.booking_id).where(Refund.status.in_(COMMITTED_REFUND_STATUSES)))
    if wanted == {PaymentState.DISPUTED.value}:
        return booking_id.in_(select(Payment.booking_id).where(
            Payment.status == PaymentStatus.SUCCEEDED, Payment.dispute_status.in_(OPEN_DISPUTE_STATUSES)))
    return None


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def week_start(session: Session, column) -> ColumnElement:
    """The Monday (UTC) of the week `column` falls in."""
    if _dialect(session) == "sqlite":
        # Back six days, then forward to the next Monday: the same Monday for every day of a week.
        return func.date(column, literal_column("'-6 days'"), literal_column("'weekday 1'"))
    return cast(func.date_trunc(literal_column("'week'"), func.timezone(_UTC, column)), Date)


def month_start(session: Session, column) -> ColumnElement:
    """The first day (UTC) of the month `column` falls in."""
    if _dialect(session) == "sqlite":
        return func.strftime(literal_column("'%Y-%m-01'"), column)
    return cast(func.date_trunc(literal_column("'month'"), func.timezone(_UTC, column)), Date)


def as_date(value) -> date:
    """Bucket values come back as `date` (PostgreSQL) or 'YYYY-MM-DD' (SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def like_escaped(column, term: str) -> ColumnElement[bool]:
    """Case-insensitive 'contains', with % and _ in the term taken literally."""
    return func.lower(cast(column, String)).contains(term.lower(), autoescape=True)
