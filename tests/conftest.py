"""Shared fixtures: a clean database per test on SQLite (default) or PostgreSQL (TEST_DATABASE_URL).

With TEST_DATABASE_URL set, an unreachable database fails the run instead of skipping it.
"""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from core import config, db
from core.models import Base

PG_URL = os.environ.get("TEST_DATABASE_URL")


def _reset_caches() -> None:
    config.get_settings.cache_clear()
    db.dispose_engines()
    from core.stripe import gateway
    gateway._stripe_client.cache_clear()


@pytest.fixture(scope="session")
def _pg_schema():
    """Create the tables once per run on PostgreSQL; each test then truncates them."""
    if not PG_URL:
        yield None
        return
    engine = db.make_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text("select 1"))
    except Exception as error:  # a configured database that is down must fail the run, not skip
        pytest.exit(f"TEST_DATABASE_URL is set but unreachable: {error}", returncode=3)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db_url(tmp_path, _pg_schema) -> str:
    if _pg_schema is None:
        return f"sqlite:///{tmp_path}/test.db"
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with _pg_schema.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return PG_URL


@pytest.fixture
def settings_env(monkeypatch, db_url, tmp_path):
    """Environment for a sandbox-mode app on the test database; returns a setter for more values."""
    for name in list(os.environ):
        if name in {field.upper() for field in config.Settings.model_fields}:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # so a developer's .env never leaks into a test
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SANDBOX", "true")

    def set_env(**values):
        for key, value in values.items():
            monkeypatch.setenv(key.upper(), str(value))
        _reset_caches()
        return config.get_settings()

    _reset_caches()
    yield set_env
    db.dispose_engines()
    _reset_caches()


@pytest.fixture
def engine(settings_env):
    engine = db.get_engine()
    if engine.dialect.name == "sqlite":
        Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with db.session_scope(engine) as session:
        yield session


@pytest.fixture
def streamlit_caches_cleared():
    """`st.cache_data`/`st.cache_resource` leak between AppTest runs in one pytest process
    (streamlit issue 9139): cleared before and after each dashboard test."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="PostgreSQL-only: set TEST_DATABASE_URL")
    for item in items:
        if "postgres_only" in item.keywords and not PG_URL:
            item.add_marker(skip_pg)


from tests.live_system import live  # noqa: E402,F401  (the `live` fixture: the whole system on free ports)
