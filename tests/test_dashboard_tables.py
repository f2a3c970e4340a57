"""The dashboard's tables and words through AppTest and the reports underneath: a row's click opens
its booking, a builder opens only their own (answers, history, money), the week view's days, the
refund filters and CSV, the earnings CSV, human history labels, forms that clear after an action.

AppTest cannot click a table row: the click handler (`components.picked_booking`) is tested on the
selection state Streamlit hands it, the pages from the session state a click leaves, and the real
click in tests/test_dashboard_browser_tables.py.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from streamlit.testing.v1 import AppTest

from core import reporting
from core.db import session_scope
from core.errors import Forbidden
from core.keys import calendly_event_key
from core.models import Booking, WebhookEvent, utcnow
from core.reporting import RefundFilters
from core.reporting.words import NET, cause_label
from core.states import BookingStatus as S
from dashboard.lib import tables
from dashboard.lib.components import picked_booking
from dashboard.lib.week import by_day, week_of
from tests.dashboard_helpers import (
    ADMIN_EMAIL, ADMIN_PASSWORD, BUILDER_PASSWORD, make_admin_and_builders, make_booking, make_client,
    make_refund, make_session_type,
)
from tests.test_dashboard import app_as, no_exception, viewer
from tests.webhook_helpers import invitee_envelope

ANSWERS = [{"question": "What do you want to build?", "answer": "A booking app", "position": 0},
           {"question": "Anything else?", "answer": "", "position": 1}]


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches(streamlit_caches_cleared):
    """Streamlit's caches leak between AppTest runs in one process (conftest clears them)."""


