"""Our Calendly webhook subscription for each connected builder: made on connect, checked by the
worker, recreated when Calendly disabled or lost it, and the bookings made meanwhile reconciled.

Calendly disables a subscription after 24 hours of failed deliveries and deletes it at once on a
410, and tells nobody. So the worker (`check_all`, every SUBSCRIPTION_CHECK_MINUTES) lists each
connected builder's subscriptions; a missing or disabled one is recreated, then that builder's
bookings since the last delivery we know arrived are read back from Calendly
(`reconcile.reconcile_builder`). The gap is written down (`calendly_subscription_state` disabled or
missing) before anything is repaired, so a check that fails half way leaves it owed to the next one.

Ours is a subscription on our callback URL (PUBLIC_BASE_URL + WEBHOOK_PATH) seen with the builder's
own token. We create user-scoped ones: every Calendly account may (organization scope needs an
owner or admin), and they bring exactly the builder's own bookings. An organization-scoped one on
our URL (the sandbox pre-registers one) is used while it is active, but is not deleted when one
builder disconnects: it serves the whole organization.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.orm import Session

from core.calendly.client import CalendlyAPIError, CalendlyClient, CalendlyError
from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError, NotFound
from core.models import Booking, Builder, SystemState, WebhookEvent, utcnow
from core.providers import calendly_for
from core.services.booking_service import CALENDLY_EVENTS
from core.states import WebhookOutcome as O

log = logging.getLogger(__name__)

EVENTS = tuple(CALENDLY_EVENTS)  # the events our webhook handles
WEBHOOK_PATH = "/api/webhooks/calendly"  # webhook_service/routes/webhooks.py (a test keeps them equal)
ACTIVE, DISABLED, MISSING = "active", "disabled", "missing"
CONNECTED = "connected"
# A reconcile starts this long before the last delivery we know arrived: deliveries come in any
# order, so one that arrived does not prove the ones just before it did.
OVERLAP = timedelta(minutes=10)
# The longest gap a reconcile reaches back over. Only sessions that start after it can still change
# anything (Calendly lists events by start time).
LOOKBACK = timedelta(days=14)
# How far back the last delivery is looked for: its cost is the deliveries in this window (all
# builders'), so it is kept just past the health page's "no webhook for 3 days". A delivery older
# than this is not found; a reconcile then starts earlier, never later.
DELIVERY_LOOKBACK = timedelta(days=4)
# Rows that are deliveries which arrived (refused and unusable ones never name a booking).
DELIVERED = (O.RECEIVED, O.PROCESSED, O.IGNORED, O.UNMATCHED, O.STRAY, O.FAILED)
RECONCILE_USER_AGENT = "reconcile"  # reconcile.RECONCILE_HEADERS: rows it fed in are not deliveries
RECREATED_KEY = "calendly.subscription_recreated.{}"


def callback_url() -> str:
    return get_settings().public_base_url + WEBHOOK_PATH


@dataclass(frozen=True)
class _Account:
    """What the API needs to see a builder's subscriptions: their client and Calendly URIs."""

    client: CalendlyClient
    user_uri: str
    organization_uri: str


def _account(engine: Engine, builder_id: int, *, connected: bool = True) -> _Account:
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        if builder is None:
            raise NotFound(f"there is no builder {builder_id}")
        if not builder.calendly_user_uri or (connected and builder.calendly_status != CONNECTED):
            raise DomainError(f"{builder.name} has no Calendly connection")
        client = calendly_for(builder)
        user_uri, organization_uri = builder.calendly_user_uri, builder.calendly_organization_uri
    if not organization_uri:  # a builder added before their organization was kept
        organization_uri = client.get_current_user().get("current_organization") or ""
        if not organization_uri:
            raise CalendlyError("Calendly did not say which organization this account belongs to")
    return _Account(client, user_uri, organization_uri)


