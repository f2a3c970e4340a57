"""Small factories for tests: a builder, a session type, a client, a booking in any status, a payment.

Each helper adds the row to the given session, flushes (so ids exist) and returns it; the caller's
transaction decides when it is committed. `make_booking` sets the status directly — it bypasses
the state machine on purpose, so tests can start from any status — and writes no history row.
"""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.models import (
    Base, Booking, Builder, Client, Payment, Refund, SessionType, new_booking_id, utcnow,
)
from core.states import BookingStatus as S

_seq = itertools.count(1)

# Statuses in which the booking has been scheduled in Calendly (it has a time and an invitee).
SCHEDULED = frozenset({S.PENDING_PAYMENT, S.CONFIRMED, S.COMPLETED, S.CANCELED, S.EXPIRED})


def _n() -> int:
    return next(_seq)


def make_builder(session: Session, *, name: str | None = None, email: str | None = None,
                 calendly_user_uri: str | None = None, **fields: Any) -> Builder:
    n = _n()
    builder = Builder(
        name=name or f"Builder {n}", email=email or f"builder{n}@example.test",
        calendly_user_uri=calendly_user_uri or f"https://calendly.test/users/builder-{n}",
        timezone=fields.pop("timezone", "UTC"), **fields,
    )
    session.add(builder)
    session.flush()
    return builder


def make_session_type(session: Session, builder: Builder | None = None, *, price_cents: int = 4900,
                      currency: str = "USD", name: str = "Pair-programming session",
                      duration_minutes: int = 60, refund_full_hours: int | None = None,
                      refund_partial_percent: int | None = None, active: bool = True) -> SessionType:
    builder = builder or make_builder(session)
    session_type = SessionType(
        builder_id=builder.id, calendly_event_type_uri=f"https://calendly.test/event_types/type-{_n()}",
        name=name, duration_minutes=duration_minutes, price_cents=price_cents, currency=currency,
        active=active, refund_full_hours=refund_full_hours, refund_partial_percent=refund_partial_percent,
    )
    session.add(session_type)
    session.flush()
    return session_type


def make_client(session: Session, *, email: str | None = None, name: str = "Test Client") -> Client:
    client = Client(email=email or f"client{_n()}@example.test", name=name)
    session.add(client)
    session.flush()
    return client


def make_booking(session: Session, status: S | str = S.PENDING_PAYMENT, *,
                 session_type: SessionType | None = None, client: Client | None = None,
                 start_time: datetime | None = None, checkout_session_id: str | None = None,
                 **fields: Any) -> Booking:
    """A booking in `status`, priced as its session type; scheduled statuses get a time and URIs.

    `start_time` defaults to three days ahead for scheduled statuses (None before scheduling);
    every status after PENDING_SCHEDULING gets a Checkout Session id unless one is given.
    """
    status = S(status)
    session_type = session_type or make_session_type(session)
    client = client or make_client(session)
    booking_id = fields.pop("id", None) or new_booking_id()
    scheduled = status in SCHEDULED
    if scheduled and start_time is None:
        start_time = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    booking = Booking(
        id=booking_id, builder_id=session_type.builder_id, session_type_id=session_type.id,
        client_id=client.id, status=status, amount_cents=session_type.price_cents,
        currency=session_type.currency, start_time=start_time,
        end_time=start_time + timedelta(minutes=session_type.duration_minutes or 60) if start_time else None,
        calendly_event_uri=f"https://calendly.test/scheduled_events/ev-{booking_id}" if scheduled else None,
        calendly_invitee_uri=(f"https://calendly.test/scheduled_events/ev-{booking_id}/invitees/inv-{booking_id}"
                              if scheduled else None),
        stripe_checkout_session_id=checkout_session_id or (f"cs_test_{booking_id}" if scheduled else None),
        hold_expires_at=utcnow() + timedelta(minutes=30) if status == S.PENDING_PAYMENT else None,
        **fields,
    )
    session.add(booking)
    session.flush()
    return booking


def make_payment(session: Session, booking: Booking, *, amount_cents: int | None = None,
                 currency: str | None = None, payment_intent_id: str | None = None,
                 status: str = "succeeded", dispute_status: str | None = None) -> Payment:
    payment = Payment(
        booking_id=booking.id, stripe_payment_intent_id=payment_intent_id or f"pi_test_{_n()}_{booking.id}",
        stripe_checkout_session_id=booking.stripe_checkout_session_id,
        amount_cents=booking.amount_cents if amount_cents is None else amount_cents,
        currency=currency or booking.currency, status=status, dispute_status=dispute_status,
    )
    session.add(payment)
    session.flush()
    return payment


def make_refund(session: Session, payment: Payment, amount_cents: int, *, status: str = "succeeded",
                rule: str = "manual", issued_by: str = "admin@example.test") -> Refund:
    refund = Refund(payment_id=payment.id, booking_id=payment.booking_id, amount_cents=amount_cents,
                    currency=payment.currency, status=status, reason="test refund", rule=rule,
                    issued_by=issued_by)
    session.add(refund)
    session.flush()
    return refund


def paid_checkout(booking: Booking, *, payment_intent_id: str | None = None,
                  amount_cents: int | None = None) -> dict:
    """The `data.object` of a checkout.session.completed event for `booking`, paid in full."""
    return {
        "id": booking.stripe_checkout_session_id, "object": "checkout.session",
        "client_reference_id": booking.id, "metadata": {"booking_id": booking.id},
        "status": "complete", "payment_status": "paid",
        "payment_intent": payment_intent_id or f"pi_test_{booking.id}",
        "amount_total": booking.amount_cents if amount_cents is None else amount_cents,
        "currency": booking.currency.lower(),
    }


def count(session: Session, model, *criteria) -> int:
    """Rows of `model` matching the SQLAlchemy criteria (all rows without any)."""
    return session.execute(select(func.count()).select_from(model).where(*criteria)).scalar_one()


def drop_everything(engine) -> None:
    """Every model table and Alembic's version table, so a migration starts from an empty database."""
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
