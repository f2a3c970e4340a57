"""A realistic demo data set, written by bulk inserts so a million bookings take minutes.

Builders are the sandbox Calendly users of tokens `sandbox-<name>`, so their profile pages work
against the stand-in. Bookings span the past year in every status, with payments, partial and
full refunds, and a history row per status change.
"""
from __future__ import annotations

import random
import sys
import time
from datetime import timedelta

from sqlalchemy import Engine, func, insert, select, text

from core.bulk_rows import booking_row, history_rows, insert_rows
from core.config import get_settings
from core.db import session_scope
from core.models import (
    Booking, BookingHistory, Builder, Client, DashboardUser, Payment, Refund, SessionType, utcnow,
)
from core.security import encrypt_secret, hash_password
from core.states import BookingStatus as S, PaymentStatus, RefundRule, RefundStatus
from sandbox.calendly.identities import EVENT_TYPE_SPECS, sandbox_event_type_uris, sandbox_user_uri

DEMO_ADMIN = ("admin@demo.test", "demo-admin-pass")
DEMO_BUILDER_PASSWORD = "demo-builder-pass"
# (token, name, email, currency, prices of the three active sandbox event types, in minor units)
DEMO_BUILDERS = [
    ("sandbox-ada", "Ada Lovelace", "ada@demo.test", "USD", (4900, 14900, 24900)),
    ("sandbox-grace", "Grace Hopper", "grace@demo.test", "USD", (3900, 11900, 19900)),
    ("sandbox-linus", "Linus Berg", "linus@demo.test", "EUR", (4500, 12000, 21000)),
    ("sandbox-yuki", "Yuki Tanaka", "yuki@demo.test", "JPY", (5000, 15000, 25000)),
]
FIRST = "Alex Sam Kim Noor Lea Omar Ivy Jon Mia Ravi Zoe Tom Ana Ben Eli Fay".split()
LAST = "Smith Chen Garcia Okafor Novak Rossi Haddad Silva Berg Kowalski Ito Dubois".split()
CHUNK = 5000


def _progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-9)
    print(f"\r{label}: {done:,}/{total:,} ({rate:,.0f}/s)", end="" if done < total else "\n",
          file=sys.stderr, flush=True)


def _ensure_catalog(engine: Engine) -> list[tuple[int, list[tuple[int, int, str, int]]]]:
    """Builders, session types and dashboard accounts; returns [(builder_id, [(type id, price, currency, minutes)])]."""
    settings = get_settings()
    base = settings.calendly_api_base
    catalog = []
    with session_scope(engine) as session:
        if not session.execute(select(DashboardUser).where(DashboardUser.email == DEMO_ADMIN[0])).first():
            session.add(DashboardUser(email=DEMO_ADMIN[0], password_hash=hash_password(DEMO_ADMIN[1]), role="admin"))
        for token, name, email, currency, prices in DEMO_BUILDERS:
            builder = session.execute(select(Builder).where(Builder.email == email)).scalar_one_or_none()
            if builder is None:
                builder = Builder(name=name, email=email, calendly_user_uri=sandbox_user_uri(base, token),
                                  calendly_token_encrypted=encrypt_secret(token, settings.app_secret_key),
                                  timezone="Europe/London")
                session.add(builder)
                session.flush()
                session.add(DashboardUser(email=email, password_hash=hash_password(DEMO_BUILDER_PASSWORD),
                                          role="builder", builder_id=builder.id))
            types = []
            uris = sandbox_event_type_uris(base, token)
            names = [(name, minutes) for _slug, name, minutes, *_rest in EVENT_TYPE_SPECS]
            for uri, price, (type_name, minutes) in zip(uris, prices, names):
                session_type = session.execute(
                    select(SessionType).where(SessionType.calendly_event_type_uri == uri)).scalar_one_or_none()
                if session_type is None:
                    session_type = SessionType(builder_id=builder.id, calendly_event_type_uri=uri, name=type_name,
                                               duration_minutes=minutes, price_cents=price, currency=currency)
                    session.add(session_type)
                    session.flush()
                types.append((session_type.id, session_type.price_cents, session_type.currency, minutes))
            catalog.append((builder.id, types))
    return catalog


def _pick_status(rng: random.Random, start, now) -> str:
    roll = rng.random()
    if roll < 0.12:
        return S.CANCELED
    if roll < 0.22:
        return S.EXPIRED
    if start > now:
        return S.CONFIRMED
    return S.COMPLETED


