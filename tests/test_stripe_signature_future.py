"""A Stripe delivery signed with a timestamp from the future is refused, like Calendly's.

The SDK only refuses old timestamps; a genuinely signed `t` a year ahead would stay replayable for
a year. More than 5 minutes ahead → 400 "signature future", stored as rejected, nothing applied.
"""
from __future__ import annotations

import json
import time

import pytest
import stripe
from fastapi.testclient import TestClient

from core.db import session_scope
from core.models import Booking, Payment
from tests import factories
from tests.webhook_helpers import post_stripe, stripe_event, webhook_events

STRIPE_SECRET = "whsec_sandbox"


@pytest.fixture
def client(settings_env, request):
    settings_env(run_outbox_after_request="false")
    request.getfixturevalue("engine")
    from webhook_service.app import create_app
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def engine_(client, request):
    return request.getfixturevalue("engine")


@pytest.fixture
def payment_event(engine_):
    """A booking with an open checkout, and the checkout.session.completed event paying it."""
    with session_scope(engine_) as session:
        booking = factories.make_booking(session, "PENDING_PAYMENT")
        booking_id, checkout = booking.id, factories.paid_checkout(booking)
    return booking_id, json.dumps(stripe_event("checkout.session.completed", checkout)).encode()


def _signed_at(raw: bytes, timestamp: int) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                raw.decode(), STRIPE_SECRET, timestamp=timestamp)}


def _booking(engine, booking_id: str) -> tuple[str, int]:
    with session_scope(engine, read_only=True) as session:
        return session.get(Booking, booking_id).status, factories.count(session, Payment)


@pytest.mark.parametrize("ahead", [365 * 86400, 301 + 60, 10 ** 12], ids=["a_year", "six_minutes", "absurd"])
def test_a_stripe_signature_from_the_future_is_400_future_and_stored_rejected(client, engine_, payment_event, ahead):
    booking_id, raw = payment_event

    answer = post_stripe(client, raw, STRIPE_SECRET, headers=_signed_at(raw, int(time.time()) + ahead))

    assert answer.status_code == 400
    assert answer.json() == {"outcome": "rejected", "detail": "signature future"}
    [row] = webhook_events(engine_)
    assert (row.outcome, row.signature_valid, row.dedupe_key, row.error) == (
        "rejected", False, None, "signature future")
    assert _booking(engine_, booking_id) == ("PENDING_PAYMENT", 0)


def test_a_stripe_signature_slightly_ahead_is_accepted(client, engine_, payment_event):
    """Clock skew inside the tolerance (4 minutes ahead) is a genuine delivery."""
    booking_id, raw = payment_event

    answer = post_stripe(client, raw, STRIPE_SECRET, headers=_signed_at(raw, int(time.time()) + 240))

    assert answer.status_code == 200 and answer.json()["outcome"] == "processed"
    assert _booking(engine_, booking_id) == ("CONFIRMED", 1)


def test_a_future_timestamp_with_a_wrong_signature_is_still_a_mismatch(client, engine_, payment_event):
    """The signature is checked first: "future" only ever describes a genuinely signed delivery."""
    _booking_id, raw = payment_event
    headers = {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
        raw.decode(), "whsec_someone_else", timestamp=int(time.time()) + 365 * 86400)}

    answer = post_stripe(client, raw, STRIPE_SECRET, headers=headers)

    assert (answer.status_code, answer.json()["detail"]) == (400, "signature mismatch")