# ---------------------------------------------------------------- reading Calendly
def _ours(account: _Account) -> list[dict]:
    """Subscriptions on our callback URL that the builder's token can see (user-scoped first)."""
    found: dict[str, dict] = {}
    for scope, user in (("user", account.user_uri), ("organization", None)):
        try:
            listed = account.client.list_webhook_subscriptions(
                organization=account.organization_uri, scope=scope, user=user)
        except CalendlyAPIError as error:
            if scope == "organization" and error.status == 403:  # not an admin: none of theirs to see
                continue
            raise
        for sub in listed:
            if sub.get("callback_url") == callback_url() and isinstance(sub.get("uri"), str):
                found.setdefault(sub["uri"], sub)
    return list(found.values())


def _usable(sub: dict) -> bool:
    """Active and carrying every event we handle (more is fine: unknown events are answered 2xx)."""
    return sub.get("state") == ACTIVE and set(EVENTS) <= set(sub.get("events") or ())


def _create(account: _Account) -> dict:
    return account.client.create_webhook_subscription(
        url=callback_url(), events=list(EVENTS), organization=account.organization_uri,
        user=account.user_uri, scope="user", signing_key=get_settings().calendly_webhook_signing_key)


def _delete(client: CalendlyClient, uri: str) -> None:
    try:
        client.delete_webhook_subscription(uri)
    except CalendlyAPIError as error:
        if error.status != 404:  # already gone is what we wanted
            raise


def _make_active(account: _Account) -> dict:
    """Create our subscription; on a 409 (our URL already has one) reuse ours if it is usable,
    else delete it and create it again. Twice at most: another process may be doing the same."""
    for _attempt in range(2):
        try:
            return _create(account)
        except CalendlyAPIError as error:
            if error.status != 409:
                raise
        ours = _ours(account)
        usable = [sub for sub in ours if _usable(sub)]
        if usable:
            return usable[0]
        if not ours:
            raise DomainError("Calendly says our webhook URL already has a subscription, but this builder's "
                              "account cannot see it: it belongs to another Calendly account, which must delete it")
        for sub in ours:
            _delete(account.client, sub["uri"])
    raise CalendlyError("our webhook subscription could not be made: Calendly kept answering 409")


# ---------------------------------------------------------------- what we keep
def _store(engine: Engine, builder_id: int, *, state: str | None, uri: str | None = None, keep_uri: bool = False,
           now: datetime | None = None) -> None:
    with session_scope(engine) as session:
        builder = session.get(Builder, builder_id)
        if builder is None:
            return
        builder.calendly_subscription_state = state
        if not keep_uri:
            builder.calendly_subscription_uri = uri
        builder.calendly_subscription_checked_at = now or utcnow()


def _note_recreated(engine: Engine, builder_id: int, *, was: str, since: datetime, counts: dict) -> None:
    """Remember the last repair for the health page ("disabled — recreated at 10:02")."""
    value = json.dumps({"was": was, "at": utcnow().isoformat(), "since": since.isoformat(), "counts": counts})
    key = RECREATED_KEY.format(builder_id)
    with session_scope(engine) as session:
        row = session.get(SystemState, key)
        if row is None:
            session.add(SystemState(key=key, value=value))
        else:
            row.value = value


@dataclass(frozen=True)
class Recreation:
    was: str  # disabled | missing
    at: datetime
    since: datetime  # the reconcile read Calendly's bookings from then on


def last_recreation(session: Session, builder_id: int) -> Recreation | None:
    row = session.get(SystemState, RECREATED_KEY.format(builder_id))
    if row is None:
        return None
    try:
        data = json.loads(row.value)
        return Recreation(data["was"], datetime.fromisoformat(data["at"]), datetime.fromisoformat(data["since"]))
    except (ValueError, KeyError, TypeError):
        return None


