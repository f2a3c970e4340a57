"""Races between transactions on a file database (SQLite) or two PostgreSQL connections.

SQLite: every write transaction opens with BEGIN IMMEDIATE, so the second one waits for the first
to commit. PostgreSQL: `lock_booking`'s FOR UPDATE makes the second one wait for the row lock and
then read the committed row. Either way exactly one of two racing state changes wins.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select

from core.db import insert_ignore, session_scope
from core.models import Booking, BookingHistory, Notification, OutboxEntry, Payment, utcnow
from core.services import payment_events
from core.services.transitions import lock_booking, transition
from core.states import BookingStatus as S
from core.states import IllegalTransition
from tests.factories import count, make_booking, paid_checkout
from tests.reliability_helpers import in_threads

HOLD = 0.3  # seconds the winner keeps its transaction open, so the loser really has to wait


def race(workers: int, body: Callable[[int, threading.Barrier], object]) -> list[tuple[str, object]]:
    """Run `body(index, barrier)` in `workers` threads; [("ok", result) | ("error", exception)]."""
    barrier = threading.Barrier(workers, timeout=20)
    results: list[tuple[str, object]] = [("missing", None)] * workers

    def run(index: int) -> None:
        try:
            results[index] = ("ok", body(index, barrier))
        except BaseException as error:  # noqa: BLE001 — the test inspects it
            results[index] = ("error", error)

    in_threads(workers, run, name="racer", timeout=60)
    return results


def _booking(engine, status=S.PENDING_PAYMENT) -> Booking:
    with session_scope(engine) as session:
        return make_booking(session, status)


def test_engine_is_a_file_database_or_postgresql(engine):
    # The races below mean nothing on an in-memory database shared by one connection.
    assert engine.dialect.name == "postgresql" or engine.url.database not in (None, "", ":memory:")


def test_two_racing_confirmations_one_wins_the_other_is_illegal_after_waiting(engine):
    booking_id = _booking(engine).id
    postgres = engine.dialect.name == "postgresql"
    waited: dict[int, float] = {}
    seen_before: dict[int, str] = {}

    def confirm(index: int, barrier: threading.Barrier) -> str:
        with session_scope(engine) as session:
            read_first = None
            if postgres:
                # Both transactions read the booking before either writes (plain reads do not block);
                # the copy stays in the session, so the locked read must replace it, not reuse it.
                read_first = session.get(Booking, booking_id)
                seen_before[index] = read_first.status
            # On SQLite the first statement is BEGIN IMMEDIATE, which already serialises: meet first.
            barrier.wait()
            started = time.monotonic()
            booking = lock_booking(session, booking_id)
            waited[index] = time.monotonic() - started
            assert read_first is None or booking is read_first
            transition(session, booking, S.CONFIRMED, cause="payment_confirmed", actor=f"racer-{index}")
            time.sleep(HOLD)
            return booking.id

    results = race(2, confirm)

    outcomes = sorted(kind for kind, _ in results)
    assert outcomes == ["error", "ok"], results
    winner = next(i for i, (kind, _) in enumerate(results) if kind == "ok")
    loser = 1 - winner
    error = results[loser][1]
    assert isinstance(error, IllegalTransition)
    assert (error.current, error.target) == (S.CONFIRMED, S.CONFIRMED)
    assert waited[loser] >= HOLD * 0.8, "the loser must have waited for the winner's lock"
    if postgres:
        assert seen_before == {0: S.PENDING_PAYMENT, 1: S.PENDING_PAYMENT}

    with session_scope(engine, read_only=True) as session:
        assert session.get(Booking, booking_id).status == S.CONFIRMED
        history = session.execute(select(BookingHistory)).scalars().all()
        assert [(h.from_status, h.to_status, h.actor) for h in history] == [
            (S.PENDING_PAYMENT, S.CONFIRMED, f"racer-{winner}")]


@pytest.mark.postgres_only
def test_lock_booking_replaces_a_copy_read_earlier_in_the_session(engine):
    booking_id = _booking(engine).id
    with session_scope(engine) as session:
        early = session.get(Booking, booking_id)
        assert early.status == S.PENDING_PAYMENT
        with session_scope(engine) as other:  # another connection commits meanwhile
            lock_booking(other, booking_id).status = S.EXPIRED
        locked = lock_booking(session, booking_id)
        assert locked is early
        assert locked.status == S.EXPIRED


def test_racing_cancel_and_expiry_leave_one_final_status(engine):
    """A cancellation and a hold expiry race: whichever commits first decides; the other is refused."""
    booking_id = _booking(engine).id
    targets = [S.CANCELED, S.EXPIRED]

    def move(index: int, barrier: threading.Barrier) -> str:
        with session_scope(engine) as session:
            barrier.wait()
            booking = lock_booking(session, booking_id)
            transition(session, booking, targets[index], cause="race", actor=f"racer-{index}")
            time.sleep(HOLD / 3)
            return targets[index]

    results = race(2, move)

    winners = [value for kind, value in results if kind == "ok"]
    errors = [value for kind, value in results if kind == "error"]
    assert len(winners) == 1 and len(errors) == 1, results
    assert isinstance(errors[0], IllegalTransition)
    loser_target = next(t for t in targets if t != winners[0])
    assert (errors[0].current, errors[0].target) == (winners[0], loser_target)
    with session_scope(engine, read_only=True) as session:
        assert session.get(Booking, booking_id).status == winners[0]
        history = session.execute(select(BookingHistory)).scalars().all()
        assert [(h.from_status, h.to_status) for h in history] == [(S.PENDING_PAYMENT, winners[0])]


def test_insert_ignore_with_a_duplicate_returns_none(engine):
    values = {"kind": "notify", "idempotency_key": "dup-key", "payload": {"n": 1}, "status": "pending",
              "attempts": 0, "next_attempt_at": utcnow(), "created_at": utcnow()}
    with session_scope(engine) as session:
        first = insert_ignore(session, OutboxEntry.__table__, values, ["idempotency_key"])
    with session_scope(engine) as session:
        second = insert_ignore(session, OutboxEntry.__table__, {**values, "payload": {"n": 2}},
                               ["idempotency_key"])
    assert isinstance(first, int) and second is None
    with session_scope(engine, read_only=True) as session:
        rows = session.execute(select(OutboxEntry)).scalars().all()
        assert [(r.id, r.payload) for r in rows] == [(first, {"n": 1})]


def test_insert_ignore_in_the_same_transaction_returns_none_for_the_second(session):
    values = {"kind": "notify", "idempotency_key": "same-tx", "payload": {}, "status": "pending",
              "attempts": 0, "next_attempt_at": utcnow(), "created_at": utcnow()}
    first = insert_ignore(session, OutboxEntry.__table__, values, ["idempotency_key"])
    assert first is not None
    assert insert_ignore(session, OutboxEntry.__table__, values, ["idempotency_key"]) is None
    assert count(session, OutboxEntry) == 1


def test_racing_insert_ignore_of_one_key_inserts_one_row(engine):
    def insert(index: int, barrier: threading.Barrier):
        with session_scope(engine) as session:
            barrier.wait()
            new_id = insert_ignore(session, OutboxEntry.__table__, {
                "kind": "notify", "idempotency_key": "raced-key", "payload": {"by": index},
                "status": "pending", "attempts": 0, "next_attempt_at": utcnow(), "created_at": utcnow(),
            }, ["idempotency_key"])
            time.sleep(HOLD / 3)
            return new_id

    results = race(2, insert)

    assert [kind for kind, _ in results] == ["ok", "ok"], results
    ids = [value for _, value in results]
    assert sum(value is None for value in ids) == 1
    assert sum(isinstance(value, int) for value in ids) == 1
    with session_scope(engine, read_only=True) as session:
        assert count(session, OutboxEntry, OutboxEntry.idempotency_key == "raced-key") == 1


@pytest.mark.parametrize("workers", [2, 4])
def test_racing_confirm_payment_for_one_checkout_records_one_payment(engine, workers):
    booking = _booking(engine)
    checkout = paid_checkout(booking)

    def confirm(index: int, barrier: threading.Barrier):
        with session_scope(engine) as session:
            barrier.wait()
            outcome = payment_events.confirm_payment(session, checkout)
            time.sleep(HOLD / 3)
            return outcome

    results = race(workers, confirm)

    assert all(kind == "ok" for kind, _ in results), results
    outcomes = sorted((o.outcome, o.note) for _, o in results)
    assert outcomes == [("ignored", "payment already recorded")] * (workers - 1) + [("processed", "")]
    with session_scope(engine, read_only=True) as session:
        payments = session.execute(select(Payment)).scalars().all()
        assert [(p.booking_id, p.stripe_payment_intent_id, p.amount_cents) for p in payments] == [
            (booking.id, checkout["payment_intent"], booking.amount_cents)]
        assert session.get(Booking, booking.id).status == S.CONFIRMED
        causes = session.execute(select(BookingHistory.cause).order_by(BookingHistory.id)).scalars().all()
        assert causes == ["payment_received", "payment_confirmed"]
        assert sorted(session.execute(select(Notification.kind)).scalars()) == [
            "booking_confirmed", "builder_new_booking"]
