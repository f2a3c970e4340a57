"""Calendly OAuth over HTTP: PKCE, the authorize URL, and the token endpoint's three calls.

Authorization code with PKCE (S256), as Calendly recommends for public apps. The token endpoint
takes form-encoded bodies with the client's id and secret in the body; it answers JSON with
`access_token`, `refresh_token`, `expires_in`, `owner` and `organization`, or a 4xx
`{error, error_description}` (raised as `OAuthRefused`). Network trouble and 5xx answers raise
`CalendlyUnavailable`, as the API client does.

Nothing here is retried: an authorization code and a refresh token are single use, so a second
attempt after a lost answer would only be refused (`invalid_grant`). Tokens never appear in an
exception message or a log line.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import requests

from core.calendly.client import CalendlyError, CalendlyUnavailable

log = logging.getLogger(__name__)

# (connect, read) seconds: a person is usually waiting on the other end.
TIMEOUT = (5.0, 15.0)
# Calendly's access tokens last 2 hours; used when an answer leaves `expires_in` out.
DEFAULT_EXPIRES_IN = 7200


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    refresh_token: str
    expires_at: datetime  # aware UTC
    owner: str  # the Calendly user's URI
    organization: str  # the user's organization URI

    def __repr__(self) -> str:  # never show the tokens
        return f"TokenGrant(owner={self.owner!r}, expires_at={self.expires_at.isoformat()})"


class OAuthRefused(CalendlyError):
    """The token endpoint answered 4xx: `error` is OAuth's code (e.g. "invalid_grant")."""

    def __init__(self, error: str, description: str = "", status: int | None = None) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"Calendly OAuth refused: {error}" + (f" ({description})" if description else ""))


def pkce_pair() -> tuple[str, str]:
    """A fresh (code_verifier, code_challenge): the challenge is BASE64URL(SHA256(verifier)), unpadded."""
    verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43..128
    return verifier, s256_challenge(verifier)


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _settings(settings):
    if settings is not None:
        return settings
    from core.config import get_settings
    return get_settings()


def _redirect_uri(settings) -> str:
    from core.services.calendly_connection import CALLBACK_PATH
    return settings.public_base_url + CALLBACK_PATH


def _client(settings) -> tuple[str, str]:
    if not settings.calendly_client_id or not settings.calendly_client_secret:
        raise CalendlyError("Calendly OAuth is not set up: CALENDLY_CLIENT_ID and CALENDLY_CLIENT_SECRET are needed")
    return settings.calendly_client_id, settings.calendly_client_secret


def authorize_url(*, state: str, code_challenge: str, settings=None, login_hint: str | None = None) -> str:
    """Where to send the person's browser to approve our app. `login_hint` is the sandbox
    stand-in's (which account to preselect); Calendly documents no such parameter."""
    settings = _settings(settings)
    client_id, _secret = _client(settings)
    params = {
        "client_id": client_id, "response_type": "code", "redirect_uri": _redirect_uri(settings),
        "code_challenge": code_challenge, "code_challenge_method": "S256", "state": state,
    }
    if login_hint:
        params["login_hint"] = login_hint
    query = urlencode(params)
    return f"{settings.calendly_auth_base}/oauth/authorize?{query}"


def exchange_code(code: str, code_verifier: str, *, settings=None) -> TokenGrant:
    """Trade an authorization code (single use, 10 minutes) for the first token pair."""
    settings = _settings(settings)
    data = _post(settings, "/oauth/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": _redirect_uri(settings),
        "code_verifier": code_verifier,
    }, secrets_sent=(code, code_verifier))
    return _grant(data, secrets_sent=(code,))


def refresh(refresh_token: str, *, settings=None) -> TokenGrant:
    """Spend a refresh token (single use: the answer carries its successor, store it at once)."""
    settings = _settings(settings)
    data = _post(settings, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token},
                 secrets_sent=(refresh_token,))
    return _grant(data, secrets_sent=(refresh_token,))


def revoke(token: str, *, settings=None) -> None:
    """Revoke an access or refresh token. An already invalid token is not an error (RFC 7009)."""
    settings = _settings(settings)
    try:
        _post(settings, "/oauth/revoke", {"token": token}, secrets_sent=(token,))
    except OAuthRefused as refusal:
        if refusal.error not in ("invalid_grant", "invalid_token"):
            raise


def _post(settings, path: str, fields: dict[str, str], *, secrets_sent: tuple[str, ...]) -> dict:
    client_id, client_secret = _client(settings)
    url = settings.calendly_auth_base + path
    body = {**fields, "client_id": client_id, "client_secret": client_secret}
    scrub = _scrubber((*secrets_sent, client_secret))
    try:
        response = requests.post(url, data=body, headers={"Accept": "application/json"}, timeout=TIMEOUT)
    except requests.RequestException as error:
        raise CalendlyUnavailable(f"Calendly OAuth POST {path} failed: {type(error).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise CalendlyUnavailable(f"Calendly OAuth POST {path} answered {response.status_code}",
                                  status=response.status_code)
    data = _json(response)
    if response.status_code >= 400:
        error = str(data.get("error") or f"http_{response.status_code}")
        description = str(data.get("error_description") or data.get("message") or "")
        raise OAuthRefused(scrub(error)[:100], scrub(description)[:300], response.status_code)
    log.info("Calendly OAuth POST %s: %s", path, response.status_code)
    return data


def _json(response: requests.Response) -> dict:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _grant(data: dict, *, secrets_sent: tuple[str, ...]) -> TokenGrant:
    access, refresh_token = data.get("access_token"), data.get("refresh_token")
    owner, organization = data.get("owner"), data.get("organization")
    if not all(isinstance(value, str) and value for value in (access, refresh_token, owner)):
        raise CalendlyError("Calendly OAuth answer lacks access_token, refresh_token or owner")
    try:
        expires_in = int(data.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    return TokenGrant(access_token=access, refresh_token=refresh_token,
                      expires_at=datetime.now(timezone.utc) + timedelta(seconds=max(0, expires_in)),
                      owner=owner, organization=organization if isinstance(organization, str) else "")


def _scrubber(values: tuple[str, ...]):
    def scrub(text: str) -> str:
        for value in values:
            if value:
                text = text.replace(value, "[secret]")
        return text
    return scrub


__all__ = ["TokenGrant", "OAuthRefused", "pkce_pair", "s256_challenge", "authorize_url", "exchange_code",
           "refresh", "revoke"]