def last_webhook_times(session: Session, builder_ids: list[int] | None = None, *, now: datetime | None = None
                       ) -> dict[int, datetime]:
    """When a Calendly delivery about each builder's bookings last arrived, within DELIVERY_LOOKBACK.

    The window's range of ix_webhook_events_outcome_received (one range per delivered outcome), each
    row's builder read from its booking by primary key (a subquery per row: a join lets PostgreSQL
    hash every booking instead), grouped by builder. Its cost grows with the deliveries in the
    window, not with the bookings kept: at a million bookings over a year (22k deliveries in four
    days) about 100 ms on PostgreSQL on a busy 2-core machine, against 200-600 ms for the join.
    Rows that reconcile fed in are not deliveries and are left out.
    """
    cutoff = (now or utcnow()) - DELIVERY_LOOKBACK
    user_agent = func.coalesce(WebhookEvent.headers["user-agent"].as_string(), "")
    builder_of = select(Booking.builder_id).where(Booking.id == WebhookEvent.booking_id).scalar_subquery()
    deliveries = (select(builder_of.label("builder_id"), WebhookEvent.received_at)
                  .where(WebhookEvent.outcome.in_([str(o) for o in DELIVERED]), WebhookEvent.received_at >= cutoff,
                         WebhookEvent.provider == "calendly", WebhookEvent.booking_id.is_not(None),
                         user_agent != RECONCILE_USER_AGENT)
                  .subquery())
    # Filtering on the subquery's builder would evaluate it twice per row: one row per builder
    # comes back, so the builders asked for are picked here.
    query = select(deliveries.c.builder_id, func.max(deliveries.c.received_at)).group_by(deliveries.c.builder_id)
    wanted = None if builder_ids is None else set(builder_ids)
    return {builder_id: received for builder_id, received in session.execute(query).all()
            if builder_id is not None and (wanted is None or builder_id in wanted)}


def gap_start(engine: Engine, builder_id: int, *, now: datetime | None = None) -> datetime:
    """Where a reconcile of this builder must start: the last delivery that arrived or the last
    reconcile (whichever is later; the connection's start if neither), less OVERLAP, and no further
    back than LOOKBACK."""
    now = now or utcnow()
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        marks = [mark for mark in (last_webhook_times(session, [builder_id], now=now).get(builder_id),
                                   builder.calendly_last_reconcile_at) if mark is not None]
        known_good = max(marks) if marks else (builder.calendly_connected_at or now - LOOKBACK)
    return max(known_good - OVERLAP, now - LOOKBACK)


# ---------------------------------------------------------------- the operations
def ensure_subscription(engine: Engine, builder_id: int) -> str:
    """Make sure the builder has our active subscription (created, or found after a 409 and reused
    or replaced); store it on the builder. Returns "active"."""
    sub = _make_active(_account(engine, builder_id))
    _store(engine, builder_id, state=ACTIVE, uri=sub["uri"])
    log.info("Calendly webhook subscription of builder %s is active: %s", builder_id, sub["uri"])
    return ACTIVE


def delete_subscription(engine: Engine, builder_id: int) -> None:
    """Delete the builder's own (user-scoped) subscriptions on our URL; 404 means already gone.
    An organization-scoped one serves others too and stays. The builder's record is cleared."""
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        if builder is None:
            raise NotFound(f"there is no builder {builder_id}")
        user_uri = builder.calendly_user_uri
    account = _account(engine, builder_id, connected=False)  # a disconnect calls it while the token works
    for sub in _ours(account):
        if sub.get("scope") == "user" and sub.get("user") == user_uri:
            _delete(account.client, sub["uri"])
    _store(engine, builder_id, state=None, uri=None)


