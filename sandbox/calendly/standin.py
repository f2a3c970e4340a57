"""Offline stand-in for the Calendly API v2, speaking Calendly's wire format.

``create_app(public_url=..., webhook_url=..., signing_key=..., redirect_url=...)`` builds an
independent FastAPI app with its state in memory (``app.state.calendly``). Pieces:

- ``identities`` the deterministic users and event types of a bearer token (no dependencies:
                  the demo data imports it to point its builders at this stand-in)
- ``model``      records, state, errors, JSON shapes
- ``ops``        slots, booking, cancellation, rescheduling, no-shows
- ``webhooks``   signed webhook delivery (sync with background retries, or off)
- ``api``        the ``/users``, ``/event_types``, ``/scheduling_links``,
                 ``/scheduled_events``, ``/invitee_no_shows``, ``/webhook_subscriptions`` API
- ``pages``      ``/book/{link}``, ``/cancellations/{invitee}``, ``/reschedulings/{invitee}``
- ``controls``   ``/_sandbox/...`` config, faults, shortcuts and state
- ``oauth``      OAuth consents, codes and token grants; ``oauth_routes`` its ``/oauth/...``
                 endpoints (the authorize page, token, revoke) and ``/_sandbox/oauth`` controls

Run: ``python -m sandbox.calendly --port 8001`` (its URL is both the API base and the OAuth
auth base).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import api as calendly_api, controls as calendly_controls, oauth_routes, pages as calendly_pages
from .identities import sandbox_event_type_uris, sandbox_user_uri, sandbox_user_uuid
from .model import CalendlyError, CalendlyState, not_found
from .oauth import DEFAULT_ACCESS_TOKEN_TTL, OAuthError, OAuthStore
from .webhooks import Dispatcher, signature_header, verify_signature

DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET = "sandbox-client-id", "sandbox-client-secret"
DEFAULT_APP_NAME = "BuildAppsWith"

__all__ = ["create_app", "sandbox_user_uri", "sandbox_event_type_uris", "sandbox_user_uuid",
           "signature_header", "verify_signature", "main"]


def create_app(*, public_url: str, webhook_url: str | None, signing_key: str,
               redirect_url: str | None, oauth_client_id: str = DEFAULT_CLIENT_ID,
               oauth_client_secret: str = DEFAULT_CLIENT_SECRET, oauth_app_name: str = DEFAULT_APP_NAME,
               access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL,
               oauth_redirect_uris: tuple[str, ...] = ()) -> FastAPI:
    """A fresh stand-in. ``webhook_url`` + ``signing_key`` form a pre-registered subscription to
    all events; ``redirect_url`` is where a booking redirects (None: a "You are scheduled" page).
    The OAuth client (``oauth_*``) is the one app registered here; ``access_token_ttl``: seconds an
    OAuth access token lasts; ``oauth_redirect_uris``: the app's registered redirect URIs, compared
    exactly as Calendly does (empty: any http(s) URL is accepted)."""
    app = FastAPI(title="Calendly API v2 sandbox", docs_url="/_sandbox/docs",
                  redoc_url=None, openapi_url="/_sandbox/openapi.json")
    state = CalendlyState(public_url=public_url, webhook_url=webhook_url or None,
                          signing_key=signing_key, redirect_url=redirect_url or None)
    app.state.calendly = state
    app.state.calendly_dispatcher = Dispatcher(state)
    app.state.calendly_oauth = OAuthStore(client_id=oauth_client_id, client_secret=oauth_client_secret,
                                          app_name=oauth_app_name, access_token_ttl=access_token_ttl,
                                          now=state.now(), redirect_uris=oauth_redirect_uris)
    app.add_middleware(calendly_controls.FaultMiddleware, state=state)

    @app.exception_handler(CalendlyError)
    async def _calendly_error(request: Request, exc: CalendlyError):
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

    @app.exception_handler(OAuthError)
    async def _oauth_error(request: Request, exc: OAuthError):
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Calendly sandbox"'
        return JSONResponse(exc.body(), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            error = not_found()
        elif exc.status_code == 405:
            error = CalendlyError(405, "Method Not Allowed", "The method is not allowed here.")
        else:
            error = CalendlyError(exc.status_code, "Error", str(exc.detail))
        return JSONResponse(error.body(), error.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        details = [{"parameter": str(e.get("loc", ["?"])[-1]), "message": e.get("msg", "invalid")}
                   for e in exc.errors()]
        return JSONResponse({"title": "Invalid Argument",
                             "message": "The supplied parameters are invalid.",
                             "details": details}, 400)

    app.include_router(calendly_controls.router)
    app.include_router(calendly_api.router)
    app.include_router(oauth_routes.router)
    app.include_router(calendly_pages.router)
    # The booking pages' one script (times in the invitee's zone): a file, like Calendly's assets.
    app.mount("/assets", StaticFiles(directory=Path(__file__).parent / "static"), name="assets")
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    base = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    parser = argparse.ArgumentParser(prog="python -m sandbox.calendly", description="Offline Calendly API v2 stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--public-url", help="this stand-in's base URL (default http://127.0.0.1:<port>)")
    parser.add_argument("--webhook-url", default=os.environ.get(
        "SANDBOX_CALENDLY_WEBHOOK_URL", f"{base}/api/webhooks/calendly"),
        help='pre-registered webhook subscription URL ("" for none)')
    parser.add_argument("--signing-key", default=os.environ.get(
        "CALENDLY_WEBHOOK_SIGNING_KEY") or "sandbox-calendly-signing-key")
    parser.add_argument("--redirect-url", default=f"{base}/payment/calendly-return",
                        help='redirect after booking ("" for the "You are scheduled" page)')
    parser.add_argument("--oauth-client-id", default=DEFAULT_CLIENT_ID, help="the registered OAuth app's client_id")
    parser.add_argument("--oauth-client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--oauth-app-name", default=DEFAULT_APP_NAME, help="the app named on the authorize page")
    parser.add_argument("--access-token-ttl", type=int, default=DEFAULT_ACCESS_TOKEN_TTL, metavar="SECONDS",
                        help="how long an OAuth access token lasts (default 7200, Calendly's 2 hours)")
    parser.add_argument("--oauth-redirect-uri", action="append", default=[], metavar="URL",
                        help="a registered redirect URI (repeat for more; none: any http(s) URL)")
    args = parser.parse_args(argv)
    if args.access_token_ttl < 1:
        parser.error("--access-token-ttl must be at least 1 second")
    public_url = (args.public_url or f"http://127.0.0.1:{args.port}").rstrip("/")
    app = create_app(public_url=public_url, webhook_url=args.webhook_url or None,
                     signing_key=args.signing_key, redirect_url=args.redirect_url or None,
                     oauth_client_id=args.oauth_client_id, oauth_client_secret=args.oauth_client_secret,
                     oauth_app_name=args.oauth_app_name, access_token_ttl=args.access_token_ttl,
                     oauth_redirect_uris=tuple(args.oauth_redirect_uri))
    print(f"Calendly sandbox listening on http://{args.host}:{args.port} (public URL {public_url}; "
          f"webhooks to {args.webhook_url or 'nowhere'})", flush=True)
    print(f"OAuth: auth base {public_url} (CALENDLY_AUTH_BASE), client_id {args.oauth_client_id}, "
          f"access tokens last {args.access_token_ttl} s", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
