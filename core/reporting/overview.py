"""The admin overview: KPIs, weekly bookings and revenue, the status funnel, refunds by reason.

All figures are aggregated by the database. Money is kept per currency and never summed across
currencies; counts (bookings) may be.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.auth import Viewer, builder_scope
from core.models import Booking, OutboxEntry, Payment, Refund, WebhookEvent
from core.reporting.sql import as_date, week_start
from core.states import (
    COMMITTED_REFUND_STATUSES, BookingStatus as S, OutboxStatus, PaymentStatus, RefundRule, WebhookOutcome,
)

REFUND_RULE_LABELS = {
    RefundRule.POLICY: "Cancellation policy",
    RefundRule.MANUAL: "Admin refund",
    RefundRule.LATE_PAYMENT: "Payment after cancel/expiry",
    RefundRule.STRIPE_DASHBOARD: "Refunded in Stripe",
}


@dataclass(frozen=True)
class OverviewKpis:
    since: datetime
    bookings: int  # created since `since`
    scheduled: int  # of those, a time was chosen in Calendly
    paid: int  # of the scheduled ones, a payment succeeded
    revenue: dict[str, int] = field(default_factory=dict)  # currency → captured, minor units
    refunds: dict[str, int] = field(default_factory=dict)  # currency → requested/pending/succeeded
    pending_payments: int = 0  # bookings waiting for payment right now
    failed_outbox: int = 0
    failed_webhooks: int = 0

    @property
    def conversion(self) -> float | None:
        """Scheduled → paid, as a fraction; None when nothing was scheduled."""
        return self.paid / self.scheduled if self.scheduled else None

    def net(self, currency: str) -> int:
        return self.revenue.get(currency, 0) - self.refunds.get(currency, 0)

    @property
    def currencies(self) -> list[str]:
        return sorted(set(self.revenue) | set(self.refunds))


def _paid(query):
    """`query` (over bookings) narrowed to bookings with a succeeded payment.

    In WHERE, PostgreSQL turns the EXISTS into a semi-join (the two sets matched once, by hash)
    and SQLite probes the covering ledger index per booking; the same test inside a CASE, as
    before, was a subquery PostgreSQL ran for each of a year's bookings.
    """
    # SELECT payments.id, not SELECT *: SQLite then answers it from the ledger index alone.
    return query.where(select(Payment.id).where(Payment.booking_id == Booking.id, Payment.status == PaymentStatus.SUCCEEDED)
                       .exists())


def _bookings_of(builder_id: int | None):
    query = select(Booking.id)
    return query.where(Booking.builder_id == builder_id) if builder_id is not None else query


def _money_by_currency(session: Session, model, amount_filter, since: datetime,
                       until: datetime | None, builder_id: int | None) -> dict[str, int]:
    query = select(model.currency, func.sum(model.amount_cents)).where(
        amount_filter, model.created_at >= since)
    if until is not None:
        query = query.where(model.created_at < until)
    if builder_id is not None:
        query = query.join(Booking, Booking.id == model.booking_id).where(Booking.builder_id == builder_id)
    rows = session.execute(query.group_by(model.currency).order_by(model.currency)).all()
    return {currency: int(total) for currency, total in rows}


def overview_kpis(session: Session, viewer: Viewer, since: datetime, until: datetime | None = None,
                  *, builder_id: int | None = None) -> OverviewKpis:
    """Bookings created since `since`, their conversion, money moved since then, and what needs attention.

    Revenue is what was captured (payments created in the period); refunds are the refunds decided
    in the period that are not failed or canceled. Both per currency.
    """
    scope = builder_scope(viewer, builder_id)
    period = [Booking.created_at >= since]
    if until is not None:
        period.append(Booking.created_at < until)
    if scope is not None:
        period.append(Booking.builder_id == scope)
    # count(*), not count(id): any index covering the filter answers it.
    total, scheduled = session.execute(select(
        func.count(), func.coalesce(func.sum(case((Booking.start_time.is_not(None), 1), else_=0)), 0),
    ).where(*period)).one()
    paid_count = session.execute(_paid(
        select(func.count()).select_from(Booking).where(*period, Booking.start_time.is_not(None)))).scalar_one()

    pending = select(func.count(Booking.id)).where(Booking.status == S.PENDING_PAYMENT)
    failed_outbox = select(func.count(OutboxEntry.id)).where(OutboxEntry.status == OutboxStatus.FAILED)
    failed_webhooks = select(func.count(WebhookEvent.id)).where(WebhookEvent.outcome == WebhookOutcome.FAILED)
    if scope is not None:
        pending = pending.where(Booking.builder_id == scope)
        failed_outbox = failed_outbox.where(OutboxEntry.booking_id.in_(_bookings_of(scope)))
        failed_webhooks = failed_webhooks.where(WebhookEvent.booking_id.in_(_bookings_of(scope)))

    return OverviewKpis(
        since=since, bookings=int(total), scheduled=int(scheduled), paid=int(paid_count),
        revenue=_money_by_currency(session, Payment, Payment.status == PaymentStatus.SUCCEEDED, since, until, scope),
        refunds=_money_by_currency(session, Refund, Refund.status.in_(COMMITTED_REFUND_STATUSES),
                                   since, until, scope),
        pending_payments=int(session.execute(pending).scalar_one()),
        failed_outbox=int(session.execute(failed_outbox).scalar_one()),
        failed_webhooks=int(session.execute(failed_webhooks).scalar_one()),
    )


@dataclass(frozen=True)
class WeeklyPoint:
    week: date  # the Monday (UTC) starting the week
    currency: str
    bookings: int  # bookings created that week in this currency
    revenue_cents: int  # payments captured that week in this currency


def weekly_series(session: Session, viewer: Viewer, since: datetime, *,
                  builder_id: int | None = None) -> list[WeeklyPoint]:
    """Bookings created and revenue captured per week (UTC) and currency, oldest week first."""
    scope = builder_scope(viewer, builder_id)
    booking_week = week_start(session, Booking.created_at).label("week")
    bookings = select(booking_week, Booking.currency, func.count(Booking.id)).where(Booking.created_at >= since)
    if scope is not None:
        bookings = bookings.where(Booking.builder_id == scope)
    bookings = bookings.group_by(booking_week, Booking.currency)

    payment_week = week_start(session, Payment.created_at).label("week")
    revenue = (select(payment_week, Payment.currency, func.sum(Payment.amount_cents))
               .where(Payment.status == PaymentStatus.SUCCEEDED, Payment.created_at >= since))
    if scope is not None:
        revenue = revenue.join(Booking, Booking.id == Payment.booking_id).where(Booking.builder_id == scope)
    revenue = revenue.group_by(payment_week, Payment.currency)

    points: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    for week, currency, count in session.execute(bookings):
        points[(as_date(week), currency)][0] += int(count)
    for week, currency, total in session.execute(revenue):
        points[(as_date(week), currency)][1] += int(total)
    return [WeeklyPoint(week, currency, counts[0], counts[1])
            for (week, currency), counts in sorted(points.items())]


@dataclass(frozen=True)
class FunnelStage:
    label: str
    count: int


@dataclass(frozen=True)
class StatusFunnel:
    stages: list[FunnelStage]
    by_status: dict[str, int]


def status_funnel(session: Session, viewer: Viewer, since: datetime, *,
                  builder_id: int | None = None) -> StatusFunnel:
    """Of the bookings created since `since`: how many were scheduled, paid and completed."""
    scope = builder_scope(viewer, builder_id)
    period = [Booking.created_at >= since]
    if scope is not None:
        period.append(Booking.builder_id == scope)
    # One pass for the counts per status (the stages before "Paid" are their sums), one semi-join
    # for the paid ones.
    per_status = session.execute(
        select(Booking.status, func.count(),
               func.coalesce(func.sum(case((Booking.start_time.is_not(None), 1), else_=0)), 0))
        .where(*period).group_by(Booking.status)).all()
    paid = session.execute(_paid(select(func.count()).select_from(Booking).where(*period))).scalar_one()
    statuses = {status: int(count) for status, count, _ in per_status}
    started = sum(statuses.values())
    scheduled = sum(int(n) for _, _, n in per_status)
    completed = statuses.get(S.COMPLETED.value, 0)
    return StatusFunnel(
        stages=[FunnelStage("Started", int(started)), FunnelStage("Scheduled", int(scheduled)),
                FunnelStage("Paid", int(paid)), FunnelStage("Completed", int(completed))],
        by_status={status.value: int(statuses.get(status.value, 0)) for status in S},
    )


@dataclass(frozen=True)
class RefundReasonRow:
    rule: str
    label: str
    currency: str
    count: int
    amount_cents: int


def refunds_by_reason(session: Session, viewer: Viewer, since: datetime, *,
                      builder_id: int | None = None) -> list[RefundReasonRow]:
    """Refunds decided since `since` (not failed or canceled), by rule and currency."""
    scope = builder_scope(viewer, builder_id)
    query = (select(Refund.rule, Refund.currency, func.count(Refund.id), func.sum(Refund.amount_cents))
             .where(Refund.created_at >= since, Refund.status.in_(COMMITTED_REFUND_STATUSES)))
    if scope is not None:
        query = query.join(Booking, Booking.id == Refund.booking_id).where(Booking.builder_id == scope)
    rows = session.execute(query.group_by(Refund.rule, Refund.currency)
                           .order_by(Refund.rule, Refund.currency)).all()
    return [RefundReasonRow(rule, REFUND_RULE_LABELS.get(rule, rule), currency, int(count), int(total))
            for rule, currency, count, total in rows]