def check_builder(engine: Engine, builder_id: int, *, now: datetime | None = None) -> str:
    """One builder's check: "active" when all is well; a missing or disabled subscription is
    recreated and the bookings since the last known delivery reconciled ("recreated:disabled").
    A gap written down by an earlier check that failed half way is closed too."""
    from core.services.reconcile import reconcile_builder  # reconcile reads Calendly through providers too

    account = _account(engine, builder_id)
    ours = _ours(account)
    usable = [sub for sub in ours if _usable(sub)]
    seen = ACTIVE if usable else (DISABLED if ours else MISSING)
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        stored, stored_uri = builder.calendly_subscription_state, builder.calendly_subscription_uri
    if seen == MISSING and stored is None and stored_uri is None:
        # Never set up (a builder connected before we managed subscriptions, or the demo): the first
        # one is made, and nothing was lost that a reconcile should close, nor a problem to show.
        sub = _make_active(account)
        _store(engine, builder_id, state=ACTIVE, uri=sub["uri"], now=now)
        log.info("Calendly webhook subscription of builder %s created: %s", builder_id, sub["uri"])
        return "created"
    owed = stored if stored in (DISABLED, MISSING) else None
    if seen == ACTIVE and owed is None:
        _store(engine, builder_id, state=ACTIVE, uri=usable[0]["uri"], now=now)
        return ACTIVE
    was = owed or seen
    if seen != ACTIVE:
        _store(engine, builder_id, state=seen, keep_uri=True, now=now)  # owed, whatever happens next
        log.warning("Calendly webhook subscription of builder %s is %s: recreating it", builder_id, seen)
        for sub in ours:  # a disabled one must be deleted before it can be made again
            _delete(account.client, sub["uri"])
        sub = _make_active(account)
    else:
        sub = usable[0]
    since = gap_start(engine, builder_id, now=now)
    counts = reconcile_builder(engine, builder_id, since)
    _store(engine, builder_id, state=ACTIVE, uri=sub["uri"], now=now)
    _note_recreated(engine, builder_id, was=was, since=since, counts=counts)
    log.info("Calendly webhook subscription of builder %s was %s: now %s; reconciled since %s: %s",
             builder_id, was, sub["uri"], since.isoformat(), counts)
    return f"recreated:{was}"


def _claim(engine: Engine, builder_id: int, due_before: datetime, now: datetime) -> bool:
    """Take this builder's check (one worker at a time): stamp checked_at if it is still due."""
    with session_scope(engine) as session:
        result = session.execute(
            update(Builder).where(Builder.id == builder_id, or_(
                Builder.calendly_subscription_checked_at.is_(None),
                Builder.calendly_subscription_checked_at <= due_before))
            .values(calendly_subscription_checked_at=now))
        return result.rowcount == 1


def check_all(engine: Engine, *, now: datetime | None = None) -> dict[str, int]:
    """The worker's check of every connected builder not checked in SUBSCRIPTION_CHECK_MINUTES.
    Builders not connected are skipped; one found disconnected (a refused refresh) keeps that
    status. Returns how many builders ended each way."""
    from core.services.calendly_connection import CalendlyDisconnected

    now = now or utcnow()
    due_before = now - timedelta(minutes=get_settings().subscription_check_minutes)
    with session_scope(engine, read_only=True) as session:
        due = list(session.execute(
            select(Builder.id).where(
                Builder.calendly_status == CONNECTED, Builder.calendly_user_uri.is_not(None),
                or_(Builder.calendly_subscription_checked_at.is_(None),
                    Builder.calendly_subscription_checked_at <= due_before))
            .order_by(Builder.id)).scalars())
    counts: dict[str, int] = {}
    for builder_id in due:
        if not _claim(engine, builder_id, due_before, now):
            outcome = "taken"  # another worker is checking it
        else:
            try:
                outcome = check_builder(engine, builder_id, now=now)
            except CalendlyDisconnected as error:
                log.warning("builder %s: Calendly disconnected, not checked: %s", builder_id, error)
                outcome = "disconnected"
            except (CalendlyError, DomainError) as error:
                log.warning("builder %s: webhook subscription check failed (again next time): %s", builder_id, error)
                outcome = "error"
            except Exception:
                log.exception("builder %s: webhook subscription check failed (again next time)", builder_id)
                outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


__all__ = ["EVENTS", "WEBHOOK_PATH", "callback_url", "ensure_subscription", "delete_subscription",
           "check_builder", "check_all", "last_webhook_times", "last_recreation", "gap_start", "Recreation"]
