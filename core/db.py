"""Engines and sessions that behave the same way for correctness on SQLite and PostgreSQL.

SQLite: WAL, a busy timeout, foreign keys, and every write transaction opened with
`BEGIN IMMEDIATE`, so two read-check-write transactions cannot both win (SQLite ignores
`FOR UPDATE`). PostgreSQL: row locks via `lock_booking`-style `with_for_update()` in the services.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings

# A read-only transaction on SQLite may start deferred so the dashboard never blocks writers.
READ_ONLY = {"sqlite_deferred": True}


def _prepare_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        deferred = conn.get_execution_options().get("sqlite_deferred", False)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url` with this project's SQLite discipline applied."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _prepare_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_pre_ping", True)
    # Up to 40 connections, one per thread of the web server's threadpool (anyio's default), and
    # 20 kept open: QueuePool closes every connection returned beyond `pool_size`, so a pool
    # smaller than the usual number of requests in flight opens and closes a PostgreSQL
    # connection every few requests (measured: ~100 per 1,000 webhooks at 16 in flight).
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


_ENGINES: dict[str, Engine] = {}


def _engine_for(url: str) -> Engine:
    """One engine (one pool) per database URL for the whole process."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES.setdefault(url, make_engine(url))
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and processes that fork)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def get_engine() -> Engine:
    return _engine_for(get_settings().database_url)


def _session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def session_scope(engine: Engine | None = None, *, read_only: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    engine = engine or get_engine()
    if read_only and engine.dialect.name == "sqlite":
        engine = engine.execution_options(**READ_ONLY)
    session = _session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def insert_ignore(session: Session, table, values: dict, index_elements: list[str]):
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new id, or None if the row already existed."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table).values(**values).on_conflict_do_nothing(index_elements=index_elements)
        .returning(table.c.id)
    )
    return session.execute(statement).scalar()

