"""The dashboard through Streamlit's AppTest: the sign-in gate, what each role can reach, and the
admin's buttons (refund with confirmation, cancel, retry, reprocess) down to the ledgers."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.models import Booking, BookingHistory, OutboxEntry, Payment, Refund, SessionType, WebhookEvent, utcnow
from core.auth import Viewer, authenticate
from core.services.booking_view import booking_json
from core.states import BookingStatus as S
from tests.dashboard_helpers import (
    make_admin_and_builders, ADMIN_EMAIL, ADMIN_PASSWORD, BUILDER_PASSWORD, make_booking, make_builder, make_client,
    make_failed_webhook, make_outbox, make_session_type, make_user,
)

APP = "../dashboard/streamlit_app.py"
ACTOR = f"admin:{ADMIN_EMAIL}"


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches(streamlit_caches_cleared):
    """Streamlit's caches leak between AppTest runs in one process (conftest clears them)."""


@pytest.fixture
def shop(engine):
    """An admin; builders Ada (USD) and Bo (EUR) with a paid, a pending and a paid booking."""
    with session_scope(engine) as s:
        ada, bo = make_admin_and_builders(s, ada_timezone="Europe/London")
        hour = make_session_type(s, ada, name="Pairing hour", price_cents=10000, currency="USD")
        review = make_session_type(s, bo, name="Review", price_cents=8000, currency="EUR")
        alice = make_client(s, name="Alice Smith", email="alice@example.com")
        carol = make_client(s, name="Carol Diaz", email="carol@example.com")
        now = utcnow()
        paid = make_booking(s, hour, alice, S.CONFIRMED, created_at=now - timedelta(days=2),
                            start_time=now + timedelta(days=5), paid_at=now - timedelta(days=2))
        pending = make_booking(s, hour, carol, S.PENDING_PAYMENT, created_at=now - timedelta(minutes=10),
                               start_time=now + timedelta(days=1))
        other = make_booking(s, review, alice, S.CONFIRMED, created_at=now - timedelta(days=1),
                             start_time=now + timedelta(days=4), paid_at=now - timedelta(days=1))
        ids = {"paid": paid.id, "pending": pending.id, "other": other.id, "ada": ada.id, "bo": bo.id}
    return ids


def viewer(engine, email: str, password: str) -> Viewer:
    with session_scope(engine, read_only=True) as s:
        return authenticate(s, email, password)


