"""Ready-made Calendly clients from our settings, one per builder (Stripe is called through
`core.stripe.gateway`)."""
from __future__ import annotations

from core.calendly import CalendlyClient
from core.config import get_settings
from core.models import Builder
from core.security import decrypt_secret


def calendly_token(builder: Builder) -> str:
    if not builder.calendly_token_encrypted:
        raise ValueError(f"builder {builder.id} has no Calendly token")
    return decrypt_secret(builder.calendly_token_encrypted, get_settings().app_secret_key)


def calendly_for(builder: Builder) -> CalendlyClient:
    return CalendlyClient(calendly_token(builder), get_settings().calendly_api_base)
