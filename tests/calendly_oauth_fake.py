"""A small fake of Calendly's OAuth token endpoint and the two API calls a connect makes, served for
real (tests.servers.serve), recording what it was sent. It follows Calendly's documented rules only
as far as the tests of core/calendly/oauth.py need: form bodies with the client's id and secret,
codes single use and bound to the PKCE challenge and redirect URI, refresh tokens single use and
rotating (a reused one is `invalid_grant`), access tokens that answer 401 once replaced or revoked.

The sandbox stand-in (sandbox/calendly) implements the whole of it for the live tests.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

CLIENT_ID, CLIENT_SECRET = "fake-client-id", "fake-client-secret"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class FakeCalendly:
    base: str = ""
    owner: str = "https://fake.calendly.test/users/ada"
    organization: str = "https://fake.calendly.test/organizations/acme"
    expires_in: int = 7200
    refresh_delay: float = 0.0  # seconds the refresh answer takes: widens a race on purpose
    codes: dict[str, dict] = field(default_factory=dict)  # code → {challenge, redirect_uri, used}
    refresh_tokens: dict[str, bool] = field(default_factory=dict)  # token → spent
    access_tokens: dict[str, bool] = field(default_factory=dict)  # token → live
    token_requests: list[dict] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    refreshes: int = 0
    api_calls: list[str] = field(default_factory=list)  # "<path> <token>"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue_code(self, code_challenge: str, redirect_uri: str) -> str:
        """What Calendly does when the person presses Allow."""
        code = "code-" + secrets.token_hex(12)
        self.codes[code] = {"challenge": code_challenge, "redirect_uri": redirect_uri, "used": False}
        return code

    def grant(self) -> dict:
        access, refresh = "acc-" + secrets.token_hex(16), "ref-" + secrets.token_hex(16)
        self.access_tokens[access] = True
        self.refresh_tokens[refresh] = False
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "scope": "default",
                "expires_in": self.expires_in, "created_at": int(time.time()), "owner": self.owner,
                "organization": self.organization}

    def expire_access_tokens(self) -> None:
        for token in self.access_tokens:
            self.access_tokens[token] = False


def refused(description: str, error: str = "invalid_grant", status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def create_app(fake: FakeCalendly) -> FastAPI:
    app = FastAPI()

    @app.post("/oauth/token")
    async def token(request: Request):
        form = dict(await request.form())
        fake.token_requests.append(form)
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return refused("unknown client", "invalid_client", 401)
        if form.get("grant_type") == "authorization_code":
            with fake.lock:
                code = fake.codes.get(form.get("code", ""))
                if code is None or code["used"]:
                    return refused("the code is not valid or was used")
                code["used"] = True
            if s256(form.get("code_verifier", "")) != code["challenge"]:
                return refused("PKCE verification failed")
            if form.get("redirect_uri") != code["redirect_uri"]:
                return refused("redirect_uri does not match")
            return fake.grant()
        if form.get("grant_type") == "refresh_token":
            with fake.lock:
                spent = fake.refresh_tokens.get(form.get("refresh_token", ""))
                if spent is None or spent:
                    return refused("the refresh token is not valid or was already used")
                fake.refresh_tokens[form["refresh_token"]] = True
                fake.refreshes += 1
            time.sleep(fake.refresh_delay)
            return fake.grant()
        return refused("unsupported grant_type", "unsupported_grant_type")

    @app.post("/oauth/revoke")
    async def revoke(request: Request):
        form = dict(await request.form())
        fake.revoked.append(form.get("token", ""))
        fake.access_tokens.pop(form.get("token", ""), None)
        return JSONResponse({})

    def bearer(request: Request) -> str | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        fake.api_calls.append(f"{request.url.path} {token}")
        return token if fake.access_tokens.get(token) else None

    def unauthenticated() -> JSONResponse:
        return JSONResponse({"title": "Unauthenticated", "message": "The access token is expired"}, status_code=401)

    @app.get("/users/me")
    def me(request: Request):
        if bearer(request) is None:
            return unauthenticated()
        return {"resource": {"uri": fake.owner, "name": "Ada", "current_organization": fake.organization,
                             "timezone": "UTC"}}

    @app.get("/event_types")
    def event_types(request: Request):
        if bearer(request) is None:
            return unauthenticated()
        return {"collection": [{"uri": f"{fake.base}/event_types/et-1", "name": "Pairing", "active": True,
                                "duration": 60}],
                "pagination": {"count": 1, "next_page": None}}

    return app
