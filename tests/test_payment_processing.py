"""A payment on its way is not an unpaid booking (issue 9, section 3).

A client pays by bank transfer (the Stripe stand-in's "settles later"): Checkout completes with
`payment_status: "unpaid"` and the money arrives days later. The booking keeps its slot up to the
settlement window, nobody asks the client to pay again, and the worker, ticking every couple of
seconds, writes nothing and calls Stripe never until something changes; when the window ends it
asks Stripe once and acts on the answer.

The worker is run tick by tick (`core.worker.tick`) with an advancing `now`; Stripe calls are
counted at the HTTP client the worker uses.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from sqlalchemy import func, select, update

from core import worker
from core.db import session_scope
from core.errors import DomainError
from core.models import Booking, BookingHistory, Notification, OutboxEntry, utcnow
from core.reporting import pending_payments
from core.auth import Viewer
from core.services.admin_actions import resend_payment_link
from core.reporting.bookings import booking_detail
from core.services import holds
from core.services.payment_processing import add_business_days, settlement_deadline
from core.services.reconcile import reconcile_checkouts
from core.stripe import StripeGateway
from tests.webhook_helpers import future_slot, history_causes, outbox_entries, payments, refunds, settle

ADMIN = Viewer(user_id=0, email="ops@example.test", role="admin", builder_id=None, timezone="UTC")


# ---------------------------------------------------------------- counting Stripe calls
class CountingHttp(stripe.RequestsClient):
    """The SDK's own HTTP client, remembering every request it sends."""

    def __init__(self):
        super().__init__(timeout=20)
        self.calls: list[tuple[str, str]] = []

    def request(self, method, url, headers, post_data=None, *args, **kwargs):
        self.calls.append((method.upper(), url))
        return super().request(method, url, headers, post_data, *args, **kwargs)


@pytest.fixture
def counted_stripe(live, monkeypatch):
    """The worker's Stripe client, talking to the stand-in, with its HTTP requests counted."""
    http = CountingHttp()
    client = stripe.StripeClient(live.settings.stripe_secret_key, base_addresses={"api": live.stripe},
                                 max_network_retries=0, http_client=http)
    gateway = StripeGateway(client)
    monkeypatch.setattr(worker, "stripe_gateway", lambda: gateway)
    http.gateway = gateway
    return http


# ---------------------------------------------------------------- reading what changed
def snapshot(engine, booking_id: str) -> dict:
    """Everything a tick could have written for the booking."""
    with session_scope(engine, read_only=True) as db:
        booking = db.get(Booking, booking_id)
        return {
            "status": booking.status, "hold": booking.hold_expires_at,
            "processing_since": booking.payment_processing_since,
            "history": db.execute(select(func.count()).select_from(BookingHistory)
                                  .where(BookingHistory.booking_id == booking_id)).scalar_one(),
            "notifications": sorted(db.execute(select(Notification.kind)
                                               .where(Notification.booking_id == booking_id)).scalars()),
            "outbox": db.execute(select(func.count()).select_from(OutboxEntry)
                                 .where(OutboxEntry.booking_id == booking_id)).scalar_one(),
        }


def pay_by_bank(live, booking_id: str) -> str:
    checkout_id = live.checkout(booking_id)
    paid = live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay", {"method": "bank_transfer"})
    assert paid.status_code == 200 and paid.json()["payment_status"] == "unpaid"
    return checkout_id


def settle_bank(live, checkout_id: str, result: str) -> None:
    answer = live.stripe_sandbox("POST", f"/checkout/{checkout_id}/bank_transfer", {"result": result})
    assert answer.status_code == 200, answer.text


def original_hold(engine, booking_id: str):
    """The hold Checkout was opened with (before the bank payment extended it)."""
    with session_scope(engine, read_only=True) as db:
        return db.get(Booking, booking_id).checkout_expires_at


