"""A realistic demo data set, written by bulk inserts so a million bookings take minutes.

Builders are the sandbox Calendly users of tokens `sandbox-<name>` (`core/demo_builders.py`: who
they are; `sandbox/calendly/identities.py`: the sessions the stand-in serves them), so their profile
pages work against the stand-in. Bookings span the past year in every status, each one a story
that fits "now" (`core/demo_bookings.py`): paid before its session, refunded after its payment and
never in the future, completed only once it ended, inside its builder's working hours and never
on top of another of their sessions.
"""
from __future__ import annotations

import math
import random
import sys
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, insert, select, text

from core.bulk_rows import insert_rows
from core.config import get_settings
from core.db import session_scope
from core.demo_bookings import CatalogBuilder, one_booking
from core.demo_builders import DEMO_BUILDERS, DemoBuilder, extra_builders
from core.demo_schedule import BuilderCalendar
from core.models import Booking, BookingHistory, Builder, Client, DashboardUser, Payment, Refund, SessionType, utcnow
from core.refund_policy import RefundPolicy
from core.security import encrypt_secret, hash_password
from sandbox.calendly.identities import (
    DEMO_OAUTH_IDENTITY, DEMO_OAUTH_REFRESH_TOKEN, event_type_specs, sandbox_event_type_uris, sandbox_user_uri,
)

DEMO_ADMIN = ("admin@demo.test", "demo-admin-pass")
DEMO_BUILDER_PASSWORD = "demo-builder-pass"
# A year of bookings one builder's calendar holds without crowding; more bookings, more builders.
BOOKINGS_PER_BUILDER = 500
FIRST = "Alex Sam Kim Noor Lea Omar Ivy Jon Mia Ravi Zoe Tom Ana Ben Eli Fay".split()
LAST = "Smith Chen Garcia Okafor Novak Rossi Haddad Silva Berg Kowalski Ito Dubois".split()
CHUNK = 5000


def _progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-9)
    print(f"\r{label}: {done:,}/{total:,} ({rate:,.0f}/s)", end="" if done < total else "\n",
          file=sys.stderr, flush=True)


def _demo_builders(bookings: int, seed: int) -> list[DemoBuilder]:
    wanted = math.ceil(bookings / BOOKINGS_PER_BUILDER)
    return [*DEMO_BUILDERS, *extra_builders(max(0, wanted - len(DEMO_BUILDERS)), seed)]


def _ensure_catalog(engine: Engine, demo_builders: list[DemoBuilder]) -> list[CatalogBuilder]:
    """Builders, their priced session types and dashboard accounts (added once; a builder of older
    demo data gets the bio and time zone it lacked, and its session types the stand-in no longer
    serves are switched off)."""
    settings = get_settings()
    base = settings.calendly_api_base
    password_hash = hash_password(DEMO_BUILDER_PASSWORD)  # once: hashing is slow on purpose
    catalog = []
    with session_scope(engine) as session:
        if not session.execute(select(DashboardUser).where(DashboardUser.email == DEMO_ADMIN[0])).first():
            session.add(DashboardUser(email=DEMO_ADMIN[0], password_hash=hash_password(DEMO_ADMIN[1]), role="admin"))
        for demo in demo_builders:
            builder = session.execute(select(Builder).where(Builder.email == demo.email)).scalar_one_or_none()
            if builder is None:
                builder = Builder(name=demo.name, email=demo.email, calendly_user_uri=sandbox_user_uri(base, demo.token),
                                  calendly_token_encrypted=encrypt_secret(demo.token, settings.app_secret_key),
                                  timezone=demo.timezone, bio=demo.bio)
                session.add(builder)
                session.flush()
                session.add(DashboardUser(email=demo.email, password_hash=password_hash,
                                          role="builder", builder_id=builder.id))
            elif builder.bio is None:
                builder.bio, builder.timezone = demo.bio, demo.timezone
            _connect_calendly(builder, demo, settings.app_secret_key)
            uris = sandbox_event_type_uris(base, demo.token)
            types = []
            for uri, (slug, type_name, minutes, *_rest) in zip(uris, event_type_specs(demo.token)):
                if slug not in demo.prices:
                    continue  # not offered (the stand-in lists it inactive)
                session_type = session.execute(
                    select(SessionType).where(SessionType.calendly_event_type_uri == uri)).scalar_one_or_none()
                if session_type is None:
                    session_type = SessionType(builder_id=builder.id, calendly_event_type_uri=uri, name=type_name,
                                               duration_minutes=minutes, price_cents=demo.prices[slug],
                                               currency=demo.currency)
                    session.add(session_type)
                    session.flush()
                types.append((session_type.id, session_type.price_cents, session_type.currency, minutes))
            for stale in session.execute(select(SessionType).where(
                    SessionType.builder_id == builder.id, SessionType.active.is_(True),
                    SessionType.calendly_event_type_uri.not_in(uris))).scalars():
                stale.active = False
            catalog.append(CatalogBuilder(builder.id, types, BuilderCalendar(demo.timezone, demo.work_hours)))
    return catalog


