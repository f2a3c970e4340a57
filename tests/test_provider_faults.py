"""When Stripe or Calendly misbehave: 500, 429, timeouts, dropped connections, and errors that
arrive after the effect. The outbox retries with the same idempotency key until done (exactly one
refund, one checkout session), clients see a clear 503 page, and permanent refusals are marked
`failed` with their reason.

The web service's after-request drain is off here: each test drains the outbox itself, one
attempt at a time, making retried entries due instead of waiting out their backoff.
"""
from __future__ import annotations

import uuid

import pytest
import requests
import stripe
from sqlalchemy import update

from core import providers
from core.calendly import CalendlyClient
from core.config import get_settings
from core.db import session_scope
from core.models import OutboxEntry, SessionType, utcnow
from core.services import payment_events, scheduling, side_effects
from core.services.booking_view import booking_json
from core.stripe import gateway as stripe_gateway
from tests import factories
from tests.webhook_helpers import future_slot, outbox_entries, refunds, settle
from webhook_service import outbox_kick


@pytest.fixture
def faulty(live, monkeypatch):
    """The live system, tuned for fault tests: no after-request drain, quick client retries."""
    monkeypatch.setattr(outbox_kick, "_drain", lambda engine: None)
    # The SDK's own retries (same idempotency key) stay on, just without the half-second sleeps.
    monkeypatch.setattr(stripe._http_client.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe._http_client.HTTPClient, "MAX_DELAY", 0.02)

    def quick_calendly(builder):  # the client's retries stay on, without their back-off sleeps
        return CalendlyClient(providers.calendly_token(builder), get_settings().calendly_api_base,
                              sleep=lambda seconds: None)

    monkeypatch.setattr(side_effects, "calendly_for", quick_calendly)
    monkeypatch.setattr(scheduling, "calendly_for", quick_calendly)
    return live


STRIPE_TIMEOUT = 1.0  # our client's, in the timeout cases; the stand-in then hangs twice as long


def stripe_fault(live, mode: str, path: str, count: int, *, monkeypatch=None, method: str = "POST") -> None:
    if mode == "timeout":
        # Short only here: elsewhere a call may be slow for good reasons (Stripe's answer waits for
        # the webhook it sends us first), and a short timeout would turn load into extra retries.
        monkeypatch.setattr(stripe_gateway, "STRIPE_TIMEOUT_SECONDS", STRIPE_TIMEOUT)
        stripe_gateway._stripe_client.cache_clear()
    answer = live.stripe_sandbox("POST", "/faults", {"mode": mode, "method": method, "path_prefix": path,
                                                     "count": count, "delay_seconds": 2 * STRIPE_TIMEOUT})
    assert answer.status_code == 200, answer.text


def calendly_fault(live, mode: str, path: str, count: int, method: str = "POST") -> None:
    answer = live.calendly_sandbox("POST", "/faults", {"mode": mode, "method": method, "path_prefix": path,
                                                       "count": count, "delay_seconds": 0.05})
    assert answer.status_code == 201, answer.text


def make_due(engine) -> None:
    with session_scope(engine) as session:
        session.execute(update(OutboxEntry).where(OutboxEntry.status == "pending")
                        .values(next_attempt_at=utcnow()))


def entry_of(engine, entry_id: int) -> OutboxEntry:
    with session_scope(engine, read_only=True) as session:
        return session.get(OutboxEntry, entry_id)


def retry_until_finished(live, entry_id: int, rounds: int = 8) -> OutboxEntry:
    for _ in range(rounds):
        make_due(live.engine)
        live.drain()
        entry = entry_of(live.engine, entry_id)
        if entry.status != "pending":
            return entry
    raise AssertionError(f"outbox entry {entry_id} still pending after {rounds} attempts")


def confirmed(live, start: str | None = None) -> tuple[str, str]:
    booking_id, url = live.start_booking(live.signed_in_client())
    live.pick_slot(url, start or future_slot())
    live.pay(booking_id)
    assert live.status(booking_id) == "CONFIRMED"
    return booking_id, live.booking(booking_id)["stripe_payment_intent_id"]


def stripe_refunds_of(live, intent: str) -> list[dict]:
    return [r for r in live.stripe_state()["refunds"] if r["payment_intent"] == intent]


def sessions_of(live, booking_id: str) -> list[dict]:
    return [s for s in live.stripe_state()["sessions"] if s["client_reference_id"] == booking_id]


def admin_refund(live, booking_id: str, amount: int | None = None) -> None:
    answer = live.admin("POST", f"/api/bookings/{booking_id}/refund", json={"amount_cents": amount})
    assert answer.status_code == 202, answer.text


# ---------------------------------------------------------------- Stripe refunds
@pytest.mark.parametrize(("mode", "count"), [("500", 3), ("429", 2), ("timeout", 3), ("close", 3),
                                             ("500_after", 3)])
