"""Integration health per builder: the facts (status, token expiry, subscription, last webhook, last
reconcile) and only real problems in plain words; the last webhook read from webhook_events of the
builder's bookings (deliveries only, not what reconcile fed in); resyncing event types past the cache.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from core.calendly import subscriptions
from core.db import session_scope
from core.errors import DomainError, NotFound
from core.models import Builder, SessionType, SystemState, WebhookEvent, utcnow
from core.services import scheduling
from core.services.integration_health import integration_health, resync_event_types
from core.states import BookingStatus as S
from tests.factories import make_booking, make_builder, make_session_type

CONNECTED = {"calendly_status": "connected", "calendly_auth": "token", "calendly_subscription_state": "active"}


def _delivery(session, booking, *, when, user_agent="Calendly-Webhooks", outcome="processed", provider="calendly"):
    session.add(WebhookEvent(
        provider=provider, dedupe_key=f"{provider}:{booking.id}:{when.isoformat()}:{user_agent}",
        event_type="invitee.created", raw_body="{}", headers={"user-agent": user_agent},
        signature_valid=True, outcome=outcome, booking_id=booking.id, received_at=when))
    session.flush()


def _by_name(rows):
    return {row.builder_name: row for row in rows}


def test_each_builder_gets_its_facts_and_only_real_problems(session):
    now = utcnow()
    ada = make_builder(session, name="Ada Lovelace", calendly_status="connected", calendly_auth="oauth",
                       calendly_connected_at=now - timedelta(days=30), calendly_refresh_token_encrypted="x",
                       calendly_token_expires_at=now + timedelta(minutes=5),  # renewed on its own: fine
                       calendly_subscription_state="active", calendly_subscription_checked_at=now,
                       calendly_last_reconcile_at=now - timedelta(days=2))
    ada_booking = make_booking(session, S.PENDING_PAYMENT, session_type=make_session_type(session, ada))
    _delivery(session, ada_booking, when=now - timedelta(hours=1))
    _delivery(session, ada_booking, when=now - timedelta(minutes=5), user_agent="reconcile")  # not a delivery
    make_builder(session, name="Bob Gone", calendly_status="disconnected", calendly_auth="oauth",
                 calendly_status_reason="the refresh was refused")
    make_builder(session, name="Wanda Waits")  # waiting: never connected
    make_builder(session, name="Dora Disabled", **{**CONNECTED, "calendly_subscription_state": "disabled"})
    quinn = make_builder(session, name="Quinn Quiet", calendly_connected_at=now - timedelta(days=20), **CONNECTED)
    quinn_type = make_session_type(session, quinn)
    _delivery(session, make_booking(session, S.CONFIRMED, session_type=quinn_type,
                                    created_at=now - timedelta(days=5)), when=now - timedelta(days=3, hours=12))
    make_booking(session, S.PENDING_PAYMENT, session_type=quinn_type, created_at=now - timedelta(days=1))
    make_booking(session, S.PENDING_SCHEDULING, session_type=quinn_type, created_at=now - timedelta(hours=2))
    calm = make_builder(session, name="Calm Carl", calendly_connected_at=now - timedelta(days=20), **CONNECTED)
    make_booking(session, S.PENDING_SCHEDULING, session_type=make_session_type(session, calm))  # no slot: no news

    rows = _by_name(integration_health(session, now=now))

    assert list(rows) == sorted(rows)
    assert rows["Ada Lovelace"].problems == []
    assert rows["Ada Lovelace"].auth == "oauth" and rows["Ada Lovelace"].token_expires_at is not None
    assert rows["Ada Lovelace"].last_webhook_at == now - timedelta(hours=1)  # reconcile's row left out
    assert rows["Ada Lovelace"].last_reconcile_at == now - timedelta(days=2)
    assert rows["Bob Gone"].problems == [
        "Calendly disconnected: the refresh was refused — ask Bob to reconnect; their sessions cannot be booked "
        "until then"]
    assert rows["Wanda Waits"].problems == [
        "Calendly not connected yet — ask Wanda to connect it; their sessions cannot be booked until then"]
    assert rows["Wanda Waits"].status == "waiting" and rows["Wanda Waits"].token_expires_at is None
    assert rows["Dora Disabled"].problems == [
        "webhook subscription disabled by Calendly — the worker recreates it and catches up on missed bookings "
        "(checks every 15 min)"]
    assert rows["Quinn Quiet"].problems == [
        "no webhook for 3 days, though 1 booking got a Calendly slot since — check our webhook subscription in "
        "Calendly (the worker's reconcile keeps the bookings right meanwhile)"]
    assert rows["Calm Carl"].problems == []
    assert [row.builder_name for row in integration_health(session, quinn.id, now=now)] == ["Quinn Quiet"]


def test_a_recreated_subscription_is_told_for_a_day_in_the_viewers_zone(session):
    now = utcnow().replace(hour=15, minute=2, second=0, microsecond=0)
    ray = make_builder(session, name="Ray Repaired", **CONNECTED)
    session.add(SystemState(key=subscriptions.RECREATED_KEY.format(ray.id), value=json.dumps({
        "was": "disabled", "at": (now - timedelta(minutes=30)).isoformat(),
        "since": (now - timedelta(hours=2)).isoformat(), "counts": {"created:processed": 1}})))
    session.flush()

    (row,) = integration_health(session, ray.id, now=now)
    assert row.problems == ["webhook subscription disabled — recreated at 14:32 UTC; bookings since 13:02 UTC "
                            "were caught up from Calendly"]
    (tokyo,) = integration_health(session, ray.id, zone="Asia/Tokyo", now=now)  # UTC+9: the next day there
    tokyo_day = f"{now - timedelta(minutes=30) + timedelta(hours=9):%d %b}".lstrip("0")  # past midnight there
    assert tokyo.problems[0].startswith(f"webhook subscription disabled — recreated at {tokyo_day} 23:32 Asia/Tokyo;")
    (next_day,) = integration_health(session, ray.id, now=now + timedelta(hours=12))
    assert "recreated at " + f"{now - timedelta(minutes=30):%d %b}".lstrip("0") + " 14:32 UTC" in next_day.problems[0]
    (later,) = integration_health(session, ray.id, now=now + timedelta(days=2))
    assert later.problems == []


def test_last_webhook_counts_deliveries_of_the_builders_own_bookings_in_the_window(session):
    now = utcnow()
    mine, other = make_builder(session, **CONNECTED), make_builder(session, **CONNECTED)
    my_booking = make_booking(session, session_type=make_session_type(session, mine))
    other_booking = make_booking(session, session_type=make_session_type(session, other))
    _delivery(session, my_booking, when=now - timedelta(days=1))
    _delivery(session, my_booking, when=now - timedelta(hours=3), outcome="failed")  # it arrived
    _delivery(session, my_booking, when=now - timedelta(hours=1), provider="stripe")  # not Calendly's
    _delivery(session, other_booking, when=now - timedelta(minutes=1))
    old = make_builder(session, **CONNECTED)
    _delivery(session, make_booking(session, session_type=make_session_type(session, old)),
              when=now - subscriptions.DELIVERY_LOOKBACK - timedelta(hours=1))

    times = subscriptions.last_webhook_times(session, now=now)

    assert times == {mine.id: now - timedelta(hours=3), other.id: now - timedelta(minutes=1)}
    assert subscriptions.last_webhook_times(session, [mine.id], now=now) == {mine.id: now - timedelta(hours=3)}


@pytest.mark.postgres_only
@pytest.mark.parametrize("one_builder", [False, True])
def test_last_webhook_query_has_an_index_path_on_both_tables(session, one_builder):
    """Every builder: the recent range of ix_webhook_events_outcome_received, each row joined to its
    booking by primary key. One builder: that, or their bookings (ix_bookings_builder_*) joined to
    ix_webhook_events_booking_id, whichever the planner finds cheaper. With sequential scans off,
    a table without a usable index would still show one."""
    from sqlalchemy.dialects import postgresql

    captured = []
    real_execute = session.execute
    session.execute = lambda statement, *a, **k: captured.append(statement) or real_execute(statement, *a, **k)
    try:
        subscriptions.last_webhook_times(session, [1] if one_builder else None)
    finally:
        session.execute = real_execute
    compiled = captured[0].compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(session.execute(text(f"EXPLAIN {compiled}")).scalars())
    assert "Seq Scan" not in plan, plan


def test_resync_reads_event_types_past_the_cache_and_updates_priced_names(live):
    with session_scope(live.engine) as session:
        session.get(SessionType, live.session_type_ids[0]).name = "An old name"
    scheduling.EVENT_TYPES.get(str(live.builder_id), lambda: [])  # a stale (empty) list in the cache

    count = resync_event_types(live.engine, live.builder_id, actor="admin@example.com")

    _builder, offered = scheduling.offered_session_types(live.engine, live.builder_id)
    assert count == len(offered) >= 3
    with session_scope(live.engine, read_only=True) as session:
        row = session.get(SessionType, live.session_type_ids[0])
        assert row.name == next(item.name for item in offered if item.session_type_id == row.id) != "An old name"


def test_resync_refuses_a_builder_without_calendly_with_a_clear_message(live):
    with session_scope(live.engine) as session:
        waiting = Builder(name="Wanda Waits", email="wanda@example.com")
        session.add(waiting)
        session.flush()
        waiting_id = waiting.id
    with pytest.raises(DomainError, match="Wanda Waits's Calendly is not connected: connect it first"):
        resync_event_types(live.engine, waiting_id, actor="admin@example.com")
    with pytest.raises(NotFound):
        resync_event_types(live.engine, 9999, actor="admin@example.com")
