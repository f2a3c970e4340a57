"""Keeping a builder's OAuth token fresh: refreshed before it expires, once on a 401, never twice
for one expiry even when two processes (two engines, two threads) ask at the same moment, and a
refused refresh (a reused refresh token) disconnects the builder cleanly: their session types are
withdrawn and the builder and admins are told. Both database engines; real HTTP to the fake token
endpoint (tests/calendly_oauth_fake.py).
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.calendly import CalendlyAPIError, CalendlyError
from core.calendly.oauth import TokenGrant
from core.db import make_engine, session_scope
from core.models import Builder, Notification, OutboxEntry, SessionType, utcnow
from core.providers import calendly_for
from core.security import decrypt_secret
from core.services import catalog, people, scheduling
from core.services.calendly_connection import CalendlyDisconnected, _store_grant, access_token
from core.states import OutboxKind
from tests.calendly_oauth_fake import CLIENT_ID, CLIENT_SECRET, FakeCalendly, create_app
from tests.servers import serve


@pytest.fixture
def fake(settings_env):
    calendly = FakeCalendly()
    with serve(create_app(calendly)) as base:
        calendly.base = base
        settings_env(calendly_auth_base=base, calendly_api_base=base, calendly_client_id=CLIENT_ID,
                     calendly_client_secret=CLIENT_SECRET)
        scheduling.EVENT_TYPES.clear()
        yield calendly
    scheduling.EVENT_TYPES.clear()


def connected(engine, fake: FakeCalendly, *, expires_in: timedelta) -> tuple[int, str, str]:
    """A builder connected through OAuth whose access token expires in `expires_in`, with a priced
    session type and an admin account; (builder id, access token, refresh token)."""
    answer = fake.grant()
    grant = TokenGrant(answer["access_token"], answer["refresh_token"], utcnow() + expires_in, fake.owner,
                       fake.organization)
    with session_scope(engine) as session:
        builder = people.add_builder(session, name="Ada Lovelace", email="ada@example.test")
        _store_grant(session, builder.id, grant)
        catalog.set_price(session, builder_id=builder.id, amount_cents=4900, currency="USD",
                          event_type={"uri": f"{fake.base}/event_types/et-1", "name": "Pairing", "duration": 60})
        people.add_user(session, email="root@example.test", password="password-123", role="admin", builder_id=None)
        return builder.id, grant.access_token, grant.refresh_token


def stored_tokens(engine, builder_id: int) -> tuple[str | None, str | None]:
    from core.config import get_settings
    key = get_settings().app_secret_key
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        return tuple(decrypt_secret(value, key) if value else None
                     for value in (builder.calendly_token_encrypted, builder.calendly_refresh_token_encrypted))


def test_a_fresh_token_is_used_as_is(fake, engine):
    ada, access, _refresh = connected(engine, fake, expires_in=timedelta(hours=2))
    assert access_token(engine, ada) == access
    assert fake.refreshes == 0


def test_a_token_about_to_expire_is_refreshed_and_the_new_pair_stored(fake, engine):
    ada, old_access, old_refresh = connected(engine, fake, expires_in=timedelta(minutes=4))

    new_access = access_token(engine, ada)

    assert fake.refreshes == 1 and new_access != old_access
    assert fake.token_requests[-1] == {"grant_type": "refresh_token", "refresh_token": old_refresh,
                                       "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    access, refresh = stored_tokens(engine, ada)
    assert access == new_access and refresh not in (None, old_refresh) and fake.refresh_tokens[refresh] is False
    with session_scope(engine, read_only=True) as session:
        assert session.get(Builder, ada).calendly_token_expires_at > utcnow() + timedelta(minutes=119)
    assert access_token(engine, ada) == new_access and fake.refreshes == 1  # fresh now


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_refreshing_at_once_spend_the_refresh_token_once_and_all_succeed(fake, engine, db_url, processes):
    ada, _access, _refresh = connected(engine, fake, expires_in=timedelta(seconds=-1))
    fake.refresh_delay = 0.5  # every process reads the expired token before the first refresh ends
    engines = [make_engine(db_url) for _ in range(processes)]  # one pool each, as separate processes have
    start = threading.Barrier(processes)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def process(own_engine):
        start.wait()
        try:
            tokens.append(access_token(own_engine, ada))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=process, args=(own,)) for own in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for own in engines:
        own.dispose()

    assert errors == [] and len(tokens) == processes
    assert fake.refreshes == 1 and len(set(tokens)) == 1
    assert stored_tokens(engine, ada)[0] == tokens[0]
    with session_scope(engine, read_only=True) as session:
        assert session.get(Builder, ada).calendly_status == "connected"


def test_a_401_refreshes_once_and_retries_once(fake, engine):
    ada, old_access, _refresh = connected(engine, fake, expires_in=timedelta(hours=1))
    fake.expire_access_tokens()  # revoked or expired early at Calendly: our clock still says valid
    with session_scope(engine, read_only=True) as session:
        client = calendly_for(session.get(Builder, ada))

    assert client.get_current_user()["uri"] == fake.owner

    assert fake.refreshes == 1
    calls = [call.split(" ")[1] for call in fake.api_calls]
    assert calls[0] == old_access and calls[1] == stored_tokens(engine, ada)[0] and len(calls) == 2


def test_a_second_401_after_the_refresh_is_an_error_not_a_loop(fake, engine):
    ada, _access, _refresh = connected(engine, fake, expires_in=timedelta(hours=1))
    fake.expire_access_tokens()
    original_grant = fake.grant

    def dead_grant():  # Calendly keeps refusing even the new token
        answer = original_grant()
        fake.access_tokens[answer["access_token"]] = False
        return answer

    fake.grant = dead_grant
    with session_scope(engine, read_only=True) as session:
        client = calendly_for(session.get(Builder, ada))
    with pytest.raises(CalendlyAPIError) as error:
        client.get_current_user()
    assert error.value.status == 401 and fake.refreshes == 1 and len(fake.api_calls) == 2


def test_two_clients_refused_with_the_same_token_refresh_once(fake, engine):
    ada, _access, _refresh = connected(engine, fake, expires_in=timedelta(hours=1))
    with session_scope(engine, read_only=True) as session:
        first, second = calendly_for(session.get(Builder, ada)), calendly_for(session.get(Builder, ada))
    first.get_current_user(), second.get_current_user()  # both hold the first token now
    fake.expire_access_tokens()
    first.get_current_user()
    second.get_current_user()  # its refused token was already replaced: no second refresh
    assert fake.refreshes == 1


def test_a_reused_refresh_token_disconnects_the_builder_and_withdraws_their_sessions(fake, engine):
    ada, _access, refresh = connected(engine, fake, expires_in=timedelta(hours=2))
    _builder, offered = scheduling.offered_session_types(engine, ada)  # cached while connected
    assert [item.bookable for item in offered] == [True]
    with session_scope(engine) as session:  # two hours later
        session.get(Builder, ada).calendly_token_expires_at = utcnow() - timedelta(seconds=1)
    fake.refresh_tokens[refresh] = True  # spent elsewhere (e.g. a copy of the database refreshed it)

    with pytest.raises(CalendlyDisconnected) as error:
        access_token(engine, ada)
    assert isinstance(error.value, CalendlyError)  # callers that cope with Calendly being away cope

    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, ada)
        assert builder.calendly_status == "disconnected" and "connect Calendly again" in builder.calendly_status_reason
        assert (builder.calendly_token_encrypted, builder.calendly_refresh_token_encrypted) == (None, None)
        told = session.execute(select(Notification).where(Notification.kind == "calendly_disconnected")).scalars().all()
        assert sorted(n.to_email for n in told) == ["ada@example.test", "root@example.test"]
        assert all("cannot be booked" in n.body and refresh not in n.body for n in told)
        assert session.execute(select(SessionType.active)).scalar_one() is True  # prices kept for the reconnect
        card = catalog.builder_cards(session).cards[0]
        assert card.prices == []  # the home page offers nothing of theirs
    with pytest.raises(CalendlyDisconnected):  # no second refresh attempt, no second mail
        access_token(engine, ada)
    assert fake.refreshes == 0

    from webhook_service.app import create_app as create_web
    with TestClient(create_web(), headers={"accept": "text/html"}) as web:
        profile = web.get(f"/profile/{ada}")
        book = web.get("/book/et-1")
    for page in (profile, book):
        assert page.status_code == 503 and "cannot be booked at the moment" in page.text
        assert "Traceback" not in page.text
    with session_scope(engine, read_only=True) as session:
        kinds = set(session.execute(select(Notification.kind)).scalars())
        queued = set(session.execute(select(OutboxEntry.kind)).scalars())
    assert kinds == {"calendly_disconnected"} and queued == {OutboxKind.NOTIFY}


def test_a_disconnected_builders_client_fails_as_calendly_errors_do(fake, engine):
    ada, _access, refresh = connected(engine, fake, expires_in=timedelta(seconds=-1))
    fake.refresh_tokens[refresh] = True
    with session_scope(engine, read_only=True) as session:
        client = calendly_for(session.get(Builder, ada))
    with pytest.raises(CalendlyError):
        client.list_event_types(fake.owner)
    with session_scope(engine, read_only=True) as session:
        later = calendly_for(session.get(Builder, ada))  # built for a disconnected builder: refuses too
    with pytest.raises(CalendlyDisconnected, match="not connected to Calendly"):
        later.get_current_user()
