"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

On PostgreSQL (TEST_DATABASE_URL) the shared test database is emptied first and the migrated schema
is left in place: it equals the models' schema, which is what the other tests truncate and use.
"""
from __future__ import annotations

import os

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from core.db import make_engine
from core.migrate import alembic_config, upgrade_to_head
from core.models import Base
from tests.factories import drop_everything

PG_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture
def empty_database(tmp_path, db_url):
    """The URL of a database with no tables: a fresh SQLite file, or the emptied PostgreSQL one."""
    if PG_URL:
        engine = make_engine(PG_URL)
        drop_everything(engine)
        try:
            yield PG_URL
        finally:
            # Whatever the test did, leave every model table there for the tests that follow.
            Base.metadata.create_all(engine)
            engine.dispose()
    else:
        yield f"sqlite:///{tmp_path}/migrated.db"


def _differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_migrations_have_a_single_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1


def test_upgrade_to_head_on_an_empty_database_gives_the_models_schema(empty_database):
    assert _tables(empty_database) == set()

    upgrade_to_head(empty_database)

    assert _differences(empty_database) == []
    assert _tables(empty_database) == set(Base.metadata.tables) | {"alembic_version"}
    assert _current_revision(empty_database) == _head()


def test_upgrade_to_head_twice_changes_nothing(empty_database):
    upgrade_to_head(empty_database)
    upgrade_to_head(empty_database)
    assert _current_revision(empty_database) == _head()
    assert _differences(empty_database) == []


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(empty_database):
    upgrade_to_head(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    assert _tables(empty_database) <= {"alembic_version"}
    assert _current_revision(empty_database) is None

    upgrade_to_head(empty_database)
    assert _differences(empty_database) == []


# ---------------------------------------------------------------- 0001 → head with data in it
def _rows_at(url: str, rows: dict[str, list[dict]]) -> None:
    """Insert `rows` with the schema as it is at the current revision (reflected, not the models)."""
    from sqlalchemy import MetaData

    engine = make_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.begin() as connection:
            for table, values in rows.items():
                connection.execute(meta.tables[table].insert(), values)
    finally:
        engine.dispose()


def _old_rows(url: str, suffix: str, at):
    """One of everything money touches, as an older release would have written it."""
    when = at.replace(tzinfo=None) if url.startswith("sqlite") else at
    n = 1 if suffix == "a" else 2
    booking = f"bk_{suffix * 20}"
    return {
        "builders": [{"id": n, "name": f"Builder {suffix}", "email": f"b{suffix}@example.com",
                      "calendly_user_uri": f"https://api.calendly.com/users/{suffix}", "timezone": "UTC",
                      "created_at": when}],
        "clients": [{"id": n, "email": f"c{suffix}@example.com", "name": f"Client {suffix}", "created_at": when}],
        "session_types": [{"id": n, "builder_id": n, "calendly_event_type_uri": f"https://api.calendly.com/event_types/{suffix}",
                           "name": "Pairing", "price_cents": 4900, "currency": "USD", "active": True,
                           "created_at": when, "updated_at": when}],
        "bookings": [{"id": booking, "builder_id": n, "session_type_id": n, "client_id": n, "status": "CONFIRMED",
                      "amount_cents": 4900, "currency": "USD", "start_time": when, "end_time": when,
                      "calendly_event_uri": f"https://api.calendly.com/scheduled_events/{suffix}",
                      "stripe_checkout_session_id": f"cs_test_{suffix}", "created_at": when, "updated_at": when}],
        "booking_history": [{"booking_id": booking, "to_status": "CONFIRMED", "cause": "payment",
                             "actor": "stripe:webhook", "created_at": when}],
        "payments": [{"id": n, "booking_id": booking, "stripe_payment_intent_id": f"pi_{suffix}", "amount_cents": 4900,
                      "currency": "USD", "status": "succeeded", "created_at": when}],
        "refunds": [{"payment_id": n, "booking_id": booking, "amount_cents": 900, "currency": "USD",
                     "status": "succeeded", "reason": "late", "rule": "manual", "issued_by": "admin",
                     "created_at": when, "updated_at": when}],
        "webhook_events": [{"provider": "stripe", "dedupe_key": f"stripe:evt_{suffix}", "event_type": "checkout.session.completed",
                            "raw_body": "{}", "headers": {}, "signature_valid": True, "outcome": "processed",
                            "booking_id": booking, "attempts": 1, "received_at": when}],
        "outbox": [{"kind": "notify", "booking_id": booking, "payload": {"notification_id": n},
                    "idempotency_key": f"notify:{suffix}", "status": "done", "attempts": 1,
                    "next_attempt_at": when, "created_at": when}],
        "notifications": [{"booking_id": booking, "kind": "confirmed", "to_email": f"c{suffix}@example.com",
                           "subject": "Confirmed", "body": "See you", "dedupe_key": f"confirmed:{suffix}",
                           "created_at": when}],
        "login_tokens": [{"email": f"c{suffix}@example.com", "token_hash": suffix * 64, "next_url": "/",
                          "expires_at": when}],
    }


def test_upgrade_from_0001_to_head_keeps_the_data(empty_database):
    """Rows written at 0001 and at 0002 survive the upgrade to head and read back through the models."""
    from datetime import datetime, timezone

    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Booking, BookingHistory, Client, LoginToken, Notification, OutboxEntry, Payment, Refund, WebhookEvent
    from core.services.ledger import summarize

    at = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
    command.upgrade(alembic_config(empty_database), "0001")
    _rows_at(empty_database, _old_rows(empty_database, "a", at))
    command.upgrade(alembic_config(empty_database), "0002")
    _rows_at(empty_database, _old_rows(empty_database, "b", at))

    upgrade_to_head(empty_database)

    assert _current_revision(empty_database) == _head()
    assert _differences(empty_database) == []
    engine = make_engine(empty_database)
    try:
        with session_scope(engine, read_only=True) as session:
            bookings = session.execute(select(Booking).order_by(Booking.id)).scalars().all()
            assert [(b.id, b.status, b.amount_cents, b.currency, b.start_time) for b in bookings] == [
                ("bk_" + "a" * 20, "CONFIRMED", 4900, "USD", at), ("bk_" + "b" * 20, "CONFIRMED", 4900, "USD", at)]
            for model in (Client, BookingHistory, Payment, Refund, WebhookEvent, OutboxEntry, Notification, LoginToken):
                assert len(session.execute(select(model)).scalars().all()) == 2, model.__name__
            assert sorted(r.amount_cents for r in session.execute(select(Refund)).scalars()) == [900, 900]
            assert session.execute(select(WebhookEvent.booking_id).order_by(WebhookEvent.id)).scalars().all() == [
                b.id for b in bookings]
            assert session.execute(select(OutboxEntry.status)).scalars().all() == ["done", "done"]
            ledger = summarize(session, bookings[0])
            assert (ledger.paid_cents, ledger.refunded_cents, str(ledger.state)) == (4900, 900, "partially_refunded")
    finally:
        engine.dispose()
