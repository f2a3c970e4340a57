"""How each builder's Calendly integration stands, for the dashboard: connected or not and why, how
it signs in, when its access token runs out, our webhook subscription as last checked, the last
webhook that arrived and the last reconcile, and what is wrong in plain words (only real problems:
an access token about to expire is renewed on its own, so it is not one).

Resyncing a builder's event types reads them from Calendly again, past the five-minute cache.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.calendly.subscriptions import (
    ACTIVE, DELIVERY_LOOKBACK, DISABLED, MISSING, last_recreation, last_webhook_times,
)
from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError, NotFound
from core.models import Booking, Builder, SessionType, utcnow
from core.timezones import zone_info

log = logging.getLogger(__name__)

# No webhook for this long while bookings were being started: deliveries are probably not arriving.
QUIET = timedelta(days=3)
# A repaired subscription is mentioned for this long after it was recreated.
RECREATION_NEWS = timedelta(days=1)


@dataclass
class IntegrationHealth:
    builder_id: int
    builder_name: str
    auth: str | None  # "token" | "oauth" | None
    status: str  # waiting | connected | disconnected
    status_reason: str | None
    connected_at: datetime | None
    token_expires_at: datetime | None
    subscription_state: str | None  # active | disabled | missing | None (not checked yet)
    subscription_checked_at: datetime | None
    last_webhook_at: datetime | None  # within the last 4 days (subscriptions.DELIVERY_LOOKBACK), else None
    last_reconcile_at: datetime | None
    problems: list[str] = field(default_factory=list)


def _first_name(name: str) -> str:
    return (name or "").split()[0] if (name or "").split() else "the builder"


def _clock(moment: datetime, zone: str, now: datetime) -> str:
    """"10:02 UTC" today, "3 Mar 10:02 UTC" another day: short enough for a warning line."""
    local = moment.astimezone(zone_info(zone))
    today = now.astimezone(zone_info(zone)).date()
    shown = f"{local:%H:%M}" if local.date() == today else f"{local:%d %b %H:%M}".lstrip("0")
    return f"{shown} {zone_info(zone).key}"


def _days(delta: timedelta) -> str:
    days = delta.days
    return f"{days} day{'s' if days != 1 else ''}"


def _problems(session: Session, builder: Builder, last_webhook: datetime | None, now: datetime,
              zone: str) -> list[str]:
    who = _first_name(builder.name)
    if builder.calendly_status == "disconnected":
        why = builder.calendly_status_reason or "no reason was recorded"
        return [f"Calendly disconnected: {why} — ask {who} to reconnect; their sessions cannot be booked until then"]
    if builder.calendly_status != "connected":
        return [f"Calendly not connected yet — ask {who} to connect it; their sessions cannot be booked until then"]
    problems = []
    if builder.calendly_auth == "oauth" and not builder.calendly_refresh_token_encrypted:
        problems.append(f"no refresh token is stored, so the access token cannot be renewed — ask {who} to reconnect")
    state = builder.calendly_subscription_state
    minutes = get_settings().subscription_check_minutes
    if state in (DISABLED, MISSING):
        problems.append(f"webhook subscription {'disabled by Calendly' if state == DISABLED else 'missing'} — "
                        f"the worker recreates it and catches up on missed bookings (checks every {minutes} min)")
    recreated = last_recreation(session, builder.id)
    if state == ACTIVE and recreated is not None and now - recreated.at < RECREATION_NEWS:
        problems.append(f"webhook subscription {recreated.was} — recreated at {_clock(recreated.at, zone, now)}; "
                        f"bookings since {_clock(recreated.since, zone, now)} were caught up from Calendly")
    quiet_since = last_webhook or builder.calendly_connected_at
    if quiet_since is not None and now - quiet_since >= QUIET:
        # Bookings that got a Calendly slot meanwhile: Calendly had something to tell us.
        scheduled = session.execute(select(func.count()).select_from(Booking).where(
            Booking.builder_id == builder.id, Booking.created_at > quiet_since,
            Booking.calendly_invitee_uri.is_not(None))).scalar_one()
        if scheduled:
            gap = "no webhook" + (f" for {_days(now - last_webhook)}" if last_webhook
                                  else f" in {_days(DELIVERY_LOOKBACK)}")
            problems.append(f"{gap}, though {scheduled} booking{'s' if scheduled != 1 else ''} got a Calendly slot "
                            "since — check our webhook subscription in Calendly (the worker's reconcile keeps "
                            "the bookings right meanwhile)")
    return problems


def integration_health(session: Session, builder_id: int | None = None, *, zone: str = "UTC",
                       now: datetime | None = None) -> list[IntegrationHealth]:
    """Every builder's integration (by name), or one builder's. Times in problems are in `zone`."""
    now = now or utcnow()
    query = select(Builder).order_by(Builder.name, Builder.id)
    if builder_id is not None:
        query = query.where(Builder.id == builder_id)
    builders = list(session.execute(query).scalars())
    last_webhooks = last_webhook_times(session, [b.id for b in builders] if builder_id is not None else None,
                                       now=now)
    rows = []
    for builder in builders:
        last_webhook = last_webhooks.get(builder.id)
        rows.append(IntegrationHealth(
            builder_id=builder.id, builder_name=builder.name, auth=builder.calendly_auth,
            status=builder.calendly_status, status_reason=builder.calendly_status_reason,
            connected_at=builder.calendly_connected_at,
            token_expires_at=builder.calendly_token_expires_at if builder.calendly_auth == "oauth" else None,
            subscription_state=builder.calendly_subscription_state,
            subscription_checked_at=builder.calendly_subscription_checked_at,
            last_webhook_at=last_webhook, last_reconcile_at=builder.calendly_last_reconcile_at,
            problems=_problems(session, builder, last_webhook, now, zone)))
    return rows


def resync_event_types(engine: Engine, builder_id: int, *, actor: str) -> int:
    """Read the builder's event types from Calendly again (past the cache) and bring the names and
    durations of the priced ones up to date. Returns how many event types Calendly listed."""
    from core.services import scheduling

    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        if builder is None:
            raise NotFound(f"there is no builder {builder_id}")
        if builder.calendly_status != "connected":
            raise DomainError(f"{builder.name}'s Calendly is not connected: connect it first")
    scheduling.EVENT_TYPES.invalidate(str(builder_id))
    _builder, offered = scheduling.offered_session_types(engine, builder_id)
    by_uri = {item.uri: item for item in offered}
    renamed = 0
    with session_scope(engine) as session:
        for row in session.execute(select(SessionType).where(SessionType.builder_id == builder_id)).scalars():
            item = by_uri.get(row.calendly_event_type_uri)
            if item is not None and (row.name, row.duration_minutes) != (item.name, item.duration):
                row.name, row.duration_minutes = item.name, item.duration
                renamed += 1
    log.info("event types of builder %s resynced by %s: %d listed, %d priced ones updated",
             builder_id, actor, len(offered), renamed)
    return len(offered)


__all__ = ["IntegrationHealth", "integration_health", "resync_event_types"]
