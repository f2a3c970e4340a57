"""Our Calendly webhook subscriptions, against the sandbox Calendly over real HTTP (the `live`
system): created once, a 409 resolved by reusing ours, a disabled or missing one recreated by the
worker's check with the bookings made meanwhile reconciled into our database, deleted on request.

The live system's stand-in starts with an organization-scoped subscription on our URL (as `make
run` does); tests that need a clean account delete it first, as Calendly would after a 410.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.calendly import CalendlyAPIError, CalendlyClient
from core.calendly import subscriptions
from core.db import session_scope
from core.models import Booking, BookingHistory, Builder, WebhookEvent, utcnow
from core.services.integration_health import integration_health
from core.services.reconcile import reconcile_builder
from tests.live_system import BUILDER_TOKEN
from tests.webhook_helpers import future_slot


def _subs(live) -> list[dict]:
    return live.calendly_state()["subscriptions"]


def _ours(live) -> list[dict]:
    """The builder's own subscriptions on our URL (not the stand-in's organization-wide one)."""
    return [sub for sub in _subs(live)
            if sub["callback_url"] == f"{live.web}/api/webhooks/calendly" and sub["scope"] == "user"]


def _create_directly(live, events=subscriptions.EVENTS) -> dict:
    """A subscription of ours made without our code knowing (a create whose answer was lost)."""
    return _api(live).create_webhook_subscription(
        url=f"{live.web}/api/webhooks/calendly", events=list(events),
        organization=_builder(live).calendly_organization_uri, user=live.host_uri, scope="user",
        signing_key=live.settings.calendly_webhook_signing_key)


def _api(live) -> CalendlyClient:
    return CalendlyClient(BUILDER_TOKEN, live.calendly)


def _uuid(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[1]


def _drop_preregistered(live) -> None:
    for sub in _subs(live):
        _api(live).delete_webhook_subscription(sub["uri"])
    assert _subs(live) == []


def _disable(live, uri: str) -> None:
    answer = live.calendly_sandbox("POST", f"/webhook_subscriptions/{_uuid(uri)}/disable")
    assert answer.status_code == 200, answer.text


def _builder(live) -> Builder:
    with session_scope(live.engine, read_only=True) as session:
        builder = session.get(Builder, live.builder_id)
        session.expunge(builder)
        return builder


def _later(minutes: int = 16):
    """A `now` past SUBSCRIPTION_CHECK_MINUTES (15 by default) after the last check."""
    return utcnow() + timedelta(minutes=minutes)


def _book_at(live, slot: str, email: str) -> str:
    booking_id, url = live.start_booking(live.signed_in_client(email))
    live.pick_slot(url, slot)
    return booking_id


def _deliveries_for(live, booking_id: str) -> list[dict]:
    return [d for d in live.calendly_state()["deliveries"]
            if d["envelope"]["payload"].get("tracking", {}).get("utm_content") == booking_id]


def test_the_webhook_path_is_the_web_services_route(settings_env):
    from webhook_service.app import create_app
    assert create_app().url_path_for("calendly_webhook") == subscriptions.WEBHOOK_PATH


def test_ensure_creates_one_user_scoped_subscription_and_is_idempotent(live):
    _drop_preregistered(live)

    assert subscriptions.ensure_subscription(live.engine, live.builder_id) == "active"
    (sub,) = _ours(live)
    assert sub["scope"] == "user" and sub["user"] == live.host_uri and sub["state"] == "active"
    assert sorted(sub["events"]) == sorted(subscriptions.EVENTS)
    builder = _builder(live)
    assert (builder.calendly_subscription_uri, builder.calendly_subscription_state) == (sub["uri"], "active")
    assert builder.calendly_subscription_checked_at is not None

    assert subscriptions.ensure_subscription(live.engine, live.builder_id) == "active"  # a 409, ours reused
    assert _subs(live) == [sub]
    assert _builder(live).calendly_subscription_uri == sub["uri"]

    # It carries our signing key: a booking's invitee.created arrives and is accepted.
    booking_id = live.book()
    assert live.status(booking_id) == "PENDING_PAYMENT"
    assert [d["status_code"] for d in _deliveries_for(live, booking_id)] == [200]


def test_a_409_reuses_ours_made_by_a_create_whose_answer_was_lost(live):
    landed = _create_directly(live)

    assert subscriptions.ensure_subscription(live.engine, live.builder_id) == "active"

    assert _ours(live) == [landed]  # nothing created, nothing deleted
    assert _builder(live).calendly_subscription_uri == landed["uri"]


def test_a_409_with_ours_missing_an_event_replaces_it(live):
    partial = _create_directly(live, events=["invitee.created"])

    assert subscriptions.ensure_subscription(live.engine, live.builder_id) == "active"

    (new,) = _ours(live)
    assert new["uri"] != partial["uri"] and sorted(new["events"]) == sorted(subscriptions.EVENTS)


def test_a_409_with_our_subscription_disabled_replaces_it(live):
    _drop_preregistered(live)
    subscriptions.ensure_subscription(live.engine, live.builder_id)
    (old,) = _ours(live)
    _disable(live, old["uri"])

    assert subscriptions.ensure_subscription(live.engine, live.builder_id) == "active"

    (new,) = _ours(live)
    assert new["uri"] != old["uri"] and new["state"] == "active"
    assert _builder(live).calendly_subscription_uri == new["uri"]


def test_disabled_subscription_is_recreated_by_the_worker_and_the_missed_booking_reconciled(live):
    subscriptions.ensure_subscription(live.engine, live.builder_id)
    delivered = _book_at(live, future_slot(days=2, hour=10), "first@example.com")
    assert live.status(delivered) == "PENDING_PAYMENT"
    (old,) = _ours(live)

    _disable(live, old["uri"])  # Calendly gave up on us after 24 hours of failures
    missed = _book_at(live, future_slot(days=3, hour=11), "missed@example.com")
    assert _deliveries_for(live, missed) == []  # a disabled subscription gets nothing
    assert live.status(missed) == "PENDING_SCHEDULING"

    assert subscriptions.check_all(live.engine, now=_later()) == {"recreated:disabled": 1}

    (new,) = _ours(live)
    assert new["uri"] != old["uri"] and new["state"] == "active" and new["scope"] == "user"
    assert live.status(missed) == "PENDING_PAYMENT"  # reconciled into our database
    assert live.status(delivered) == "PENDING_PAYMENT"
    with session_scope(live.engine, read_only=True) as session:
        builder = session.get(Builder, live.builder_id)
        assert (builder.calendly_subscription_uri, builder.calendly_subscription_state) == (new["uri"], "active")
        assert builder.calendly_last_reconcile_at is not None
        booking = session.get(Booking, missed)
        assert booking.calendly_invitee_uri and booking.hold_expires_at
        # Applied as its webhook would have been, under the webhook's own dedupe key.
        rows = session.execute(select(WebhookEvent).where(WebhookEvent.booking_id == missed)).scalars().all()
        assert [(r.event_type, r.outcome, r.headers.get("user-agent")) for r in rows] == [
            ("invitee.created", "processed", "reconcile")]
        (health,) = integration_health(session, live.builder_id)
    assert health.subscription_state == "active" and health.last_reconcile_at is not None
    assert any(p.startswith("webhook subscription disabled — recreated at ") for p in health.problems), health.problems

    # The new subscription delivers: the next booking arrives by webhook.
    after = _book_at(live, future_slot(days=4, hour=12), "after@example.com")
    assert live.status(after) == "PENDING_PAYMENT"
    assert [d["subscription"] for d in _deliveries_for(live, after)] == [new["uri"]]

    # Checked again later, all is well: nothing recreated, nothing reconciled twice.
    assert subscriptions.check_all(live.engine, now=_later(40)) == {"active": 1}
    with session_scope(live.engine, read_only=True) as session:
        history = session.execute(select(BookingHistory.cause).where(BookingHistory.booking_id == missed)).scalars()
        assert list(history).count("invitee_created") == 1


def test_missing_subscription_is_recreated_and_the_gap_reconciled(live):
    _drop_preregistered(live)
    subscriptions.ensure_subscription(live.engine, live.builder_id)
    (old,) = _ours(live)
    _api(live).delete_webhook_subscription(old["uri"])  # as Calendly does after a 410
    missed = _book_at(live, future_slot(days=2, hour=14), "gap@example.com")
    assert live.status(missed) == "PENDING_SCHEDULING"

    # Not due yet: checked a moment ago by ensure_subscription.
    assert subscriptions.check_all(live.engine) == {}
    assert subscriptions.check_all(live.engine, now=_later()) == {"recreated:missing": 1}

    (new,) = _ours(live)
    assert new["uri"] != old["uri"]
    assert live.status(missed) == "PENDING_PAYMENT"


def test_a_cancellation_while_the_subscription_was_disabled_is_reconciled(live):
    subscriptions.ensure_subscription(live.engine, live.builder_id)
    booking_id, url = live.start_booking(live.signed_in_client("cancels@example.com"))
    answer = live.pick_slot(url, future_slot(days=5, hour=9))
    assert live.status(booking_id) == "PENDING_PAYMENT"
    (sub,) = _ours(live)
    _disable(live, sub["uri"])
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {"reason": "Plans changed"})
    assert live.status(booking_id) == "PENDING_PAYMENT"

    assert subscriptions.check_all(live.engine, now=_later()) == {"recreated:disabled": 1}
    assert live.status(booking_id) == "CANCELED"


def test_reconcile_builder_twice_changes_nothing_the_second_time(live):
    from tests.reliability_helpers import delivery
    delivery(live, calendly="off")
    missed = _book_at(live, future_slot(days=2, hour=15), "twice@example.com")
    since = utcnow() - timedelta(hours=1)

    first = reconcile_builder(live.engine, live.builder_id, since)
    second = reconcile_builder(live.engine, live.builder_id, since)

    assert first == {"created:processed": 1}
    assert second == {"created:duplicate": 1}
    assert live.status(missed) == "PENDING_PAYMENT"
    # Events that started before `since` are not asked about.
    assert reconcile_builder(live.engine, live.builder_id, utcnow() + timedelta(days=10)) == {}


def test_delete_removes_the_builders_own_subscription_and_leaves_a_shared_one(live):
    (shared,) = _subs(live)  # the stand-in's organization-wide one, on our URL
    subscriptions.ensure_subscription(live.engine, live.builder_id)
    (own,) = _ours(live)

    subscriptions.delete_subscription(live.engine, live.builder_id)

    assert _subs(live) == [shared]
    builder = _builder(live)
    assert (builder.calendly_subscription_uri, builder.calendly_subscription_state) == (None, None)
    subscriptions.delete_subscription(live.engine, live.builder_id)  # nothing left: no error
    with pytest.raises(CalendlyAPIError) as gone:
        _api(live).delete_webhook_subscription(own["uri"])
    assert gone.value.status == 404
    subscriptions._delete(_api(live), own["uri"])  # a 404 is "already gone"


def test_check_all_skips_builders_not_connected_and_not_due(live):
    with session_scope(live.engine) as session:
        session.add(Builder(name="Waiting Wanda", email="wanda@example.com", calendly_status="waiting"))
        session.add(Builder(name="Gone Gus", email="gus@example.com", calendly_status="disconnected",
                            calendly_user_uri=f"{live.calendly}/users/gus", calendly_status_reason="the refresh was refused"))
    subscriptions.ensure_subscription(live.engine, live.builder_id)
    assert subscriptions.check_all(live.engine) == {}  # Ada's was checked a moment ago
    assert subscriptions.check_all(live.engine, now=_later()) == {"active": 1}  # only Ada
    assert subscriptions.check_all(live.engine, now=_later()) == {}
    with session_scope(live.engine, read_only=True) as session:
        gus = session.execute(select(Builder).where(Builder.email == "gus@example.com")).scalar_one()
        assert (gus.calendly_status, gus.calendly_subscription_checked_at) == ("disconnected", None)


def test_a_builder_whose_refresh_is_refused_is_skipped_and_stays_disconnected(live):
    from core.security import encrypt_secret
    from core.config import get_settings
    key = get_settings().app_secret_key
    with session_scope(live.engine) as session:
        builder = session.get(Builder, live.builder_id)
        builder.calendly_auth = "oauth"
        builder.calendly_token_encrypted = encrypt_secret("expired-access-token", key)
        builder.calendly_refresh_token_encrypted = encrypt_secret("a-refresh-token-calendly-never-issued", key)
        builder.calendly_token_expires_at = utcnow() - timedelta(minutes=1)

    assert subscriptions.check_all(live.engine) == {"disconnected": 1}

    builder = _builder(live)
    assert builder.calendly_status == "disconnected"
    assert builder.calendly_subscription_state is None  # nothing was checked
    assert subscriptions.check_all(live.engine, now=_later()) == {}  # not connected: skipped


def test_a_check_that_fails_half_way_leaves_the_gap_owed(live):
    subscriptions.ensure_subscription(live.engine, live.builder_id)
    (sub,) = _ours(live)
    _disable(live, sub["uri"])
    missed = _book_at(live, future_slot(days=2, hour=16), "owed@example.com")
    # Calendly's scheduled events fail while the worker looks (after the subscription is remade).
    fault = live.calendly_sandbox("POST", "/faults", {"path_prefix": "/scheduled_events", "mode": "500", "count": 10})
    assert fault.status_code == 201, fault.text

    assert subscriptions.check_all(live.engine, now=_later()) == {"error": 1}
    assert _builder(live).calendly_subscription_state == "disabled"  # written down before repairing
    assert live.status(missed) == "PENDING_SCHEDULING"

    live.calendly_sandbox("DELETE", "/faults")
    assert subscriptions.check_all(live.engine, now=_later(40)) == {"recreated:disabled": 1}
    assert live.status(missed) == "PENDING_PAYMENT"


def test_the_worker_job_logs_a_summary(live, caplog):
    from core.worker import check_subscriptions
    _drop_preregistered(live)
    with session_scope(live.engine) as session:  # an earlier check found it missing and wrote that down
        session.get(Builder, live.builder_id).calendly_subscription_state = "missing"
    with caplog.at_level("WARNING", logger="worker"):
        assert check_subscriptions(live.engine) == {"recreated:missing": 1}
    assert "webhook subscriptions checked: {'recreated:missing': 1}" in caplog.text


def test_a_builder_who_never_had_a_subscription_gets_one_made_without_a_problem_shown(live):
    """Builders connected before we managed subscriptions (and the demo's): the worker's first check
    creates theirs; nothing was lost, so the health page has nothing to flag."""
    _drop_preregistered(live)
    assert _ours(live) == []
    assert subscriptions.check_all(live.engine) == {"created": 1}

    (made,) = _ours(live)
    builder = _builder(live)
    assert (builder.calendly_subscription_state, builder.calendly_subscription_uri) == ("active", made["uri"])
    with session_scope(live.engine, read_only=True) as session:
        assert subscriptions.last_recreation(session, live.builder_id) is None
        (health,) = [h for h in integration_health(session) if h.builder_id == live.builder_id]
    assert health.problems == []


def test_a_first_subscription_is_logged_as_news_not_as_a_warning(live, caplog):
    from core.worker import check_subscriptions
    _drop_preregistered(live)
    with caplog.at_level("INFO", logger="worker"):
        assert check_subscriptions(live.engine) == {"created": 1}
    (record,) = [r for r in caplog.records if r.name == "worker" and "subscriptions checked" in r.getMessage()]
    assert record.levelname == "INFO"