def run_ticks(engine, moments) -> list[dict]:
    return [worker.tick(engine, now=moment) for moment in moments]


def every(start, step: timedelta, count: int):
    return [start + step * n for n in range(count)]


# ---------------------------------------------------------------- the whole story, live
def test_worker_ticks_past_the_hold_change_nothing_while_a_bank_transfer_settles(live, counted_stripe):
    booking_id = book_a_week_ahead(live)
    checkout_id = pay_by_bank(live, booking_id)
    first_hold = original_hold(live.engine, booking_id)

    data = live.booking(booking_id)
    assert data["status"] == "PENDING_PAYMENT" and data["payment_processing"] is True
    assert payments(live.engine, booking_id) == []
    before = snapshot(live.engine, booking_id)
    since = before["processing_since"]
    assert before["hold"] == settlement_deadline(since, live_start(live, booking_id)) > first_hold
    assert history_causes(live.engine, booking_id).count("payment_processing") == 1
    assert before["notifications"].count("payment_processing") == 1

    # Ten minutes before the old hold end (the reminder's moment), then 2-second ticks for two
    # minutes past it and past the worker's grace, then a tick every 2 hours until just before the
    # settlement deadline (days later).
    moments = ([first_hold - timedelta(minutes=10), first_hold - timedelta(minutes=5)]
               + every(first_hold, timedelta(seconds=2), 90)
               + every(first_hold + timedelta(hours=1), timedelta(hours=2), 200))
    moments = [m for m in moments if m < before["hold"]]
    assert len(moments) > 120 and moments[-1] > first_hold + timedelta(days=4)
    results = run_ticks(live.engine, moments)

    assert snapshot(live.engine, booking_id) == before  # not a row, not a message, not a move
    assert counted_stripe.calls == []  # and not one call to Stripe
    assert all(r["reminders"] == 0 and r["expired"] == 0 for r in results)

    settle_bank(live, checkout_id, "succeeded")
    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid" and data["paid_cents"] == 4900
    assert data["payment_processing"] is False and data["payment_processing_since"] is None
    [payment] = payments(live.engine, booking_id)
    assert (payment.amount_cents, payment.status) == (4900, "succeeded")
    after = snapshot(live.engine, booking_id)
    assert "booking_confirmed" in after["notifications"] and "payment_reminder" not in after["notifications"]

    run_ticks(live.engine, every(before["hold"], timedelta(minutes=30), 20))
    assert snapshot(live.engine, booking_id) == after and counted_stripe.calls == []


def book_a_week_ahead(live) -> str:
    """A booking whose session is far enough ahead for the whole settlement window."""
    booking_id, url = live.start_booking(live.signed_in_client())
    live.pick_slot(url, future_slot(days=7, hour=16))
    return booking_id


def live_start(live, booking_id):
    with session_scope(live.engine, read_only=True) as db:
        return db.get(Booking, booking_id).start_time


def test_a_failed_bank_transfer_releases_the_slot_once(live, counted_stripe):
    booking_id = live.book()
    checkout_id = pay_by_bank(live, booking_id)
    event_uri = live.booking(booking_id)["calendly_event_uri"]

    settle_bank(live, checkout_id, "failed")
    settle(live)

    data = live.booking(booking_id)
    assert data["status"] == "EXPIRED" and data["payment_processing_since"] is None
    assert history_causes(live.engine, booking_id)[-1] == "async_payment_failed"
    [cancel] = outbox_entries(live.engine, booking_id, "calendly_cancel")
    assert cancel.status == "done"
    assert [e for e in live.calendly_state()["events"] if e["uri"] == event_uri][0]["status"] == "canceled"
    after = snapshot(live.engine, booking_id)
    run_ticks(live.engine, every(utcnow(), timedelta(days=1), 10))
    assert snapshot(live.engine, booking_id) == after and counted_stripe.calls == []


