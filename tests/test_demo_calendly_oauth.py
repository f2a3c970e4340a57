"""`make run`'s demo has one builder connected through OAuth: the sandbox Calendly's pre-issued
refresh token stored encrypted with an access token that has already expired, so the first API
call refreshes for real against the stand-in; the other demo builders use personal tokens."""
from __future__ import annotations

import requests
from sqlalchemy import select

from core.config import get_settings
from core.db import session_scope
from core.demo_builders import DEMO_BUILDERS
from core.demo_data import generate
from core.models import Builder, utcnow
from core.security import decrypt_secret
from core.services import calendly_connection
from devtools.processes import free_port
from sandbox.calendly.identities import DEMO_OAUTH_IDENTITY, DEMO_OAUTH_REFRESH_TOKEN, sandbox_user_uri
from tests.servers import serve

OAUTH_DEMO = next(demo for demo in DEMO_BUILDERS if demo.token == DEMO_OAUTH_IDENTITY)


def _builder(session, email: str) -> Builder:
    return session.execute(select(Builder).where(Builder.email == email)).scalar_one()


def test_one_demo_builder_is_connected_through_oauth_the_others_by_token(engine):
    generate(engine, bookings=20, seed=3)
    key = get_settings().app_secret_key
    with session_scope(engine, read_only=True) as s:
        oauth = _builder(s, OAUTH_DEMO.email)
        assert (oauth.calendly_auth, oauth.calendly_status) == ("oauth", "connected")
        assert decrypt_secret(oauth.calendly_refresh_token_encrypted, key) == DEMO_OAUTH_REFRESH_TOKEN
        assert oauth.calendly_token_expires_at < utcnow()  # the first call must refresh
        assert DEMO_OAUTH_REFRESH_TOKEN not in oauth.calendly_refresh_token_encrypted  # stored encrypted
        others = [_builder(s, demo.email) for demo in DEMO_BUILDERS if demo is not OAUTH_DEMO]
        assert {(b.calendly_auth, b.calendly_status) for b in others} == {("token", "connected")}
        assert all(b.calendly_refresh_token_encrypted is None for b in others)


def test_the_first_call_refreshes_against_the_sandbox_and_a_new_run_stores_the_demo_token_again(
        engine, settings_env):
    from sandbox.calendly.standin import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = settings_env(calendly_api_base=base)
    generate(engine, bookings=1)
    with session_scope(engine, read_only=True) as s:
        builder_id = _builder(s, OAUTH_DEMO.email).id
    app = create_app(public_url=base, webhook_url=None, signing_key=settings.calendly_webhook_signing_key,
                     redirect_url=None)
    with serve(app, port):
        token = calendly_connection.access_token(engine, builder_id)
        me = requests.get(f"{base}/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["resource"]["uri"] == sandbox_user_uri(base, DEMO_OAUTH_IDENTITY)
        with session_scope(engine, read_only=True) as s:
            builder = s.get(Builder, builder_id)
            assert builder.calendly_token_expires_at > utcnow()
            rotated = decrypt_secret(builder.calendly_refresh_token_encrypted, settings.app_secret_key)
            assert rotated != DEMO_OAUTH_REFRESH_TOKEN  # single use: it rotated
            assert builder.calendly_status == "connected"

    generate(engine, bookings=1)  # the next `make run` (bookings kept): a fresh sandbox, the demo token again
    with session_scope(engine, read_only=True) as s:
        builder = s.get(Builder, builder_id)
        assert decrypt_secret(builder.calendly_refresh_token_encrypted,
                              settings.app_secret_key) == DEMO_OAUTH_REFRESH_TOKEN
        assert builder.calendly_token_expires_at < utcnow()
