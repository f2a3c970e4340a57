"""Correctness after every run: what the database must hold once the events have been answered."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from bench.console import log
from bench.load import LoadResult
from bench.seeding import CAUSE, STATUS_AFTER


@dataclass
class Check:
    name: str
    expected: object
    actual: object

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def verify(engine: Engine, provider: str, booking_ids: list[str], *, result: LoadResult,
           sent_per_booking: int = 1) -> list[Check]:
    """Every event answered 200; each booking moved exactly once; one processed webhook row per
    event; for Stripe one payment per booking."""
    from core.models import Booking, BookingHistory, Payment, WebhookEvent
    n = len(booking_ids)
    status_counts: Counter = Counter()
    history_rows = history_bookings = payments = payment_bookings = 0
    events: Counter = Counter()
    with engine.connect() as conn:
        for offset in range(0, n, 500):
            chunk = booking_ids[offset:offset + 500]
            for status, count in conn.execute(select(Booking.status, func.count()).where(Booking.id.in_(chunk))
                                              .group_by(Booking.status)):
                status_counts[status] += count
            rows, distinct = conn.execute(
                select(func.count(), func.count(BookingHistory.booking_id.distinct()))
                .where(BookingHistory.booking_id.in_(chunk), BookingHistory.cause == CAUSE[provider])).one()
            history_rows += rows
            history_bookings += distinct
            rows, distinct = conn.execute(select(func.count(), func.count(Payment.booking_id.distinct()))
                                          .where(Payment.booking_id.in_(chunk))).one()
            payments += rows
            payment_bookings += distinct
            for outcome, count in conn.execute(select(WebhookEvent.outcome, func.count())
                                               .where(WebhookEvent.booking_id.in_(chunk))
                                               .group_by(WebhookEvent.outcome)):
                events[outcome] += count
        failed_anywhere = conn.execute(select(func.count()).select_from(WebhookEvent)
                                       .where(WebhookEvent.outcome.in_(("failed", "received")))).scalar_one()
    checks = [
        Check("answered 200", n * sent_per_booking, result.ok),
        Check(f"bookings {STATUS_AFTER[provider]}", n, status_counts.get(STATUS_AFTER[provider], 0)),
        Check(f"history '{CAUSE[provider]}' rows (one per booking)", (n, n), (history_rows, history_bookings)),
        Check("webhook_events processed", n, events.get("processed", 0)),
        Check("webhook_events for these bookings", n, sum(events.values())),
        Check("webhook_events failed/unfinished (whole db)", 0, failed_anywhere),
    ]
    if provider == "stripe":
        checks.append(Check("payments (one per booking)", (n, n), (payments, payment_bookings)))
    else:
        checks.append(Check("payments", 0, payments))
    if sent_per_booking > 1:
        answered = Counter(result.outcomes)
        checks.append(Check("answers processed / duplicate", (n, n * (sent_per_booking - 1)),
                            (answered.get("processed", 0), answered.get("duplicate", 0))))
    return checks


def report_checks(checks: list[Check]) -> bool:
    bad = [c for c in checks if not c.ok]
    if bad:
        for check in bad:
            log(f"      CHECK FAILED: {check.name}: expected {check.expected}, got {check.actual}")
    else:
        log(f"      checks ok: {'; '.join(f'{c.name} = {c.actual}' for c in checks)}")
    return not bad
