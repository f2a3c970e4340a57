"""Throttles: how often anyone may repeat what costs us or someone else — magic-link emails, booking
creation (each asks a builder's Calendly for a link), and dashboard password guesses.

Fixed-window counters in the database (`throttle_counters`), so every `web` process and the
dashboard share them: one row per (scope, key, window start), counted by one atomic
`INSERT … ON CONFLICT DO UPDATE SET hits = hits + 1 RETURNING hits` — a row-level upsert on
PostgreSQL, run under the write lock (`BEGIN IMMEDIATE`) on SQLite, so concurrent requests never
lose a count. Keys are HMACs of what the client sent (an email, an address), so the table holds no
email address and every key has the same small size. Rows of ended windows are deleted by the
worker and, at most once a minute, by any process that counts, so the table stays small.

Limits come from the configuration ("5/15m"; see `core.config.Settings`). Entry points call
`hit` (count one attempt, refuse past the limit), or `guard_sign_in` for password checks, and turn
`Throttled` into a 429 with `Retry-After`.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from core.config import Settings, get_settings, parse_rate
from core.db import session_scope
from core.models import ThrottleCounter, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

PRUNE_EVERY_SECONDS = 60.0
MAX_RAW_KEY = 1000  # characters of a client-sent key that are hashed; the rest cannot matter


@dataclass(frozen=True)
class Rule:
    """One throttled action: its key kinds with the setting holding each one's limit (counted in
    this order; once one is over, the later ones are not counted), and what a person is told."""

    name: str
    limits: tuple[tuple[str, str], ...]
    refusal: str


MAGIC_LINK = Rule("magic_link", (("address", "throttle_magic_link_per_address"),
                                 ("email", "throttle_magic_link_per_email")),
                  "Too many sign-in links were asked for")
BOOKING = Rule("booking", (("address", "throttle_booking_per_address"),
                           ("client", "throttle_booking_per_client")),
               "Too many bookings were started")
SIGN_IN = Rule("sign_in", (("address", "throttle_sign_in_failures_per_address"),
                           ("account", "throttle_sign_in_failures_per_account")),
               "Too many wrong passwords")


class Throttled(Exception):
    """Refused for now: `retry_after` seconds until the window ends (at `until`)."""

    def __init__(self, rule: Rule, retry_after: int, until: datetime):
        self.rule, self.retry_after, self.until = rule, retry_after, until
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        return (f"{self.rule.refusal}. Please try again in {_duration(self.retry_after)} "
                f"(after {self.until:%H:%M} UTC).")


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{math.ceil(minutes / 60)} hours"


# ---------------------------------------------------------------- the client's address
def client_address(peer: str | None, forwarded_for: str | None, trusted_proxy_hops: int) -> str | None:
    """Who is asking: the TCP peer, or — only behind `trusted_proxy_hops` proxies we trust — the
    entry that many places from the right of X-Forwarded-For (the one our nearest trusted proxy
    received the request from; entries further left are whatever the client wrote)."""
    if trusted_proxy_hops and forwarded_for:
        entries = [entry.strip() for entry in forwarded_for.split(",") if entry.strip()]
        if len(entries) >= trusted_proxy_hops:
            return entries[-trusted_proxy_hops][:100]
    return peer[:100] if peer else None


def _address_key(address: str) -> str:
    # One IPv6 client usually holds a whole /64: count the network, or it could rotate addresses.
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# ---------------------------------------------------------------- counting
_clock: Callable[[], datetime] = utcnow  # tests move time by replacing this
_last_prune = 0.0
_prune_lock = threading.Lock()


def _now(now: datetime | None) -> datetime:
    return now or _clock()


def _window(now: datetime, seconds: int) -> tuple[datetime, datetime]:
    start = datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, tz=timezone.utc)
    return start, start + timedelta(seconds=seconds)


def _key_hash(settings: Settings, scope: str, kind: str, value: str) -> str:
    value = value[:MAX_RAW_KEY]
    value = _address_key(value) if kind == "address" else value.strip().lower()
    message = f"{scope}\x00{value}".encode("utf-8", "surrogatepass")
    return hmac.new(settings.app_secret_key.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Count:
    scope: str
    key_hash: str
    limit: int
    window_start: datetime
    window_end: datetime


def _counts(rule: Rule, keys: dict[str, str | None], now: datetime) -> list[_Count]:
    unknown = set(keys) - {kind for kind, _ in rule.limits}
    if unknown:
        raise TypeError(f"{rule.name} has no limit per {', '.join(sorted(unknown))}")
    settings = get_settings()
    counts = []
    for kind, setting in rule.limits:
        value, rate = keys.get(kind), parse_rate(getattr(settings, setting))
        if not value or rate is None:
            continue
        scope = f"{rule.name}:{kind}"
        start, end = _window(now, rate[1])
        counts.append(_Count(scope, _key_hash(settings, scope, kind, value), rate[0], start, end))
    return counts


def _refusal(rule: Rule, count: _Count, now: datetime) -> Throttled:
    return Throttled(rule, max(1, math.ceil((count.window_end - now).total_seconds())), count.window_end)


def hit(engine: Engine, rule: Rule, *, now: datetime | None = None, **keys: str | None) -> None:
    """Count one attempt for each key given (a missing or empty key is not counted); raise
    `Throttled` when this attempt goes past one key's limit in its current window."""
    now = _now(now)
    counts = _counts(rule, keys, now)
    refusal = None
    with session_scope(engine) as session:
        table = ThrottleCounter.__table__
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        for count in counts:
            statement = (
                insert(table).values(scope=count.scope, key_hash=count.key_hash, window_start=count.window_start,
                                     window_end=count.window_end, hits=1)
                .on_conflict_do_update(index_elements=["scope", "key_hash", "window_start"],
                                       set_={"hits": table.c.hits + 1})
                .returning(table.c.hits)
            )
            if session.execute(statement).scalar_one() > count.limit:
                refusal = _refusal(rule, count, now)
                break  # an address already over its limit does not get to count emails
    _prune_now_and_then(engine, now)
    if refusal is not None:
        raise refusal


