"""The Stripe gateway: Stripe's failures become ours (retry later or refused for good), an answer
that only says "already done" is no failure, and nothing but `core.stripe` imports the SDK."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import stripe

from core.services import side_effects
from core.services.outbox import PermanentFailure, RetryLater
from core.stripe import StripeGateway, StripeRefused, StripeUnavailable

ROOT = Path(__file__).resolve().parent.parent
NOT_EXPIRABLE = stripe.InvalidRequestError("Only Checkout Sessions with a status of open can be expired.",
                                           None, code="checkout_session_not_open", http_status=400)


class FakeSessions:
    """Checkout Sessions whose state changes as the script says; every call is remembered."""

    def __init__(self, states: list[str], expire_error: Exception | None = None):
        self.states, self.expire_error, self.calls = list(states), expire_error, []

    def retrieve(self, checkout_id, params=None):
        self.calls.append(("retrieve", checkout_id))
        status = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return stripe.StripeObject.construct_from({"id": checkout_id, "status": status}, "sk_test")

    def expire(self, checkout_id, options=None):
        self.calls.append(("expire", checkout_id, options["idempotency_key"]))
        if self.expire_error is not None:
            raise self.expire_error
        return stripe.StripeObject.construct_from({"id": checkout_id, "status": "expired"}, "sk_test")


def gateway_over(sessions: FakeSessions) -> StripeGateway:
    return StripeGateway(SimpleNamespace(v1=SimpleNamespace(checkout=SimpleNamespace(sessions=sessions))))


def test_expiring_an_open_session_expires_it_with_its_idempotency_key():
    sessions = FakeSessions(["open"])
    assert gateway_over(sessions).expire_checkout("cs_1")["status"] == "expired"
    assert sessions.calls == [("retrieve", "cs_1"), ("expire", "cs_1", "checkout-expire:cs_1")]


@pytest.mark.parametrize("status", ["complete", "expired"])
def test_a_session_that_is_no_longer_open_is_returned_as_it_is(status):
    sessions = FakeSessions([status])
    assert gateway_over(sessions).expire_checkout("cs_1")["status"] == status
    assert [call[0] for call in sessions.calls] == ["retrieve"]


def test_a_session_paid_between_our_read_and_the_expiry_is_no_failure():
    """Stripe refuses to expire a session that just completed: that means "nothing to do"."""
    sessions = FakeSessions(["open", "complete"], expire_error=NOT_EXPIRABLE)
    assert gateway_over(sessions).expire_checkout("cs_1")["status"] == "complete"
    assert [call[0] for call in sessions.calls] == ["retrieve", "expire", "retrieve"]


def test_a_refused_expiry_of_a_session_still_open_is_a_refusal():
    sessions = FakeSessions(["open"], expire_error=NOT_EXPIRABLE)
    with pytest.raises(StripeRefused) as refused:
        gateway_over(sessions).expire_checkout("cs_1")
    assert refused.value.status == 400 and refused.value.code == "checkout_session_not_open"
    assert str(refused.value).startswith("Stripe refused: Only Checkout Sessions")


@pytest.mark.parametrize(("error", "ours", "message"), [
    (stripe.APIConnectionError("network down"), StripeUnavailable, "Stripe unavailable: network down"),
    (stripe.RateLimitError("slow down", http_status=429), StripeUnavailable, "Stripe unavailable: slow down"),
    (stripe.APIError("boom", http_status=500), StripeUnavailable, "Stripe error 500: boom"),
    (stripe.InvalidRequestError("No such checkout.session", None, http_status=404), StripeRefused,
     "Stripe refused: No such checkout.session"),
    (stripe.AuthenticationError("bad key", http_status=401), StripeRefused, "Stripe refused: bad key"),
])
def test_sdk_failures_become_ours(error, ours, message):
    class Failing(FakeSessions):
        def retrieve(self, checkout_id, params=None):
            raise error

    with pytest.raises(ours) as raised:
        gateway_over(Failing(["open"])).checkout("cs_1")
    assert str(raised.value) == message


def test_the_outbox_entry_expiring_a_session_paid_meanwhile_is_done(monkeypatch):
    sessions = FakeSessions(["open", "complete"], expire_error=NOT_EXPIRABLE)
    monkeypatch.setattr(side_effects, "stripe_gateway", lambda: gateway_over(sessions))
    entry = SimpleNamespace(payload={"checkout_session_id": "cs_1"}, idempotency_key="checkout-expire:cs_1")
    side_effects.execute_stripe_expire_checkout(None, entry)  # no PermanentFailure: nothing to do


@pytest.mark.parametrize(("error", "outbox_error"), [(stripe.APIError("boom", http_status=503), RetryLater),
                                                     (NOT_EXPIRABLE, PermanentFailure)])
def test_the_outbox_retries_an_unavailable_stripe_and_gives_up_on_a_refusal(monkeypatch, error, outbox_error):
    class Failing(FakeSessions):
        def retrieve(self, checkout_id, params=None):
            raise error

    monkeypatch.setattr(side_effects, "stripe_gateway", lambda: gateway_over(Failing(["open"])))
    entry = SimpleNamespace(payload={"checkout_session_id": "cs_1"}, idempotency_key="checkout-expire:cs_1")
    with pytest.raises(outbox_error):
        side_effects.execute_stripe_expire_checkout(None, entry)


def test_only_core_stripe_imports_the_stripe_sdk():
    importing = re.compile(r"^\s*(import stripe\b|from stripe\b)", re.MULTILINE)
    offenders = [str(path.relative_to(ROOT)) for part in ("core", "webhook_service", "dashboard")
                 for path in (ROOT / part).rglob("*.py")
                 if importing.search(path.read_text(encoding="utf-8")) and "core/stripe/" not in path.as_posix()]
    assert offenders == []
