"""Configuration, in one place, from the environment and an optional `.env`.

With no Calendly signing key and no Stripe key the system runs in sandbox mode: local stand-ins of
both providers, development secrets, a SQLite file under `var/`. In production mode (SANDBOX off)
every secret must be given; a missing or bad one stops start-up with one line naming it.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = REPO_ROOT / "var"

SANDBOX_CALENDLY_URL = "http://127.0.0.1:8001"
SANDBOX_STRIPE_URL = "http://127.0.0.1:8002"
# The sandbox Calendly's own OAuth app (sandbox/calendly): used in sandbox mode unless others are set.
SANDBOX_OAUTH_CLIENT = {"calendly_client_id": "sandbox-client-id", "calendly_client_secret": "sandbox-client-secret"}
SANDBOX_SECRETS = {
    "calendly_webhook_signing_key": "sandbox-calendly-signing-key",
    "stripe_secret_key": "sk_test_sandbox",
    "stripe_webhook_secret": "whsec_sandbox",
    "admin_api_token": "sandbox-admin-token",
    "app_secret_key": "sandbox-app-secret-key-not-for-production",
}


_PERIODS = {"s": 1, "m": 60, "h": 3600}


def parse_rate(text: str) -> tuple[int, int] | None:
    """"5/15m" → (5, 900): at most 5 in each 900-second window; "off" → None."""
    value = text.strip().lower()
    if value == "off":
        return None
    count, _, period = value.partition("/")
    unit = period[-1:]
    amount = period[:-1] or "1"
    if not (count.isdigit() and amount.isdigit() and unit in _PERIODS and int(count) > 0 and int(amount) > 0):
        raise ValueError('must look like "5/15m" (a count, then a period in s, m or h) or "off"')
    seconds = int(amount) * _PERIODS[unit]
    if seconds > 24 * 3600:
        raise ValueError("the period may be at most 24h")
    return int(count), seconds


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    database_url: str = f"sqlite:///{VAR_DIR / 'app.db'}"
    public_base_url: str = "http://127.0.0.1:8000"
    dashboard_url: str = "http://127.0.0.1:8501"
    calendly_api_base: str | None = None
    calendly_webhook_signing_key: str | None = None
    # Our OAuth app at Calendly (builders connect their own account); its redirect URI is
    # PUBLIC_BASE_URL + core.services.calendly_connection.CALLBACK_PATH.
    calendly_client_id: str | None = None
    calendly_client_secret: str | None = None
    calendly_auth_base: str | None = None
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    admin_api_token: str | None = None
    app_secret_key: str | None = None
    sandbox: bool | None = None
    smtp_url: str | None = None
    mail_from: str = "bookings@buildappswith.test"

    # Business rules with global defaults; session types may override the refund policy.
    hold_minutes: int = Field(default=30, ge=30, le=24 * 60)
    refund_full_hours: int = Field(default=24, ge=0)
    refund_partial_percent: int = Field(default=50, ge=0, le=100)
    platform_fee_percent: int = Field(default=10, ge=0, le=100)
    reminder_minutes_before_expiry: int = Field(default=10, ge=1)
    # "Complete your payment" waits this long after the client picked a slot (they are usually on
    # their way to Stripe); it is dropped if the booking is paid or a payment is processing by then.
    payment_nudge_after_minutes: int = Field(default=10, ge=0, le=24 * 60)
    # A delayed payment (bank debit/transfer) keeps its slot this many business days (Mon–Fri)
    # after Checkout completes (ACH debits settle within 4), but never past the session's start.
    payment_settlement_business_days: int = Field(default=5, ge=1, le=30)
    # A client's sign-in lasts this long, or the longer one when they tick "keep me signed in".
    client_session_hours: int = Field(default=12, ge=1, le=7 * 24)
    client_session_remember_days: int = Field(default=30, ge=1, le=365)
    # A dashboard sign-in survives reloads while in use: it ends after this many idle hours, and
    # in any case this many days after signing in (core/services/dashboard_sessions.py).
    dashboard_session_idle_hours: int = Field(default=12, ge=1, le=7 * 24)
    dashboard_session_max_days: int = Field(default=7, ge=1, le=90)
    worker_poll_seconds: float = Field(default=2.0, gt=0)
    reconcile_every_seconds: float = Field(default=300.0, gt=0)
    # Each connected builder's Calendly webhook subscription is checked this often by the worker
    # (core/calendly/subscriptions.py): a missing or disabled one is recreated and the gap reconciled.
    subscription_check_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Request bodies, one limit per route family, refused with 413 before they are buffered
    # (webhook_service/body_limit.py): the webhook endpoints, the JSON/admin API, form pages.
    webhook_max_body_bytes: int = Field(default=256 * 1024, gt=0)
    api_max_body_bytes: int = Field(default=256 * 1024, gt=0)
    form_max_body_bytes: int = Field(default=64 * 1024, gt=0)
    # Rejected and invalid webhook deliveries (unauthenticated input) are pruned by the worker
    # after this many days; `python -m core prune-webhooks --older-than 90d` ages out the rest.
    webhook_rejected_retention_days: int = Field(default=30, ge=1)
    webhook_prune_every_seconds: float = Field(default=3600.0, gt=0)
    # Carry out outbox entries right after the request that wrote them (the worker is the backstop).
    run_outbox_after_request: bool = True
    # Benchmarks only: expose /api/webhooks/_floor/{provider}, which verifies and answers 200.
    bench_floor_endpoint: bool = False
    # Throttles (core/services/throttle.py), each "N/period" with a period in s, m or h ("5/15m":
    # five per fifteen-minute window), or "off". Counted in the database, so every `web` process
    # and the dashboard share them. The defaults sit far above what an honest person does.
    throttle_magic_link_per_email: str = "5/15m"
    throttle_magic_link_per_address: str = "50/15m"
    throttle_booking_per_client: str = "60/1h"  # each booking asks the builder's Calendly for a link
    throttle_booking_per_address: str = "120/1h"
    # Dashboard sign-in: after this many wrong passwords the account (or address) is locked out
    # until the window ends, even for the right password.
    throttle_sign_in_failures_per_account: str = "10/15m"
    throttle_sign_in_failures_per_address: str = "50/15m"
    # A client's address is the TCP peer. Behind reverse proxies you trust (a load balancer), set
    # the number of them: the address is then that many entries from the right of X-Forwarded-For
    # (each proxy appends the peer it saw). With 0, X-Forwarded-For is ignored: anyone can send it.
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)

    @field_validator("throttle_magic_link_per_email", "throttle_magic_link_per_address",
                     "throttle_booking_per_client", "throttle_booking_per_address",
                     "throttle_sign_in_failures_per_account", "throttle_sign_in_failures_per_address")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        parse_rate(value)
        return value.strip().lower()

    @field_validator("public_base_url", "dashboard_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _apply_mode(self) -> "Settings":
        if self.sandbox is None:
            self.sandbox = not (self.calendly_webhook_signing_key or self.stripe_secret_key)
        if self.sandbox:
            for name, value in SANDBOX_SECRETS.items():
                if not getattr(self, name):
                    setattr(self, name, value)
            self.calendly_api_base = self.calendly_api_base or SANDBOX_CALENDLY_URL
            # The sandbox serves the OAuth pages and endpoints on the same origin as its API.
            self.calendly_auth_base = self.calendly_auth_base or self.calendly_api_base
            if not self.calendly_client_id:
                for name, value in SANDBOX_OAUTH_CLIENT.items():
                    setattr(self, name, getattr(self, name) or value)
            self.stripe_api_base = self.stripe_api_base or SANDBOX_STRIPE_URL
        else:
            self.calendly_api_base = self.calendly_api_base or "https://api.calendly.com"
            self.calendly_auth_base = self.calendly_auth_base or "https://auth.calendly.com"
            self.stripe_api_base = self.stripe_api_base or "https://api.stripe.com"
            for name in SANDBOX_SECRETS:
                if not getattr(self, name):
                    raise ValueError(f"{name.upper()} is required when SANDBOX is off")
            if len(self.app_secret_key or "") < 32:
                raise ValueError("APP_SECRET_KEY must be at least 32 characters")
            if not (self.stripe_secret_key or "").startswith(("sk_", "rk_")):
                raise ValueError("STRIPE_SECRET_KEY must start with sk_ or rk_")
            if self.calendly_client_id and not self.calendly_client_secret:
                raise ValueError("CALENDLY_CLIENT_SECRET is required when CALENDLY_CLIENT_ID is set")
        self.calendly_api_base = self.calendly_api_base.rstrip("/")
        self.calendly_auth_base = self.calendly_auth_base.rstrip("/")
        self.stripe_api_base = self.stripe_api_base.rstrip("/")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or ""
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    return f"{field.upper()}: {message}" if field else message


def load_settings(**overrides) -> Settings:
    """Build settings from the environment (plus overrides); raise ConfigError with one clear line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(f"Configuration error: {_describe(error)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_or_exit() -> Settings:
    """For entry points: the settings, or one line on stderr and exit code 2."""
    try:
        return get_settings()
    except ConfigError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None
