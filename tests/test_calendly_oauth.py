"""Connecting a builder's Calendly through our OAuth app: the authorize URL, the callback (state
checks, the code exchanged, tokens stored encrypted), a person saying no, disconnecting, and the
configuration. Real HTTP to a fake token endpoint (tests/calendly_oauth_fake.py) and to our web
service (TestClient); both database engines.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from core.calendly import CalendlyClient
from core.calendly.oauth import OAuthRefused, exchange_code, s256_challenge
from core.config import ConfigError, load_settings
from core.db import session_scope
from core.errors import DomainError
from core.models import Builder, CalendlyOAuthState, DashboardSession, DashboardUser, utcnow
from core.providers import OAuthCalendlyClient, calendly_for
from core.security import decrypt_secret, hash_token
from core.services import calendly_connection, dashboard_sessions, people, scheduling
from core.services.calendly_connection import CALLBACK_PATH, CalendlyDisconnected, start_connect
from tests.calendly_oauth_fake import CLIENT_ID, CLIENT_SECRET, FakeCalendly, create_app
from tests.servers import serve

PUBLIC = "http://127.0.0.1:9121"
DASHBOARD = "http://127.0.0.1:9122"


@pytest.fixture
def fake(settings_env):
    calendly = FakeCalendly()
    with serve(create_app(calendly)) as base:
        calendly.base = base
        settings_env(calendly_auth_base=base, calendly_api_base=base, calendly_client_id=CLIENT_ID,
                     calendly_client_secret=CLIENT_SECRET, public_base_url=PUBLIC, dashboard_url=DASHBOARD)
        scheduling.EVENT_TYPES.clear()
        yield calendly
    scheduling.EVENT_TYPES.clear()


@pytest.fixture
def web(fake, engine):
    from webhook_service.app import create_app as create_web
    with TestClient(create_web(), headers={"accept": "text/html"}) as client:
        yield client


def add_builder(engine, name="Ada Lovelace", email="ada@example.test") -> int:
    with session_scope(engine) as session:
        return people.add_builder(session, name=name, email=email).id


def sign_in(engine, *, builder_id: int | None, email: str, role: str = "builder") -> int:
    """A dashboard sign-in (the row the dashboard's cookie points at); its id."""
    with session_scope(engine) as session:
        user = people.add_user(session, email=email, password="password-123", role=role, builder_id=builder_id)
        _sid, row = dashboard_sessions.start(session, user.id)
        return row.id


def connect_url(engine, builder_id: int, dashboard_session_id: int | None) -> str:
    with session_scope(engine) as session:
        return start_connect(session, builder_id, started_by="builder:ada@example.test",
                             dashboard_session_id=dashboard_session_id)


def approve(fake: FakeCalendly, url: str) -> tuple[str, str]:
    """The person presses Allow at Calendly: (state, code) as Calendly sends them back."""
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    return query["state"], fake.issue_code(query["code_challenge"], query["redirect_uri"])


def builder_row(engine, builder_id: int) -> Builder:
    with session_scope(engine, read_only=True) as session:
        return session.get(Builder, builder_id)


def every_text_in_the_database(engine) -> str:
    with session_scope(engine, read_only=True) as session:
        rows = [session.execute(select(table)).all() for table in (Builder.__table__, CalendlyOAuthState.__table__)]
    return "\n".join(str(value) for table in rows for row in table for value in row)


# ---------------------------------------------------------------- the way out to Calendly
def test_the_authorize_url_asks_for_a_code_with_the_s256_challenge_of_the_stored_verifier(fake, engine):
    ada = add_builder(engine)
    url = connect_url(engine, ada, sign_in(engine, builder_id=ada, email="ada@example.test"))

    parts = urlsplit(url)
    query = {name: values for name, values in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{fake.base}/oauth/authorize"
    assert {name: values[0] for name, values in query.items() if name != "state" and name != "code_challenge"} == {
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": PUBLIC + CALLBACK_PATH,
        "code_challenge_method": "S256", "login_hint": "ada@example.test"}  # the hint: sandbox mode only
    assert all(len(values) == 1 for values in query.values())
    state, challenge = query["state"][0], query["code_challenge"][0]
    assert len(state) >= 40 and len(challenge) == 43 and "=" not in challenge
    with session_scope(engine, read_only=True) as session:
        row = session.execute(select(CalendlyOAuthState)).scalar_one()
        assert row.state_hash == hash_token(state)  # only the hash is kept
        verifier = decrypt_secret(row.code_verifier_encrypted, load_settings().app_secret_key)
        assert verifier not in row.code_verifier_encrypted
        assert row.builder_id == ada and row.used_at is None
        assert timedelta(minutes=9) < row.expires_at - utcnow() <= timedelta(minutes=10)
    assert 43 <= len(verifier) <= 128 and s256_challenge(verifier) == challenge


def test_the_challenge_is_rfc_7636s_s256():
    # RFC 7636, appendix B: BASE64URL(SHA256(verifier)) without padding.
    assert s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_another_builders_sign_in_cannot_start_a_connect(fake, engine):
    ada, linus = add_builder(engine), add_builder(engine, "Linus", "linus@example.test")
    linus_sign_in = sign_in(engine, builder_id=linus, email="linus@example.test")
    with pytest.raises(DomainError, match="cannot connect Calendly for this builder"):
        connect_url(engine, ada, linus_sign_in)
    admin_sign_in = sign_in(engine, builder_id=None, email="root@example.test", role="admin")
    assert connect_url(engine, ada, admin_sign_in).startswith(fake.base)  # an admin may, for any builder


# ---------------------------------------------------------------- back from Calendly
def test_an_approved_connect_stores_the_tokens_encrypted_and_returns_to_the_dashboard(fake, engine, web):
    ada = add_builder(engine)
    assert builder_row(engine, ada).calendly_status == "waiting"
    state, code = approve(fake, connect_url(engine, ada, sign_in(engine, builder_id=ada, email="ada@example.test")))

    answer = web.get(CALLBACK_PATH, params={"code": code, "state": state}, follow_redirects=False)

    assert answer.status_code == 303 and answer.headers["location"].startswith(DASHBOARD + "/")
    assert code not in answer.headers["location"] and state not in answer.headers["location"]
    sent = fake.token_requests[-1]
    assert sent["grant_type"] == "authorization_code" and sent["code"] == code
    assert sent["redirect_uri"] == PUBLIC + CALLBACK_PATH and sent["client_secret"] == CLIENT_SECRET
    builder = builder_row(engine, ada)
    assert (builder.calendly_auth, builder.calendly_status, builder.calendly_status_reason) == ("oauth", "connected", None)
    assert builder.calendly_user_uri == fake.owner and builder.calendly_organization_uri == fake.organization
    assert timedelta(minutes=119) < builder.calendly_token_expires_at - utcnow() <= timedelta(hours=2)
    access, refresh = [token for token in fake.access_tokens][-1], [token for token in fake.refresh_tokens][-1]
    key = load_settings().app_secret_key
    assert decrypt_secret(builder.calendly_token_encrypted, key) == access
    assert decrypt_secret(builder.calendly_refresh_token_encrypted, key) == refresh
    stored = every_text_in_the_database(engine)
    assert access not in stored and refresh not in stored and code not in stored and state not in stored
    # The new connection works: the builder's event types are read with the access token.
    _builder, offered = scheduling.offered_session_types(engine, ada)
    assert [item.name for item in offered] == ["Pairing"]
    assert f"/event_types {access}" in fake.api_calls

    again = web.get(CALLBACK_PATH, params={"code": code, "state": state})  # the same link once more
    assert again.status_code == 400 and "already used" in again.text


def test_a_person_who_says_no_is_told_nothing_changed(fake, engine, web):
    ada = add_builder(engine)
    state, _code = approve(fake, connect_url(engine, ada, sign_in(engine, builder_id=ada, email="ada@example.test")))

    answer = web.get(CALLBACK_PATH, params={"error": "access_denied", "state": state})

    assert answer.status_code == 200
    assert "You did not connect Calendly; nothing changed." in answer.text
    assert f'href="{DASHBOARD}"' in answer.text and "Traceback" not in answer.text
    assert fake.token_requests == []
    assert builder_row(engine, ada).calendly_status == "waiting"
    with session_scope(engine, read_only=True) as session:  # the state is spent: no later code can use it
        assert session.execute(select(CalendlyOAuthState.used_at)).scalar_one() is not None


def _spoil(engine, how: str, builder_id: int) -> None:
    with session_scope(engine) as session:
        if how == "expired":
            session.execute(update(CalendlyOAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
        elif how == "sign-in revoked":
            session.execute(update(DashboardSession).values(revoked_at=utcnow()))
        elif how == "sign-in expired":
            session.execute(update(DashboardSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        elif how == "account now another builder's":
            other = people.add_builder(session, name="Linus", email="linus@example.test")
            session.execute(update(DashboardUser).values(builder_id=other.id))


@pytest.mark.parametrize("how,says", [
    ("forged", "not one of ours"),
    ("expired", "has expired"),
    ("sign-in revoked", "sign-in that started this connection has ended"),
    ("sign-in expired", "sign-in that started this connection has ended"),
    ("account now another builder's", "sign-in that started this connection has ended"),
])
def test_a_bad_state_is_refused_and_nothing_is_exchanged(fake, engine, web, how, says):
    ada = add_builder(engine)
    state, code = approve(fake, connect_url(engine, ada, sign_in(engine, builder_id=ada, email="ada@example.test")))
    if how == "forged":
        state = state[:-4] + "AAAA"
    _spoil(engine, how, ada)

    answer = web.get(CALLBACK_PATH, params={"code": code, "state": state})

    assert answer.status_code == 400, answer.text
    assert says in answer.text and "Start again from the dashboard" in answer.text
    assert "Traceback" not in answer.text and code not in answer.text
    assert fake.token_requests == []  # the code was never spent
    builder = builder_row(engine, ada)
    assert (builder.calendly_status, builder.calendly_token_encrypted) == ("waiting", None)


@pytest.mark.parametrize("query", [{}, {"state": ""}, {"code": "x"}, {"state": "x" * 5000, "code": "y"}])
def test_a_callback_without_a_usable_state_is_a_clear_400(fake, engine, web, query):
    answer = web.get(CALLBACK_PATH, params=query)
    assert answer.status_code == 400 and "Start again from the dashboard" in answer.text


def test_a_code_calendly_refuses_changes_nothing(fake, engine, web):
    ada = add_builder(engine)
    state, code = approve(fake, connect_url(engine, ada, sign_in(engine, builder_id=ada, email="ada@example.test")))
    fake.codes[code]["used"] = True  # e.g. expired at Calendly (10 minutes)

    answer = web.get(CALLBACK_PATH, params={"code": code, "state": state})

    assert answer.status_code == 400 and "Calendly refused the connection" in answer.text
    assert "nothing changed" in answer.text
    assert builder_row(engine, ada).calendly_status == "waiting"


def test_another_builders_calendly_account_is_refused_and_its_tokens_revoked(fake, engine, web):
    with session_scope(engine) as session:
        people.add_builder(session, name="Linus", email="linus@example.test", calendly_token="pat-linus",
                           calendly_user={"uri": fake.owner})
    ada = add_builder(engine)
    state, code = approve(fake, connect_url(engine, ada, sign_in(engine, builder_id=ada, email="ada@example.test")))

    answer = web.get(CALLBACK_PATH, params={"code": code, "state": state})

    assert answer.status_code == 400 and "already connected to another builder (Linus)" in answer.text
    assert builder_row(engine, ada).calendly_status == "waiting"
    refresh = list(fake.refresh_tokens)[-1]
    assert refresh in fake.revoked and len(fake.revoked) == 2 and fake.access_tokens == {}  # both revoked


def test_the_cli_start_binds_no_dashboard_sign_in(fake, engine, web):
    ada = add_builder(engine)
    with session_scope(engine) as session:
        url = start_connect(session, ada, started_by="cli:operator", dashboard_session_id=None)
    state, code = approve(fake, url)
    answer = web.get(CALLBACK_PATH, params={"code": code, "state": state}, follow_redirects=False)
    assert answer.status_code == 303
    assert builder_row(engine, ada).calendly_status == "connected"


def test_connecting_needs_our_oauth_app_configured(settings_env, engine):
    settings_env(sandbox="false", calendly_webhook_signing_key="k", stripe_secret_key="sk_test_x",
                 stripe_webhook_secret="w", admin_api_token="a", app_secret_key="s" * 40)
    ada = add_builder(engine, email="ada@example.com")
    with session_scope(engine) as session, pytest.raises(DomainError, match="CALENDLY_CLIENT_ID"):
        start_connect(session, ada, started_by="cli:x", dashboard_session_id=None)
    settings_env(calendly_client_id="our-app", calendly_client_secret="shh")
    with session_scope(engine) as session:
        url = start_connect(session, ada, started_by="cli:x", dashboard_session_id=None)
    assert url.startswith("https://auth.calendly.com/oauth/authorize?") and "login_hint" not in url


# ---------------------------------------------------------------- disconnecting
def connected_builder(fake, engine, web) -> int:
    ada = add_builder(engine)
    state, code = approve(fake, connect_url(engine, ada, sign_in(engine, builder_id=ada, email="ada@example.test")))
    assert web.get(CALLBACK_PATH, params={"code": code, "state": state}, follow_redirects=False).status_code == 303
    return ada


def test_disconnect_revokes_both_tokens_and_withdraws_the_builders_sessions(fake, engine, web):
    ada = connected_builder(fake, engine, web)
    access, refresh = list(fake.access_tokens)[-1], list(fake.refresh_tokens)[-1]
    scheduling.offered_session_types(engine, ada)  # cached: disconnecting must withdraw them anyway

    calendly_connection.disconnect(engine, ada, actor="admin:root@example.test")

    assert set(fake.revoked) == {access, refresh}
    builder = builder_row(engine, ada)
    assert builder.calendly_status == "disconnected"
    assert builder.calendly_status_reason == "disconnected by admin:root@example.test"
    assert (builder.calendly_token_encrypted, builder.calendly_refresh_token_encrypted) == (None, None)
    with pytest.raises(CalendlyDisconnected):
        scheduling.offered_session_types(engine, ada)
    page = web.get(f"/profile/{ada}")
    assert page.status_code == 503 and "not connected" in page.text and "Traceback" not in page.text


def test_disconnect_still_forgets_the_tokens_when_calendly_is_unreachable(fake, engine, web, settings_env):
    ada = connected_builder(fake, engine, web)
    settings_env(calendly_auth_base="http://127.0.0.1:9", calendly_api_base="http://127.0.0.1:9")
    calendly_connection.disconnect(engine, ada, actor="builder:ada@example.test")
    assert builder_row(engine, ada).calendly_status == "disconnected"


# ---------------------------------------------------------------- personal access tokens keep working
def test_personal_tokens_connect_at_once_and_builders_without_one_wait(fake, engine):
    with session_scope(engine) as session:
        linus = people.add_builder(session, name="Linus", email="linus@example.test", calendly_token="pat-linus",
                                   calendly_user={"uri": "https://fake.calendly.test/users/linus"})
        waiting = people.add_builder(session, name="Grace", email="grace@example.test")
        assert (linus.calendly_auth, linus.calendly_status) == ("token", "connected")
        assert linus.calendly_connected_at is not None
        assert (waiting.calendly_auth, waiting.calendly_status, waiting.calendly_connected_at) == (None, "waiting", None)
        client = calendly_for(linus)
        assert type(client) is CalendlyClient and client._token == "pat-linus"
        linus_id = linus.id
    assert calendly_connection.access_token(engine, linus_id) == "pat-linus"


def test_an_oauth_builders_client_fetches_its_token_only_when_used(fake, engine, web):
    ada = connected_builder(fake, engine, web)
    with session_scope(engine, read_only=True) as session:
        client = calendly_for(session.get(Builder, ada))
    assert isinstance(client, OAuthCalendlyClient) and "acc-" not in repr(client)
    assert client.get_current_user()["uri"] == fake.owner


# ---------------------------------------------------------------- wire format and configuration
def test_the_token_endpoint_gets_a_form_with_the_client_and_verifier(fake, engine):
    code = fake.issue_code(s256_challenge("v" * 50), PUBLIC + CALLBACK_PATH)
    grant = exchange_code(code, "v" * 50)
    assert fake.token_requests[-1] == {"grant_type": "authorization_code", "code": code, "code_verifier": "v" * 50,
                                       "redirect_uri": PUBLIC + CALLBACK_PATH, "client_id": CLIENT_ID,
                                       "client_secret": CLIENT_SECRET}
    assert grant.owner == fake.owner and grant.access_token in fake.access_tokens
    assert grant.access_token not in repr(grant) and grant.refresh_token not in repr(grant)
    with pytest.raises(OAuthRefused) as refused:
        exchange_code(code, "v" * 50)  # single use
    assert refused.value.error == "invalid_grant" and code not in str(refused.value)


def test_production_names_a_missing_client_secret_in_one_line():
    production = dict(sandbox=False, calendly_webhook_signing_key="k", stripe_secret_key="sk_live_x",
                      stripe_webhook_secret="w", admin_api_token="a", app_secret_key="s" * 40)
    with pytest.raises(ConfigError) as error:
        load_settings(**production, calendly_client_id="our-app")
    assert str(error.value) == ("Configuration error: CALENDLY_CLIENT_SECRET is required when CALENDLY_CLIENT_ID "
                                "is set")
    settings = load_settings(**production, calendly_client_id="our-app", calendly_client_secret="shh")
    assert settings.calendly_auth_base == "https://auth.calendly.com"
    assert load_settings(**production).calendly_client_id is None  # OAuth is optional: tokens still work


def test_sandbox_mode_uses_the_stand_ins_oauth_app_on_its_own_origin(settings_env):
    settings = settings_env()
    assert settings.calendly_auth_base == settings.calendly_api_base == "http://127.0.0.1:8001"
    assert (settings.calendly_client_id, settings.calendly_client_secret) == ("sandbox-client-id",
                                                                              "sandbox-client-secret")
    moved = settings_env(calendly_api_base="http://127.0.0.1:9131/")
    assert moved.calendly_auth_base == "http://127.0.0.1:9131"


def test_the_access_log_never_shows_the_callbacks_code_or_state():
    from webhook_service.routes.calendly_oauth import HideCallbackQuery
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"{CALLBACK_PATH}?code=secret-code&state=secret-state",
                                "1.1", 303), None)
    assert HideCallbackQuery().filter(record)
    assert "secret" not in record.getMessage() and CALLBACK_PATH in record.getMessage()
