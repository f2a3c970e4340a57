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

Run: ``python -m sandbox.calendly --port 8001``.
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

from . import api as calendly_api, controls as calendly_controls, pages as calendly_pages
from .identities import sandbox_event_type_uris, sandbox_user_uri, sandbox_user_uuid
from .model import CalendlyError, CalendlyState, not_found
from .webhooks import Dispatcher, signature_header, verify_signature

__all__ = ["create_app", "sandbox_user_uri", "sandbox_event_type_uris", "sandbox_user_uuid",
           "signature_header", "verify_signature", "main"]


def create_app(*, public_url: str, webhook_url: str | None, signing_key: str,
               redirect_url: str | None) -> FastAPI:
    """A fresh stand-in. ``webhook_url`` + ``signing_key`` form a pre-registered subscription to
    all events; ``redirect_url`` is where a booking redirects (None: a "You are scheduled" page)."""
    app = FastAPI(title="Calendly API v2 sandbox", docs_url="/_sandbox/docs",
                  redoc_url=None, openapi_url="/_sandbox/openapi.json")
    state = CalendlyState(public_url=public_url, webhook_url=webhook_url or None,
                          signing_key=signing_key, redirect_url=redirect_url or None)
    app.state.calendly = state
    app.state.calendly_dispatcher = Dispatcher(state)
    app.add_middleware(calendly_controls.FaultMiddleware, state=state)

    @app.exception_handler(CalendlyError)
    async def _calendly_error(request: Request, exc: CalendlyError):
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

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
    args = parser.parse_args(argv)
    public_url = (args.public_url or f"http://127.0.0.1:{args.port}").rstrip("/")
    app = create_app(public_url=public_url, webhook_url=args.webhook_url or None,
                     signing_key=args.signing_key, redirect_url=args.redirect_url or None)
    print(f"Calendly sandbox listening on http://{args.host}:{args.port} (public URL {public_url}; "
          f"webhooks to {args.webhook_url or 'nowhere'})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
