"""Bookings seeded by bulk insert just before a run, in the state the event expects, and removed
afterwards (a pre-filled database keeps its size across runs)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, bindparam, select, text

# The bench's world: one builder at the sandbox Calendly of the Procfile (never called: the seeded
# bookings and the events carry these URIs), Checkout Sessions at the sandbox Stripe.
CALENDLY_API = "http://127.0.0.1:8001"
STRIPE_API = "http://127.0.0.1:8002"
BENCH_BUILDER_EMAIL = "bench-builder@bench.test"
BENCH_BUILDER_URI = f"{CALENDLY_API}/users/bench-builder"
BENCH_EVENT_TYPE_URI = f"{CALENDLY_API}/event_types/bench-60"


@dataclass(frozen=True)
class Catalog:
    builder_id: int
    session_type_id: int
    price_cents: int
    currency: str
    client_ids: tuple[int, ...]
    client_emails: tuple[str, ...]


def ensure_catalog(engine: Engine) -> Catalog:
    """A bench builder with one session type and a few clients (created once per database)."""
    from core.db import session_scope
    from core.models import Builder, Client, SessionType
    with session_scope(engine) as session:
        builder = session.execute(select(Builder).where(Builder.email == BENCH_BUILDER_EMAIL)).scalar_one_or_none()
        if builder is None:
            builder = Builder(name="Bench Builder", email=BENCH_BUILDER_EMAIL, timezone="UTC",
                              calendly_user_uri=BENCH_BUILDER_URI)
            session.add(builder)
            session.flush()
            session.add(SessionType(builder_id=builder.id, name="Pair-programming session",
                                    calendly_event_type_uri=BENCH_EVENT_TYPE_URI,
                                    duration_minutes=60, price_cents=14900, currency="USD"))
            for n in range(20):
                session.add(Client(email=f"bench-client-{n}@bench.test", name=f"Bench Client {n}"))
            session.flush()
        session_type = session.execute(select(SessionType).where(SessionType.builder_id == builder.id)).scalar_one()
        clients = session.execute(select(Client.id, Client.email).where(Client.email.like("bench-client-%"))
                                  .order_by(Client.id)).all()
        return Catalog(builder.id, session_type.id, session_type.price_cents, session_type.currency,
                       tuple(c.id for c in clients), tuple(c.email for c in clients))


@dataclass(frozen=True)
class SeededBooking:
    id: str
    client_email: str
    amount_cents: int
    currency: str
    checkout_session_id: str | None


PROVIDER_DIGIT = {"calendly": "c", "stripe": "5"}
STATUS_BEFORE = {"calendly": "PENDING_SCHEDULING", "stripe": "PENDING_PAYMENT"}
STATUS_AFTER = {"calendly": "PENDING_PAYMENT", "stripe": "CONFIRMED"}
CAUSE = {"calendly": "invitee_created", "stripe": "payment_confirmed"}


def new_tag() -> str:
    return secrets.token_hex(3)


def seed_bookings(engine: Engine, catalog: Catalog, provider: str, tag: str, count: int) -> list[SeededBooking]:
    """`count` bookings ready for this provider's event, by bulk insert (with their history rows).

    calendly: PENDING_SCHEDULING (as `booking_service.start_booking` leaves them);
    stripe: PENDING_PAYMENT, scheduled, with a Checkout Session (as `open_checkout` leaves them).
    Ids are `bk_` + 20 hex digits like real ones: `<tag><provider digit><index>`.
    """
    from core.bulk_rows import booking_row, history_rows, insert_rows
    from core.models import Booking, BookingHistory
    now = datetime.now(timezone.utc)
    seeded, bookings, history = [], [], []
    for i in range(count):
        booking_id = f"bk_{tag}{PROVIDER_DIGIT[provider]}{i:013x}"
        client = i % len(catalog.client_ids)
        row = dict(builder_id=catalog.builder_id, session_type_id=catalog.session_type_id,
                   client_id=catalog.client_ids[client], status=STATUS_BEFORE[provider],
                   amount_cents=catalog.price_cents, currency=catalog.currency, created_at=now)
        steps = [(None, "PENDING_SCHEDULING", "booking_started", "client")]
        checkout = None
        if provider == "stripe":
            start = (now + timedelta(days=3 + i % 20, hours=i % 8)).replace(minute=0, second=0, microsecond=0)
            event = f"{CALENDLY_API}/scheduled_events/ev{booking_id[3:]}"
            checkout = f"cs_test_{booking_id[3:]}{secrets.token_hex(8)}"
            expires = (now + timedelta(minutes=31)).replace(microsecond=0)
            row.update(start_time=start, minutes=60, event_uri=event, invitee_uri=f"{event}/invitees/in{booking_id[3:]}",
                       hold_expires_at=expires, checkout_session_id=checkout, checkout_expires_at=expires,
                       checkout_url=f"{STRIPE_API}/checkout/{checkout}")
            steps += [("PENDING_SCHEDULING", "PENDING_PAYMENT", "invitee_created", "calendly:webhook"),
                      ("PENDING_PAYMENT", "PENDING_PAYMENT", "checkout_created", "system")]
        bookings.append(booking_row(booking_id, **row))
        history += history_rows(booking_id, steps, at=now)
        seeded.append(SeededBooking(booking_id, catalog.client_emails[client], catalog.price_cents,
                                    catalog.currency, checkout))
    insert_rows(engine, [(Booking, bookings), (BookingHistory, history)], chunk=2000)
    return seeded


def delete_bookings(engine: Engine, booking_ids: list[str]) -> None:
    """Remove seeded bookings and everything the webhooks wrote for them (keeps a pre-filled
    database at its size across runs)."""
    from core.db import session_scope
    tables = ("outbox", "notifications", "refunds", "payments", "booking_history", "webhook_events", "bookings")
    with session_scope(engine) as session:
        for offset in range(0, len(booking_ids), 500):
            chunk = booking_ids[offset:offset + 500]
            for table in tables:
                column = "id" if table == "bookings" else "booking_id"
                session.execute(text(f"DELETE FROM {table} WHERE {column} IN :ids")
                                .bindparams(bindparam("ids", expanding=True)), {"ids": chunk})

