"""The benchmarks' own databases (SQLite files under var/bench/, or PostgreSQL databases they
create and drop), the environment of a `web` process on one, and counters read from it."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sqlalchemy import Engine, text

from devtools.processes import PYTHON, REPO
from devtools.processes import service_env as _service_env

BENCH_VAR = REPO / "var" / "bench"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def database_url(engine_kind: str, name: str) -> str:
    if engine_kind == "postgres":
        return f"{PG_ADMIN_URL.rstrip('/')}/{name}"
    if engine_kind == "sqlite":
        return f"sqlite:///{BENCH_VAR / (name + '.db')}"
    raise SystemExit(f"unknown --db {engine_kind!r} (sqlite or postgres)")


def recreate_database(url: str) -> None:
    """Drop and create the benchmark database, then migrate it with `python -m core migrate`."""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        import psycopg
        name = url.rsplit("/", 1)[1]
        if name in ("test", "postgres", "template0", "template1"):
            raise SystemExit(f"refusing to recreate database {name!r}")
        with psycopg.connect(f"{PG_ADMIN_URL.rstrip('/')}/postgres", autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    run_core(url, "migrate")


def database_exists(url: str) -> bool:
    if url.startswith("sqlite"):
        return Path(url.split("///", 1)[1]).exists()
    import psycopg
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{PG_ADMIN_URL.rstrip('/')}/postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def service_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a sandbox `web` process on `url`: default secrets, the floor endpoint on,
    the outbox left to a worker (none runs), nothing leaking in from ours."""
    return _service_env(DATABASE_URL=url, SANDBOX="true", BENCH_FLOOR_ENDPOINT="true",
                        RUN_OUTBOX_AFTER_REQUEST="false", **extra)


def run_core(url: str, *args: str) -> None:
    """`python -m core …` against `url` (its progress goes to our stderr)."""
    subprocess.run([PYTHON, "-m", "core", *args], cwd=REPO, env=service_env(url), check=True)


def open_engine(url: str) -> Engine:
    """An engine for seeding and checking, configured as the service's own (core.db.make_engine)."""
    os.environ.setdefault("SANDBOX", "true")
    from core.db import make_engine
    return make_engine(url)


def pg_sessions(engine: Engine) -> int | None:
    """Connections ever opened to this PostgreSQL database (pg_stat_database.sessions; None on
    SQLite). The counter is flushed about once a second, so read it after a pause."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")).scalar()


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
