"""Request-scoped dependencies: the engine, the admin token check, the visitor's signed session."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine

from core.config import Settings, get_settings
from core.db import get_engine
from core.services.throttle import client_address

SESSION_COOKIE = "baw_session"
SESSION_MAX_AGE = 30 * 24 * 3600


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
    """Whoever is on our pages: a random session id (for CSRF) and, once signed in, an email."""

    sid: str
    email: str | None = None
    name: str | None = None
    changed: bool = False

    def csrf_token(self) -> str:
        return hmac.new(get_settings().app_secret_key.encode(), f"csrf:{self.sid}".encode(),
                        hashlib.sha256).hexdigest()

    def check_csrf(self, token: str | None) -> None:
        # Bytes: compare_digest raises TypeError on non-ASCII text, and a form can send any.
        if not token or not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self.csrf_token().encode()):
            raise HTTPException(403, "this form has expired; reload the page and try again")

    def sign_in(self, email: str, name: str | None = None) -> None:
        self.sid = secrets.token_urlsafe(16)  # a new session id on sign-in (no session fixation)
        self.email, self.name, self.changed = email, name, True

    def sign_out(self) -> None:
        self.sid, self.email, self.name, self.changed = secrets.token_urlsafe(16), None, None, True


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().app_secret_key, salt="client-session")


def visitor_dep(request: Request, response: Response) -> Visitor:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        try:
            data = _serializer().loads(raw, max_age=SESSION_MAX_AGE)
            visitor = Visitor(sid=data["sid"], email=data.get("email"), name=data.get("name"))
            request.state.visitor = visitor
            return visitor
        except (BadSignature, KeyError, TypeError):
            pass
    visitor = Visitor(sid=secrets.token_urlsafe(16), changed=True)
    request.state.visitor = visitor
    return visitor


def save_visitor(response: Response, visitor: Visitor) -> None:
    """Write the session cookie if it changed (call on every response that had a visitor)."""
    if not visitor.changed:
        return
    value = _serializer().dumps({"sid": visitor.sid, "email": visitor.email, "name": visitor.name})
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax",
                        secure=get_settings().public_base_url.startswith("https://"))


VisitorDep = Annotated[Visitor, Depends(visitor_dep)]


def request_address(request: Request) -> str | None:
    """The client's address for throttling: the TCP peer, or X-Forwarded-For only behind proxies
    the configuration says we trust (TRUSTED_PROXY_HOPS)."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), get_settings().trusted_proxy_hops)