def _connect_calendly(builder: Builder, demo: DemoBuilder, key: str, now: datetime | None = None) -> None:
    """Every demo builder is connected: one through OAuth, the others with their personal token.

    The OAuth one gets the sandbox Calendly's pre-issued refresh token and an access token that has
    already expired, so the first API call refreshes it for real (and the refresh token rotates).
    The stand-in accepts that refresh token once per start, and `make run` starts it afresh after
    this runs: so the tokens are stored again on every run, even over a demo database's rotated ones.
    """
    now = now or utcnow()
    if demo.token == DEMO_OAUTH_IDENTITY:
        builder.calendly_auth, builder.calendly_status, builder.calendly_status_reason = "oauth", "connected", None
        builder.calendly_token_encrypted = encrypt_secret("sbx_oat_demo-already-expired", key)
        builder.calendly_refresh_token_encrypted = encrypt_secret(DEMO_OAUTH_REFRESH_TOKEN, key)
        builder.calendly_token_expires_at = now - timedelta(minutes=1)
        builder.calendly_connected_at = builder.calendly_connected_at or now
    elif builder.calendly_auth is None and builder.calendly_token_encrypted:
        builder.calendly_auth, builder.calendly_status = "token", "connected"
        builder.calendly_connected_at = builder.calendly_connected_at or now


def generate(engine: Engine, *, bookings: int, seed: int = 7) -> dict[str, int]:
    """Add the demo catalog and `bookings` bookings (skipped if the database already has bookings)."""
    started = time.monotonic()
    with session_scope(engine, read_only=True) as session:
        existing = session.execute(select(func.count()).select_from(Booking)).scalar_one()
    if existing:
        _ensure_catalog(engine, list(DEMO_BUILDERS))
        print(f"demo data: the database already has {existing:,} bookings; none added", file=sys.stderr)
        return {"bookings": 0}
    catalog = _ensure_catalog(engine, _demo_builders(bookings, seed))
    print(f"demo data: {len(catalog):,} builders, {sum(len(b.types) for b in catalog):,} session types",
          file=sys.stderr)
    rng = random.Random(seed)
    now = utcnow().replace(microsecond=0)
    settings = get_settings()
    policy = RefundPolicy(settings.refund_full_hours, settings.refund_partial_percent)
    hold = timedelta(minutes=settings.hold_minutes)
    client_count = max(20, min(bookings // 4, 50_000))
    clients = []
    for i in range(client_count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        clients.append({"email": f"{first.lower()}.{last.lower()}.{i}@example.com", "name": f"{first} {last}",
                        "timezone": rng.choice(["Europe/London", "America/New_York", "Asia/Tokyo", "Europe/Berlin"]),
                        "created_at": now - timedelta(days=400)})
    client_ids: list[int] = []
    with session_scope(engine) as session:
        # The ids the database gave (a PostgreSQL sequence can be ahead of max(id)); sorted, so
        # the same seed picks the same clients.
        for offset in range(0, len(clients), CHUNK):
            client_ids += session.scalars(insert(Client).returning(Client.id), clients[offset:offset + CHUNK])
    client_ids.sort()

    counts = {"bookings": 0, "payments": 0, "refunds": 0, "history": 0}
    payment_id = _next_id(engine, Payment)
    for offset in range(0, bookings, CHUNK):
        rows = {"bookings": [], "payments": [], "refunds": [], "history": []}
        for _ in range(min(CHUNK, bookings - offset)):
            payment_id = one_booking(rng, now, catalog, client_ids, rows, payment_id, policy=policy, hold=hold)
        insert_rows(engine, [(Booking, rows["bookings"]), (Payment, rows["payments"]), (Refund, rows["refunds"]),
                             (BookingHistory, rows["history"])], chunk=CHUNK)
        for table in counts:
            counts[table] += len(rows[table])
        _progress("demo bookings", offset + len(rows["bookings"]), bookings, started)
    if engine.dialect.name == "postgresql" and counts["payments"]:
        # Payment ids were assigned here (the refunds refer to them): move the sequence past them,
        # or the next real payment would collide with a demo one.
        with session_scope(engine) as session:
            session.execute(text(
                "SELECT setval(pg_get_serial_sequence('payments', 'id'), (SELECT max(id) FROM payments))"))
    elapsed = time.monotonic() - started
    print(f"demo data: {counts['bookings']:,} bookings, {counts['payments']:,} payments, "
          f"{counts['refunds']:,} refunds, {counts['history']:,} history rows in {elapsed:.1f}s", file=sys.stderr)
    return counts


def _next_id(engine: Engine, model) -> int:
    with session_scope(engine, read_only=True) as session:
        return (session.execute(select(func.max(model.id))).scalar() or 0) + 1
