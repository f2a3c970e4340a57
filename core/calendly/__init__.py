"""Calendly integration: API v2 client, webhook signatures, and the webhook payload parser."""
from core.calendly.client import (
    DEFAULT_BASE_URL,
    CalendlyAPIError,
    CalendlyClient,
    CalendlyError,
    CalendlyUnavailable,
    EventTypeCache,
)
from core.calendly.signature import (
    SIGNATURE_HEADER,
    SignatureError,
    sign_calendly_payload,
    verify_calendly_signature,
)
from core.calendly.webhook_payload import CalendlyWebhook, PayloadError, parse_calendly_webhook

__all__ = [
    "DEFAULT_BASE_URL",
    "CalendlyAPIError",
    "CalendlyClient",
    "CalendlyError",
    "CalendlyUnavailable",
    "EventTypeCache",
    "SIGNATURE_HEADER",
    "SignatureError",
    "sign_calendly_payload",
    "verify_calendly_signature",
    "CalendlyWebhook",
    "PayloadError",
    "parse_calendly_webhook",
]