def test_a_refund_is_retried_with_the_same_key_until_stripe_takes_it_once(faulty, monkeypatch, mode, count):
    live = faulty
    booking_id, intent = confirmed(live)
    stripe_fault(live, mode, "/v1/refunds", count, monkeypatch=monkeypatch)
    admin_refund(live, booking_id)
    [entry] = outbox_entries(live.engine, booking_id, "stripe_refund")

    live.drain()  # the first attempt (with the SDK's own quick retries) fails

    first = entry_of(live.engine, entry.id)
    assert first.status == "pending" and first.attempts == 1 and first.last_error
    assert refunds(live.engine, booking_id)[0].status in ("requested", "succeeded")
    finished = retry_until_finished(live, entry.id)
    settle(live)

    assert finished.status == "done" and finished.attempts >= 2 and finished.last_error is None
    [at_stripe] = stripe_refunds_of(live, intent)
    assert at_stripe["amount"] == 4900
    keys = live.stripe_state()["idempotency_keys"]
    assert entry.idempotency_key == f"refund:{booking_id}:{entry.payload['refund_id']}"
    assert keys[entry.idempotency_key] > 1
    assert [k for k in keys if k.startswith("refund:")] == [entry.idempotency_key]
    [refund] = refunds(live.engine, booking_id)
    assert (refund.status, refund.stripe_refund_id) == ("succeeded", at_stripe["id"])
    assert live.booking(booking_id)["payment_status"] == "refunded"


def test_a_single_blip_is_absorbed_by_the_sdk_retry_with_the_same_key(faulty):
    live = faulty
    booking_id, intent = confirmed(live)
    stripe_fault(live, "500", "/v1/refunds", 1)
    admin_refund(live, booking_id, 1000)
    [entry] = outbox_entries(live.engine, booking_id, "stripe_refund")

    live.drain()

    assert entry_of(live.engine, entry.id).status == "done"
    assert live.stripe_state()["idempotency_keys"][entry.idempotency_key] == 2
    assert [r["amount"] for r in stripe_refunds_of(live, intent)] == [1000]


def test_a_refund_stripe_refuses_for_good_is_failed_with_its_reason(faulty):
    """Refunded partly in Stripe's dashboard first: our full refund is more than the charge has left."""
    live = faulty
    booking_id, intent = confirmed(live)
    live.stripe_sandbox("POST", f"/charges/{intent}/refund", {"amount": 1000})  # its sync is not run yet
    admin_refund(live, booking_id)
    [entry] = outbox_entries(live.engine, booking_id, "stripe_refund")

    live.drain()

    failed = entry_of(live.engine, entry.id)
    assert failed.status == "failed" and failed.attempts == 1
    assert "Stripe refused" in failed.last_error and "greater than unrefunded amount" in failed.last_error
    ours = next(r for r in refunds(live.engine, booking_id) if r.id == entry.payload["refund_id"])
    assert ours.status == "failed" and "greater than unrefunded amount" in ours.failure_reason
    settle(live)  # the dashboard refund's sync now runs
    data = live.booking(booking_id)
    assert data["refunded_cents"] == 1000 and data["refundable_cents"] == 3900
    assert data["payment_status"] == "partially_refunded"
    with session_scope(live.engine, read_only=True) as session:
        shown = booking_json(session, booking_id, with_history=True)
    assert any(e["status"] == "failed" and "Stripe refused" in e["last_error"] for e in shown["outbox"])
    assert "refund_failed" in [h["cause"] for h in shown["history"]]
    assert [r["amount"] for r in stripe_refunds_of(live, intent)] == [1000]


# ---------------------------------------------------------------- Stripe Checkout creation
@pytest.mark.parametrize(("mode", "count"), [("500", 3), ("429", 1), ("timeout", 3), ("close", 3),
                                             ("500_after", 3)])
def test_checkout_creation_failing_shows_a_clear_page_and_a_retry_gets_one_session(faulty, monkeypatch, mode,
                                                                                  count):
    live = faulty
    booking_id, url = live.start_booking(live.signed_in_client())
    live.pick_slot(url)
    stripe_fault(live, mode, "/v1/checkout/sessions", count, monkeypatch=monkeypatch)

    page = requests.get(live.payment_url(booking_id), allow_redirects=False, timeout=30,
                        headers={"Accept": "text/html"})

    assert page.status_code == 503
    assert "Payment is temporarily unavailable" in page.text and "You have not been charged" in page.text
    assert f'href="/payment/{booking_id}?t=' in page.text  # a "Try again" link (the emailed link's way in)
    assert live.status(booking_id) == "PENDING_PAYMENT"

    checkout_id = live.checkout(booking_id)

    [session] = sessions_of(live, booking_id)
    assert session["id"] == checkout_id and session["status"] == "open"
    assert live.booking(booking_id)["stripe_checkout_session_id"] == checkout_id
    keys = [k for k in live.stripe_state()["idempotency_keys"] if k.startswith(f"checkout:{booking_id}:")]
    assert len(keys) == 1 and live.stripe_state()["idempotency_keys"][keys[0]] > 1
    assert live.checkout(booking_id) == checkout_id  # and it stays the one session
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay")
    assert live.status(booking_id) == "CONFIRMED"


