"""`python -m core …` in subprocesses against the test database, as an operator would run it.

Bad input answers exit code 2 and exactly one line on stderr, never a traceback.
`add-builder` and `set-price` talk to the Calendly sandbox stand-in, served from a thread.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from core import config
from core.config import SANDBOX_SECRETS
from core.db import make_engine, session_scope
from core.models import (
    Base, Booking, BookingHistory, Builder, DashboardUser, Payment, Refund, SessionType,
)
from core.security import decrypt_secret, verify_password
from core.states import BookingStatus as S
from tests.factories import count, drop_everything, make_booking, make_builder, make_payment
from tests.cli_runner import run_cli

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {name.upper() for name in config.Settings.model_fields}
PG_URL = os.environ.get("TEST_DATABASE_URL")
SIGNING_KEY = SANDBOX_SECRETS["calendly_webhook_signing_key"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


def _run(db_url: str, cwd: Path, *args: str, **env: str) -> Result:
    done = run_cli(db_url, cwd, *args, **env)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(engine, db_url, tmp_path):
    """Run the CLI on the test database (schema in place); keyword arguments become variables."""
    def run(*args: str, **env: str) -> Result:
        return _run(db_url, tmp_path, *args, **env)
    return run


def assert_refused(result: Result, *fragments: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback, nothing on stdout."""
    assert result.code == 2, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1, result.err
    for fragment in fragments:
        assert fragment in result.err_lines[0], result.err
    assert result.out == ""


# ---------------------------------------------------------------- help and parsing
def test_help_lists_every_command(tmp_path):
    result = _run(f"sqlite:///{tmp_path}/unused.db", tmp_path, "--help")
    assert result.code == 0
    for command in ("migrate", "add-builder", "set-price", "add-user", "demo-data", "show-booking",
                    "worker", "run-outbox", "reconcile", "replay-webhooks"):
        assert command in result.out
    assert result.err == ""


def test_subcommand_help_shows_its_options(tmp_path):
    result = _run(f"sqlite:///{tmp_path}/unused.db", tmp_path, "set-price", "--help")
    assert result.code == 0
    assert "--amount-cents" in result.out and "--refund-partial-percent" in result.out


