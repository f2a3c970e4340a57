"""A builder's earnings per month and currency: paid, refunded, net, the platform's fee, payout
(the words are defined once in `core.reporting.words`).

The platform fee is `settings.platform_fee_percent` of the month's net (paid − refunded): a
refunded payment carries no fee, so a month in which more is refunded than earned gives fee back
(a negative fee). Each currency is its own column of numbers; nothing is converted or summed
across currencies.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.auth import Viewer, builder_scope
from core.config import get_settings
from core.models import Booking, Payment, Refund
from core.reporting.csvfile import csv_text, major
from core.reporting.sql import as_date, month_start
from core.states import COMMITTED_REFUND_STATUSES, PaymentStatus


@dataclass(frozen=True)
class EarningsRow:
    month: date  # first day of the month, UTC
    currency: str
    gross_cents: int  # paid: payments captured in the month
    refunded_cents: int  # refunds decided in the month (requested, pending or succeeded)
    fee_cents: int  # platform fee on the net
    payout_cents: int  # what the builder keeps: net − fee

    @property
    def net_cents(self) -> int:
        """Net = paid − refunded, as everywhere else."""
        return self.gross_cents - self.refunded_cents


def platform_fee(net_of_refunds_cents: int, percent: int) -> int:
    """Integer fee, rounded toward zero so the platform never takes a fraction of a minor unit more."""
    sign = -1 if net_of_refunds_cents < 0 else 1
    return sign * (abs(net_of_refunds_cents) * percent // 100)


def earnings_by_month(session: Session, viewer: Viewer, *, builder_id: int | None = None,
                      since: datetime | None = None) -> list[EarningsRow]:
    """Per month and currency, oldest first; for a builder viewer only their own bookings."""
    scope = builder_scope(viewer, builder_id)
    percent = get_settings().platform_fee_percent

    pay_month = month_start(session, Payment.created_at).label("month")
    gross = (select(pay_month, Payment.currency, func.sum(Payment.amount_cents))
             .where(Payment.status == PaymentStatus.SUCCEEDED))
    refund_month = month_start(session, Refund.created_at).label("month")
    refunded = (select(refund_month, Refund.currency, func.sum(Refund.amount_cents))
                .where(Refund.status.in_(COMMITTED_REFUND_STATUSES)))
    if since is not None:
        gross = gross.where(Payment.created_at >= since)
        refunded = refunded.where(Refund.created_at >= since)
    if scope is not None:
        gross = gross.join(Booking, Booking.id == Payment.booking_id).where(Booking.builder_id == scope)
        refunded = refunded.join(Booking, Booking.id == Refund.booking_id).where(Booking.builder_id == scope)

    sums: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    for month, currency, total in session.execute(gross.group_by(pay_month, Payment.currency)):
        sums[(as_date(month), currency)][0] += int(total)
    for month, currency, total in session.execute(refunded.group_by(refund_month, Refund.currency)):
        sums[(as_date(month), currency)][1] += int(total)

    rows = []
    for (month, currency), (gross_cents, refunded_cents) in sorted(sums.items()):
        fee = platform_fee(gross_cents - refunded_cents, percent)
        rows.append(EarningsRow(month, currency, gross_cents, refunded_cents, fee,
                                gross_cents - refunded_cents - fee))
    return rows


def earnings_totals(rows: list[EarningsRow]) -> dict[str, EarningsRow]:
    """Totals per currency over the given months (the month field is the first month)."""
    totals: dict[str, EarningsRow] = {}
    for row in rows:
        previous = totals.get(row.currency)
        if previous is None:
            totals[row.currency] = row
        else:
            totals[row.currency] = EarningsRow(
                previous.month, row.currency, previous.gross_cents + row.gross_cents,
                previous.refunded_cents + row.refunded_cents, previous.fee_cents + row.fee_cents,
                previous.payout_cents + row.payout_cents)
    return totals


def earnings_csv(rows: list[EarningsRow]) -> str:
    """The months as CSV, amounts in major units: the same numbers as the earnings page."""
    return csv_text(
        ["month", "currency", "paid", "refunded", "net", "platform_fee", "payout"],
        ((row.month.strftime("%Y-%m"), row.currency, major(row.gross_cents, row.currency),
          major(row.refunded_cents, row.currency), major(row.net_cents, row.currency),
          major(row.fee_cents, row.currency), major(row.payout_cents, row.currency)) for row in rows))
