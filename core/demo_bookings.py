"""One demo booking as a story that fits "now": its rows (booking, payment, refunds, history).

Every timestamp follows the one before it and none is later than now: picked a time, then paid
within the hold, canceled before the session (the refund the policy gives, a moment later) or
completed once it ended. Sessions that keep their slot (confirmed, completed, an unpaid hold)
take it in the builder's calendar, so one builder's sessions never overlap.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.bulk_rows import booking_row, history_rows
from core.demo_schedule import BuilderCalendar
from core.refund_policy import RefundPolicy, decide_refund
from core.states import BookingStatus as S, PaymentStatus, RefundRule, RefundStatus

CANCELED_SHARE, EXPIRED_SHARE = 0.12, 0.10   # of all bookings
LIVE_SHARE = 0.01                             # clients booking right now: half picking a time, half paying
PAID_BEFORE_CANCEL = 0.8                      # canceled bookings that had been paid
HOST_CANCELED = 0.1                           # of paid cancellations: the builder canceled
GOODWILL_REFUND = 0.03                        # of completed sessions: an admin refunded a part


@dataclass
class CatalogBuilder:
    id: int
    types: list[tuple[int, int, str, int]]  # (session type id, price, currency, minutes)
    calendar: BuilderCalendar


def _seconds(rng: random.Random, low: int, high: int) -> timedelta:
    return timedelta(seconds=rng.randrange(low, high))


def _between(rng: random.Random, low: datetime, high: datetime) -> datetime:
    return (low + (high - low) * rng.random()).replace(microsecond=0)


def one_booking(rng: random.Random, now: datetime, catalog: list[CatalogBuilder], client_ids: list[int],
                rows: dict[str, list], payment_id: int, *, policy: RefundPolicy, hold: timedelta) -> int:
    """Append one booking's rows to `rows`; returns the next free payment id."""
    builder = rng.choice(catalog)
    type_id, price, currency, minutes = rng.choice(builder.types)
    roll = rng.random()
    if roll < LIVE_SHARE:
        status = S.PENDING_PAYMENT if roll < LIVE_SHARE / 2 else S.PENDING_SCHEDULING
        created = now - _seconds(rng, 5 * 60, 25 * 60)
    else:
        status = S.CANCELED if roll < LIVE_SHARE + CANCELED_SHARE else (
            S.EXPIRED if roll < LIVE_SHARE + CANCELED_SHARE + EXPIRED_SHARE else S.CONFIRMED)
        # An hour plus a hold ago at the latest: whatever became of the hold has happened by now.
        created = now - _seconds(rng, int(hold.total_seconds()) + 3600, 365 * 86400)
    start = None
    if status != S.PENDING_SCHEDULING:
        keeps_slot = status in (S.CONFIRMED, S.PENDING_PAYMENT)
        start = builder.calendar.pick_slot(rng, created, minutes, occupy=keeps_slot)
        if start is None and keeps_slot:  # no free time: the client gave up
            status = S.PENDING_SCHEDULING if status == S.PENDING_PAYMENT else S.EXPIRED
            start = None if status == S.PENDING_SCHEDULING else builder.calendar.pick_slot(
                rng, created, minutes, occupy=False)
    end = start + timedelta(minutes=minutes) if start else None
    booking_id = "bk_%020x" % rng.getrandbits(80)
    ref = booking_id[3:]
    history = [(None, S.PENDING_SCHEDULING, "booking_started", "client", created)]
    scheduled = created + _seconds(rng, 60, 240)
    if start:
        history.append((S.PENDING_SCHEDULING, S.PENDING_PAYMENT, "invitee_created", "calendly:webhook", scheduled))
    if status == S.EXPIRED:
        history.append((S.PENDING_PAYMENT, S.EXPIRED, "checkout_expired", "stripe:webhook", scheduled + hold))
    paid = status == S.CONFIRMED or (status == S.CANCELED and rng.random() < PAID_BEFORE_CANCEL)
    paid_at = scheduled + _seconds(rng, 60, 25 * 60)
    refunds: list[tuple[int, datetime, str, str, str]] = []  # (amount, at, reason, rule, issued by)
    cancel_reason = None
    if paid:
        history.append((S.PENDING_PAYMENT, S.CONFIRMED, "payment_confirmed", "stripe:webhook", paid_at))
    if status == S.CANCELED:
        by_host = paid and rng.random() < HOST_CANCELED
        canceled_at = (_between(rng, paid_at + timedelta(minutes=1), min(start, now - timedelta(minutes=5)))
                       if paid else _between(rng, scheduled + timedelta(minutes=1), scheduled + hold))
        cancel_reason = "The builder canceled in Calendly" if by_host else "Client canceled in Calendly"
        history.append((history[-1][1], S.CANCELED, "canceled", "calendly:host" if by_host else "calendly:invitee",
                        canceled_at))
        if paid:
            decision = decide_refund(policy, price, start, canceled_at, canceled_by_host=by_host)
            if decision.amount_cents:
                refunds.append((decision.amount_cents, canceled_at + _seconds(rng, 5, 120),
                                decision.explain(policy), RefundRule.POLICY, history[-1][3]))
    if status == S.CONFIRMED and end <= now:
        status = S.COMPLETED
        history.append((S.CONFIRMED, S.COMPLETED, "session_ended", "system:worker",
                        min(end + _seconds(rng, 30, 300), now)))
        if rng.random() < GOODWILL_REFUND:
            parts = [price // 4, price - price // 4] if rng.random() < 0.3 else [price // 4]
            at = end + _seconds(rng, 3600, 3 * 86400)
            for amount in parts:
                if at <= now:
                    refunds.append((amount, at, "Goodwill refund", RefundRule.MANUAL, "admin@demo.test"))
                at += _seconds(rng, 3600, 86400)
    rows["bookings"].append(booking_row(
        booking_id, builder_id=builder.id, session_type_id=type_id, client_id=rng.choice(client_ids), status=status,
        amount_cents=price, currency=currency, created_at=created, start_time=start, minutes=minutes,
        event_uri=f"https://calendly.demo/scheduled_events/demo-{ref}" if start else None,
        invitee_uri=f"https://calendly.demo/scheduled_events/demo-{ref}/invitees/demo-{ref}" if start else None,
        hold_expires_at=scheduled + hold if status == S.PENDING_PAYMENT else None,
        # A live hold has not opened Stripe's page yet: expiring it asks no Stripe about a made-up session.
        checkout_session_id=f"cs_demo_{ref}" if start and status != S.PENDING_PAYMENT else None,
        cancel_reason=cancel_reason))
    rows["bookings"][-1]["updated_at"] = history[-1][4]
    for before, after, cause, actor, at in history:
        rows["history"] += history_rows(booking_id, [(before, after, cause, actor)], at=at)
    if not paid:
        return payment_id
    rows["payments"].append({
        "id": payment_id, "booking_id": booking_id, "stripe_payment_intent_id": f"pi_demo_{ref}",
        "stripe_checkout_session_id": f"cs_demo_{ref}", "amount_cents": price, "currency": currency,
        "status": PaymentStatus.SUCCEEDED, "dispute_status": "needs_response" if rng.random() < 0.003 else None,
        "created_at": paid_at,
    })
    for n, (amount, at, reason, rule, issued_by) in enumerate(refunds):
        rows["refunds"].append({
            "payment_id": payment_id, "booking_id": booking_id, "amount_cents": amount, "currency": currency,
            "status": RefundStatus.SUCCEEDED, "reason": reason, "rule": rule, "issued_by": issued_by,
            "stripe_refund_id": f"re_demo_{ref}_{n}", "created_at": at, "updated_at": at,
        })
    return payment_id + 1
