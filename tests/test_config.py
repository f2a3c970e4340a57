"""Configuration: sandbox defaults without keys; production refuses to start without them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import config
from core.config import (
    SANDBOX_CALENDLY_URL, SANDBOX_SECRETS, SANDBOX_STRIPE_URL, ConfigError, load_settings,
    settings_or_exit,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {name.upper() for name in config.Settings.model_fields}
PRODUCTION = {
    "SANDBOX": "false",
    "CALENDLY_WEBHOOK_SIGNING_KEY": "calendly-signing-key-from-calendly",
    "STRIPE_SECRET_KEY": "sk_live_abc123",
    "STRIPE_WEBHOOK_SECRET": "whsec_live_abc123",
    "ADMIN_API_TOKEN": "a-long-random-admin-token",
    "APP_SECRET_KEY": "x" * 40,
}


@pytest.fixture
def env(settings_env, monkeypatch):
    """A clean environment (no settings variables, no .env) with only the given values set."""
    monkeypatch.delenv("SANDBOX", raising=False)

    def set_values(values: dict[str, str], *, drop: tuple[str, ...] = ()) -> None:
        for name, value in values.items():
            if name not in drop:
                monkeypatch.setenv(name, value)
    return set_values


def _one_line(message: str) -> bool:
    return "\n" not in message.strip() and message.strip() != ""


def test_without_keys_the_system_runs_in_sandbox_mode_with_development_secrets(env, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    settings = load_settings()
    assert settings.sandbox is True
    for name, value in SANDBOX_SECRETS.items():
        assert getattr(settings, name) == value
    assert settings.calendly_api_base == SANDBOX_CALENDLY_URL
    assert settings.stripe_api_base == SANDBOX_STRIPE_URL
    assert settings.database_url == f"sqlite:///{config.VAR_DIR / 'app.db'}"
    assert settings.is_sqlite


def test_business_rule_defaults(env):
    settings = load_settings()
    assert (settings.hold_minutes, settings.refund_full_hours, settings.refund_partial_percent,
            settings.platform_fee_percent) == (30, 24, 50, 10)


def test_sandbox_keeps_secrets_that_are_given(env):
    env({"SANDBOX": "true", "ADMIN_API_TOKEN": "my-token", "CALENDLY_API_BASE": "http://127.0.0.1:9999/"})
    settings = load_settings()
    assert settings.admin_api_token == "my-token"
    assert settings.calendly_api_base == "http://127.0.0.1:9999"  # trailing slash stripped
    assert settings.stripe_secret_key == SANDBOX_SECRETS["stripe_secret_key"]


def test_production_with_every_key_uses_the_real_providers(env):
    env(PRODUCTION)
    settings = load_settings()
    assert settings.sandbox is False
    assert settings.calendly_api_base == "https://api.calendly.com"
    assert settings.stripe_api_base == "https://api.stripe.com"
    assert settings.stripe_secret_key == "sk_live_abc123"


def test_a_provider_key_without_sandbox_setting_means_production(env):
    env({"STRIPE_SECRET_KEY": "sk_live_abc123"})
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "CALENDLY_WEBHOOK_SIGNING_KEY is required when SANDBOX is off" in str(refused.value)


@pytest.mark.parametrize("missing", [name.upper() for name in SANDBOX_SECRETS])
def test_production_with_a_missing_key_names_it_in_one_line(env, missing):
    env(PRODUCTION, drop=(missing,))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert message == f"Configuration error: {missing} is required when SANDBOX is off"
    assert _one_line(message)


@pytest.mark.parametrize("name,value,expected", [
    ("APP_SECRET_KEY", "too-short", "APP_SECRET_KEY must be at least 32 characters"),
    ("STRIPE_SECRET_KEY", "pk_live_abc", "STRIPE_SECRET_KEY must start with sk_ or rk_"),
])
def test_production_with_a_bad_key_names_it(env, name, value, expected):
    env({**PRODUCTION, name: value})
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == f"Configuration error: {expected}"


@pytest.mark.parametrize("name,value", [
    ("HOLD_MINUTES", "5"), ("HOLD_MINUTES", "soon"), ("PLATFORM_FEE_PERCENT", "120"),
    ("PUBLIC_BASE_URL", "example.com"), ("WORKER_POLL_SECONDS", "0"), ("SANDBOX", "perhaps"),
])
def test_an_invalid_value_is_refused_naming_the_variable(env, name, value):
    env({name: value})
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith(f"Configuration error: {name}: ")
    assert _one_line(message)


def test_public_urls_lose_their_trailing_slash(env):
    env({"PUBLIC_BASE_URL": "https://book.example.com/", "DASHBOARD_URL": "https://admin.example.com//"})
    settings = load_settings()
    assert settings.public_base_url == "https://book.example.com"
    assert settings.dashboard_url == "https://admin.example.com"


def test_a_dot_env_file_in_the_working_directory_is_read(env, tmp_path):
    (tmp_path / ".env").write_text("HOLD_MINUTES=45\nADMIN_API_TOKEN=from-dot-env\n")
    settings = load_settings()
    assert (settings.hold_minutes, settings.admin_api_token) == (45, "from-dot-env")


def test_settings_or_exit_prints_one_line_and_exits_2(env, capsys):
    env({"SANDBOX": "false"})
    config.get_settings.cache_clear()
    with pytest.raises(SystemExit) as exited:
        settings_or_exit()
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "Configuration error: CALENDLY_WEBHOOK_SIGNING_KEY is required when SANDBOX is off\n"
    config.get_settings.cache_clear()


def test_settings_or_exit_returns_the_settings_when_valid(env):
    config.get_settings.cache_clear()
    assert settings_or_exit().sandbox is True


def test_cli_in_production_mode_without_keys_exits_2_with_one_line(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    environment.update(SANDBOX="false", PYTHONPATH=str(REPO_ROOT),
                       DATABASE_URL=f"sqlite:///{tmp_path}/never-created.db")
    result = subprocess.run([sys.executable, "-m", "core", "migrate"], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CALENDLY_WEBHOOK_SIGNING_KEY" in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "never-created.db").exists()
