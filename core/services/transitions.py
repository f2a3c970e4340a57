"""The one way a booking's status changes, and the history every change leaves behind."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from core.errors import NotFound
from core.models import Booking, BookingHistory, utcnow
from core.states import BookingStatus, check_transition


# For a webhook's locked read of its booking: the client, builder and session type that its
# notifications need come in the same query (`FOR UPDATE OF bookings` still locks only the booking)
# instead of three lazy loads, three round trips, later.
WITH_PARTIES = (joinedload(Booking.client, innerjoin=True), joinedload(Booking.builder, innerjoin=True),
                joinedload(Booking.session_type, innerjoin=True))


def lock_booking(session: Session, booking_id: str) -> Booking:
    """Load a booking for a read-check-write (row lock on PostgreSQL; SQLite holds the write lock).

    `populate_existing`: if this session loaded the booking before taking the lock, the row read
    under the lock must replace the stale copy in the identity map, or the check would use it.
    """
    booking = session.execute(
        select(Booking).where(Booking.id == booking_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if booking is None:
        raise NotFound(f"no booking {booking_id}")
    return booking


def transition(
    session: Session, booking: Booking, target: BookingStatus, *, cause: str, actor: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Move `booking` to `target` if the table allows it (else IllegalTransition, nothing changed)."""
    check_transition(BookingStatus(booking.status), target)
    previous = booking.status
    booking.status = target
    booking.updated_at = utcnow()
    if previous == BookingStatus.PENDING_PAYMENT:
        booking.payment_processing_since = None  # a payment on its way has arrived, failed or lapsed
    session.add(BookingHistory(
        booking_id=booking.id, from_status=previous, to_status=target, cause=cause, actor=actor,
        details=details,
    ))


def record(
    session: Session, booking: Booking, *, cause: str, actor: str,
    details: dict[str, Any] | None = None,
) -> None:
    """A history row for an event that does not change the status (reschedule, refund, no-show)."""
    session.add(BookingHistory(
        booking_id=booking.id, from_status=booking.status, to_status=booking.status, cause=cause,
        actor=actor, details=details,
    ))