def test_repeated_news_of_the_same_bank_payment_changes_nothing(live, counted_stripe):
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    checkout_id = pay_by_bank(live, booking_id)
    before = snapshot(live.engine, booking_id)
    [completed] = [e for e in live.stripe_state()["events"] if e["type"] == "checkout.session.completed"]

    statuses = [live.stripe_sandbox("POST", f"/events/{completed['id']}/redeliver").json()["status"]
                for _ in range(5)]
    assert statuses == [200] * 5
    # The success page (Stripe's redirect) and reconcile read the same session: nothing new either.
    page = browser.get(f"{live.web}/payment/success", params={"session_id": checkout_id}, timeout=30)
    assert page.status_code == 200 and "on its way" in page.text and 'http-equiv="refresh"' not in page.text
    assert reconcile_checkouts(live.engine, counted_stripe.gateway) == {}
    assert counted_stripe.calls == []  # a booking whose payment is on its way is not asked about
    assert snapshot(live.engine, booking_id) == before
    assert history_causes(live.engine, booking_id).count("payment_processing") == 1


def test_no_reminder_and_no_new_checkout_while_the_payment_is_on_its_way(live):
    browser = live.signed_in_client()
    booking_id = live.book(browser)
    checkout_id = pay_by_bank(live, booking_id)
    with session_scope(live.engine) as db:  # even with the old hold's end ten minutes away
        db.execute(update(Booking).where(Booking.id == booking_id)
                   .values(hold_expires_at=utcnow() + timedelta(minutes=5)))
    assert holds.send_payment_reminders(live.engine) == 0
    assert "payment_reminder" not in snapshot(live.engine, booking_id)["notifications"]

    page = browser.get(f"{live.web}/payment/{booking_id}", allow_redirects=False, timeout=30)
    assert page.status_code == 200  # our page, not a redirect to pay again
    assert "Your bank payment is on its way" in page.text and "nothing more to pay" in page.text
    assert "Pay now" not in page.text and checkout_id not in page.text

    with session_scope(live.engine) as db, pytest.raises(DomainError, match="pay twice"):
        resend_payment_link(db, ADMIN, booking_id)
    assert "payment_link_resent" not in history_causes(live.engine, booking_id)


def test_when_the_window_ends_unsettled_stripe_is_asked_once_and_the_slot_released(live, counted_stripe):
    booking_id = live.book()
    checkout_id = pay_by_bank(live, booking_id)
    deadline = snapshot(live.engine, booking_id)["hold"]

    run_ticks(live.engine, every(deadline + timedelta(minutes=3), timedelta(seconds=2), 30))

    retrieves = [c for c in counted_stripe.calls if checkout_id in c[1]]
    assert len(counted_stripe.calls) == len(retrieves) == 1 and retrieves[0][0] == "GET"
    data = live.booking(booking_id)
    assert data["status"] == "EXPIRED" and data["payment_processing_since"] is None
    causes = history_causes(live.engine, booking_id)
    assert causes[-1] == "payment_not_settled_in_time" and causes.count("payment_not_settled_in_time") == 1
    assert [e.kind for e in outbox_entries(live.engine, booking_id, "calendly_cancel")] == ["calendly_cancel"]

    # The money arrives after all: the late-payment rule refunds it in full.
    settle_bank(live, checkout_id, "succeeded")
    settle(live)
    assert live.status(booking_id) == "EXPIRED"
    [refund] = refunds(live.engine, booking_id)
    assert refund.amount_cents == 4900 and refund.rule == "late_payment"


@pytest.mark.parametrize("result, status, cause", [("succeeded", "CONFIRMED", "payment_confirmed"),
                                                   ("failed", "EXPIRED", "async_payment_failed")])