def test_expiring_a_checkout_is_retried_through_stripe_errors(faulty):
    live = faulty
    booking_id, url = live.start_booking(live.signed_in_client())
    answer = live.pick_slot(url)
    checkout_id = live.checkout(booking_id)
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    stripe_fault(live, "500", f"/v1/checkout/sessions/{checkout_id}/expire", 3)
    [entry] = outbox_entries(live.engine, booking_id, "stripe_expire_checkout")

    live.drain()
    assert entry_of(live.engine, entry.id).status == "pending"
    assert retry_until_finished(live, entry.id).status == "done"

    assert [s["status"] for s in sessions_of(live, booking_id)] == ["expired"]
    assert live.stripe_state()["idempotency_keys"][f"checkout-expire:{checkout_id}"] > 1


# ---------------------------------------------------------------- Calendly
@pytest.mark.parametrize("mode", ["500", "429", "timeout"])
def test_a_calendly_cancellation_is_retried_until_done(faulty, mode):
    live = faulty
    booking_id, url = live.start_booking(live.signed_in_client())
    answer = live.pick_slot(url)
    checkout_id = live.checkout(booking_id)
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/expire-now")
    assert live.status(booking_id) == "EXPIRED"
    path = f"/scheduled_events/{answer['event_uuid']}/cancellation"
    calendly_fault(live, mode, path, count=6)  # the client tries 4 times per outbox attempt
    [entry] = outbox_entries(live.engine, booking_id, "calendly_cancel")

    live.drain()

    first = entry_of(live.engine, entry.id)
    assert first.status == "pending" and "Calendly" in first.last_error
    finished = retry_until_finished(live, entry.id)
    assert finished.status == "done" and finished.attempts == 2
    state = live.calendly_state()
    assert next(e for e in state["events"] if e["uri"] == answer["event"])["status"] == "canceled"
    assert state["request_counts"][f"POST {path}"] == 7
    assert live.status(booking_id) == "EXPIRED"


def test_calendly_not_knowing_the_event_fails_the_entry_visibly(faulty):
    live = faulty
    with session_scope(live.engine) as session:
        session_type = session.get(SessionType, live.session_type_ids[0])
        booking = factories.make_booking(session, "PENDING_PAYMENT", session_type=session_type)
        booking.calendly_event_uri = f"{live.calendly}/scheduled_events/{uuid.uuid4()}"
        payment_events.expire_locked(session, booking, actor="test", cause="hold_expired")
        booking_id = booking.id
    [entry] = outbox_entries(live.engine, booking_id, "calendly_cancel")

    live.drain()

    failed = entry_of(live.engine, entry.id)
    assert failed.status == "failed" and "Calendly does not know this event" in failed.last_error


def test_a_calendly_event_already_canceled_counts_as_done(faulty):
    live = faulty
    booking_id, url = live.start_booking(live.signed_in_client())
    answer = live.pick_slot(url)
    checkout_id = live.checkout(booking_id)
    live.stripe_sandbox("POST", f"/checkout/{checkout_id}/expire-now")
    # The builder canceled it in Calendly before our entry ran (Calendly answers 403).
    client = CalendlyClient("sandbox-ada", live.calendly)
    client.cancel_scheduled_event(answer["event_uuid"], "builder canceled by hand")
    [entry] = outbox_entries(live.engine, booking_id, "calendly_cancel")

    live.drain()

    assert entry_of(live.engine, entry.id).status == "done"


@pytest.mark.parametrize("mode", ["500", "429", "timeout"])
def test_calendly_down_on_the_profile_page_shows_a_clear_503(faulty, mode):
    live = faulty
    scheduling.EVENT_TYPES.clear()
    calendly_fault(live, mode, "/event_types", count=4, method="GET")

    page = requests.get(f"{live.web}/profile/{live.builder_id}", timeout=30)

    assert page.status_code == 503
    assert "Sessions unavailable" in page.text and "We could not reach Calendly" in page.text
    assert "Nothing was booked" in page.text
    again = requests.get(f"{live.web}/profile/{live.builder_id}", timeout=30)
    assert again.status_code == 200 and "Discovery call" in again.text


def test_calendly_down_when_starting_a_booking_answers_503_everywhere(faulty):
    live = faulty
    browser = live.signed_in_client()
    profile = browser.get(f"{live.web}/profile/{live.builder_id}")
    csrf = profile.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    calendly_fault(live, "500", "/scheduling_links", count=8)

    page = browser.post(f"{live.web}/bookings", allow_redirects=False, data={
        "event_type_id": live.event_type_ids[0], "builder_id": str(live.builder_id), "csrf_token": csrf})
    api = live.admin("POST", "/api/scheduling/calendly/scheduling-link", json={
        "eventTypeId": live.event_type_ids[0], "inviteeEmail": "api@example.com", "inviteeName": "Api"})

    assert page.status_code == 503 and "Calendly is unavailable" in page.text
    assert api.status_code == 503 and "Calendly is unavailable" in api.json()["detail"]
