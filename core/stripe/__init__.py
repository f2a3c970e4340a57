"""Stripe integration, the twin of `core.calendly`: the gateway every Stripe API call goes through,
webhook signatures, and the checks a webhook's payload must pass before a handler reads it."""
from core.stripe.gateway import (
    StripeGateway,
    StripeGatewayError,
    StripeRefused,
    StripeUnavailable,
    stripe_gateway,
)
from core.stripe.payload import check_stripe_event
from core.stripe.signature import SIGNATURE_HEADER, verify_stripe_signature

__all__ = [
    "StripeGateway",
    "StripeGatewayError",
    "StripeRefused",
    "StripeUnavailable",
    "stripe_gateway",
    "check_stripe_event",
    "SIGNATURE_HEADER",
    "verify_stripe_signature",
]
