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
SANDBOX_SECRETS = {
    "calendly_webhook_signing_key": "sandbox-calendly-signing-key",
    "stripe_secret_key": "sk_test_sandbox",
    "stripe_webhook_secret": "whsec_sandbox",
    "admin_api_token": "sandbox-admin-token",
    "app_secret_key": "sandbox-app-secret-key-not-for-production",
}


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    database_url: str = f"sqlite:///{VAR_DIR / 'app.db'}"
    public_base_url: str = "http://127.0.0.1:8000"
    dashboard_url: str = "http://127.0.0.1:8501"
    calendly_api_base: str | None = None
    calendly_webhook_signing_key: str | None = None
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
    worker_poll_seconds: float = Field(default=2.0, gt=0)
    reconcile_every_seconds: float = Field(default=300.0, gt=0)
    webhook_max_body_bytes: int = Field(default=256 * 1024, gt=0)
    # Carry out outbox entries right after the request that wrote them (the worker is the backstop).
    run_outbox_after_request: bool = True
    # Benchmarks only: expose /api/webhooks/_floor/{provider}, which verifies and answers 200.
    bench_floor_endpoint: bool = False

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
            self.stripe_api_base = self.stripe_api_base or SANDBOX_STRIPE_URL
        else:
            self.calendly_api_base = self.calendly_api_base or "https://api.calendly.com"
            self.stripe_api_base = self.stripe_api_base or "https://api.stripe.com"
            for name in SANDBOX_SECRETS:
                if not getattr(self, name):
                    raise ValueError(f"{name.upper()} is required when SANDBOX is off")
            if len(self.app_secret_key or "") < 32:
                raise ValueError("APP_SECRET_KEY must be at least 32 characters")
            if not (self.stripe_secret_key or "").startswith(("sk_", "rk_")):
                raise ValueError("STRIPE_SECRET_KEY must start with sk_ or rk_")
        self.calendly_api_base = self.calendly_api_base.rstrip("/")
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
