"""Rows written by bulk insert, for the demo data (`core.demo_data`) and the benchmarks' seeding
(`bench/seeding.py`): a booking with every column the insert names, its history rows, and the
inserts themselves (one executemany per table and chunk, parents before children).

These rows bypass the services on purpose — they describe bookings that already went through
them — so they are for seeding only, never for the running system.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine

from core.db import session_scope


def booking_row(booking_id: str, *, builder_id: int, session_type_id: int, client_id: int, status: str,
                amount_cents: int, currency: str, created_at: datetime, start_time: datetime | None = None,
                minutes: int = 60, event_uri: str | None = None, invitee_uri: str | None = None,
                hold_expires_at: datetime | None = None, checkout_session_id: str | None = None,
                checkout_url: str | None = None, checkout_expires_at: datetime | None = None,
                cancel_reason: str | None = None) -> dict:
    """A `bookings` row. Every row has the same keys, so a list of them is one executemany; a
    booking with a `start_time` ends `minutes` later."""
    return {
        "id": booking_id, "builder_id": builder_id, "session_type_id": session_type_id, "client_id": client_id,
        "status": status, "amount_cents": amount_cents, "currency": currency,
        "start_time": start_time, "end_time": start_time + timedelta(minutes=minutes) if start_time else None,
        "calendly_event_uri": event_uri, "calendly_invitee_uri": invitee_uri, "hold_expires_at": hold_expires_at,
        "stripe_checkout_session_id": checkout_session_id, "checkout_url": checkout_url,
        "checkout_expires_at": checkout_expires_at, "cancel_reason": cancel_reason,
        "created_at": created_at, "updated_at": created_at,
    }


def history_rows(booking_id: str, steps: Iterable[tuple[str | None, str, str, str]], *, at: datetime,
                 spacing: timedelta = timedelta(0)) -> list[dict]:
    """`booking_history` rows for `steps` of (from status, to status, cause, actor), the first at
    `at` and each next one `spacing` later."""
    return [{"booking_id": booking_id, "from_status": before, "to_status": after, "cause": cause,
             "actor": actor, "details": None, "created_at": at + n * spacing}
            for n, (before, after, cause, actor) in enumerate(steps)]


def insert_rows(engine: Engine, tables: Sequence[tuple[type, list[dict]]], *, chunk: int = 5000) -> dict[str, int]:
    """Insert each (model, rows) in the order given (parents first), `chunk` rows per executemany,
    all in one transaction; returns the rows written per table name."""
    written: dict[str, int] = {}
    with session_scope(engine) as session:
        for model, rows in tables:
            for offset in range(0, len(rows), chunk):
                session.execute(model.__table__.insert(), rows[offset:offset + chunk])  # Core: one executemany
            written[model.__tablename__] = len(rows)
    return written
