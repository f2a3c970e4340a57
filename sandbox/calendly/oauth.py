"""OAuth 2.0 of the Calendly stand-in: consents in progress, authorization codes, token grants.

Plain Python under the stand-in's lock (the routes in ``oauth_routes`` hold it); every time is the
caller's ``now`` (the stand-in's clock, which ``/_sandbox/config`` can shift). Calendly's rules:

- codes are single use, expire after 10 minutes, and are bound to the client, the redirect URI and
  the PKCE challenge (S256); a code presented twice also revokes what it was exchanged for;
- a grant is an access token (expires after ``access_token_ttl`` seconds) and a refresh token;
  refresh tokens are single use and rotate: a refresh answers a new grant and spends the old
  refresh token (the old access token lives until it expires);
- revoking either token of a grant revokes both.

Every table is bounded: expired and spent entries go first, then the oldest.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .identities import DEMO_OAUTH_IDENTITY, DEMO_OAUTH_REFRESH_TOKEN

ACCESS_PREFIX, REFRESH_PREFIX, CODE_PREFIX = "sbx_oat_", "sbx_ort_", "sbx_code_"
OAUTH_TOKEN_PREFIX = "sbx_o"         # a bearer token like this is ours: never a personal token
CODE_TTL = timedelta(minutes=10)
CONSENT_TTL = timedelta(minutes=10)
DEFAULT_ACCESS_TOKEN_TTL = 7200
SCOPE = "default"
MAX_CONSENTS, MAX_CODES, MAX_GRANTS = 1000, 1000, 5000
VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CHALLENGE_RE = re.compile(r"[A-Za-z0-9\-_]{43}")   # base64url of a SHA-256, unpadded


class OAuthError(Exception):
    """An OAuth error answer: ``{"error", "error_description"}`` with ``status``."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


@dataclass
class Consent:
    """An authorization request shown to a person, waiting for Allow or Deny."""
    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str | None
    account_hint: str | None
    expires_at: datetime


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    identity: str
    expires_at: datetime
    used: bool = False
    grants: list = field(default_factory=list)     # grants it was exchanged for (revoked on reuse)


@dataclass
class Grant:
    access_token: str
    refresh_token: str
    identity: str                 # the approving user's identity key (see identities)
    client_id: str
    created_at: datetime
    expires_at: datetime          # of the access token
    access_revoked: bool = False
    refresh_state: str = "live"   # live | used | revoked

    def dead(self, now: datetime) -> bool:
        return self.refresh_state != "live" and (self.access_revoked or self.expires_at <= now)


def _bounded_put(table: OrderedDict, key: str, value, limit: int, gone) -> None:
    """Insert, then drop entries ``gone(value)`` says are finished, then the oldest, down to ``limit``."""
    table[key] = value
    if len(table) <= limit:
        return
    for old_key in [k for k, v in table.items() if gone(v)]:
        if len(table) <= limit:
            return
        table.pop(old_key)
    while len(table) > limit:
        table.popitem(last=False)


