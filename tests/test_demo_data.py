"""Demo data that looks real: every timestamp fits "now", one builder never has two sessions at
once, sessions fall in the builder's working hours, builders differ, and the sandbox Calendly
serves each demo builder exactly the session types the demo data prices."""
from __future__ import annotations

import random
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from core.config import get_settings
from core.db import session_scope
from core.demo_bookings import CatalogBuilder, one_booking
from core.demo_builders import DEMO_BUILDERS
from core.demo_data import _demo_builders, generate
from core.demo_schedule import BuilderCalendar
from core.models import Booking, BookingHistory, Builder, Payment, Refund, SessionType, utcnow
from core.refund_policy import RefundPolicy, decide_refund
from core.states import BookingStatus as S, RefundRule
from sandbox.calendly.identities import event_type_specs

KEEPS_SLOT = (S.CONFIRMED, S.COMPLETED, S.PENDING_PAYMENT)
BOOKINGS = 1200


@pytest.fixture
def seeded(engine):
    counts = generate(engine, bookings=BOOKINGS, seed=11)
    assert counts["bookings"] == BOOKINGS
    return engine


def _count(session, query) -> int:
    return session.execute(select(func.count()).select_from(query.subquery())).scalar_one()


def test_nothing_is_dated_after_now(seeded):
    now = utcnow()
    with session_scope(seeded, read_only=True) as s:
        for column in (Booking.created_at, Booking.updated_at, Payment.created_at, Refund.created_at,
                       Refund.updated_at, BookingHistory.created_at):
            latest = s.execute(select(func.max(column))).scalar_one()
            assert latest is not None and latest <= now, column
        assert _count(s, select(Booking.id).where(Booking.status == S.COMPLETED, Booking.end_time > now)) == 0
        assert _count(s, select(BookingHistory.id).join(Booking, Booking.id == BookingHistory.booking_id).where(
            BookingHistory.to_status == S.COMPLETED, BookingHistory.created_at < Booking.end_time)) == 0
        # Live holds still hold; confirmed sessions that ended are completed (or just ending).
        assert _count(s, select(Booking.id).where(Booking.status == S.PENDING_PAYMENT,
                                                  Booking.hold_expires_at <= now)) == 0
        assert _count(s, select(Booking.id).where(Booking.status == S.CONFIRMED,
                                                  Booking.end_time < now - timedelta(minutes=10))) == 0


def test_money_follows_the_booking_it_belongs_to(seeded):
    with session_scope(seeded, read_only=True) as s:
        assert _count(s, select(Payment.id).join(Booking, Booking.id == Payment.booking_id).where(
            (Payment.created_at <= Booking.created_at) | (Payment.created_at >= Booking.start_time))) == 0
        assert _count(s, select(Refund.id).join(Payment, Payment.id == Refund.payment_id).where(
            Refund.created_at <= Payment.created_at)) == 0
        assert _count(s, select(Refund.id).join(Booking, Booking.id == Refund.booking_id).where(
            Refund.rule == RefundRule.MANUAL, Refund.created_at < Booking.end_time)) == 0
        # Every step of a booking's history comes after the one before it.
        steps: dict[str, list] = {}
        for booking_id, at in s.execute(select(BookingHistory.booking_id, BookingHistory.created_at)
                                        .order_by(BookingHistory.id)):
            steps.setdefault(booking_id, []).append(at)
        assert all(times == sorted(times) for times in steps.values())


def test_a_cancellation_refunds_what_the_policy_gives_after_it_happened(seeded):
    settings = get_settings()
    policy = RefundPolicy(settings.refund_full_hours, settings.refund_partial_percent)
    with session_scope(seeded, read_only=True) as s:
        canceled = s.execute(
            select(Booking.id, Booking.start_time, Payment.amount_cents, BookingHistory.created_at,
                   BookingHistory.actor)
            .join(Payment, Payment.booking_id == Booking.id)
            .join(BookingHistory, (BookingHistory.booking_id == Booking.id) & (BookingHistory.to_status == S.CANCELED))
            .where(Booking.status == S.CANCELED)).all()
        refunded = dict(s.execute(select(Refund.booking_id, func.sum(Refund.amount_cents))
                                  .where(Refund.rule == RefundRule.POLICY).group_by(Refund.booking_id)).all())
        first_refund = dict(s.execute(select(Refund.booking_id, func.min(Refund.created_at))
                                      .where(Refund.rule == RefundRule.POLICY).group_by(Refund.booking_id)).all())
    assert len(canceled) > 50
    rules = set()
    for booking_id, start, paid, canceled_at, actor in canceled:
        assert canceled_at < start
        decision = decide_refund(policy, paid, start, canceled_at, canceled_by_host=actor == "calendly:host")
        rules.add(decision.rule)
        assert refunded.get(booking_id, 0) == decision.amount_cents, booking_id
        if decision.amount_cents:
            assert first_refund[booking_id] > canceled_at
    assert {"full", "partial", "host_canceled"} <= rules


