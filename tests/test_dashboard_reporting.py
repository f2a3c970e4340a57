"""The dashboard's reports on a known data set: exact numbers, currencies kept apart, builders
confined to their own rows, filters, search and paging; and the figures the charts draw."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pytest

from core import auth, reporting
from core.errors import DomainError, Forbidden, NotFound
from core.models import utcnow
from core.auth import Viewer
from core.reporting import BookingFilters
from core.services.booking_view import booking_json
from core.states import BookingStatus as S
from dashboard.lib import charts
from tests.dashboard_helpers import (
    make_booking, make_builder, make_client, make_failed_webhook, make_outbox, make_refund,
    make_session_type, make_user,
)

ADMIN = Viewer(user_id=1, email="admin@test", role="admin")


@dataclass
class World:
    now: datetime
    ada: Viewer
    bo: Viewer
    ids: dict[str, str]
    types: dict[str, int]
    builder_ids: dict[str, int]


@pytest.fixture
def world(session) -> World:
    """Two builders, three currencies, eleven bookings in every status (one outside 90 days)."""
    now = utcnow()
    ada = make_builder(session, name="Ada", email="ada@test", timezone="Europe/London")
    bo = make_builder(session, name="Bo", email="bo@test", timezone="Asia/Tokyo")
    a1 = make_session_type(session, ada, name="Intro", price_cents=5000, currency="USD", duration_minutes=30)
    a2 = make_session_type(session, ada, name="Deep dive", price_cents=12000, currency="USD")
    b1 = make_session_type(session, bo, name="Review", price_cents=8000, currency="EUR")
    b2 = make_session_type(session, bo, name="Call", price_cents=6000, currency="JPY")
    alice = make_client(session, name="Alice Smith", email="alice@example.com")
    bob = make_client(session, name="Bob Stone", email="bob@example.com")
    carol = make_client(session, name="Carol Diaz", email="carol@example.com")
    dan = make_client(session, name="Dan 100% Sure", email="dan@example.com")
    eve = make_client(session, name="Eve Ito", email="eve@example.com")
    d = timedelta(days=1)
    ids = {}
    ids["a_paid"] = make_booking(session, a1, alice, S.CONFIRMED, created_at=now - 10 * d,
                                 start_time=now + 3 * d, paid_at=now - 10 * d).id
    partial = make_booking(session, a2, bob, S.COMPLETED, created_at=now - 20 * d, start_time=now - 5 * d,
                           paid_at=now - 20 * d)
    make_refund(session, partial, 3000, rule="manual", created_at=now - 4 * d)
    ids["a_partial"] = partial.id
    refunded = make_booking(session, a1, alice, S.CANCELED, created_at=now - 15 * d, start_time=now - 1 * d,
                            paid_at=now - 15 * d)
    make_refund(session, refunded, 5000, rule="policy", created_at=now - 2 * d)
    ids["a_refunded"] = refunded.id
    ids["a_pending"] = make_booking(session, a1, carol, S.PENDING_PAYMENT, created_at=now - timedelta(hours=1),
                                    start_time=now + 2 * d, hold_minutes=20).id
    ids["a_sched"] = make_booking(session, a2, dan, S.PENDING_SCHEDULING, created_at=now - timedelta(hours=2)).id
    ids["a_old"] = make_booking(session, a1, bob, S.COMPLETED, created_at=now - 200 * d, start_time=now - 190 * d,
                                paid_at=now - 200 * d).id
    eur = make_booking(session, b1, alice, S.COMPLETED, created_at=now - 30 * d, start_time=now - 25 * d,
                       paid_at=now - 30 * d)
    make_refund(session, eur, 2000, status="requested", rule="manual", created_at=now - 3 * d)
    ids["b_eur"] = eur.id
    ids["b_jpy"] = make_booking(session, b2, eve, S.CONFIRMED, created_at=now - 3 * d, start_time=now + 1 * d,
                                paid_at=now - 3 * d).id
    ids["b_expired"] = make_booking(session, b1, eve, S.EXPIRED, created_at=now - 40 * d,
                                    start_time=now - 38 * d).id
    failed = make_booking(session, b1, bob, S.CANCELED, created_at=now - 50 * d, start_time=now - 45 * d,
                          paid_at=now - 50 * d)
    make_refund(session, failed, 8000, status="failed", rule="policy", created_at=now - 46 * d)
    ids["b_failed_refund"] = failed.id
    ids["b_disputed"] = make_booking(session, b2, eve, S.COMPLETED, created_at=now - 12 * d,
                                     start_time=now - 11 * d, paid_at=now - 12 * d, dispute="needs_response").id
    make_outbox(session, session.get(type(partial), ids["a_paid"]), "notify", status="failed")
    make_outbox(session, session.get(type(partial), ids["a_paid"]), "notify", status="done", error=None)
    make_failed_webhook(session, body={"id": "evt_1", "type": "checkout.session.completed",
                                       "data": {"object": {"client_reference_id": ids["a_paid"]}}})
    ada_user = make_user(session, "ada@test", "pw-ada-123", "builder", ada)
    bo_user = make_user(session, "bo@test", "pw-bo-1234", "builder", bo)
    session.commit()
    return World(
        now=now,
        ada=Viewer(ada_user.id, "ada@test", "builder", ada.id, "Europe/London", "Ada"),
        bo=Viewer(bo_user.id, "bo@test", "builder", bo.id, "Asia/Tokyo", "Bo"),
        ids=ids, types={"a1": a1.id, "a2": a2.id, "b1": b1.id, "b2": b2.id},
        builder_ids={"ada": ada.id, "bo": bo.id},
    )


def since_90(world: World) -> datetime:
    return world.now - timedelta(days=90)


# ---------------------------------------------------------------- sign-in
def test_authenticate_accepts_the_right_password_only(session, world):
    viewer = auth.authenticate(session, "ADA@test ", "pw-ada-123")
    assert viewer == world.ada
    assert viewer.actor == "builder:ada@test"
    assert auth.authenticate(session, "ada@test", "wrong") is None
    assert auth.authenticate(session, "nobody@test", "pw-ada-123") is None


# ---------------------------------------------------------------- overview
def test_overview_kpis_count_bookings_conversion_and_money_per_currency(session, world):
    kpis = reporting.overview_kpis(session, ADMIN, since_90(world))
    assert (kpis.bookings, kpis.scheduled, kpis.paid) == (10, 9, 7)
    assert kpis.conversion == pytest.approx(7 / 9)
    assert kpis.revenue == {"EUR": 16000, "JPY": 12000, "USD": 22000}
    assert kpis.refunds == {"EUR": 2000, "USD": 8000}  # the failed EUR refund is not money back
    assert kpis.net("USD") == 14000 and kpis.net("JPY") == 12000
    assert (kpis.pending_payments, kpis.failed_outbox, kpis.failed_webhooks) == (1, 1, 1)


def test_overview_kpis_for_a_builder_cover_only_their_bookings(session, world):
    kpis = reporting.overview_kpis(session, world.ada, since_90(world))
    assert (kpis.bookings, kpis.scheduled, kpis.paid) == (5, 4, 3)
    assert kpis.revenue == {"USD": 22000}
    assert kpis.refunds == {"USD": 8000}
    assert (kpis.pending_payments, kpis.failed_outbox, kpis.failed_webhooks) == (1, 1, 0)
    with pytest.raises(Forbidden):
        reporting.overview_kpis(session, world.ada, since_90(world), builder_id=world.builder_ids["bo"])


def test_status_funnel_and_counts_by_status(session, world):
    funnel = reporting.status_funnel(session, ADMIN, since_90(world))
    assert [(s.label, s.count) for s in funnel.stages] == [
        ("Started", 10), ("Scheduled", 9), ("Paid", 7), ("Completed", 3)]
    assert funnel.by_status == {"PENDING_SCHEDULING": 1, "PENDING_PAYMENT": 1, "CONFIRMED": 2,
                                "COMPLETED": 3, "CANCELED": 2, "EXPIRED": 1}
    bo = reporting.status_funnel(session, world.bo, since_90(world))
    assert [s.count for s in bo.stages] == [5, 5, 4, 2]


def test_refunds_by_reason_are_per_rule_and_currency_without_failed_ones(session, world):
    rows = reporting.refunds_by_reason(session, ADMIN, since_90(world))
    assert [(r.rule, r.currency, r.count, r.amount_cents) for r in rows] == [
        ("manual", "EUR", 1, 2000), ("manual", "USD", 1, 3000), ("policy", "USD", 1, 5000)]
    assert rows[0].label == "Admin refund"
    assert [(r.rule, r.currency) for r in reporting.refunds_by_reason(session, world.bo, since_90(world))] == [
        ("manual", "EUR")]


# ---------------------------------------------------------------- the bookings list
def ids_of(page) -> set[str]:
    return {row.id for row in page.rows}


def test_payment_status_in_sql_matches_the_ledger_rule_for_every_booking(session, world):
    page = reporting.list_bookings(session, ADMIN, BookingFilters(), 1, 100)
    assert page.total == 11
    expected = {"a_paid": "paid", "a_partial": "partially_refunded", "a_refunded": "refunded",
                "a_pending": "unpaid", "a_sched": "unpaid", "a_old": "paid", "b_eur": "partially_refunded",
                "b_jpy": "paid", "b_expired": "unpaid", "b_failed_refund": "paid", "b_disputed": "disputed"}
    by_id = {row.id: row for row in page.rows}
    for name, state in expected.items():
        row = by_id[world.ids[name]]
        assert row.payment_status == state, name
        assert booking_json(session, row.id)["payment_status"] == state, name
    partial = by_id[world.ids["a_partial"]]
    assert (partial.paid_cents, partial.refunded_cents, partial.currency) == (12000, 3000, "USD")


def test_filters_by_status_payment_status_session_type_and_dates(session, world):
    ids = world.ids

    def listed(**filters):
        return ids_of(reporting.list_bookings(session, ADMIN, BookingFilters(**filters), 1, 100))

    assert listed(statuses=("CONFIRMED",)) == {ids["a_paid"], ids["b_jpy"]}
    assert listed(payment_statuses=("refunded",)) == {ids["a_refunded"]}
    assert listed(payment_statuses=("partially_refunded", "disputed")) == {
        ids["a_partial"], ids["b_eur"], ids["b_disputed"]}
    assert listed(session_type_id=world.types["a2"]) == {ids["a_partial"], ids["a_sched"]}
    assert listed(date_from=(world.now - timedelta(days=16)).date(),
                  date_to=(world.now - timedelta(days=9)).date()) == {
        ids["a_paid"], ids["a_refunded"], ids["b_disputed"]}
    assert listed(date_field="start", date_from=(world.now + timedelta(days=1)).date()) >= {
        ids["a_paid"], ids["a_pending"]}
    assert listed(statuses=("CANCELED",), payment_statuses=("paid",)) == {ids["b_failed_refund"]}
    with pytest.raises(DomainError):
        listed(statuses=("NOPE",))


def test_search_is_case_insensitive_on_name_or_email_and_literal(session, world):
    ids = world.ids

    def found(viewer, term):
        return ids_of(reporting.list_bookings(session, viewer, BookingFilters(search=term), 1, 100))

    alice = {ids["a_paid"], ids["a_refunded"], ids["b_eur"]}
    assert found(ADMIN, "ALICE") == alice
    assert found(ADMIN, "Alice@Example.COM") == alice
    assert found(ADMIN, "smith") == alice
    assert found(world.bo, "alice") == {ids["b_eur"]}  # the same client, only Bo's booking
    assert found(ADMIN, "100%") == {ids["a_sched"]}
    assert found(ADMIN, "_") == set()  # not a wildcard
    assert found(ADMIN, ids["b_jpy"]) == {ids["b_jpy"]}


def test_paging_returns_every_booking_once_newest_first(session, world):
    pages = [reporting.list_bookings(session, ADMIN, BookingFilters(), n, 4) for n in (1, 2, 3)]
    assert [len(p.rows) for p in pages] == [4, 4, 3]
    assert {p.total for p in pages} == {11} and pages[0].pages == 3
    rows = [row for p in pages for row in p.rows]
    assert len({row.id for row in rows}) == 11
    assert [row.created_at for row in rows] == sorted((row.created_at for row in rows), reverse=True)
    assert reporting.list_bookings(session, ADMIN, BookingFilters(), 4, 4).rows == []


def test_a_builder_sees_only_their_bookings_and_nobody_elses(session, world):
    page = reporting.list_bookings(session, world.ada, BookingFilters(), 1, 100)
    assert page.total == 6
    assert {row.builder_id for row in page.rows} == {world.builder_ids["ada"]}
    with pytest.raises(Forbidden):
        reporting.list_bookings(session, world.ada, BookingFilters(builder_id=world.builder_ids["bo"]))
    with pytest.raises(Forbidden):
        reporting.booking_detail(session, world.ada, world.ids["b_jpy"])
    with pytest.raises(Forbidden):
        reporting.failed_outbox(session, world.ada)
    with pytest.raises(Forbidden):
        reporting.webhook_payload(session, world.ada, 1)
    with pytest.raises(NotFound):
        reporting.booking_detail(session, ADMIN, "bk_missing")
    assert reporting.booking_detail(session, world.ada, world.ids["a_paid"]).builder_id == world.builder_ids["ada"]


def test_bookings_csv_has_every_filtered_row_in_major_units(session, world):
    text = reporting.bookings_csv(session, world.bo, BookingFilters(search="eve"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["booking_id"] for row in rows} == {world.ids["b_jpy"], world.ids["b_expired"],
                                                   world.ids["b_disputed"]}
    jpy = next(row for row in rows if row["booking_id"] == world.ids["b_jpy"])
    assert (jpy["currency"], jpy["price"], jpy["paid"], jpy["payment_status"]) == ("JPY", "6000", "6000", "paid")
    eur = list(csv.DictReader(io.StringIO(reporting.bookings_csv(session, ADMIN, BookingFilters(search="alice",
                                                                  statuses=("COMPLETED",))))))
    assert [(r["currency"], r["price"], r["refunded"]) for r in eur] == [("EUR", "80.00", "20.00")]


def test_csv_cells_cannot_become_spreadsheet_formulas(session, world):
    from core.models import SessionType
    evil = make_client(session, name="=HYPERLINK(\"x\")", email="evil@example.com")
    make_booking(session, session.get(SessionType, world.types["a1"]), evil, S.PENDING_SCHEDULING)
    session.commit()
    rows = list(csv.DictReader(io.StringIO(reporting.bookings_csv(session, ADMIN, BookingFilters(search="evil")))))
    assert rows[0]["client_name"].startswith("'=")


# ---------------------------------------------------------------- sessions, pending, detail
def test_upcoming_sessions_soonest_first_per_viewer(session, world):
    assert [s.id for s in reporting.upcoming_sessions(session, ADMIN)] == [
        world.ids["b_jpy"], world.ids["a_pending"], world.ids["a_paid"]]
    assert [s.id for s in reporting.upcoming_sessions(session, world.ada)] == [
        world.ids["a_pending"], world.ids["a_paid"]]


def test_pending_payments_show_waiting_since_and_hold_expiry(session, world):
    rows = reporting.pending_payments(session, ADMIN)
    assert [row.id for row in rows] == [world.ids["a_pending"]]
    row = rows[0]
    assert row.waiting_since == world.now - timedelta(hours=1) + timedelta(minutes=1)
    assert row.waiting_since.tzinfo is not None
    assert timedelta(minutes=19) < row.hold_expires_at - world.now <= timedelta(minutes=21)
    assert (row.amount_cents, row.currency, row.client_email) == (5000, "USD", "carol@example.com")
    assert reporting.pending_payments(session, world.bo) == []


def test_booking_detail_has_history_payments_refunds_outbox_and_failed_webhooks(session, world):
    detail = reporting.booking_detail(session, ADMIN, world.ids["a_paid"])
    assert (detail.status, detail.payment_status, detail.refundable_cents) == ("CONFIRMED", "paid", 5000)
    assert [h.cause for h in detail.history] == ["booking_started", "invitee_created", "payment_confirmed"]
    assert [(p.amount_cents, p.currency) for p in detail.payments] == [(5000, "USD")]
    assert [e.status for e in detail.outbox] == ["failed", "done"]
    assert [w.outcome for w in detail.webhooks] == ["failed"] and detail.webhooks[0].replayable
    assert detail.suggested_refund_cents == 5000  # three days ahead: full refund by policy
    payload = reporting.webhook_payload(session, ADMIN, detail.webhooks[0].id)
    assert world.ids["a_paid"] in payload.raw_body
    partial = reporting.booking_detail(session, ADMIN, world.ids["a_partial"])
    assert [(r.amount_cents, r.status) for r in partial.refunds] == [(3000, "succeeded")]
    assert partial.refundable_cents == 9000 and not partial.can_cancel


def test_refund_ledger_totals_per_currency_and_status(session, world):
    ledger = reporting.refund_ledger(session, ADMIN)
    assert ledger.total == 4
    assert [(t.currency, t.status, t.count, t.amount_cents) for t in ledger.totals] == [
        ("EUR", "failed", 1, 8000), ("EUR", "requested", 1, 2000), ("USD", "succeeded", 2, 8000)]
    assert [r.amount_cents for r in ledger.rows] == [5000, 2000, 3000, 8000]  # newest first
    assert reporting.refund_ledger(session, world.ada).total == 2
    only_failed = reporting.refund_ledger(session, ADMIN, statuses=("failed",))
    assert [r.booking_id for r in only_failed.rows] == [world.ids["b_failed_refund"]]
    assert reporting.refund_ledger(session, ADMIN, page=2, page_size=3).rows[0].amount_cents == 8000


def test_failed_outbox_and_webhooks_for_admins(session, world):
    assert [(e.kind, e.status, e.booking_id) for e in reporting.failed_outbox(session, ADMIN)] == [
        ("notify", "failed", world.ids["a_paid"])]
    assert [w.outcome for w in reporting.failed_webhooks(session, ADMIN)] == ["failed"]


def test_builders_and_prices_with_booking_counts(session, world):
    everyone = reporting.builders_and_prices(session, ADMIN)
    assert [(b.name, [(t.name, t.price_cents, t.currency, t.bookings) for t in b.session_types])
            for b in everyone] == [
        ("Ada", [("Intro", 5000, "USD", 4), ("Deep dive", 12000, "USD", 2)]),
        ("Bo", [("Call", 6000, "JPY", 2), ("Review", 8000, "EUR", 3)]),
    ]
    assert [b.name for b in reporting.builders_and_prices(session, world.bo)] == ["Bo"]


# ---------------------------------------------------------------- months and weeks (fixed dates)
def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture
def calendar_builder(session):
    """Builder Cy with payments and refunds on fixed dates across a month and week boundary."""
    cy = make_builder(session, name="Cy", email="cy@test")
    usd = make_session_type(session, cy, name="Hour", price_cents=10000, currency="USD")
    half = make_session_type(session, cy, name="Half", price_cents=5000, currency="USD")
    eur = make_session_type(session, cy, name="Stunde", price_cents=7000, currency="EUR")
    client = make_client(session, name="Fay", email="fay@example.com")
    c1 = make_booking(session, usd, client, S.COMPLETED, created_at=at("2024-01-01T10:00"),
                      start_time=at("2024-01-12T10:00"), paid_at=at("2024-01-10T09:00"))
    make_refund(session, c1, 2000, created_at=at("2024-01-20T12:00"))
    c2 = make_booking(session, half, client, S.CANCELED, created_at=at("2024-01-07T23:30"),
                      start_time=at("2024-02-03T10:00"), paid_at=at("2024-01-31T23:59"))
    make_refund(session, c2, 5000, rule="policy", created_at=at("2024-02-02T08:00"))
    make_refund(session, c2, 1000, status="failed", created_at=at("2024-02-05T08:00"))
    make_booking(session, eur, client, S.COMPLETED, created_at=at("2024-01-08T00:10"),
                 start_time=at("2024-02-15T10:00"), paid_at=at("2024-02-14T10:00"))
    user = make_user(session, "cy@test", "pw-cy-12345", "builder", cy)
    session.commit()
    return Viewer(user.id, "cy@test", "builder", cy.id)


def test_earnings_by_month_fee_on_net_of_refunds_per_currency(session, calendar_builder, settings_env):
    rows = reporting.earnings_by_month(session, calendar_builder)
    assert [(r.month, r.currency, r.gross_cents, r.refunded_cents, r.fee_cents, r.payout_cents) for r in rows] == [
        (date(2024, 1, 1), "USD", 15000, 2000, 1300, 11700),
        (date(2024, 2, 1), "EUR", 7000, 0, 700, 6300),
        (date(2024, 2, 1), "USD", 0, 5000, -500, -4500),
    ]
    totals = reporting.earnings_totals(rows)
    assert (totals["USD"].gross_cents, totals["USD"].refunded_cents, totals["USD"].fee_cents,
            totals["USD"].payout_cents) == (15000, 7000, 800, 7200)
    assert (totals["EUR"].net_cents, totals["EUR"].payout_cents) == (7000, 6300)  # net = paid − refunded
    assert reporting.earnings_by_month(session, ADMIN, builder_id=calendar_builder.builder_id) == rows
    settings_env(PLATFORM_FEE_PERCENT=15)
    assert reporting.earnings_by_month(session, calendar_builder)[0].fee_cents == 1950


def test_platform_fee_rounds_toward_zero():
    assert reporting.platform_fee(1999, 10) == 199
    assert reporting.platform_fee(-1999, 10) == -199
    assert reporting.platform_fee(0, 10) == 0


def test_weekly_series_buckets_by_monday_in_utc(session, calendar_builder):
    rows = reporting.weekly_series(session, ADMIN, at("2023-12-01T00:00"), builder_id=calendar_builder.builder_id)
    assert [(r.week, r.currency, r.bookings, r.revenue_cents) for r in rows] == [
        (date(2024, 1, 1), "USD", 2, 0),  # Monday 10:00 and Sunday 23:30 share a week
        (date(2024, 1, 8), "EUR", 1, 0),
        (date(2024, 1, 8), "USD", 0, 10000),
        (date(2024, 1, 29), "USD", 0, 5000),  # Wednesday 31 Jan 23:59
        (date(2024, 2, 12), "EUR", 0, 7000),
    ]
    assert reporting.weekly_series(session, calendar_builder, at("2024-01-09T00:00")) == [
        r for r in rows if r.week >= date(2024, 1, 8) and r.revenue_cents]


# ---------------------------------------------------------------- chart builders
def test_weekly_chart_has_a_bookings_series_and_one_revenue_series_per_currency(session, calendar_builder):
    rows = reporting.weekly_series(session, ADMIN, at("2023-12-01T00:00"), builder_id=calendar_builder.builder_id)
    figure = charts.build_weekly_chart(rows)
    traces = {trace.name: trace for trace in figure.data}
    assert list(traces) == ["Bookings", "Paid (EUR)", "Paid (USD)"]
    weeks = [date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 29), date(2024, 2, 12)]
    assert list(traces["Bookings"].x) == weeks and list(traces["Bookings"].y) == [2, 1, 0, 0]
    assert list(traces["Paid (USD)"].y) == [0, 100.0, 50.0, 0]
    assert list(traces["Paid (EUR)"].y) == [0, 0, 0, 70.0]
    assert list(traces["Paid (USD)"].customdata) == ["$0.00", "$100.00", "$50.00", "$0.00"]
    assert traces["Paid (EUR)"].yaxis != traces["Paid (USD)"].yaxis  # never one scale for two currencies
    assert charts.build_weekly_chart([]).data == ()


def test_funnel_chart_shows_the_stages(session, world):
    figure = charts.build_funnel_chart(reporting.status_funnel(session, ADMIN, since_90(world)))
    (trace,) = figure.data
    assert list(trace.y) == ["Started", "Scheduled", "Paid", "Completed"]
    assert list(trace.x) == [10, 9, 7, 3]


def test_refunds_by_reason_chart_has_one_series_per_currency(session, world):
    figure = charts.build_refunds_by_reason_chart(reporting.refunds_by_reason(session, ADMIN, since_90(world)))
    traces = {trace.name: trace for trace in figure.data}
    assert list(traces) == ["EUR", "USD"]
    assert list(traces["USD"].x) == ["Admin refund", "Cancellation policy"]
    assert list(traces["USD"].y) == [1, 1] and list(traces["EUR"].y) == [1, 0]
    assert list(traces["USD"].customdata) == ["$30.00", "$50.00"]


def test_earnings_chart_is_per_currency(session, calendar_builder):
    rows = reporting.earnings_by_month(session, calendar_builder)
    figure = charts.build_earnings_chart(rows, "USD")
    traces = {trace.name: trace for trace in figure.data}
    assert list(traces) == ["Payout", "Platform fee", "Refunded", "Paid"]
    assert list(traces["Payout"].x) == ["2024-01", "2024-02"]
    assert list(traces["Payout"].y) == [117.0, -45.0]
    assert list(traces["Paid"].y) == [150.0, 0.0]
    assert list(charts.build_earnings_chart(rows, "EUR").data[0].y) == [63.0]


# ---------------------------------------------------------------- actions are checked below the UI
def test_actions_refuse_builders_and_other_builders_prices(session, world):
    from core.models import SessionType
    from core.services import admin_actions as actions
    with pytest.raises(Forbidden):
        actions.refund(session, world.ada, world.ids["a_paid"], 100)
    with pytest.raises(Forbidden):
        actions.cancel(session, world.ada, world.ids["a_paid"])
    with pytest.raises(Forbidden):
        actions.update_price(session, world.ada, world.types["b1"], 9000, "EUR")
    actions.update_price(session, world.ada, world.types["a1"], 5500, "usd", active=False)
    assert (session.get(SessionType, world.types["a1"]).price_cents,
            session.get(SessionType, world.types["a1"]).currency,
            session.get(SessionType, world.types["a1"]).active) == (5500, "USD", False)
    with pytest.raises(DomainError):
        actions.update_price(session, ADMIN, world.types["a1"], 0, "USD")
    with pytest.raises(DomainError):
        actions.resend_payment_link(session, ADMIN, world.ids["a_paid"])  # nothing to pay


def test_times_are_shown_in_the_viewers_timezone():
    from dashboard.lib.fmt import when
    moment = datetime(2024, 7, 1, 12, 0, tzinfo=timezone.utc)
    assert when(moment, "UTC") == "Mon 01 Jul 2024 12:00"
    assert when(moment, "Asia/Tokyo", with_zone=True) == "Mon 01 Jul 2024 21:00 JST"
    assert when(moment, "Europe/London") == "Mon 01 Jul 2024 13:00"
    assert when(None, "UTC") == ""