class OAuthStore:
    """The stand-in's one registered OAuth client and everything issued to it."""

    def __init__(self, *, client_id: str, client_secret: str, app_name: str,
                 access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL, now: datetime,
                 redirect_uris: tuple[str, ...] = ()):
        self.client_id, self.client_secret, self.app_name = client_id, client_secret, app_name
        self.redirect_uris = tuple(redirect_uris)   # registered ones, compared exactly; () = any http(s)
        self.access_token_ttl = access_token_ttl
        self.consents: OrderedDict[str, Consent] = OrderedDict()
        self.codes: OrderedDict[str, Code] = OrderedDict()
        self.grants: OrderedDict[str, Grant] = OrderedDict()        # by access token
        self.by_refresh: dict[str, Grant] = {}
        # Survives /_sandbox/reset (like the users): a reset of bookings does not disconnect anyone.
        self._add_grant(Grant("sbx_oat_demo-" + secrets.token_urlsafe(8), DEMO_OAUTH_REFRESH_TOKEN,
                              DEMO_OAUTH_IDENTITY, client_id, now, now), now)

    # ------------------------------------------------------------ client authentication
    def authenticate(self, client_id: str | None, client_secret: str | None) -> None:
        """Raises 401 invalid_client unless both are this client's."""
        if not (client_id and client_secret and hmac.compare_digest(client_id.encode(), self.client_id.encode())
                and hmac.compare_digest(client_secret.encode(), self.client_secret.encode())):
            raise OAuthError("invalid_client", "Client authentication failed: unknown client_id or "
                             "wrong client_secret.", 401)

    # ------------------------------------------------------------ consent (the authorize page)
    def open_consent(self, consent: Consent, now: datetime) -> str:
        ticket = secrets.token_urlsafe(24)
        _bounded_put(self.consents, ticket, consent, MAX_CONSENTS, lambda c: c.expires_at <= now)
        return ticket

    def take_consent(self, ticket: str, now: datetime) -> Consent | None:
        """The waiting request of ``ticket`` (single use), or None when unknown or expired."""
        consent = self.consents.pop(ticket, None) if isinstance(ticket, str) else None
        return consent if consent is not None and consent.expires_at > now else None

    def issue_code(self, consent: Consent, identity: str, now: datetime) -> str:
        code = CODE_PREFIX + secrets.token_urlsafe(32)
        _bounded_put(self.codes, code, Code(consent.client_id, consent.redirect_uri,
                                            consent.code_challenge, identity, now + CODE_TTL),
                     MAX_CODES, lambda c: c.expires_at <= now)
        return code

    # ------------------------------------------------------------ grants
    def _add_grant(self, grant: Grant, now: datetime) -> Grant:
        def gone(old: Grant) -> bool:
            if old.dead(now):
                self.by_refresh.pop(old.refresh_token, None)
                return True
            return False

        _bounded_put(self.grants, grant.access_token, grant, MAX_GRANTS, gone)
        self.by_refresh[grant.refresh_token] = grant
        if len(self.by_refresh) > len(self.grants):     # the oldest went: forget their refresh tokens
            live = {g.refresh_token for g in self.grants.values()}
            for token in [t for t in self.by_refresh if t not in live]:
                del self.by_refresh[token]
        return grant

    def _new_grant(self, identity: str, client_id: str, now: datetime) -> Grant:
        return self._add_grant(Grant(ACCESS_PREFIX + secrets.token_urlsafe(32),
                                     REFRESH_PREFIX + secrets.token_urlsafe(32), identity, client_id,
                                     now, now + timedelta(seconds=self.access_token_ttl)), now)

    def exchange_code(self, *, code: str | None, redirect_uri: str | None, code_verifier: str | None,
                      client_id: str, now: datetime) -> Grant:
        if not code:
            raise OAuthError("invalid_request", "The code parameter is required.")
        found = self.codes.get(code)
        if found is None or found.client_id != client_id:
            raise invalid_grant("The authorization code is not valid.")
        if found.used:
            for grant in found.grants:          # a replayed code: what it bought is revoked too
                self._revoke_grant(grant)
            raise invalid_grant("The authorization code has already been used.")
        found.used = True                       # spent by any attempt, right or wrong
        if found.expires_at <= now:
            raise invalid_grant("The authorization code has expired (codes last 10 minutes).")
        if redirect_uri != found.redirect_uri:
            raise invalid_grant("The redirect_uri does not match the one of the authorization request.")
        if found.code_challenge is not None:
            if not isinstance(code_verifier, str) or not VERIFIER_RE.fullmatch(code_verifier):
                raise invalid_grant("The code_verifier is missing or malformed (43 to 128 characters).")
            if not hmac.compare_digest(s256(code_verifier), found.code_challenge):
                raise invalid_grant("The code_verifier does not match the code_challenge.")
        grant = self._new_grant(found.identity, client_id, now)
        found.grants.append(grant)
        return grant

    def refresh(self, *, refresh_token: str | None, client_id: str, now: datetime) -> Grant:
        if not refresh_token:
            raise OAuthError("invalid_request", "The refresh_token parameter is required.")
        old = self.by_refresh.get(refresh_token)
        if old is None or old.client_id != client_id:
            raise invalid_grant("The refresh token is not valid.")
        if old.refresh_state == "used":
            raise invalid_grant("The refresh token has already been used (refresh tokens are single use).")
        if old.refresh_state == "revoked":
            raise invalid_grant("The refresh token has been revoked.")
        old.refresh_state = "used"
        return self._new_grant(old.identity, client_id, now)

    def _revoke_grant(self, grant: Grant) -> None:
        grant.access_revoked = True
        if grant.refresh_state == "live":
            grant.refresh_state = "revoked"

    def revoke(self, token: str | None, client_id: str) -> bool:
        """Revokes the grant ``token`` (access or refresh) belongs to; False when unknown."""
        grant = self.grants.get(token or "") or self.by_refresh.get(token or "")
        if grant is None or grant.client_id != client_id:
            return False
        self._revoke_grant(grant)
        return True

    def expire_access_tokens(self, now: datetime) -> int:
        """Test control: every live access token expires now."""
        live = [g for g in self.grants.values() if g.expires_at > now and not g.access_revoked]
        for grant in live:
            grant.expires_at = now
        return len(live)

    # ------------------------------------------------------------ bearer tokens of the API
    def bearer_identity(self, token: str, now: datetime) -> tuple[str | None, str | None]:
        """(identity, None) for a live access token; (None, why) for one of ours that is not;
        (token, None) for any other token (a personal access token: its own identity)."""
        if not token.startswith(OAUTH_TOKEN_PREFIX):
            return token, None
        grant = self.grants.get(token)
        if grant is None or grant.access_revoked:
            return None, "The access token is invalid"
        if grant.expires_at <= now:
            return None, "The access token expired"
        return grant.identity, None

    def summary(self, now: datetime) -> dict:
        return {"client_id": self.client_id, "app_name": self.app_name,
                "access_token_ttl_seconds": self.access_token_ttl,
                "consents_waiting": sum(1 for c in self.consents.values() if c.expires_at > now),
                "codes": len(self.codes),
                "live_access_tokens": sum(1 for g in self.grants.values()
                                          if not g.access_revoked and g.expires_at > now),
                "live_refresh_tokens": sum(1 for g in self.grants.values() if g.refresh_state == "live")}