def generate(engine: Engine, *, bookings: int, seed: int = 7) -> dict[str, int]:
    """Add the demo catalog and `bookings` bookings (skipped if the database already has bookings)."""
    with session_scope(engine, read_only=True) as session:
        existing = session.execute(select(func.count()).select_from(Booking)).scalar_one()
    catalog = _ensure_catalog(engine)
    if existing:
        print(f"demo data: the database already has {existing:,} bookings; none added", file=sys.stderr)
        return {"bookings": 0}
    rng = random.Random(seed)
    now = utcnow().replace(microsecond=0)
    client_count = max(20, min(bookings // 4, 50_000))
    started = time.monotonic()
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
            payment_id = _one_booking(rng, now, catalog, client_ids, rows, payment_id)
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


def _one_booking(rng, now, catalog, client_ids, rows, payment_id) -> int:
    builder_id, types = rng.choice(catalog)
    type_id, price, currency, minutes = rng.choice(types)
    created = now - timedelta(seconds=rng.randrange(0, 365 * 86400))
    start = (created + timedelta(days=rng.randrange(1, 21), hours=rng.randrange(0, 9))).replace(minute=0, second=0)
    status = _pick_status(rng, start, now)
    if created > now - timedelta(hours=2) and rng.random() < 0.5:
        status = rng.choice([S.PENDING_PAYMENT, S.PENDING_SCHEDULING])  # live holds near "now"
    booking_id = "bk_%020x" % rng.getrandbits(80)
    invitee = f"demo-{booking_id[3:]}"
    scheduled = status != S.PENDING_SCHEDULING
    checkout = f"cs_demo_{booking_id[3:]}" if scheduled else None
    booking = booking_row(
        booking_id, builder_id=builder_id, session_type_id=type_id, client_id=rng.choice(client_ids), status=status,
        amount_cents=price, currency=currency, created_at=created, start_time=start if scheduled else None,
        minutes=minutes, event_uri=f"https://calendly.demo/scheduled_events/{invitee}" if scheduled else None,
        invitee_uri=f"https://calendly.demo/scheduled_events/{invitee}/invitees/{invitee}" if scheduled else None,
        hold_expires_at=created + timedelta(minutes=30) if status == S.PENDING_PAYMENT else None,
        checkout_session_id=checkout, cancel_reason="Client canceled in Calendly" if status == S.CANCELED else None)
    rows["bookings"].append(booking)
    steps = [(None, S.PENDING_SCHEDULING, "booking_started", "client")]
    paid = status in (S.CONFIRMED, S.COMPLETED) or (status == S.CANCELED and rng.random() < 0.8)
    if scheduled:
        steps.append((S.PENDING_SCHEDULING, S.PENDING_PAYMENT, "invitee_created", "calendly:webhook"))
    if status == S.EXPIRED:
        steps.append((S.PENDING_PAYMENT, S.EXPIRED, "checkout_expired", "stripe:webhook"))
    if paid:
        steps.append((S.PENDING_PAYMENT, S.CONFIRMED, "payment_confirmed", "stripe:webhook"))
        paid_at = created + timedelta(minutes=rng.randrange(1, 25))
        rows["payments"].append({
            "id": payment_id, "booking_id": booking_id, "stripe_payment_intent_id": f"pi_demo_{booking_id[3:]}",
            "stripe_checkout_session_id": checkout, "amount_cents": price,
            "currency": currency, "status": PaymentStatus.SUCCEEDED,
            "dispute_status": "needs_response" if rng.random() < 0.003 else None, "created_at": paid_at,
        })
        refunds = []
        if status == S.CANCELED:
            refunds = [price] if rng.random() < 0.7 else [price * 50 // 100]
        elif status == S.COMPLETED and rng.random() < 0.03:
            refunds = [price // 4, price - price // 4] if rng.random() < 0.3 else [price // 4]
        for n, amount in enumerate(refunds):
            rows["refunds"].append({
                "payment_id": payment_id, "booking_id": booking_id, "amount_cents": amount, "currency": currency,
                "status": RefundStatus.SUCCEEDED,
                "reason": "canceled: refund by policy" if status == S.CANCELED else "Goodwill refund",
                "rule": RefundRule.POLICY if status == S.CANCELED else RefundRule.MANUAL,
                "issued_by": "calendly:invitee" if status == S.CANCELED else "admin@demo.test",
                "stripe_refund_id": f"re_demo_{booking_id[3:]}_{n}",
                "created_at": paid_at + timedelta(days=1), "updated_at": paid_at + timedelta(days=1),
            })
        payment_id += 1
    if status == S.CANCELED:
        steps.append((steps[-1][1], S.CANCELED, "canceled", "calendly:invitee"))
    if status == S.COMPLETED:
        steps.append((S.CONFIRMED, S.COMPLETED, "session_ended", "system:worker"))
    rows["history"] += history_rows(booking_id, steps, at=created, spacing=timedelta(minutes=3))
    return payment_id
