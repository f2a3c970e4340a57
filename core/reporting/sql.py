"""SQL building blocks shared by the reports: per-booking ledger sums and calendar buckets.

The payment status is computed by the database with the same rules as
`core.states.derive_payment_state`, so a filter on it pages correctly over millions of rows.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, String, case, cast, func, literal, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.models import Booking, Payment, Refund
from core.services.ledger import OPEN_DISPUTE_STATUSES
from core.states import COMMITTED_REFUND_STATUSES, PaymentState


def paid_cents_of(booking_id) -> ColumnElement[int]:
    return (
        select(func.coalesce(func.sum(Payment.amount_cents), 0))
        .where(Payment.booking_id == booking_id, Payment.status == "succeeded")
        .scalar_subquery()
    )


def refunded_cents_of(booking_id) -> ColumnElement[int]:
    """Requested, pending and succeeded refunds: money that is no longer refundable."""
    return (
        select(func.coalesce(func.sum(Refund.amount_cents), 0))
        .where(Refund.booking_id == booking_id, Refund.status.in_(COMMITTED_REFUND_STATUSES))
        .scalar_subquery()
    )


def open_disputes_of(booking_id) -> ColumnElement[int]:
    return (
        select(func.count(Payment.id))
        .where(Payment.booking_id == booking_id, Payment.status == "succeeded",
               Payment.dispute_status.in_(OPEN_DISPUTE_STATUSES))
        .scalar_subquery()
    )


def payment_status_of(booking_id=Booking.id) -> ColumnElement[str]:
    """`derive_payment_state` as a SQL CASE over the booking's ledger rows."""
    paid, refunded = paid_cents_of(booking_id), refunded_cents_of(booking_id)
    return case(
        (paid <= 0, literal(PaymentState.UNPAID.value)),
        (open_disputes_of(booking_id) > 0, literal(PaymentState.DISPUTED.value)),
        (refunded >= paid, literal(PaymentState.REFUNDED.value)),
        (refunded > 0, literal(PaymentState.PARTIALLY_REFUNDED.value)),
        else_=literal(PaymentState.PAID.value),
    )


# Constants are inlined, not bound: PostgreSQL only matches a SELECT expression to its GROUP BY
# twin when both are textually the same, and two bound parameters never are.
_UTC = literal_column("'UTC'")


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