@pytest.fixture
def shop(engine):
    """Ada (Europe/London, USD) with a paid-then-partly-refunded booking whose client answered two
    questions in Calendly, and an unpaid hold; Bo (EUR) with a paid booking and a refund to a client
    whose name is a formula."""
    with session_scope(engine) as s:
        ada, bo = make_admin_and_builders(s, ada_timezone="Europe/London")
        hour = make_session_type(s, ada, name="Pairing hour", price_cents=10000, currency="USD")
        review = make_session_type(s, bo, name="Review", price_cents=8000, currency="EUR")
        alice = make_client(s, name="Alice Smith", email="alice@example.com")
        carol = make_client(s, name="Carol Diaz", email="carol@example.com")
        evil = make_client(s, name="=HYPERLINK(\"http://evil.test\")", email="evil@example.com")
        now = utcnow()
        paid = make_booking(s, hour, alice, S.CONFIRMED, created_at=now - timedelta(days=20),
                            start_time=now + timedelta(days=5), paid_at=now - timedelta(days=20))
        make_refund(s, paid, 2500, created_at=now - timedelta(days=10))
        pending = make_booking(s, hour, carol, S.PENDING_PAYMENT, created_at=now - timedelta(minutes=10),
                               start_time=now + timedelta(days=1))
        other = make_booking(s, review, evil, S.CONFIRMED, created_at=now - timedelta(days=3),
                             start_time=now + timedelta(days=4), paid_at=now - timedelta(days=3))
        make_refund(s, other, 8000, created_at=now - timedelta(days=2))
        body = invitee_envelope("invitee.created", invitee_uri=paid.calendly_invitee_uri,
                                event_uri=paid.calendly_event_uri, booking_ref=paid.id, start=paid.start_time)
        body["payload"]["questions_and_answers"] = ANSWERS
        s.add(WebhookEvent(provider="calendly", dedupe_key=calendly_event_key("invitee.created", paid.calendly_invitee_uri),
                           event_type="invitee.created", raw_body=json.dumps(body), headers={},
                           signature_valid=True, outcome="processed", error="attached to booking",
                           booking_id=paid.id, attempts=1, processed_at=now))
        return {"paid": paid.id, "pending": pending.id, "other": other.id, "ada": ada.id, "bo": bo.id}


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table_with(at: AppTest, column: str):
    """The first table showing `column` (a table that is not selectable has no key in AppTest)."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


# ---------------------------------------------------------------- a click opens the booking
def test_the_click_handler_opens_the_booking_of_the_selected_row():
    ids = ["bk_a", "bk_b", ""]
    assert picked_booking({"selection": {"rows": [1], "columns": [], "cells": []}}, ids) == "bk_b"
    assert picked_booking({"selection": {"rows": [], "columns": []}}, ids) is None  # unselected: closes
    assert picked_booking({"selection": {"rows": [2]}}, ids) is None  # a row without a booking
    assert picked_booking({"selection": {"rows": [7]}}, ids) is None  # a stale row number
    assert picked_booking(None, ids) is None


def test_tables_hide_ids_and_show_names(engine, shop):
    at = no_exception(app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD))
    at.switch_page("app_pages/admin_bookings.py").run()
    table = at.dataframe(key="admin_bookings_table")
    assert table.proto.selection_mode, "rows are selectable"
    assert set(table.value["Booking"]) == {shop["paid"], shop["pending"], shop["other"]}
    assert set(table.value["Client"]) == {"Alice Smith", "Carol Diaz", "=HYPERLINK(\"http://evil.test\")"}
    config = json.loads(table.proto.columns)
    assert config["Booking"]["hidden"] is True  # the id is data for the click, not a column
    assert "pick_booking" not in [w.key for w in at.selectbox]  # no dropdown of ids
    assert "open_booking" not in [w.key for w in at.text_input]  # no typing ids


def test_a_row_opened_on_the_refunds_page_opens_on_the_bookings_page(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.switch_page("app_pages/admin_refunds.py").run()
    at.session_state["goto_booking"] = shop["other"]  # what a click on its row leaves
    at.run()
    no_exception(at)
    assert at.title[0].value == "Bookings"
    assert at.subheader[0].value.endswith("· Review")


# ---------------------------------------------------------------- builders open their own bookings
def test_a_builder_opens_their_booking_with_answers_history_and_money(engine, shop):
    at = app_as(engine, "ada@test", BUILDER_PASSWORD)
    at.switch_page("app_pages/my_bookings.py").run()
    assert set(at.dataframe(key="bookings_table").value["Booking"]) == {shop["paid"], shop["pending"]}
    at.session_state["my_open_booking"] = shop["paid"]
    at.run()
    no_exception(at)
    assert at.subheader[0].value == "Alice Smith · Pairing hour"
    shown = metrics(at)
    assert (shown["Paid"], shown["Refunded"], shown[NET.label]) == ("$100.00", "$25.00", "$75.00")
    net = next(m for m in at.metric if m.label == NET.label)
    assert net.help == "Net = paid − refunded."
    assert "**What do you want to build?** A booking app" in texts(at)
    history = table_with(at, "What happened")
    assert "Payment received, session confirmed" in list(history["What happened"])
    assert not any("_" in cause for cause in history["What happened"])  # no raw cause codes
    assert "Stripe" in list(history["By"])
    # What only admins see is not there: actions, Stripe ids, side effects, webhooks.
    assert "Side effects (outbox)" not in texts(at) and "Webhook events" not in texts(at)
    assert not [b for b in at.button if b.key in ("refund_open", "cancel_open")]


def test_a_builder_cannot_open_another_builders_booking(engine, shop):
    at = app_as(engine, "bo@test", BUILDER_PASSWORD)
    at.session_state["my_open_booking"] = shop["paid"]  # Ada's
    at.switch_page("app_pages/my_bookings.py").run()
    no_exception(at)
    assert not at.subheader
    assert at.error and "Alice" not in at.error[0].value
    with session_scope(engine, read_only=True) as s, pytest.raises(Forbidden):
        reporting.booking_detail(s, viewer(engine, "bo@test", BUILDER_PASSWORD), shop["paid"])


# ---------------------------------------------------------------- the week view
def test_week_days_are_the_viewers_days():
    class Session:
        def __init__(self, start):
            self.start_time = start

    now = datetime(2024, 6, 5, 12, tzinfo=timezone.utc)  # a Wednesday
    late_monday_utc = Session(datetime(2024, 6, 3, 23, 30, tzinfo=timezone.utc))
    sunday_evening_utc = Session(datetime(2024, 6, 9, 20, tzinfo=timezone.utc))
    tokyo = week_of(now, "Asia/Tokyo")
    assert tokyo.monday == date(2024, 6, 3) and tokyo.start.utcoffset() == timedelta(hours=9)
    days = by_day([sunday_evening_utc, late_monday_utc], tokyo, "Asia/Tokyo")
    assert days[date(2024, 6, 4)] == [late_monday_utc]  # 08:30 Tuesday in Tokyo
    assert sunday_evening_utc not in sum(days.values(), [])  # 05:00 next Monday in Tokyo
    new_york = by_day([late_monday_utc, sunday_evening_utc], week_of(now, "America/New_York"), "America/New_York")
    assert new_york[date(2024, 6, 3)] == [late_monday_utc] and new_york[date(2024, 6, 9)] == [sunday_evening_utc]
    assert week_of(now, "UTC", offset=-1).monday == date(2024, 5, 27)


def test_the_week_view_shows_confirmed_sessions_on_their_day_and_holds_apart(engine, shop):
    week = week_of(utcnow(), "Europe/London")
    wednesday_ten = week.start + timedelta(days=2, hours=10)
    with session_scope(engine) as s:
        paid = s.get(Booking, shop["paid"])
        paid.start_time, paid.end_time = wednesday_ten, wednesday_ten + timedelta(hours=1)
    at = no_exception(app_as(engine, "ada@test", BUILDER_PASSWORD))
    assert at.title[0].value == "Upcoming sessions"
    assert at.button(key=f"week_{shop['paid']}").label == "Open"
    assert "**10:00–11:00**  \nAlice Smith  \n:gray[Pairing hour]" in texts(at)
    assert f"week_{shop['pending']}" not in [b.key for b in at.button]  # an unpaid hold is not a session
    holds = at.dataframe(key="holds_table").value
    assert list(holds["Booking"]) == [shop["pending"]] and list(holds["Payment"]) == ["Not paid yet"]
    assert holds["Hold ends"][0] is not None
    assert "Not paid yet" in [h.value for h in at.markdown if h.value.startswith("####")][-1]
    at.button(key="week_next").click().run()
    assert f"week_{shop['paid']}" not in [b.key for b in at.button]
    session_button = at.button(key="week_now").click().run().button(key=f"week_{shop['paid']}")
    session_button.click().run()
    no_exception(at)
    assert at.title[0].value == "Bookings" and at.subheader[0].value == "Alice Smith · Pairing hour"


# ---------------------------------------------------------------- refunds: filters and CSV
def test_refund_filters_narrow_the_table_and_the_csv(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.switch_page("app_pages/admin_refunds.py").run()
    assert len(at.dataframe(key="refunds_table").value) == 2
    at.selectbox(key="refunds_currency").select("EUR").run()
    no_exception(at)
    table = at.dataframe(key="refunds_table").value
    assert list(table["Booking"]) == [shop["other"]] and list(table["Amount"]) == ["€80.00"]
    at.selectbox(key="refunds_currency").select(None)
    at.selectbox(key="refunds_builder").select(shop["ada"]).run()
    assert list(at.dataframe(key="refunds_table").value["Booking"]) == [shop["paid"]]
    at.selectbox(key="refunds_builder").select(None)
    today = utcnow().date()
    at.date_input(key="refunds_from").set_value(today - timedelta(days=5)).run()
    assert list(at.dataframe(key="refunds_table").value["Booking"]) == [shop["other"]]
    at.date_input(key="refunds_to").set_value(today - timedelta(days=9)).run()
    assert "“From” day is after the “To” day" in at.error[0].value
    at.date_input(key="refunds_to").set_value(None).run()
    assert len(at.get("download_button")) == 1


def test_the_refunds_csv_has_the_filtered_rows_only_and_no_formulas(engine, shop):
    admin = viewer(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    with session_scope(engine, read_only=True) as s:
        rows = list(csv.DictReader(io.StringIO(reporting.refunds_csv(s, admin, RefundFilters(currency="EUR")))))
        everything = list(csv.DictReader(io.StringIO(reporting.refunds_csv(s, admin))))
        days = RefundFilters(date_from=utcnow().date() - timedelta(days=12), date_to=utcnow().date() - timedelta(days=8))
        by_date = list(csv.DictReader(io.StringIO(reporting.refunds_csv(s, admin, days))))
        ada = viewer(engine, "ada@test", BUILDER_PASSWORD)
        ada_only = reporting.refunds_csv(s, ada)
        with pytest.raises(Forbidden):  # a builder's CSV is their own whatever they ask for
            reporting.refunds_csv(s, ada, RefundFilters(builder_id=shop["bo"]))
    assert [(r["booking_id"], r["currency"], r["amount"]) for r in rows] == [(shop["other"], "EUR", "80.00")]
    assert rows[0]["client_name"] == "'=HYPERLINK(\"http://evil.test\")"  # text in a spreadsheet, not a formula
    assert len(everything) == 2 and [r["booking_id"] for r in by_date] == [shop["paid"]]
    assert shop["paid"] in ada_only and shop["other"] not in ada_only


# ---------------------------------------------------------------- earnings CSV
def test_the_earnings_csv_has_the_pages_numbers(engine, shop):
    at = no_exception(app_as(engine, "ada@test", BUILDER_PASSWORD).switch_page("app_pages/earnings.py").run())
    shown = metrics(at)
    table = table_with(at, "Payout")
    with session_scope(engine, read_only=True) as s:
        rows = reporting.earnings_by_month(s, viewer(engine, "ada@test", BUILDER_PASSWORD))
    lines = list(csv.DictReader(io.StringIO(reporting.earnings_csv(rows))))
    assert [line["currency"] for line in lines] == ["USD"] * len(table)
    total = lambda column: sum(float(line[column]) for line in lines)  # noqa: E731
    assert (total("paid"), total("refunded"), total("net")) == (100.0, 25.0, 75.0)
    assert shown["Paid"] == "$100.00" and shown["Refunded"] == "$25.00" and shown["Net"] == "$75.00"
    assert shown["Payout"] == f"${total('payout'):,.2f}" and shown["Platform fee"] == f"${total('platform_fee'):,.2f}"
    assert [f"${float(line['net']):,.2f}" for line in lines] == list(table["Net"])
    assert at.get("download_button"), "the page offers the CSV"


# ---------------------------------------------------------------- words
def test_history_causes_read_as_words():
    assert cause_label("payment_received") == "Payment received"
    assert cause_label("checkout_expired") == "Payment page expired, slot released"
    assert cause_label("some_new_cause") == "Some new cause"  # never blank, never a code


def test_a_processed_webhooks_note_is_not_an_error(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.session_state["open_booking"] = shop["paid"]
    at.switch_page("app_pages/admin_bookings.py").run()
    no_exception(at)
    webhooks = table_with(at, "Provider")
    assert list(webhooks["Details"]) == ["Note: attached to booking"]
    assert tables.outcome_note_label("failed") == "Error"


def test_the_refund_form_is_empty_after_a_refund(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.session_state["open_booking"] = shop["paid"]
    at.switch_page("app_pages/admin_bookings.py").run()
    at.text_input(key="refund_amount").input("10.00")
    at.text_input(key="refund_reason").input("Started late")
    at.button(key="refund_open").click().run()
    at.button(key="confirm_action").click().run()
    no_exception(at)
    assert at.success[0].value.startswith("Refund of $10.00 requested")
    assert at.text_input(key="refund_reason").value == ""
    assert at.text_input(key="refund_amount").value == "65.00"  # the policy's suggestion for the rest


def test_an_unpaid_cancellation_does_not_speak_of_a_refund_policy(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.session_state["open_booking"] = shop["pending"]
    at.switch_page("app_pages/admin_bookings.py").run()
    captions = " ".join(c.value for c in at.caption)
    assert "Nothing was paid, so there is nothing to refund." in captions
    assert "policy" not in captions.split("Nothing was paid")[0][-200:]
    at.button(key="cancel_open").click().run()
    assert "policy" not in texts(at)
    at.button(key="confirm_action").click().run()
    assert "policy" not in at.success[0].value and "nothing was paid" in at.success[0].value
