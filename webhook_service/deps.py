"""Request-scoped dependencies: the engine, the admin token check, the visitor's session.

The visitor's cookie is signed and carries a random session id (the CSRF token derives from it).
Who is signed in is never read from the cookie alone: a signed-in cookie names a server-side
session (core.services.client_sessions) that sign-out and revocation end.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine

from core.config import Settings, get_settings
from core.db import get_engine, session_scope
from core.models import utcnow
from core.services import client_sessions
from core.services.throttle import client_address
from core.timezones import known_zone

SESSION_COOKIE = "baw_session"
# Written by /static/zone.js from the browser's Intl time zone; a hint, checked on every read.
ZONE_COOKIE = "tz"


def engine_dep() -> Engine:
    return get_engine()


def settings_dep() -> Settings:
    return get_settings()


EngineDep = Annotated[Engine, Depends(engine_dep)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]


def require_admin_token(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """`Authorization: Bearer $ADMIN_API_TOKEN`, compared in constant time."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.encode(), settings.admin_api_token.encode()):
        raise HTTPException(403, "wrong admin token")


AdminDep = Annotated[None, Depends(require_admin_token)]


@dataclass
class Visitor:
    """Whoever is on our pages: a random session id (for CSRF) and, once signed in, the email of
    their live server-side session and when that session ends."""

    sid: str
    email: str | None = None
    name: str | None = None
    changed: bool = False
    expires_at: datetime | None = None

    def csrf_token(self) -> str:
        return hmac.new(get_settings().app_secret_key.encode(), f"csrf:{self.sid}".encode(),
                        hashlib.sha256).hexdigest()

    def check_csrf(self, token: str | None) -> None:
        # Bytes: compare_digest raises TypeError on non-ASCII text, and a form can send any.
        if not token or not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self.csrf_token().encode()):
            raise HTTPException(403, "this form has expired; reload the page and try again")

    def sign_in(self, signed_in: client_sessions.SignedIn) -> None:
        """Carry the session a magic link opened (a new id on sign-in: no session fixation)."""
        self.sid, self.email, self.expires_at = signed_in.sid, signed_in.email, signed_in.expires_at
        self.changed = True

    def sign_out(self) -> None:
        """Forget the identity in this browser (the route ends the server-side session first)."""
        self.sid, self.email, self.name, self.expires_at = secrets.token_urlsafe(16), None, None, None
        self.changed = True


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().app_secret_key, salt="client-session")


def _read_cookie(raw: str | None) -> Visitor | None:
    if not raw:
        return None
    max_age = client_sessions.lifetime(remember=True).total_seconds()  # no cookie outlives the longest session
    try:
        data = _serializer().loads(raw, max_age=max_age)
        sid, name, signed_in = data["sid"], data.get("name"), bool(data.get("auth"))
    except (BadSignature, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(sid, str) or not sid or not (name is None or isinstance(name, str)):
        return None
    if not signed_in:
        return Visitor(sid=sid, name=name)
    with session_scope(get_engine()) as session:
        live = client_sessions.current(session, sid)
        if live is not None:
            return Visitor(sid=sid, email=live.email, name=name, expires_at=live.expires_at)
    # Signed out, revoked or expired on the server: an anonymous visitor with a fresh id.
    return Visitor(sid=secrets.token_urlsafe(16), name=name, changed=True)


def visitor_dep(request: Request, response: Response) -> Visitor:
    visitor = _read_cookie(request.cookies.get(SESSION_COOKIE)) or Visitor(sid=secrets.token_urlsafe(16),
                                                                             changed=True)
    request.state.visitor = visitor
    return visitor


def save_visitor(response: Response, visitor: Visitor) -> None:
    """Write the session cookie if it changed (call on every response that had a visitor).

    A signed-in cookie lives as long as its server-side session; an anonymous one (it only
    carries the CSRF id and a name) lasts until the browser closes."""
    if not visitor.changed:
        return
    signed_in = bool(visitor.email and visitor.expires_at)
    value = _serializer().dumps({"sid": visitor.sid, "name": visitor.name, "auth": signed_in})
    max_age = max(1, int((visitor.expires_at - utcnow()).total_seconds())) if signed_in else None
    response.set_cookie(SESSION_COOKIE, value, max_age=max_age, httponly=True, samesite="lax",
                        secure=get_settings().public_base_url.startswith("https://"))


VisitorDep = Annotated[Visitor, Depends(visitor_dep)]


def visitor_of(request: Request) -> Visitor | None:
    """The visitor a route already read, or (for a page no route made: an unknown address, an
    error) the one their cookie names, so every page's header says who is signed in. Never fails:
    an error page must render even when the database is what failed."""
    visitor = getattr(request.state, "visitor", None)
    if visitor is None:
        try:
            visitor = _read_cookie(request.cookies.get(SESSION_COOKIE))
        except Exception:
            return None
        request.state.visitor = visitor
    return visitor


def browser_zone(request: Request) -> str | None:
    """The time zone the visitor's browser reported (the `tz` cookie), if it is a real IANA zone."""
    return known_zone(request.cookies.get(ZONE_COOKIE))


def request_address(request: Request) -> str | None:
    """The client's address for throttling: the TCP peer, or X-Forwarded-For only behind proxies
    the configuration says we trust (TRUSTED_PROXY_HOPS)."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), get_settings().trusted_proxy_hops)
