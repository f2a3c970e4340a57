"""The booking state machine, over every (from, to) pair of statuses, on a real database."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import Booking, BookingHistory
from core.services.transitions import lock_booking, transition
from core.states import (
    FINAL_STATUSES, TRANSITIONS, BookingStatus, IllegalTransition, can_transition, check_transition,
)
from tests.factories import count, make_booking

S = BookingStatus
ALL_PAIRS = [(current, target) for current in S for target in S]
LEGAL = [(c, t) for c, t in ALL_PAIRS if t in TRANSITIONS[c]]
ILLEGAL = [(c, t) for c, t in ALL_PAIRS if t not in TRANSITIONS[c]]


def _pair_id(pair) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def _booking_in(engine, status: S) -> tuple[str, object]:
    with session_scope(engine) as session:
        booking = make_booking(session, status)
        return booking.id, booking.updated_at


def test_the_table_is_the_designed_lifecycle():
    assert set(LEGAL) == {
        (S.PENDING_SCHEDULING, S.PENDING_PAYMENT), (S.PENDING_SCHEDULING, S.CANCELED),
        (S.PENDING_SCHEDULING, S.EXPIRED),
        (S.PENDING_PAYMENT, S.CONFIRMED), (S.PENDING_PAYMENT, S.CANCELED), (S.PENDING_PAYMENT, S.EXPIRED),
        (S.CONFIRMED, S.COMPLETED), (S.CONFIRMED, S.CANCELED),
    }
    assert set(TRANSITIONS) == set(S), "every status has an entry in the table"
    assert len(LEGAL) + len(ILLEGAL) == len(S) ** 2


def test_final_statuses_are_completed_canceled_expired_and_have_no_exits():
    assert FINAL_STATUSES == {S.COMPLETED, S.CANCELED, S.EXPIRED}
    for status in FINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
        assert not any(can_transition(status, target) for target in S)


def test_every_status_is_reachable_from_the_start_and_every_open_status_can_end():
    reachable, frontier = {S.PENDING_SCHEDULING}, [S.PENDING_SCHEDULING]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(S)
    for status in set(S) - FINAL_STATUSES:
        assert TRANSITIONS[status] & FINAL_STATUSES, f"{status} has no direct way to a final status"


def test_no_status_may_become_itself():
    assert not any(can_transition(status, status) for status in S)


def test_the_check_accepts_plain_strings_as_stored_in_the_database():
    assert can_transition("PENDING_PAYMENT", "CONFIRMED") is True
    with pytest.raises(IllegalTransition) as raised:
        check_transition("CANCELED", "CONFIRMED")
    assert raised.value.current is S.CANCELED and raised.value.target is S.CONFIRMED
    assert str(raised.value) == "a booking in CANCELED cannot become CONFIRMED"


@pytest.mark.parametrize("current,target", LEGAL, ids=map(_pair_id, LEGAL))
def test_legal_transition_changes_status_and_writes_one_history_row(engine, current, target):
    booking_id, _ = _booking_in(engine, current)

    with session_scope(engine) as session:
        booking = lock_booking(session, booking_id)
        transition(session, booking, target, cause="test_cause", actor="tester@example.test",
                   details={"why": "table-driven"})

    with session_scope(engine, read_only=True) as session:
        assert session.get(Booking, booking_id).status == target
        rows = session.execute(
            select(BookingHistory).where(BookingHistory.booking_id == booking_id)
        ).scalars().all()
        assert len(rows) == 1
        row = rows[0]
        assert (row.from_status, row.to_status, row.cause, row.actor) == (
            current, target, "test_cause", "tester@example.test")
        assert row.details == {"why": "table-driven"}
        assert row.created_at.tzinfo is not None


@pytest.mark.parametrize("current,target", ILLEGAL, ids=map(_pair_id, ILLEGAL))
def test_illegal_transition_is_refused_and_changes_nothing(engine, current, target):
    booking_id, updated_at = _booking_in(engine, current)

    with session_scope(engine) as session:
        booking = lock_booking(session, booking_id)
        with pytest.raises(IllegalTransition) as raised:
            transition(session, booking, target, cause="test_cause", actor="tester")
        assert (raised.value.current, raised.value.target) == (current, target)
        # Nothing changed in the session either: the commit below must write nothing.
        assert booking.status == current
        assert count(session, BookingHistory, BookingHistory.booking_id == booking_id) == 0

    with session_scope(engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        assert booking.status == current
        assert booking.updated_at == updated_at
        assert count(session, BookingHistory) == 0
