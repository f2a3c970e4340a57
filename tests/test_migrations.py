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
