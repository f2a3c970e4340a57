"""The Calendly integration in the dashboard through Streamlit's AppTest, on the test database: a
builder's Calendly page (Connect Calendly bound to their sign-in, their state and event types,
resync, disconnect after a confirmation) and the admin's Integrations page (every builder's
health in plain words, a reconnect link the builder must approve, the admin-only guard)."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.auth import authenticate
from core.config import SANDBOX_SECRETS
from core.db import session_scope
from core.models import Builder, CalendlyOAuthState, DashboardSession, utcnow
from core.security import encrypt_secret
from core.services import calendly_connection, people
from devtools.processes import free_port
from tests.dashboard_helpers import (
    ADMIN_EMAIL, ADMIN_PASSWORD, BUILDER_PASSWORD, make_admin_and_builders, make_session_type,
)
from tests.servers import serve

APP = "../dashboard/streamlit_app.py"
PAGE = "app_pages/calendly.py"
ADMIN_PAGE = "app_pages/admin_integrations.py"


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches(streamlit_caches_cleared):
    """Streamlit's caches leak between AppTest runs in one process (conftest clears them)."""


@pytest.fixture
def calendly_standin(settings_env):
    from sandbox.calendly.standin import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(public_url=base, webhook_url=None, signing_key=SANDBOX_SECRETS["calendly_webhook_signing_key"],
                     redirect_url=None)
    with serve(app, port):
        settings_env(CALENDLY_API_BASE=base, CALENDLY_AUTH_BASE=base)
        yield base


@pytest.fixture
def builders(engine):
    """The admin; Ada waiting to connect (no Calendly at all), Bo connected with a personal token."""
    with session_scope(engine) as s:
        ada, bo = make_admin_and_builders(s)
        ada.calendly_user_uri = None
        ada.calendly_status, ada.calendly_auth = "waiting", None
        bo.calendly_status, bo.calendly_auth, bo.calendly_connected_at = "connected", "token", utcnow()
        return {"ada": ada.id, "bo": bo.id}


def connect_as_token_builder(engine, builder_id: int, token: str) -> None:
    """The builder's Calendly account is the stand-in's user of `token` (a personal access token)."""
    user = people.calendly_user_for_token(token)
    with session_scope(engine) as s:
        builder = s.get(Builder, builder_id)
        builder.calendly_user_uri = user["uri"]
        builder.calendly_token_encrypted = encrypt_secret(token, _settings().app_secret_key)
        builder.calendly_auth, builder.calendly_status, builder.calendly_connected_at = "token", "connected", utcnow()


def _settings():
    from core.config import get_settings
    return get_settings()


def no_exception(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def signed_in_by_form(email: str, password: str, page: str) -> AppTest:
    """Signed in through the sign-in form, so the tab has a server-side dashboard session."""
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="sign_in_email").input(email)
    at.text_input(key="sign_in_password").input(password)
    no_exception(at.button[0].click().run())
    at.switch_page(page).run()
    return no_exception(at)


def signed_in(engine, email: str, password: str, page: str) -> AppTest:
    with session_scope(engine, read_only=True) as s:
        viewer = authenticate(s, email, password)
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["viewer"] = viewer
    at.run()
    at.switch_page(page).run()
    return no_exception(at)


def link_buttons(at: AppTest) -> dict[str, str]:
    return {button.proto.label: button.proto.url for button in at.get("link_button")}


def texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


def oauth_states(engine) -> list[CalendlyOAuthState]:
    with session_scope(engine, read_only=True) as s:
        rows = list(s.execute(select(CalendlyOAuthState).order_by(CalendlyOAuthState.id)).scalars())
        s.expunge_all()
        return rows


# ---------------------------------------------------------------- the builder's page
def test_a_waiting_builder_gets_connect_calendly_bound_to_their_sign_in(engine, builders, calendly_standin):
    at = signed_in_by_form("ada@test", BUILDER_PASSWORD, PAGE)
    assert [t.value for t in at.title] == ["Calendly"]
    assert "Connect your Calendly account" in texts(at.info)
    assert "**Status:** Not connected yet" in texts(at.markdown)

    url = link_buttons(at)["Connect Calendly"]
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{calendly_standin}/oauth/authorize"
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert query["client_id"] == _settings().calendly_client_id
    assert query["redirect_uri"] == calendly_connection.redirect_uri()
    assert query["state"] and query["code_challenge"]

    [state] = oauth_states(engine)
    with session_scope(engine, read_only=True) as s:
        session_row = s.execute(select(DashboardSession)).scalar_one()
        assert state.builder_id == builders["ada"] and state.dashboard_session_id == session_row.id
    assert query["state"] not in state.state_hash  # only its hash is kept

    at.button(key="calendly_check_again").click().run()  # a rerun reuses the link: no new state each run
    assert link_buttons(no_exception(at))["Connect Calendly"] == url
    assert len(oauth_states(engine)) == 1


def test_a_connected_builder_sees_their_event_types_and_resyncs_them(engine, builders, calendly_standin):
    connect_as_token_builder(engine, builders["bo"], "sandbox-linus")
    with session_scope(engine) as s:
        user_uri = s.get(Builder, builders["bo"]).calendly_user_uri
        make_session_type(s, s.get(Builder, builders["bo"]), name="Backend pairing", price_cents=12000,
                          currency="EUR")
    at = signed_in(engine, "bo@test", BUILDER_PASSWORD, PAGE)
    shown = texts(at.markdown)
    assert "Your Calendly account is connected." in texts(at.success)
    assert "**Status:** Connected" in shown and "**Signs in with:** Personal access token" in shown
    assert "**Backend pairing** · 60 min · €120.00, bookable" in shown
    assert "**Quick question** · 15 min · no price yet" in shown  # from the stand-in's Calendly
    assert not link_buttons(at)  # nothing to connect
    assert user_uri in people.calendly_user_for_token("sandbox-linus")["uri"]

    no_exception(at.button(key="calendly_resync").click().run())
    assert "Event types read again from Calendly" in texts(at.success)


