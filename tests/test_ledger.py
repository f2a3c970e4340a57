"""Payment state comes from the payment and refund ledgers, never from a flag on the booking."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.errors import RefundRefused
from core.models import Booking, BookingHistory, Notification, OutboxEntry, Refund
from core.services import payment_events, refunds as refund_service
from core.services.ledger import summarize
from core.states import BookingStatus as S
from core.states import PaymentState, derive_payment_state
from tests.factories import (
    count, make_booking, make_payment, make_refund, make_session_type,
)

ADMIN = "admin@example.test"


@pytest.mark.parametrize("paid,refunded,disputed,expected", [
    (0, 0, False, PaymentState.UNPAID),
    (0, 0, True, PaymentState.UNPAID),        # nothing captured: nothing to dispute
    (1000, 0, False, PaymentState.PAID),
    (1000, 1, False, PaymentState.PARTIALLY_REFUNDED),
    (1000, 999, False, PaymentState.PARTIALLY_REFUNDED),
    (1000, 1000, False, PaymentState.REFUNDED),
    (1000, 0, True, PaymentState.DISPUTED),
    (1000, 1000, True, PaymentState.DISPUTED),  # a dispute outranks the refund state
])
def test_derive_payment_state_from_totals(paid, refunded, disputed, expected):
    assert derive_payment_state(paid, refunded, disputed) is expected


def _paid_booking(session, amount=10_000, currency="USD"):
    booking = make_booking(session, S.CONFIRMED,
                           session_type=make_session_type(session, price_cents=amount, currency=currency))
    payment = make_payment(session, booking)
    return booking, payment


def test_booking_without_payment_is_unpaid(session):
    booking = make_booking(session, S.PENDING_PAYMENT)
    summary = summarize(session, booking)
    assert (summary.paid_cents, summary.refunded_cents, summary.refundable_cents) == (0, 0, 0)
    assert summary.state is PaymentState.UNPAID
    assert summary.currency == "USD"


def test_failed_payment_does_not_count_as_paid(session):
    booking = make_booking(session, S.PENDING_PAYMENT)
    make_payment(session, booking, status="failed")
    assert summarize(session, booking).state is PaymentState.UNPAID


def test_captured_payment_is_paid_and_fully_refundable(session):
    booking, _ = _paid_booking(session, amount=4900)
    summary = summarize(session, booking)
    assert summary.state is PaymentState.PAID
    assert (summary.paid_cents, summary.refunded_cents, summary.refundable_cents) == (4900, 0, 4900)


def test_partial_refunds_summing_to_the_total_make_the_booking_refunded(session):
    booking, payment = _paid_booking(session, amount=10_000)

    assert refund_service.request_refund(session, booking.id, 2_500, reason="late start", actor=ADMIN) == 2_500
    assert summarize(session, booking).state is PaymentState.PARTIALLY_REFUNDED
    assert refund_service.request_refund(session, booking.id, 4_000, reason="goodwill", actor=ADMIN) == 4_000
    summary = summarize(session, booking)
    assert summary.state is PaymentState.PARTIALLY_REFUNDED
    assert (summary.refunded_cents, summary.refundable_cents) == (6_500, 3_500)
    assert refund_service.request_refund(session, booking.id, 3_500, reason="the rest", actor=ADMIN) == 3_500

    summary = summarize(session, booking)
    assert summary.state is PaymentState.REFUNDED
    assert (summary.paid_cents, summary.refunded_cents, summary.refundable_cents) == (10_000, 10_000, 0)
    refunds = session.execute(select(Refund).where(Refund.booking_id == booking.id).order_by(Refund.id)).scalars().all()
    assert [(r.amount_cents, r.status, r.rule, r.issued_by, r.payment_id) for r in refunds] == [
        (2_500, "requested", "manual", ADMIN, payment.id),
        (4_000, "requested", "manual", ADMIN, payment.id),
        (3_500, "requested", "manual", ADMIN, payment.id),
    ]


def test_each_refund_request_writes_an_outbox_entry_with_a_deterministic_key_and_a_history_row(session):
    booking, payment = _paid_booking(session, amount=10_000)
    refund_service.request_refund(session, booking.id, 1_000, reason="first", actor=ADMIN)
    refund_service.request_refund(session, booking.id, 2_000, reason="second", actor=ADMIN)

    refunds = session.execute(select(Refund).order_by(Refund.id)).scalars().all()
    entries = session.execute(
        select(OutboxEntry).where(OutboxEntry.kind == "stripe_refund").order_by(OutboxEntry.id)
    ).scalars().all()
    assert [e.idempotency_key for e in entries] == [f"refund:{booking.id}:{r.id}" for r in refunds]
    assert [e.payload for e in entries] == [{"refund_id": r.id} for r in refunds]
    assert all(e.status == "pending" and e.booking_id == booking.id and e.attempts == 0 for e in entries)

    history = session.execute(
        select(BookingHistory).where(BookingHistory.cause == "refund_requested").order_by(BookingHistory.id)
    ).scalars().all()
    assert [(h.from_status, h.to_status, h.actor) for h in history] == [(S.CONFIRMED, S.CONFIRMED, ADMIN)] * 2
    assert [h.details["refund_id"] for h in history] == [r.id for r in refunds]
    assert [h.details["amount_cents"] for h in history] == [1_000, 2_000]
    assert [h.details["reason"] for h in history] == ["first", "second"]
    # Refunding does not change the booking's status.
    assert session.get(Booking, booking.id).status == S.CONFIRMED


def test_refund_without_amount_returns_the_whole_remainder(session):
    booking, payment = _paid_booking(session, amount=7_000)
    make_refund(session, payment, 2_000)
    assert refund_service.request_refund(session, booking.id, None, reason="", actor=ADMIN) == 5_000
    assert summarize(session, booking).state is PaymentState.REFUNDED
    newest = session.execute(select(Refund).order_by(Refund.id.desc())).scalars().first()
    assert (newest.amount_cents, newest.reason) == (5_000, "Refund by admin")


def test_refund_beyond_the_remainder_is_refused_and_writes_nothing(engine):
    with session_scope(engine) as session:
        booking, payment = _paid_booking(session, amount=10_000)
        refund_service.request_refund(session, booking.id, 6_000, reason="first", actor=ADMIN)
        booking_id = booking.id
    tables = (Refund, OutboxEntry, BookingHistory, Notification)
    with session_scope(engine, read_only=True) as session:
        before = {model: count(session, model) for model in tables}

    with session_scope(engine) as session:
        with pytest.raises(RefundRefused) as refused:
            refund_service.request_refund(session, booking_id, 4_001, reason="too much", actor=ADMIN)
        assert str(refused.value) == "$40.01 is more than the refundable remainder of $40.00"
        # Committed on purpose: the refusal itself must have added nothing to the session.
    with session_scope(engine, read_only=True) as session:
        assert {model: count(session, model) for model in tables} == before
        assert summarize(session, session.get(Booking, booking_id)).refundable_cents == 4_000


@pytest.mark.parametrize("amount,message", [
    (0, "the refund amount must be positive"),
    (-100, "the refund amount must be positive"),
    (12.5, "the amount must be a whole number of minor units (cents)"),
    (True, "the amount must be a whole number of minor units (cents)"),
    ("100", "the amount must be a whole number of minor units (cents)"),
])
def test_refund_of_a_non_positive_or_non_integer_amount_is_refused(session, amount, message):
    booking, _ = _paid_booking(session)
    with pytest.raises(RefundRefused) as refused:
        refund_service.request_refund(session, booking.id, amount, reason="", actor=ADMIN)
    assert str(refused.value) == message
    assert count(session, Refund) == 0
    assert count(session, OutboxEntry, OutboxEntry.kind == "stripe_refund") == 0


def test_refund_of_an_unpaid_booking_is_refused(session):
    booking = make_booking(session, S.PENDING_PAYMENT)
    with pytest.raises(RefundRefused, match="nothing was paid"):
        refund_service.request_refund(session, booking.id, None, reason="", actor=ADMIN)
    assert count(session, Refund) == 0


def test_refund_of_a_fully_refunded_booking_is_refused(session):
    booking, payment = _paid_booking(session, amount=3_000)
    make_refund(session, payment, 3_000)
    with pytest.raises(RefundRefused, match="already fully refunded"):
        refund_service.request_refund(session, booking.id, None, reason="", actor=ADMIN)
    assert count(session, Refund) == 1


def test_failed_refund_gives_its_amount_back_to_the_refundable_remainder(session):
    booking, _ = _paid_booking(session, amount=10_000)
    refund_service.request_refund(session, booking.id, 10_000, reason="all", actor=ADMIN)
    assert summarize(session, booking).state is PaymentState.REFUNDED
    refund = session.execute(select(Refund)).scalar_one()

    refund_service.mark_refund_failed(session, refund.id, "card expired", actor="stripe:webhook")

    summary = summarize(session, booking)
    assert summary.state is PaymentState.PAID
    assert (summary.refunded_cents, summary.refundable_cents) == (0, 10_000)
    assert (refund.status, refund.failure_reason) == ("failed", "card expired")
    failed = session.execute(select(BookingHistory).where(BookingHistory.cause == "refund_failed")).scalar_one()
    assert failed.details == {"refund_id": refund.id, "amount_cents": 10_000, "reason": "card expired"}
    # The amount can now be refunded again.
    assert refund_service.request_refund(session, booking.id, None, reason="retry", actor=ADMIN) == 10_000
    assert summarize(session, booking).state is PaymentState.REFUNDED


@pytest.mark.parametrize("status,counts", [
    ("requested", True), ("pending", True), ("requires_action", True), ("succeeded", True), ("failed", False),
    ("canceled", False),
])
def test_only_committed_refund_statuses_reduce_the_remainder(session, status, counts):
    booking, payment = _paid_booking(session, amount=1_000)
    make_refund(session, payment, 400, status=status)
    assert summarize(session, booking).refundable_cents == (600 if counts else 1_000)


def test_a_refund_waiting_on_the_customer_is_not_refunded_a_second_time(session):
    """Stripe's `requires_action`: the money is on its way back once the customer acts, so the
    remainder an admin may still refund does not include it."""
    booking, payment = _paid_booking(session, amount=1_000)
    make_refund(session, payment, 1_000, status="requires_action")
    with pytest.raises(RefundRefused, match="already fully refunded"):
        refund_service.request_refund(session, booking.id, None, reason="again", actor="admin:test")


def test_refunds_are_spread_over_several_payments_of_one_booking(session):
    booking, first = _paid_booking(session, amount=5_000)
    second = make_payment(session, booking, amount_cents=5_000)
    assert summarize(session, booking).paid_cents == 10_000

    refund_service.request_refund(session, booking.id, 7_000, reason="split", actor=ADMIN)

    refunds = session.execute(select(Refund).order_by(Refund.id)).scalars().all()
    assert [(r.payment_id, r.amount_cents) for r in refunds] == [(first.id, 5_000), (second.id, 2_000)]
    assert summarize(session, booking).refundable_cents == 3_000


def test_open_dispute_makes_the_payment_disputed_and_a_won_one_does_not(session):
    booking, payment = _paid_booking(session, amount=10_000)
    dispute = {"id": "dp_test_1", "payment_intent": payment.stripe_payment_intent_id, "reason": "fraudulent"}

    outcome = payment_events.apply_dispute(session, {**dispute, "status": "needs_response"})
    assert outcome.outcome == "processed"
    assert summarize(session, booking).state is PaymentState.DISPUTED

    again = payment_events.apply_dispute(session, {**dispute, "status": "needs_response"})
    assert again.outcome == "ignored"

    payment_events.apply_dispute(session, {**dispute, "status": "won"})
    assert payment.dispute_status == "won"
    assert summarize(session, booking).state is PaymentState.PAID
    causes = session.execute(
        select(BookingHistory.details).where(BookingHistory.cause == "dispute").order_by(BookingHistory.id)
    ).scalars().all()
    assert [d["status"] for d in causes] == ["needs_response", "won"]


def test_lost_dispute_stays_disputed(session):
    booking, payment = _paid_booking(session)
    payment_events.apply_dispute(session, {"id": "dp_2", "payment_intent": payment.stripe_payment_intent_id,
                                            "status": "lost"})
    assert summarize(session, booking).state is PaymentState.DISPUTED


def test_dispute_for_an_unknown_payment_is_unmatched(session):
    outcome = payment_events.apply_dispute(session, {"id": "dp_3", "payment_intent": "pi_nobody",
                                                      "status": "needs_response"})
    assert outcome.outcome == "unmatched"
    assert count(session, BookingHistory) == 0


def test_zero_decimal_currency_refund_message_is_in_whole_yen(session):
    booking, _ = _paid_booking(session, amount=5_000, currency="JPY")
    with pytest.raises(RefundRefused) as refused:
        refund_service.request_refund(session, booking.id, 5_001, reason="", actor=ADMIN)
    assert str(refused.value) == "¥5,001 is more than the refundable remainder of ¥5,000"
