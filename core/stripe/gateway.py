"""Every call we make to Stripe's API, and what its answers mean for us.

Services call a `StripeGateway`; nothing else imports the SDK (webhook signatures are checked in
`core.stripe.signature`). The gateway owns the SDK client (timeout, quick retries), builds the
idempotency keys of the calls that create or close something, returns plain dicts, and turns the
SDK's exceptions into ours: `StripeUnavailable` (try again later) or `StripeRefused` (Stripe said
no for good, with its reason). An answer that only says "already done" is not an error here: it is
mapped to its meaning once, in the method that gets it (see `expire_checkout`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

import stripe

from core.config import get_settings
from core.keys import Effect, effect_key

# Seconds to wait for one Stripe answer. The SDK's default (80 s, times its retries) would hold a
# client's payment page for minutes while Stripe hangs; refunds are retried by the outbox anyway.
STRIPE_TIMEOUT_SECONDS = 20.0


class StripeGatewayError(Exception):
    """Stripe did not do what we asked; the message is safe to log and to show an admin."""


class StripeUnavailable(StripeGatewayError):
    """No usable answer (network, timeout, 429, 5xx): the same call may succeed later."""


class StripeRefused(StripeGatewayError):
    """Stripe refused the request for good (4xx): repeating it cannot help."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.reason = status, code, reason


@lru_cache(maxsize=4)
def _stripe_client(api_key: str, api_base: str) -> stripe.StripeClient:
    # A couple of quick SDK retries (same idempotency key) absorb blips; the outbox does the rest.
    return stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=2,
                               http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS))


def stripe_client() -> stripe.StripeClient:
    """The SDK client for our settings (one per key and API base)."""
    settings = get_settings()
    return _stripe_client(settings.stripe_secret_key, settings.stripe_api_base)


def _call(fn, *args, **kwargs):
    """Run one SDK call; its failures become StripeUnavailable or StripeRefused."""
    try:
        return fn(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        raise StripeUnavailable(f"Stripe unavailable: {error.user_message or type(error).__name__}") from None
    except stripe.APIError as error:
        raise StripeUnavailable(f"Stripe error {error.http_status}: {error.user_message}") from None
    except stripe.StripeError as error:
        if error.http_status and error.http_status >= 500:
            raise StripeUnavailable(f"Stripe error {error.http_status}") from None
        raise StripeRefused(f"Stripe refused: {error.user_message or error}", status=error.http_status,
                            code=error.code, reason=error.user_message) from None


class StripeGateway:
    """Our Stripe account, as the services need it. `client` is the SDK client (tests pass one
    that counts or fails calls); by default the one built from our settings."""

    def __init__(self, client: stripe.StripeClient | None = None) -> None:
        self._client = client or stripe_client()

    # ------------------------------------------------------------ Checkout Sessions
    def create_checkout(self, params: dict) -> dict:
        """Create the Checkout Session described by `params` (see checkout_service.checkout_params),
        idempotently per booking (`client_reference_id`) and expiry (`expires_at`)."""
        key = effect_key(Effect.CHECKOUT, params["client_reference_id"], params["expires_at"])
        return _call(self._client.v1.checkout.sessions.create, params=params,
                     options={"idempotency_key": key}).to_dict()

    def checkout(self, checkout_id: str, *, with_payment_intent: bool = False) -> dict:
        """A Checkout Session as Stripe has it now (optionally with its PaymentIntent expanded)."""
        params = {"expand": ["payment_intent"]} if with_payment_intent else None
        return _call(self._client.v1.checkout.sessions.retrieve, checkout_id, params=params).to_dict()

    def expire_checkout(self, checkout_id: str, *, with_payment_intent: bool = False) -> dict:
        """Close a Checkout Session so nobody pays through it; returns the session as it is
        afterwards, whatever its state.

        Only an open session can be expired. A complete or expired one needs nothing from us: it
        is returned as read (the caller acts on it), also when it was paid between our read and
        the expiry and Stripe refuses to expire it — that refusal means "nothing to do".
        """
        current = self.checkout(checkout_id, with_payment_intent=with_payment_intent)
        if current.get("status") != "open":
            return current
        try:
            return _call(self._client.v1.checkout.sessions.expire, checkout_id,
                         options={"idempotency_key": effect_key(Effect.CHECKOUT_EXPIRE, checkout_id)}).to_dict()
        except StripeRefused:
            after = self.checkout(checkout_id, with_payment_intent=with_payment_intent)
            if after.get("status") == "open":
                raise
            return after

    # ------------------------------------------------------------ refunds
    def create_refund(self, params: dict, *, idempotency_key: str) -> dict:
        """Create a refund; `idempotency_key` is the outbox entry's, so a retry never pays twice."""
        return _call(self._client.v1.refunds.create, params=params,
                     options={"idempotency_key": idempotency_key}).to_dict()

    def refunds_of(self, payment_intent: str) -> list[dict]:
        """The refunds of one payment (at most 100: far more than a booking ever has)."""
        listing = _call(self._client.v1.refunds.list, params={"payment_intent": payment_intent, "limit": 100})
        return [refund.to_dict() for refund in listing.data]

    def refund(self, refund_id: str) -> dict:
        return _call(self._client.v1.refunds.retrieve, refund_id).to_dict()

    # ------------------------------------------------------------ events
    def events(self, types: Iterable[str], *, created_since: int) -> Iterator[dict]:
        """Stripe's events of these types created at or after `created_since` (unix seconds),
        every page of them."""
        params = {"types": sorted(types), "created": {"gte": created_since}, "limit": 100}
        pages = _call(self._client.v1.events.list, params=params).auto_paging_iter()
        while True:
            event = _call(next, pages, None)
            if event is None:
                return
            yield event.to_dict()


def stripe_gateway() -> StripeGateway:
    """The gateway to our Stripe account, from our settings."""
    return StripeGateway()


__all__ = ["StripeGateway", "StripeGatewayError", "StripeUnavailable", "StripeRefused", "stripe_gateway",
           "stripe_client", "STRIPE_TIMEOUT_SECONDS"]