def app_as(engine, email: str | None = None, password: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    if email:
        at.session_state["viewer"] = viewer(engine, email, password)
    return at.run()


def no_exception(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def admin_on_booking(engine, booking_id: str) -> AppTest:
    """The admin's Bookings page with `booking_id` open, as a click on its row leaves it
    (tests/test_dashboard_tables.py checks the click itself)."""
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.session_state["open_booking"] = booking_id
    at.switch_page("app_pages/admin_bookings.py").run()
    return no_exception(at)


def refunds_of(engine, booking_id: str) -> list[tuple[int, str, str, str]]:
    with session_scope(engine, read_only=True) as s:
        return [(r.amount_cents, r.status, r.rule, r.issued_by) for r in s.execute(
            select(Refund).where(Refund.booking_id == booking_id).order_by(Refund.id)).scalars()]


def history_of(engine, booking_id: str) -> list[tuple[str, str]]:
    with session_scope(engine, read_only=True) as s:
        return [(h.cause, h.actor) for h in s.execute(
            select(BookingHistory).where(BookingHistory.booking_id == booking_id)
            .order_by(BookingHistory.id)).scalars()]


def outbox_of(engine, booking_id: str) -> list[tuple[str, str]]:
    with session_scope(engine, read_only=True) as s:
        return [(e.kind, e.status) for e in s.execute(
            select(OutboxEntry).where(OutboxEntry.booking_id == booking_id).order_by(OutboxEntry.id)).scalars()]


def payment_state(engine, booking_id: str) -> str:
    with session_scope(engine, read_only=True) as s:
        return booking_json(s, booking_id)["payment_status"]


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


# ---------------------------------------------------------------- signing in
def test_nothing_but_the_sign_in_form_before_signing_in(engine, shop):
    at = no_exception(app_as(engine))
    assert [t.value for t in at.title] == ["Sign in"]
    assert [w.key for w in at.text_input] == ["sign_in_email", "sign_in_password"]
    assert not at.dataframe and not at.metric and not at.sidebar.children
    with pytest.raises(ValueError):
        at.switch_page("app_pages/admin_overview.py")


def test_a_wrong_password_is_refused_with_a_message(engine, shop):
    at = app_as(engine)
    at.text_input(key="sign_in_email").input(ADMIN_EMAIL)
    at.text_input(key="sign_in_password").input("not-the-password")
    at.form_submit_button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong email or password."]
    assert "viewer" not in at.session_state
    assert [t.value for t in at.title] == ["Sign in"]


def test_an_admin_signs_in_and_lands_on_the_overview(engine, shop):
    at = app_as(engine)
    at.text_input(key="sign_in_email").input(ADMIN_EMAIL.upper())
    at.text_input(key="sign_in_password").input(ADMIN_PASSWORD)
    at.form_submit_button[0].click().run()
    no_exception(at)
    assert at.title[0].value == "Overview"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Bookings"] == "3"
    assert metrics["Pending payments"] == "1"
    assert metrics["Paid (USD)"] == "$100.00" and metrics["Paid (EUR)"] == "€80.00"
    assert at.session_state["viewer"].actor == ACTOR


# ---------------------------------------------------------------- what a builder can reach
def test_a_builder_sees_only_their_bookings_and_cannot_open_admin_pages(engine, shop):
    at = no_exception(app_as(engine, "ada@test", BUILDER_PASSWORD))
    assert at.title[0].value == "Upcoming sessions"
    assert list(at.dataframe(key="holds_table").value["Booking"]) == [shop["pending"]]
    at.switch_page("app_pages/my_bookings.py").run()
    no_exception(at)
    assert set(at.dataframe[0].value["Booking"]) == {shop["paid"], shop["pending"]}
    assert "Builder" not in at.dataframe[0].value.columns
    for page in ("admin_overview.py", "admin_bookings.py", "admin_pending.py", "admin_refunds.py",
                 "admin_operations.py"):
        with pytest.raises(ValueError):
            at.switch_page(f"app_pages/{page}")


def test_a_builders_search_finds_only_their_own_client_bookings(engine, shop):
    at = app_as(engine, "bo@test", BUILDER_PASSWORD)
    at.switch_page("app_pages/my_bookings.py").run()
    at.text_input(key="bookings_search").input("ALICE").run()
    no_exception(at)
    assert list(at.dataframe[0].value["Booking"]) == [shop["other"]]
    assert at.download_button(key="bookings_csv")


def test_a_builder_without_bookings_is_told_what_to_do(engine, shop):
    with session_scope(engine) as s:
        cy = make_builder(s, name="Cy", email="cy@test")
        make_user(s, "cy@test", BUILDER_PASSWORD, "builder", cy)
    at = no_exception(app_as(engine, "cy@test", BUILDER_PASSWORD))
    assert "share your profile link" in at.info[0].value
    at.switch_page("app_pages/my_bookings.py").run()
    assert "No bookings yet" in at.info[0].value


def test_a_builder_edits_their_price(engine, shop):
    at = app_as(engine, "ada@test", BUILDER_PASSWORD)
    at.switch_page("app_pages/prices.py").run()
    with session_scope(engine, read_only=True) as s:
        type_id = s.execute(select(SessionType.id).where(SessionType.builder_id == shop["ada"])).scalar_one()
    at.text_input(key=f"price_amount_{type_id}").input("125.50")
    at.form_submit_button[0].click().run()
    no_exception(at)
    assert "now costs $125.50" in at.success[0].value
    with session_scope(engine, read_only=True) as s:
        assert s.get(SessionType, type_id).price_cents == 12550
        assert s.get(Booking, shop["paid"]).amount_cents == 10000  # bookings keep their price


# ---------------------------------------------------------------- refunds through the buttons
def test_admin_refunds_part_then_the_rest_with_confirmation(engine, shop):
    booking_id = shop["paid"]
    at = admin_on_booking(engine, booking_id)
    assert at.text_input(key="refund_amount").value == "100.00"  # the policy's suggestion: in full

    at.text_input(key="refund_amount").input("30.00")
    at.text_input(key="refund_reason").input("Started late")
    at.button(key="refund_open").click().run()
    assert refunds_of(engine, booking_id) == []  # nothing happens before confirming
    assert "Refund **$30.00** (USD)" in texts(at)
    at.button(key="confirm_action").click().run()
    no_exception(at)
    assert [m.value for m in at.success] == ["Refund of $30.00 requested; it is being sent to Stripe."]
    assert refunds_of(engine, booking_id) == [(3000, "requested", "manual", ACTOR)]
    assert payment_state(engine, booking_id) == "partially_refunded"
    assert ("refund_requested", ACTOR) in history_of(engine, booking_id)
    assert ("stripe_refund", "pending") in outbox_of(engine, booking_id)
    assert at.text_input(key="refund_amount").value == "70.00"  # refilled with what is left

    at.button(key="refund_full_open").click().run()
    assert "**$70.00** (USD)" in texts(at)
    at.button(key="confirm_action").click().run()
    no_exception(at)
    assert at.success[0].value == "Refund of $70.00 requested; it is being sent to Stripe."
    assert refunds_of(engine, booking_id) == [(3000, "requested", "manual", ACTOR),
                                              (7000, "requested", "manual", ACTOR)]
    assert payment_state(engine, booking_id) == "refunded"
    assert [c for c, a in history_of(engine, booking_id) if a == ACTOR] == ["refund_requested"] * 2
    assert outbox_of(engine, booking_id).count(("stripe_refund", "pending")) == 2
    assert "Fully refunded." in [c.value for c in at.caption]


def test_a_refund_beyond_the_remainder_is_refused_and_writes_nothing(engine, shop):
    booking_id = shop["paid"]
    at = admin_on_booking(engine, booking_id)
    at.text_input(key="refund_amount").input("100.01")
    at.button(key="refund_open").click().run()
    before = (refunds_of(engine, booking_id), history_of(engine, booking_id), outbox_of(engine, booking_id))
    at.button(key="confirm_action").click().run()
    no_exception(at)
    assert [e.value for e in at.error] == [
        "Not done: $100.01 is more than the refundable remainder of $100.00"]
    assert (refunds_of(engine, booking_id), history_of(engine, booking_id), outbox_of(engine, booking_id)) == before
    assert payment_state(engine, booking_id) == "paid"


def test_dismissing_the_confirmation_does_nothing(engine, shop):
    at = admin_on_booking(engine, shop["paid"])
    at.button(key="refund_full_open").click().run()
    at.button(key="cancel_action").click().run()
    no_exception(at)
    assert refunds_of(engine, shop["paid"]) == [] and "pending_action" not in at.session_state


def test_an_amount_that_is_not_money_is_refused_before_confirming(engine, shop):
    at = admin_on_booking(engine, shop["paid"])
    at.text_input(key="refund_amount").input("12.345")
    at.button(key="refund_open").click().run()
    assert "more decimals than USD allows" in at.error[0].value
    assert "pending_action" not in at.session_state


# ---------------------------------------------------------------- cancel, retry, reprocess, resend
def test_admin_cancels_a_booking_calendly_is_canceled_and_the_policy_refunds(engine, shop):
    booking_id = shop["paid"]
    at = admin_on_booking(engine, booking_id)
    at.text_input(key="cancel_reason").input("Builder is ill")
    at.button(key="cancel_open").click().run()
    assert "$100.00" in texts(at)
    at.button(key="confirm_action").click().run()
    no_exception(at)
    assert "Booking canceled" in at.success[0].value and "$100.00" in at.success[0].value
    with session_scope(engine, read_only=True) as s:
        booking = s.get(Booking, booking_id)
        assert (booking.status, booking.cancel_reason, booking.canceled_by) == ("CANCELED", "Builder is ill", ACTOR)
    assert refunds_of(engine, booking_id) == [(10000, "requested", "policy", ACTOR)]
    assert ("calendly_cancel", "pending") in outbox_of(engine, booking_id)
    assert ("canceled", ACTOR) in history_of(engine, booking_id)
    assert payment_state(engine, booking_id) == "refunded"


def test_admin_retries_a_failed_outbox_entry(engine, shop):
    with session_scope(engine) as s:
        entry = make_outbox(s, s.get(Booking, shop["paid"]), "notify", status="failed")
        entry_id = entry.id
    at = admin_on_booking(engine, shop["paid"])
    at.button(key=f"retry_{entry_id}").click().run()
    no_exception(at)
    assert at.success[0].value == f"Outbox entry #{entry_id} (notify) is due again; the worker runs it shortly."
    with session_scope(engine, read_only=True) as s:
        entry = s.get(OutboxEntry, entry_id)
        assert entry.status == "pending" and entry.next_attempt_at <= utcnow()
    assert ("outbox_retry_requested", ACTOR) in history_of(engine, shop["paid"])


def test_admin_reprocesses_a_failed_webhook_event(engine, shop):
    booking_id = shop["pending"]
    checkout = {"id": f"cs_test_{booking_id}", "object": "checkout.session", "client_reference_id": booking_id,
                "metadata": {"booking_id": booking_id}, "payment_status": "paid", "status": "complete",
                "payment_intent": "pi_replayed", "amount_total": 10000, "currency": "usd"}
    with session_scope(engine) as s:
        event_id = make_failed_webhook(s, dedupe_key="stripe:evt_replay", body={
            "id": "evt_replay", "type": "checkout.session.completed", "data": {"object": checkout}}).id
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.switch_page("app_pages/admin_operations.py").run()
    at.toggle(key=f"ops_raw_{event_id}").set_value(True).run()
    assert at.json[0].value and json.loads(at.json[0].value)["id"] == "evt_replay"
    at.button(key=f"reprocess_{event_id}").click().run()
    no_exception(at)
    assert at.success[0].value.startswith(f"Webhook event #{event_id} reprocessed: processed")
    with session_scope(engine, read_only=True) as s:
        assert s.get(WebhookEvent, event_id).outcome == "processed"
        assert s.get(Booking, booking_id).status == "CONFIRMED"
        assert s.execute(select(Payment.amount_cents).where(Payment.booking_id == booking_id)).scalar_one() == 10000
    assert ("webhook_reprocessed", ACTOR) in history_of(engine, booking_id)
    assert "No failed webhooks." in [m.value for m in at.success]


def test_pending_payments_page_resends_the_payment_link(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.switch_page("app_pages/admin_pending.py").run()
    no_exception(at)
    assert list(at.dataframe[0].value["Booking"]) == [shop["pending"]]
    at.button(key="pending_resend").click().run()
    no_exception(at)
    assert at.success[0].value == "Payment link sent again to carol@example.com."
    assert ("payment_link_resent", ACTOR) in history_of(engine, shop["pending"])
    assert ("notify", "pending") in outbox_of(engine, shop["pending"])


def test_pending_payments_page_cancels_after_confirmation(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.switch_page("app_pages/admin_pending.py").run()
    at.button(key="pending_cancel").click().run()
    at.button(key="confirm_action").click().run()
    no_exception(at)
    assert "nothing was paid" in at.success[0].value and "refund" not in at.success[0].value
    with session_scope(engine, read_only=True) as s:
        assert s.get(Booking, shop["pending"]).status == "CANCELED"
    assert ("calendly_cancel", "pending") in outbox_of(engine, shop["pending"])
    assert "No payments pending" in at.info[0].value


def test_every_admin_page_renders(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    for page in ("admin_overview.py", "admin_pending.py", "admin_bookings.py", "admin_refunds.py",
                 "earnings.py", "prices.py", "admin_operations.py"):
        at.switch_page(f"app_pages/{page}").run()
        no_exception(at)


def test_admin_opens_a_booking_from_the_list(engine, shop):
    at = app_as(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.switch_page("app_pages/admin_bookings.py").run()
    table = at.dataframe(key="admin_bookings_table").value
    assert len(table) == 3
    at.session_state["open_booking"] = table["Booking"][list(table["Session type"]).index("Review")]
    at.run()
    no_exception(at)
    assert at.subheader[0].value == "Alice Smith · Review"
    assert {m.label: m.value for m in at.metric}["Paid"] == "€80.00"
    at.session_state["open_booking"] = "bk_nope"
    at.run()
    assert at.error[0].value == "no booking bk_nope"