def test_a_lost_settlement_webhook_is_read_from_stripe_once_when_the_window_ends(
        live, counted_stripe, result, status, cause):
    booking_id = book_a_week_ahead(live)
    checkout_id = pay_by_bank(live, booking_id)
    deadline = snapshot(live.engine, booking_id)["hold"]
    assert deadline > utcnow() + timedelta(days=4)  # the slot is held for the settlement window
    live.stripe_sandbox("POST", "/config", {"webhook_delivery": "off"})
    settle_bank(live, checkout_id, result)
    assert live.status(booking_id) == "PENDING_PAYMENT"

    run_ticks(live.engine, every(deadline - timedelta(hours=1), timedelta(minutes=1), 20))
    assert counted_stripe.calls == [] and live.status(booking_id) == "PENDING_PAYMENT"
    run_ticks(live.engine, every(deadline + timedelta(minutes=3), timedelta(seconds=2), 20))

    assert len(counted_stripe.calls) == 1
    assert live.status(booking_id) == status
    assert history_causes(live.engine, booking_id).count(cause) == 1
    assert len(payments(live.engine, booking_id)) == (1 if result == "succeeded" else 0)


def test_a_lost_processing_webhook_is_learned_at_the_hold_end_once(live, counted_stripe):
    booking_id = live.book()
    live.stripe_sandbox("POST", "/config", {"webhook_delivery": "off"})  # completed (unpaid) is lost
    pay_by_bank(live, booking_id)
    first_hold = original_hold(live.engine, booking_id)
    assert snapshot(live.engine, booking_id)["processing_since"] is None

    run_ticks(live.engine, every(first_hold + timedelta(minutes=3), timedelta(seconds=2), 40))

    assert len(counted_stripe.calls) == 1  # asked once; then the hold lasts the settlement window
    after = snapshot(live.engine, booking_id)
    assert after["status"] == "PENDING_PAYMENT" and after["processing_since"] is not None
    assert after["hold"] == settlement_deadline(after["processing_since"], live_start(live, booking_id))
    assert history_causes(live.engine, booking_id).count("payment_processing") == 1


# ---------------------------------------------------------------- what admins see
def test_admins_see_a_bank_transfer_on_its_way_and_no_resend(live):
    booking_id = live.book()
    pay_by_bank(live, booking_id)
    with session_scope(live.engine, read_only=True) as db:
        [row] = [r for r in pending_payments(db, ADMIN) if r.id == booking_id]
        detail = booking_detail(db, ADMIN, booking_id)
    assert row.payment_on_its_way and detail.payment_on_its_way
    assert not detail.can_resend_payment_link

    from streamlit.testing.v1 import AppTest

    from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, make_user
    from core.auth import authenticate
    with session_scope(live.engine) as db:
        make_user(db, ADMIN_EMAIL, ADMIN_PASSWORD, "admin")
    with session_scope(live.engine, read_only=True) as db:
        viewer = authenticate(db, ADMIN_EMAIL, ADMIN_PASSWORD)
    at = AppTest.from_file("../dashboard/streamlit_app.py", default_timeout=30)
    at.session_state["viewer"] = viewer
    at.run()
    at.switch_page("app_pages/admin_pending.py").run()
    assert not at.exception, [e.value for e in at.exception]
    frame = at.dataframe[0].value
    assert list(frame.loc[frame["Booking"] == booking_id, "Payment"]) == ["Bank transfer on its way"]
    assert not [b for b in at.button if b.key == "pending_resend"]
    assert any("Bank transfer on its way" in i.value for i in at.info)


# ---------------------------------------------------------------- the settlement window
def test_the_settlement_window_counts_business_days_and_ends_at_the_session():
    friday = utcnow().replace(year=2026, month=12, day=4, hour=15, minute=0, second=0, microsecond=0)
    assert friday.weekday() == 4
    assert add_business_days(friday, 1).weekday() == 0  # Monday
    assert add_business_days(friday, 5) == friday + timedelta(days=7)
    assert settlement_deadline(friday, None) == friday + timedelta(days=7)  # default: 5 business days
    session = friday + timedelta(days=2)
    assert settlement_deadline(friday, session) == session
