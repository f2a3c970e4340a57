"""Ready-made provider clients from our settings: Stripe through its SDK, Calendly per builder."""
from __future__ import annotations

from functools import lru_cache

import stripe

from core.calendly import CalendlyClient
from core.config import get_settings
from core.models import Builder
from core.security import decrypt_secret


# Seconds to wait for one Stripe answer. The SDK's default (80 s, times its retries) would hold a
# client's payment page for minutes while Stripe hangs; refunds are retried by the outbox anyway.
STRIPE_TIMEOUT_SECONDS = 20.0


@lru_cache(maxsize=4)
def _stripe_client(api_key: str, api_base: str) -> stripe.StripeClient:
    # A couple of quick SDK retries (same idempotency key) absorb blips; the outbox does the rest.
    return stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=2,
                               http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS))


def stripe_client() -> stripe.StripeClient:
    settings = get_settings()
    return _stripe_client(settings.stripe_secret_key, settings.stripe_api_base)


def calendly_token(builder: Builder) -> str:
    if not builder.calendly_token_encrypted:
        raise ValueError(f"builder {builder.id} has no Calendly token")
    return decrypt_secret(builder.calendly_token_encrypted, get_settings().app_secret_key)


def calendly_for(builder: Builder) -> CalendlyClient:
    return CalendlyClient(calendly_token(builder), get_settings().calendly_api_base)