def test_no_builder_has_two_sessions_at_once(seeded):
    a, b = aliased(Booking), aliased(Booking)
    with session_scope(seeded, read_only=True) as s:
        held = _count(s, select(Booking.id).where(Booking.status.in_(KEEPS_SLOT)))
        overlapping = s.execute(
            select(a.id, b.id).join(b, (a.builder_id == b.builder_id) & (a.id < b.id))
            .where(a.status.in_(KEEPS_SLOT), b.status.in_(KEEPS_SLOT),
                   a.start_time < b.end_time, b.start_time < a.end_time)).all()
    assert held > BOOKINGS // 2
    assert overlapping == []


def test_sessions_fall_inside_the_builders_working_hours_in_their_time_zone(seeded):
    hours = {demo.email: demo.work_hours for demo in DEMO_BUILDERS}
    with session_scope(seeded, read_only=True) as s:
        rows = s.execute(select(Builder.email, Builder.timezone, Booking.start_time, Booking.end_time)
                         .join(Booking, Booking.builder_id == Builder.id)
                         .where(Booking.start_time.is_not(None))).all()
    assert len(rows) > BOOKINGS // 2
    for email, zone, start, end in rows:
        local_start, local_end = start.astimezone(ZoneInfo(zone)), end.astimezone(ZoneInfo(zone))
        first, last = hours[email]
        assert local_start.weekday() < 5 and local_start.date() == local_end.date()
        assert first * 60 <= local_start.hour * 60 + local_start.minute
        assert local_end.hour * 60 + local_end.minute <= last * 60


def test_builders_differ(seeded):
    with session_scope(seeded, read_only=True) as s:
        builders = s.execute(select(Builder)).scalars().all()
        types = s.execute(select(SessionType).where(SessionType.active.is_(True))).scalars().all()
        used = dict(s.execute(select(Booking.builder_id, func.count()).group_by(Booking.builder_id)).all())
    assert len(builders) == len(DEMO_BUILDERS)
    for builder in builders:
        assert builder.bio and len(builder.bio) > 40
        ZoneInfo(builder.timezone)
        own = [t for t in types if t.builder_id == builder.id]
        assert len(own) >= 2 and len({t.currency for t in own}) == 1
        assert used.get(builder.id, 0) > 0
    assert len({b.timezone for b in builders}) >= 6
    assert {"USD", "EUR", "GBP", "JPY"} <= {t.currency for t in types}
    assert len({t.duration_minutes for t in types}) >= 6
    assert len({(t.price_cents, t.currency) for t in types}) == len(types)
    yen = [t.price_cents for t in types if t.currency == "JPY"]
    assert yen and all(price >= 1000 for price in yen)  # yen have no minor unit: ¥5,000 is 5000


def test_the_sandbox_calendly_serves_each_demo_builder_their_priced_session_types(seeded):
    from sandbox.calendly.standin import create_app

    base = get_settings().calendly_api_base
    calendly = TestClient(create_app(public_url=base, webhook_url=None, signing_key="k" * 32, redirect_url=None))
    with session_scope(seeded, read_only=True) as s:
        for demo in DEMO_BUILDERS:
            builder = s.execute(select(Builder).where(Builder.email == demo.email)).scalar_one()
            priced = {t.calendly_event_type_uri: t for t in s.execute(
                select(SessionType).where(SessionType.builder_id == builder.id)).scalars()}
            headers = {"Authorization": f"Bearer {demo.token}"}
            me = calendly.get("/users/me", headers=headers).json()["resource"]
            assert me["uri"] == builder.calendly_user_uri
            served = calendly.get("/event_types", params={"user": me["uri"], "active": "true"},
                                  headers=headers).json()["collection"]
            assert {e["uri"] for e in served} == set(priced), demo.name
            for event_type in served:
                row = priced[event_type["uri"]]
                assert (row.name, row.duration_minutes) == (event_type["name"], event_type["duration"])
                assert row.price_cents == demo.prices[event_type["slug"]] and row.currency == demo.currency
    assert all(set(demo.prices) <= {spec[0] for spec in event_type_specs(demo.token)} for demo in DEMO_BUILDERS)