@pytest.mark.parametrize("args,fragment", [
    ((), "the following arguments are required: command"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
])
def test_missing_or_unknown_command_is_one_line_exit_2(tmp_path, args, fragment):
    assert_refused(_run(f"sqlite:///{tmp_path}/unused.db", tmp_path, *args), fragment, "(see --help)")


# ---------------------------------------------------------------- migrate
@pytest.fixture
def empty_db_url(db_url):
    """The test database with no tables at all (PostgreSQL: emptied; the schema is restored after)."""
    if not PG_URL:
        yield db_url
        return
    engine = make_engine(PG_URL)
    drop_everything(engine)
    try:
        yield db_url
    finally:
        Base.metadata.create_all(engine)  # the tests that follow truncate these tables
        engine.dispose()


def test_migrate_creates_the_schema_and_is_idempotent(empty_db_url, tmp_path):
    first = _run(empty_db_url, tmp_path, "migrate")
    assert first.code == 0, first.err
    assert first.out.strip() == "database is at the latest schema"

    engine = make_engine(empty_db_url)
    try:
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
        again = _run(empty_db_url, tmp_path, "migrate")
        assert again.code == 0, again.err
        with session_scope(engine, read_only=True) as session:
            assert count(session, Booking) == 0
    finally:
        engine.dispose()


# ---------------------------------------------------------------- add-user
def test_add_user_stores_a_verifiable_hash_not_the_password(cli, engine):
    result = cli("add-user", "--email", "Ops@Example.TEST", "--password", "correct horse battery", "--role", "admin")
    assert result.code == 0, result.err
    assert result.out.strip().startswith("dashboard user ") and result.out.strip().endswith("(admin)")

    with session_scope(engine, read_only=True) as session:
        user = session.execute(select(DashboardUser)).scalar_one()
    assert (user.email, user.role, user.builder_id) == ("ops@example.test", "admin", None)
    assert "correct horse battery" not in user.password_hash
    assert user.password_hash.startswith("scrypt$")
    assert verify_password("correct horse battery", user.password_hash)
    assert not verify_password("correct horse batterY", user.password_hash)


def test_add_user_for_a_builder_links_the_account(cli, engine):
    with session_scope(engine) as session:
        builder_id = make_builder(session).id
    result = cli("add-user", "--email", "ada@example.test", "--password", "builder-pass", "--role", "builder",
                 "--builder", str(builder_id))
    assert result.code == 0, result.err
    with session_scope(engine, read_only=True) as session:
        user = session.execute(select(DashboardUser)).scalar_one()
        assert (user.role, user.builder_id) == ("builder", builder_id)


def test_add_user_errors_are_one_line_exit_2_and_store_nothing(cli, engine):
    short = cli("add-user", "--email", "a@example.test", "--password", "short", "--role", "admin")
    assert_refused(short, "the password must have at least 8 characters")

    no_builder = cli("add-user", "--email", "b@example.test", "--password", "long-enough", "--role", "builder")
    assert_refused(no_builder, "a builder account needs --builder ID")

    unknown_builder = cli("add-user", "--email", "c@example.test", "--password", "long-enough",
                          "--role", "builder", "--builder", "999")
    assert_refused(unknown_builder, "no builder 999")

    bad_role = cli("add-user", "--email", "d@example.test", "--password", "long-enough", "--role", "root")
    assert_refused(bad_role, "--role", "invalid choice: 'root'")

    with session_scope(engine, read_only=True) as session:
        assert count(session, DashboardUser) == 0


def test_add_user_with_a_taken_email_is_refused(cli, engine):
    assert cli("add-user", "--email", "ops@example.test", "--password", "first-pass", "--role", "admin").code == 0
    duplicate = cli("add-user", "--email", "OPS@example.test", "--password", "second-pass", "--role", "admin")
    assert_refused(duplicate, "a dashboard user ops@example.test already exists")
    with session_scope(engine, read_only=True) as session:
        user = session.execute(select(DashboardUser)).scalar_one()
        assert verify_password("first-pass", user.password_hash)


# ---------------------------------------------------------------- set-price input
@pytest.mark.parametrize("amount,fragment", [
    ("abc", "not a whole number: 'abc'"),
    ("-5", "must be positive: -5"),
    ("0", "must be positive: 0"),
    ("12.50", "not a whole number: '12.50'"),
])
def test_set_price_with_a_bad_amount_is_one_line_exit_2(cli, amount, fragment):
    result = cli("set-price", "--builder", "1", "--event-type", "https://calendly.test/event_types/x",
                 "--amount-cents", amount, "--currency", "USD")
    assert_refused(result, "--amount-cents", fragment)


def test_set_price_for_an_unknown_builder_is_refused(cli):
    result = cli("set-price", "--builder", "42", "--event-type", "https://calendly.test/event_types/x",
                 "--amount-cents", "4900", "--currency", "USD")
    assert_refused(result, "no builder 42")


# ---------------------------------------------------------------- demo-data and show-booking
def test_demo_data_creates_the_bookings_once(cli, engine):
    result = cli("demo-data", "--bookings", "500")
    assert result.code == 0, result.err

    with session_scope(engine, read_only=True) as session:
        assert count(session, Booking) == 500
        statuses = dict(session.execute(select(Booking.status, func.count()).group_by(Booking.status)).all())
        assert {S.CONFIRMED, S.COMPLETED, S.CANCELED, S.EXPIRED} <= set(statuses)
        assert set(statuses) <= set(S)
        payments, refunds = count(session, Payment), count(session, Refund)
        assert payments > 0 and refunds > 0
        assert count(session, Builder) >= 2 and count(session, SessionType) >= 2
        # Every booking has a history starting at its creation; every paid booking has a payment.
        assert count(session, BookingHistory, BookingHistory.from_status.is_(None)) == 500
        paid_ids = set(session.execute(select(Payment.booking_id)).scalars())
        confirmed = set(session.execute(
            select(Booking.id).where(Booking.status.in_([S.CONFIRMED, S.COMPLETED]))).scalars())
        assert confirmed <= paid_ids
        # No refund exceeds its payment.
        over = session.execute(
            select(Payment.id).join(Refund, Refund.payment_id == Payment.id).group_by(Payment.id, Payment.amount_cents)
            .having(func.sum(Refund.amount_cents) > Payment.amount_cents)
        ).all()
        assert over == []
        admin = session.execute(select(DashboardUser).where(DashboardUser.role == "admin")).scalar_one()

    again = cli("demo-data", "--bookings", "500")
    assert again.code == 0, again.err
    assert "none added" in again.err
    with session_scope(engine, read_only=True) as session:
        assert count(session, Booking) == 500
        assert (count(session, Payment), count(session, Refund)) == (payments, refunds)
        assert count(session, DashboardUser, DashboardUser.role == "admin") == 1
        assert session.execute(select(DashboardUser.id).where(DashboardUser.role == "admin")).scalar_one() == admin.id


def test_after_demo_data_new_clients_and_payments_get_fresh_ids(cli, engine):
    assert cli("demo-data", "--bookings", "60").code == 0
    with session_scope(engine) as session:
        highest = session.execute(select(func.max(Payment.id))).scalar_one()
        booking = make_booking(session, S.CONFIRMED)  # a new client too
        payment = make_payment(session, booking)
    assert payment.id > highest
    with session_scope(engine, read_only=True) as session:
        assert count(session, Booking) == 61


def test_show_booking_prints_its_json(cli, engine):
    with session_scope(engine) as session:
        booking = make_booking(session, S.CONFIRMED)
        make_payment(session, booking)
        booking_id = booking.id

    result = cli("show-booking", booking_id)

    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["id"] == booking_id
    assert (data["status"], data["payment_status"]) == ("CONFIRMED", "paid")
    assert data["paid_cents"] == data["amount_cents"] == booking.amount_cents
    assert data["history"] == [] and data["outbox"] == []


def test_show_booking_of_an_unknown_id_is_one_line_exit_2(cli):
    assert_refused(cli("show-booking", "nope"), "no booking nope")


# ---------------------------------------------------------------- with the Calendly stand-in
@pytest.fixture(scope="module")
def calendly_standin():
    """The Calendly sandbox stand-in on a free port, served by uvicorn from a thread."""
    import uvicorn

    from sandbox.calendly.standin import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(public_url=base, webhook_url=None, signing_key=SIGNING_KEY, redirect_url=None)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the Calendly stand-in did not start"
        time.sleep(0.02)
    yield base
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_add_builder_looks_the_token_up_and_stores_it_encrypted(cli, engine, calendly_standin):
    from sandbox.calendly.identities import sandbox_user_uri

    result = cli("add-builder", "--name", "Ada Lovelace", "--email", "Ada@Example.test",
                 "--calendly-token", "sandbox-ada", CALENDLY_API_BASE=calendly_standin)

    assert result.code == 0, result.err
    builder_id = int(result.out.strip())
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        assert (builder.name, builder.email) == ("Ada Lovelace", "ada@example.test")
        assert builder.calendly_user_uri == sandbox_user_uri(calendly_standin, "sandbox-ada")
        stored = builder.calendly_token_encrypted
    assert stored and "sandbox-ada" not in stored
    assert decrypt_secret(stored, SANDBOX_SECRETS["app_secret_key"]) == "sandbox-ada"

    duplicate = cli("add-builder", "--name", "Ada again", "--email", "ada2@example.test",
                    "--calendly-token", "sandbox-ada", CALENDLY_API_BASE=calendly_standin)
    assert_refused(duplicate, "already exists")


def test_set_price_prices_a_calendly_event_type_of_the_builder(cli, engine, calendly_standin):
    from sandbox.calendly.identities import sandbox_event_type_uris

    added = cli("add-builder", "--name", "Ada", "--email", "ada@example.test", "--calendly-token", "sandbox-ada",
                CALENDLY_API_BASE=calendly_standin)
    assert added.code == 0, added.err
    builder_id = added.out.strip()
    uri = sandbox_event_type_uris(calendly_standin, "sandbox-ada")[0]

    priced = cli("set-price", "--builder", builder_id, "--event-type", uri, "--amount-cents", "4900",
                 "--currency", "usd", "--refund-full-hours", "48", "--refund-partial-percent", "25",
                 CALENDLY_API_BASE=calendly_standin)

    assert priced.code == 0, priced.err
    assert priced.out.startswith("session type ") and "at 4900 USD" in priced.out
    with session_scope(engine, read_only=True) as session:
        session_type = session.execute(select(SessionType)).scalar_one()
        assert (session_type.builder_id, session_type.calendly_event_type_uri) == (int(builder_id), uri)
        assert (session_type.price_cents, session_type.currency) == (4900, "USD")
        assert (session_type.refund_full_hours, session_type.refund_partial_percent) == (48, 25)
        assert session_type.name == "Discovery call" and session_type.duration_minutes == 30
        type_id = session_type.id

    repriced = cli("set-price", "--builder", builder_id, "--event-type", uri, "--amount-cents", "5900",
                   "--currency", "USD", CALENDLY_API_BASE=calendly_standin)
    assert repriced.code == 0, repriced.err
    with session_scope(engine, read_only=True) as session:
        session_type = session.execute(select(SessionType)).scalar_one()
        assert (session_type.id, session_type.price_cents) == (type_id, 5900)
        assert (session_type.refund_full_hours, session_type.refund_partial_percent) == (None, None)


# ---------------------------------------------------------------- builders who connect Calendly themselves
def test_add_builder_without_a_token_creates_a_builder_waiting_to_connect(cli, engine):
    result = cli("add-builder", "--name", "Grace Hopper", "--email", "grace@example.test")

    assert result.code == 0, result.err
    builder_id = int(result.out.strip())
    assert f"connect-calendly --builder {builder_id}" in result.err and "Traceback" not in result.err
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        assert (builder.calendly_status, builder.calendly_auth, builder.calendly_token_encrypted) == (
            "waiting", None, None)


def test_add_builder_with_a_personal_token_is_connected_by_token(cli, engine, calendly_standin):
    result = cli("add-builder", "--name", "Ada", "--email", "ada@example.test", "--calendly-token", "sandbox-ada",
                 CALENDLY_API_BASE=calendly_standin)
    assert result.code == 0, result.err
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, int(result.out.strip()))
        assert (builder.calendly_status, builder.calendly_auth) == ("connected", "token")