def test_disconnect_asks_first_and_then_the_builder_can_reconnect(engine, builders, calendly_standin):
    connect_as_token_builder(engine, builders["bo"], "sandbox-linus")
    at = signed_in(engine, "bo@test", BUILDER_PASSWORD, PAGE)
    no_exception(at.button(key="calendly_disconnect").click().run())
    assert "will no longer be bookable" in texts(at.markdown)
    no_exception(at.button(key="cancel_disconnect").click().run())
    with session_scope(engine, read_only=True) as s:
        assert s.get(Builder, builders["bo"]).calendly_status == "connected"

    at.button(key="calendly_disconnect").click().run()
    no_exception(at.button(key="confirm_disconnect").click().run())
    with session_scope(engine, read_only=True) as s:
        assert s.get(Builder, builders["bo"]).calendly_status == "disconnected"
    assert "Calendly disconnected for Bo" in texts(at.success)
    assert "disconnected: clients cannot book you" in texts(at.error)
    assert "Reconnect Calendly" in link_buttons(at)


def test_the_calendly_page_shows_only_the_signed_in_builders_own_connection(engine, builders, calendly_standin):
    with session_scope(engine) as s:
        ada = s.get(Builder, builders["ada"])
        ada.calendly_status, ada.calendly_status_reason = "disconnected", "Ada's own reason"
    at = signed_in(engine, "bo@test", BUILDER_PASSWORD, PAGE)
    shown = texts(at.markdown) + texts(at.warning) + texts(at.error) + texts(at.info)
    assert "Ada's own reason" not in shown and "**Status:** Connected" in shown
    assert not at.selectbox  # no builder to choose


# ---------------------------------------------------------------- the admin's Integrations page
@pytest.fixture
def troubled(engine, builders):
    """Ada connected through OAuth with a subscription Calendly disabled; Bo disconnected (refresh refused)."""
    with session_scope(engine) as s:
        ada, bo = s.get(Builder, builders["ada"]), s.get(Builder, builders["bo"])
        ada.calendly_user_uri = "https://calendly.test/users/ada"
        ada.calendly_auth, ada.calendly_status, ada.calendly_connected_at = "oauth", "connected", utcnow()
        ada.calendly_token_expires_at = utcnow() + timedelta(hours=2)
        ada.calendly_subscription_state, ada.calendly_subscription_checked_at = "disabled", utcnow()
        bo.calendly_auth, bo.calendly_status = "oauth", "disconnected"
        bo.calendly_status_reason = "Calendly refused to renew the access (invalid_grant)"
    return builders


def test_admin_sees_every_builders_integration_in_plain_words(engine, troubled, calendly_standin):
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_PAGE)
    assert [t.value for t in at.title] == ["Integrations"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Connected"] == "1 of 2"
    table = at.dataframe[0].value
    rows = {row["Builder"]: row for row in table.to_dict("records")}
    assert set(rows) == {"Ada", "Bo"}
    assert rows["Ada"]["Status"] == "Connected" and rows["Ada"]["Subscription"] == "Disabled by Calendly"
    assert rows["Ada"]["Signs in with"] == "OAuth" and rows["Bo"]["Last webhook"] == "never"
    assert rows["Bo"]["Status"].startswith("Disconnected: Calendly refused to renew")
    assert rows["Bo"]["Problems"] != "None"


def test_admin_makes_a_reconnect_link_only_the_builder_can_approve(engine, troubled, calendly_standin):
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_PAGE)
    at.selectbox(key="integrations_builder").select(troubled["bo"]).run()
    assert "**Status:** Disconnected" in texts(no_exception(at).markdown)
    no_exception(at.button(key="integrations_reconnect").click().run())
    assert "Only they can approve it" in texts(at.markdown)
    url = at.code[0].value
    assert url.startswith(f"{calendly_standin}/oauth/authorize?")
    [state] = oauth_states(engine)
    assert state.builder_id == troubled["bo"] and state.dashboard_session_id is None
    assert ADMIN_EMAIL in state.started_by


def test_admin_disconnects_a_builder_after_confirming(engine, builders, calendly_standin):
    connect_as_token_builder(engine, builders["bo"], "sandbox-linus")
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_PAGE)
    at.selectbox(key="integrations_builder").select(builders["bo"]).run()
    at.button(key="integrations_disconnect").click().run()
    no_exception(at.button(key="confirm_disconnect").click().run())
    with session_scope(engine, read_only=True) as s:
        assert s.get(Builder, builders["bo"]).calendly_status == "disconnected"
    assert "Calendly disconnected for Bo" in texts(at.success)


def test_a_builder_cannot_open_integrations(engine, builders):
    at = AppTest.from_file(f"../dashboard/{ADMIN_PAGE}", default_timeout=30)
    with session_scope(engine, read_only=True) as s:
        at.session_state["viewer"] = authenticate(s, "ada@test", BUILDER_PASSWORD)
    at.run()
    assert [e.value for e in at.error] == ["This page is for admins."]
    assert not at.dataframe and not at.button and not at.get("link_button")