def test_demo_data_on_an_older_demo_database_fills_in_bios(seeded):
    with session_scope(seeded) as s:
        ada = s.execute(select(Builder).where(Builder.email == "ada@demo.test")).scalar_one()
        ada.bio, ada.timezone = None, "UTC"
    assert generate(seeded, bookings=10) == {"bookings": 0}
    with session_scope(seeded, read_only=True) as s:
        ada = s.execute(select(Builder).where(Builder.email == "ada@demo.test")).scalar_one()
        assert ada.bio and ada.timezone == "Europe/London"
        assert _count(s, select(Booking.id)) == BOOKINGS


def test_the_same_seed_writes_the_same_bookings():
    now = utcnow().replace(microsecond=0)
    policy, hold = RefundPolicy(24, 50), timedelta(minutes=30)

    def rows_for(seed: int) -> dict:
        rng = random.Random(seed)
        catalog = [CatalogBuilder(n, [(n * 10, 4900, "USD", 60), (n * 10 + 1, 9900, "USD", 30)],
                                  BuilderCalendar(zone, (9, 17)))
                   for n, zone in enumerate(("Europe/London", "Asia/Tokyo"), start=1)]
        rows = {"bookings": [], "payments": [], "refunds": [], "history": []}
        payment_id = 1
        for _ in range(300):
            payment_id = one_booking(rng, now, catalog, [1, 2, 3], rows, payment_id, policy=policy, hold=hold)
        return rows

    assert rows_for(5) == rows_for(5)
    assert rows_for(5)["bookings"] != rows_for(6)["bookings"]


def test_a_large_demo_set_gets_more_builders_so_no_calendar_overflows():
    assert len(_demo_builders(3000, 7)) == len(DEMO_BUILDERS)
    many = _demo_builders(20_000, 7)
    assert len(many) == 40
    assert len({demo.token for demo in many}) == len({demo.email for demo in many}) == 40
    assert _demo_builders(20_000, 7) == many


def test_demo_holds_that_run_out_are_released_without_a_failure(engine, settings_env):
    """`make run` keeps going for hours: every demo hold expires, and its slot is canceled in the
    sandbox Calendly (which never saw these demo events) without a failed side effect."""
    from devtools.processes import free_port
    from core.services.holds import expire_overdue_holds
    from core.states import OutboxStatus
    from core.stripe.gateway import stripe_gateway
    from core.worker import drain_outbox
    from core.models import OutboxEntry
    from sandbox.calendly.standin import create_app
    from tests.servers import serve

    port = free_port()
    settings_env(calendly_api_base=f"http://127.0.0.1:{port}")
    generate(engine, bookings=BOOKINGS, seed=11)
    with session_scope(engine, read_only=True) as s:
        holds = s.execute(select(Booking.id).where(Booking.status == S.PENDING_PAYMENT)).scalars().all()
        assert holds and not s.execute(select(Booking.id).where(
            Booking.id.in_(holds), Booking.stripe_checkout_session_id.is_not(None))).first()
    calendly = create_app(public_url=f"http://127.0.0.1:{port}", webhook_url=None, signing_key="k" * 32,
                          redirect_url=None)
    with serve(calendly, port):
        assert expire_overdue_holds(engine, stripe_gateway(), now=utcnow() + timedelta(days=2)) >= len(holds)
        drain_outbox(engine, limit=500)
    with session_scope(engine, read_only=True) as s:
        statuses = s.execute(select(Booking.status).where(Booking.id.in_(holds))).scalars().all()
        assert set(statuses) == {S.EXPIRED}
        failed = s.execute(select(OutboxEntry.kind, OutboxEntry.last_error).where(
            OutboxEntry.status == OutboxStatus.FAILED)).all()
        assert failed == []