def test_add_builder_with_an_empty_token_is_one_line_exit_2(cli, engine):
    assert_refused(cli("add-builder", "--name", "Ada", "--email", "ada@example.test", "--calendly-token", " "),
                   "--calendly-token is empty")
    with session_scope(engine, read_only=True) as session:
        assert count(session, Builder) == 0


def test_connect_calendly_prints_the_authorization_url_bound_to_no_dashboard_sign_in(cli, engine):
    from urllib.parse import parse_qs, urlsplit

    from core.models import CalendlyOAuthState
    from core.security import hash_token
    from core.services.calendly_connection import CALLBACK_PATH
    builder_id = int(cli("add-builder", "--name", "Grace", "--email", "grace@example.test").out.strip())

    result = cli("connect-calendly", "--builder", str(builder_id), PUBLIC_BASE_URL="https://book.example.test",
                 CALENDLY_API_BASE="http://127.0.0.1:9133")

    assert result.code == 0, result.err
    url = result.out.strip()
    assert url.startswith("http://127.0.0.1:9133/oauth/authorize?") and len(result.out.strip().splitlines()) == 1
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    assert query["redirect_uri"] == "https://book.example.test" + CALLBACK_PATH
    assert query["client_id"] == "sandbox-client-id" and query["code_challenge_method"] == "S256"
    with session_scope(engine, read_only=True) as session:
        state = session.execute(select(CalendlyOAuthState)).scalar_one()
        assert state.state_hash == hash_token(query["state"]) and state.builder_id == builder_id
        assert state.dashboard_session_id is None and state.started_by.startswith("cli:")


@pytest.mark.parametrize("args,fragment", [
    (("--builder", "999"), "no builder 999"),
    (("--builder", "abc"), "not a whole number"),
    ((), "the following arguments are required: --builder"),
])
def test_connect_calendly_bad_input_is_one_line_exit_2(cli, args, fragment):
    assert_refused(cli("connect-calendly", *args), fragment)