def check(engine: Engine, rule: Rule, *, now: datetime | None = None, **keys: str | None) -> None:
    """Count nothing; raise `Throttled` if one key has already used up its limit in this window."""
    now = _now(now)
    counts = _counts(rule, keys, now)
    if not counts:
        return
    with session_scope(engine, read_only=True) as session:
        for count in counts:
            hits = session.execute(select(ThrottleCounter.hits).where(
                ThrottleCounter.scope == count.scope, ThrottleCounter.key_hash == count.key_hash,
                ThrottleCounter.window_start == count.window_start)).scalar_one_or_none()
            if hits is not None and hits >= count.limit:
                raise _refusal(rule, count, now)


def guard_sign_in(engine: Engine, check_password: Callable[[], T | None], *, account: str | None,
                  address: str | None, now: datetime | None = None) -> T | None:
    """A password sign-in under lockout: refused without checking while the account or address has
    used up its wrong passwords (so a right one is refused too), else `check_password()`; a wrong
    password is counted, and the one that reaches the limit is answered with the lockout."""
    now = _now(now)
    check(engine, SIGN_IN, now=now, account=account, address=address)
    result = check_password()
    if result is None:
        hit(engine, SIGN_IN, now=now, account=account, address=address)
        check(engine, SIGN_IN, now=now, account=account, address=address)
    return result


# ---------------------------------------------------------------- keeping the table small
def prune(engine: Engine, now: datetime | None = None) -> int:
    """Delete the counters of windows that have ended; returns how many."""
    with session_scope(engine) as session:
        return session.execute(delete(ThrottleCounter).where(ThrottleCounter.window_end <= _now(now))).rowcount


def _prune_now_and_then(engine: Engine, now: datetime) -> None:
    global _last_prune
    if time.monotonic() - _last_prune < PRUNE_EVERY_SECONDS or not _prune_lock.acquire(blocking=False):
        return
    try:
        _last_prune = time.monotonic()
        prune(engine, now)
    except Exception:  # another process pruning the same rows, say: the next one will
        log.warning("pruning throttle counters failed; it is retried later", exc_info=True)
    finally:
        _prune_lock.release()
