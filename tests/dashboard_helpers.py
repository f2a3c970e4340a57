"""Dashboard-specific test data on top of `tests.factories`: dashboard accounts, bookings with the
history and dated payment a real one would have, refunds at a given time, failed side effects and
failed webhook deliveries — so reports and pages have known numbers to show."""
from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.models import Booking, BookingHistory, Builder, Client, DashboardUser, OutboxEntry, Refund, SessionType, WebhookEvent, utcnow
from core.security import hash_password
from core.states import BookingStatus as S
from tests import factories
from tests.factories import make_builder, make_client, make_session_type, paid_checkout  # noqa: F401

ADMIN_EMAIL, ADMIN_PASSWORD = "root@ops.test", "admin-password-1"
BUILDER_PASSWORD = "builder-password-1"
_seq = itertools.count(1)


def make_user(session: Session, email: str, password: str, role: str, builder: Builder | None = None) -> DashboardUser:
    user = DashboardUser(email=email, password_hash=hash_password(password), role=role,
                         builder_id=builder.id if builder else None)
    session.add(user)
    session.flush()
    return user


def make_admin_and_builders(session: Session, *, ada_timezone: str = "UTC") -> tuple[Builder, Builder]:
    """The admin, and builders Ada and Bo, each with a dashboard account: (ada, bo)."""
    make_user(session, ADMIN_EMAIL, ADMIN_PASSWORD, "admin")
    ada = make_builder(session, name="Ada", email="ada@test", timezone=ada_timezone)
    bo = make_builder(session, name="Bo", email="bo@test")
    make_user(session, "ada@test", BUILDER_PASSWORD, "builder", ada)
    make_user(session, "bo@test", BUILDER_PASSWORD, "builder", bo)
    return ada, bo


def make_booking(
    session: Session, session_type: SessionType, client: Client, status: S, *,
    created_at: datetime | None = None, start_time: datetime | None = None, paid_at: datetime | None = None,
    hold_minutes: int = 30, dispute: str | None = None,
) -> Booking:
    """A booking in `status` created at `created_at`, with its history rows; `paid_at` adds a
    succeeded payment of the full price at that time. No `start_time`: never scheduled."""
    created_at = created_at or utcnow() - timedelta(hours=1)
    scheduled = start_time is not None
    booking = factories.make_booking(
        session, status, session_type=session_type, client=client, start_time=start_time,
        created_at=created_at, updated_at=created_at)
    if not scheduled:  # the factory gives every status past scheduling a time; these never had one
        booking.start_time = booking.end_time = None
        booking.calendly_event_uri = booking.calendly_invitee_uri = booking.stripe_checkout_session_id = None
    if status == S.PENDING_PAYMENT:
        booking.hold_expires_at = utcnow() + timedelta(minutes=hold_minutes)
    steps = [(None, S.PENDING_SCHEDULING, "booking_started", "client")]
    if scheduled:
        steps.append((S.PENDING_SCHEDULING, S.PENDING_PAYMENT, "invitee_created", "calendly:webhook"))
    if paid_at is not None:
        steps.append((S.PENDING_PAYMENT, S.CONFIRMED, "payment_confirmed", "stripe:webhook"))
    if status in (S.CANCELED, S.EXPIRED, S.COMPLETED):
        steps.append((steps[-1][1], status, str(status).lower(), "system"))
    for n, (before, after, cause, actor) in enumerate(steps):
        session.add(BookingHistory(booking_id=booking.id, from_status=before, to_status=after, cause=cause,
                                   actor=actor, created_at=created_at + timedelta(minutes=n)))
    if paid_at is not None:
        payment = factories.make_payment(session, booking, payment_intent_id=f"pi_{booking.id}",
                                         dispute_status=dispute)
        payment.created_at = paid_at
    session.flush()
    session.refresh(booking)
    return booking


def make_refund(session: Session, booking: Booking, amount_cents: int, *, status: str = "succeeded",
                rule: str = "manual", created_at: datetime | None = None) -> Refund:
    """A refund of the booking's first payment, decided at `created_at`."""
    refund = factories.make_refund(session, booking.payments[0], amount_cents, status=status, rule=rule)
    refund.created_at = refund.updated_at = created_at or utcnow()
    if status not in ("requested", "failed"):
        refund.stripe_refund_id = f"re_test_{next(_seq)}"
    session.flush()
    return refund


def make_outbox(session: Session, booking: Booking | None, kind: str, *, status: str = "failed",
                error: str | None = "Stripe refused: card closed", payload: dict | None = None) -> OutboxEntry:
    entry = OutboxEntry(kind=kind, booking_id=booking.id if booking else None, payload=payload or {},
                        idempotency_key=f"test:{kind}:{next(_seq)}", status=status,
                        attempts=3 if error else 1, last_error=error)
    session.add(entry)
    session.flush()
    return entry


def make_failed_webhook(session: Session, *, provider: str = "stripe", body: dict | None = None,
                        dedupe_key: str | None = None, event_type: str = "checkout.session.completed",
                        booking_id: str | None = None) -> WebhookEvent:
    """A delivery whose processing failed (so it was never linked to its booking), kept for replay."""
    raw = json.dumps(body or {"id": "evt_test", "type": event_type, "data": {"object": {}}})
    event = WebhookEvent(provider=provider, dedupe_key=dedupe_key or f"{provider}:evt_test_{next(_seq)}",
                         event_type=event_type, raw_body=raw, headers={"content-type": "application/json"},
                         signature_valid=True, outcome="failed", error="Traceback: boom", attempts=1,
                         booking_id=booking_id, processed_at=utcnow())
    session.add(event)
    session.flush()
    return event
