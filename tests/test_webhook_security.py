"""The webhook endpoints' defences: signatures on raw bytes, bad bodies, size limits, and what a
handler failure leaves behind (a stored failed event that a redelivery or replay processes).

FastAPI's TestClient on `create_app()`, signing with `sign_calendly_payload` and the Stripe SDK.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import stripe
from fastapi.testclient import TestClient

from core.calendly import sign_calendly_payload
from core.config import get_settings
from core.db import session_scope
from core.models import Booking, BookingHistory, OutboxEntry, Payment, WebhookEvent, utcnow
from core.services import booking_service, payment_events, webhook_ingest
from tests import factories
from tests.webhook_helpers import (
    calendly_headers, invitee_envelope, post_calendly, post_stripe, slot_of, stripe_event, stripe_headers,
    webhook_events,
)

CALENDLY_KEY = "sandbox-calendly-signing-key"
STRIPE_SECRET = "whsec_sandbox"


@pytest.fixture
def client(settings_env, request):
    settings_env(run_outbox_after_request="false")  # this file looks at what is stored, not sent
    request.getfixturevalue("engine")  # created (and disposed) after the setting is in place
    from webhook_service.app import create_app
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def engine_(client, request):
    return request.getfixturevalue("engine")


@pytest.fixture
def scheduling(engine_):
    """A booking waiting for its invitee.created, and that delivery (unsigned)."""
    with session_scope(engine_) as session:
        booking = factories.make_booking(session, "PENDING_SCHEDULING")
        booking_id, slot = booking.id, slot_of(booking)
    event_uri = f"https://api.calendly.com/scheduled_events/{uuid.uuid4()}"
    envelope = invitee_envelope("invitee.created", invitee_uri=f"{event_uri}/invitees/{uuid.uuid4()}",
                                event_uri=event_uri, booking_ref=booking_id, **slot)
    return booking_id, json.dumps(envelope).encode()


@pytest.fixture
def awaiting_payment(engine_):
    """A booking with an open checkout, and the checkout.session.completed event paying it."""
    with session_scope(engine_) as session:
        booking = factories.make_booking(session, "PENDING_PAYMENT")
        booking_id, checkout = booking.id, factories.paid_checkout(booking)
    return booking_id, json.dumps(stripe_event("checkout.session.completed", checkout), indent=2).encode()


def status_of(engine, booking_id: str) -> str:
    with session_scope(engine, read_only=True) as session:
        return session.get(Booking, booking_id).status


def counts(engine) -> dict[str, int]:
    with session_scope(engine, read_only=True) as session:
        return {name: factories.count(session, model) for name, model in
                (("history", BookingHistory), ("outbox", OutboxEntry), ("payments", Payment))}


def _signature_header(name: str, header: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[name] = header
    return headers


def _unreadable(now: int) -> dict[str, str | None]:
    """Signature headers no signer writes, the same for both providers."""
    return {"missing": None, "empty": "", "malformed": "this is not a signature", "malformed_no_v1": f"t={now}",
            "malformed_timestamp": f"t=yesterday,v1={'0' * 64}"}


def calendly_signature(raw: bytes, case: str) -> dict[str, str]:
    now = int(time.time())
    header = {
        **_unreadable(now),
        "wrong_key": sign_calendly_payload(raw, "somebody-elses-key"),
        "stale": sign_calendly_payload(raw, CALENDLY_KEY, now - 600),
        "from_the_future": sign_calendly_payload(raw, CALENDLY_KEY, now + 600),
        "body_changed": sign_calendly_payload(raw.replace(b"Casey", b"Mallory"), CALENDLY_KEY),
    }[case]
    return _signature_header("Calendly-Webhook-Signature", header)


def stripe_signature(raw: bytes, case: str) -> dict[str, str]:
    text, now = raw.decode(), int(time.time())
    header = {
        **_unreadable(now),
        "wrong_key": stripe.WebhookSignature.generate_signature_header(text, "whsec_somebody_else"),
        "stale": stripe.WebhookSignature.generate_signature_header(text, STRIPE_SECRET, timestamp=now - 400),
        "body_changed": stripe.WebhookSignature.generate_signature_header(
            text.replace('"paid"', '"unpaid"'), STRIPE_SECRET),
    }[case]
    return _signature_header("Stripe-Signature", header)


def assert_only_rejections(engine, n: int, provider: str) -> None:
    rows = webhook_events(engine)
    assert len(rows) == n
    for row in rows:
        assert (row.provider, row.outcome, row.signature_valid, row.dedupe_key) == (provider, "rejected", False, None)
        assert row.error.startswith("signature ")


# ---------------------------------------------------------------- signatures
CALENDLY_CASES = ["missing", "empty", "malformed", "malformed_no_v1", "malformed_timestamp", "wrong_key", "stale",
                  "from_the_future", "body_changed"]
STRIPE_CASES = ["missing", "empty", "malformed", "malformed_no_v1", "malformed_timestamp", "wrong_key", "stale",
                "body_changed"]
# provider → (fixture with the booking and its delivery, poster, secret, signer, status before, reasons)
SIGNED = {
    "calendly": ("scheduling", post_calendly, CALENDLY_KEY, calendly_signature, "PENDING_SCHEDULING",
                 {"missing": "missing", "empty": "missing", "stale": "stale", "from_the_future": "stale",
                  "wrong_key": "mismatch", "body_changed": "mismatch"}, "malformed"),
    "stripe": ("awaiting_payment", post_stripe, STRIPE_SECRET, stripe_signature, "PENDING_PAYMENT",
               {"missing": "missing", "empty": "missing", "stale": "stale"}, "mismatch"),
}


@pytest.mark.parametrize(("provider", "case"), [("calendly", c) for c in CALENDLY_CASES]
                         + [("stripe", c) for c in STRIPE_CASES])
def test_deliveries_without_a_valid_signature_are_refused_and_change_nothing(client, engine_, request,
                                                                             provider, case):
    fixture, post, secret, signature, status, reasons, otherwise = SIGNED[provider]
    booking_id, raw = request.getfixturevalue(fixture)
    before = counts(engine_)

    answer = post(client, raw, secret, headers=signature(raw, case))

    assert answer.status_code == 400 and answer.json()["outcome"] == "rejected"
    assert_only_rejections(engine_, 1, provider)
    assert status_of(engine_, booking_id) == status
    assert counts(engine_) == before
    [row] = webhook_events(engine_)
    assert row.raw_body == raw.decode()  # kept for the investigation, never acted on
    assert row.error == f"signature {reasons.get(case, otherwise)}"


def test_a_forged_copy_does_not_take_the_real_events_place(client, engine_, awaiting_payment):
    """Rejected rows have no dedupe key, so the genuine delivery of the same event id still counts."""
    booking_id, raw = awaiting_payment
    post_stripe(client, raw, STRIPE_SECRET, headers=stripe_signature(raw, "wrong_key"))

    genuine = post_stripe(client, raw, STRIPE_SECRET)

    assert genuine.status_code == 200 and genuine.json()["outcome"] == "processed"
    assert status_of(engine_, booking_id) == "CONFIRMED"
    assert [r.outcome for r in webhook_events(engine_)] == ["rejected", "processed"]


def test_a_signature_within_the_tolerance_is_accepted(client, engine_, scheduling):
    booking_id, raw = scheduling
    headers = calendly_headers(raw, CALENDLY_KEY, int(time.time()) - 60)

    answer = post_calendly(client, raw, CALENDLY_KEY, headers=headers)

    assert answer.status_code == 200 and status_of(engine_, booking_id) == "PENDING_PAYMENT"


# ---------------------------------------------------------------- bad bodies
@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2, 3]", b'{"event": "invitee.created"}',
                                 b'{"event": "invitee.created", "payload": {"uri": 5}}', b"\xff\xfe"])
def test_calendly_body_that_is_not_a_webhook_is_422_invalid(client, engine_, raw):
    answer = post_calendly(client, raw, CALENDLY_KEY)

    assert answer.status_code == 422 and answer.json()["outcome"] == "invalid"
    [row] = webhook_events(engine_)
    assert (row.outcome, row.signature_valid, row.dedupe_key) == ("invalid", True, None)
    assert row.error


@pytest.mark.parametrize("raw", [b"{not json", b'"a string"', b'{"id": "evt_1", "type": "x"}',
                                 b'{"id": 7, "type": "checkout.session.completed", "data": {"object": {}}}'])
def test_stripe_body_that_is_not_an_event_is_422_invalid(client, engine_, raw):
    answer = post_stripe(client, raw, STRIPE_SECRET)

    assert answer.status_code == 422 and answer.json()["outcome"] == "invalid"
    [row] = webhook_events(engine_)
    assert (row.provider, row.outcome, row.signature_valid, row.dedupe_key) == ("stripe", "invalid", True, None)


@pytest.mark.parametrize("path", ["/api/webhooks/calendly", "/api/webhooks/stripe"])
@pytest.mark.parametrize("streamed", [False, True], ids=["content_length", "chunked"])
def test_an_oversized_body_is_413_and_not_stored(client, engine_, path, streamed):
    limit = get_settings().webhook_max_body_bytes
    raw = json.dumps({"event": "invitee.created", "padding": "x" * (limit + 10)}).encode()
    headers = calendly_headers(raw, CALENDLY_KEY) if "calendly" in path else stripe_headers(raw, STRIPE_SECRET)
    content = (raw[i:i + 65536] for i in range(0, len(raw), 65536)) if streamed else raw

    answer = client.post(path, content=content, headers=headers)

    assert answer.status_code == 413
    assert webhook_events(engine_) == []


def test_a_body_just_under_the_limit_is_read(client, engine_, settings_env):
    settings_env(webhook_max_body_bytes=2048, run_outbox_after_request="false")
    raw = json.dumps({"event": "invitee_no_show.deleted", "payload": {"note": "x" * 1500}}).encode()
    assert len(raw) < 2048

    answer = post_calendly(client, raw, CALENDLY_KEY)

    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
    too_big = json.dumps({"event": "invitee_no_show.deleted", "payload": {"note": "x" * 2100}}).encode()
    assert post_calendly(client, too_big, CALENDLY_KEY).status_code == 413


# ---------------------------------------------------------------- handler failures, redelivery, replay
def test_a_failing_calendly_handler_answers_500_stores_the_traceback_and_rolls_back(client, engine_, scheduling,
                                                                                    monkeypatch):
    booking_id, raw = scheduling

    def broken_notify(*args, **kwargs):
        raise RuntimeError("mail template exploded")

    # notify runs after the status change: the failure must take the change back with it.
    monkeypatch.setattr(booking_service, "notify", broken_notify)
    answer = post_calendly(client, raw, CALENDLY_KEY)

    assert answer.status_code == 500 and answer.json()["outcome"] == "failed"
    [row] = webhook_events(engine_)
    assert row.outcome == "failed" and row.attempts == 1 and row.dedupe_key.startswith("calendly:invitee.created:")
    assert "Traceback" in row.error and "RuntimeError: mail template exploded" in row.error
    assert status_of(engine_, booking_id) == "PENDING_SCHEDULING"
    assert counts(engine_)["history"] == 0 and counts(engine_)["outbox"] == 0
    assert webhook_ingest.failed_event_ids(engine_) == [row.id]

    monkeypatch.undo()
    redelivered = post_calendly(client, raw, CALENDLY_KEY)  # Calendly retries: signed afresh

    assert redelivered.status_code == 200 and redelivered.json()["outcome"] == "processed"
    [row_after] = webhook_events(engine_)
    assert (row_after.id, row_after.outcome, row_after.attempts, row_after.error) == (row.id, "processed", 2, None)
    assert status_of(engine_, booking_id) == "PENDING_PAYMENT"
    assert webhook_ingest.failed_event_ids(engine_) == []


def test_a_failing_stripe_handler_answers_500_and_the_retry_processes_it(client, engine_, awaiting_payment,
                                                                         monkeypatch):
    booking_id, raw = awaiting_payment
    monkeypatch.setattr(payment_events, "confirm_payment",
                        lambda *a, **k: (_ for _ in ()).throw(ConnectionError("database hiccup")))

    answer = post_stripe(client, raw, STRIPE_SECRET)

    assert answer.status_code == 500
    [row] = webhook_events(engine_)
    assert row.outcome == "failed" and "ConnectionError: database hiccup" in row.error
    assert status_of(engine_, booking_id) == "PENDING_PAYMENT"

    monkeypatch.undo()
    again = post_stripe(client, raw, STRIPE_SECRET)

    assert again.status_code == 200 and again.json()["outcome"] == "processed"
    assert status_of(engine_, booking_id) == "CONFIRMED"
    assert counts(engine_)["payments"] == 1
    [row] = webhook_events(engine_)
    assert row.outcome == "processed" and row.attempts == 2


def test_replay_processes_a_failed_event_idempotently(client, engine_, scheduling, monkeypatch):
    booking_id, raw = scheduling
    monkeypatch.setattr(booking_service, "apply_invitee_created",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    assert post_calendly(client, raw, CALENDLY_KEY).status_code == 500
    [event_id] = webhook_ingest.failed_event_ids(engine_)
    monkeypatch.undo()

    # The signature's timestamp is long past by now; replay trusts the check made on arrival.
    first = webhook_ingest.replay(engine_, event_id)
    second = webhook_ingest.replay(engine_, event_id)

    assert (first.status_code, first.outcome, first.booking_id) == (200, "processed", booking_id)
    assert (second.status_code, second.outcome) == (200, "duplicate")
    assert status_of(engine_, booking_id) == "PENDING_PAYMENT"
    with session_scope(engine_, read_only=True) as session:
        causes = [h.cause for h in session.query(BookingHistory).filter_by(booking_id=booking_id)]
        row = session.get(WebhookEvent, event_id)
    assert causes == ["invitee_created"]
    assert (row.outcome, row.attempts) == ("processed", 2)
    assert post_calendly(client, raw, CALENDLY_KEY).json()["outcome"] == "duplicate"


def test_replay_refuses_rejected_events_and_unknown_ids(client, engine_, scheduling):
    _booking_id, raw = scheduling
    post_calendly(client, raw, CALENDLY_KEY, headers=calendly_signature(raw, "wrong_key"))
    [rejected] = webhook_events(engine_)

    assert webhook_ingest.replay(engine_, rejected.id).status_code == 409
    assert webhook_ingest.replay(engine_, 999_999).status_code == 404
    assert webhook_ingest.failed_event_ids(engine_) == []


def test_a_failure_after_a_provider_retry_window_is_still_replayable(client, engine_, awaiting_payment, monkeypatch):
    """Stripe gave up (no more deliveries): the stored failed event is replayed from the dashboard."""
    booking_id, raw = awaiting_payment
    monkeypatch.setattr(payment_events, "confirm_payment",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("down")))
    for _ in range(3):
        assert post_stripe(client, raw, STRIPE_SECRET).status_code == 500
    monkeypatch.undo()
    [row] = webhook_events(engine_)
    assert row.attempts == 3 and row.outcome == "failed"

    result = webhook_ingest.replay(engine_, row.id)

    assert result.outcome == "processed" and status_of(engine_, booking_id) == "CONFIRMED"
    with session_scope(engine_, read_only=True) as session:
        assert session.get(WebhookEvent, row.id).processed_at > utcnow() - timedelta(minutes=1)


# ---------------------------------------------------------------- Stripe signatures from the future
# The SDK only refuses old timestamps; a genuinely signed `t` a year ahead would stay replayable for
# a year. More than 5 minutes ahead → 400 "signature future", stored as rejected, nothing applied.
STRIPE_FUTURE_SECRET = "whsec_sandbox"


def _signed_at(raw: bytes, timestamp: int) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                raw.decode(), STRIPE_FUTURE_SECRET, timestamp=timestamp)}


def _status_and_payments(engine, booking_id: str) -> tuple[str, int]:
    with session_scope(engine, read_only=True) as session:
        return session.get(Booking, booking_id).status, factories.count(session, Payment)


@pytest.mark.parametrize("ahead", [365 * 86400, 301 + 60, 10 ** 12], ids=["a_year", "six_minutes", "absurd"])
def test_a_stripe_signature_from_the_future_is_400_future_and_stored_rejected(client, engine_, awaiting_payment, ahead):
    booking_id, raw = awaiting_payment

    answer = post_stripe(client, raw, STRIPE_FUTURE_SECRET, headers=_signed_at(raw, int(time.time()) + ahead))

    assert answer.status_code == 400
    assert answer.json() == {"outcome": "rejected", "detail": "signature future"}
    [row] = webhook_events(engine_)
    assert (row.outcome, row.signature_valid, row.dedupe_key, row.error) == (
        "rejected", False, None, "signature future")
    assert _status_and_payments(engine_, booking_id) == ("PENDING_PAYMENT", 0)


def test_a_stripe_signature_slightly_ahead_is_accepted(client, engine_, awaiting_payment):
    """Clock skew inside the tolerance (4 minutes ahead) is a genuine delivery."""
    booking_id, raw = awaiting_payment

    answer = post_stripe(client, raw, STRIPE_FUTURE_SECRET, headers=_signed_at(raw, int(time.time()) + 240))

    assert answer.status_code == 200 and answer.json()["outcome"] == "processed"
    assert _status_and_payments(engine_, booking_id) == ("CONFIRMED", 1)


def test_a_future_timestamp_with_a_wrong_signature_is_still_a_mismatch(client, engine_, awaiting_payment):
    """The signature is checked first: "future" only ever describes a genuinely signed delivery."""
    _booking_id, raw = awaiting_payment
    headers = {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
        raw.decode(), "whsec_someone_else", timestamp=int(time.time()) + 365 * 86400)}

    answer = post_stripe(client, raw, STRIPE_FUTURE_SECRET, headers=headers)

    assert (answer.status_code, answer.json()["detail"]) == (400, "signature mismatch")
