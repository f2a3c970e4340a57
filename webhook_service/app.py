"""The web service: webhooks, client pages, the seed's JSON API, the admin API, /healthz."""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException

from core.config import settings_or_exit
from core.db import get_engine
from core.services.throttle import Throttled
from webhook_service.body_limit import LimitBodies
from webhook_service.nul_guard import RefuseNul
from webhook_service.api_docs import add_docs
from webhook_service.security_headers import SecurityHeaders
from webhook_service.openapi import HEALTH
from webhook_service.rendering import error_page
from webhook_service.routes import api, bench_floor, calendly_oauth, client_pages, my_bookings, payment_pages, webhooks


STATIC_DIR = Path(__file__).parent / "static"


def _wants_html(request: Request) -> bool:
    """A person's browser on one of our pages; the JSON API and the webhooks always answer JSON."""
    return (not request.url.path.startswith(("/api/", "/webhooks/"))
            and "text/html" in request.headers.get("accept", ""))


# What a browser sees for the errors no route chose a page for (an unknown address, a form's address
# typed into the address bar): where they are and a way on, never {"detail": "Not Found"}.
HTTP_ERROR_PAGES = {
    404: ("Page not found", "There is nothing at this address. The link may be old or mistyped."),
    405: ("This address is not a page", "This address only takes a form sent from one of our pages."),
}


def create_app() -> FastAPI:
    settings = settings_or_exit()  # a bad configuration stops start-up with one line
    # The interactive docs and the schema describe every route: offered in sandbox mode only, the
    # docs from our own files (webhook_service/api_docs.py).
    app = FastAPI(title="BuildAppsWith bookings", version="1.0.0",
                  description="Calendly booking → Stripe payment, with webhooks and an admin API.",
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json" if settings.sandbox else None)
    if settings.sandbox:
        add_docs(app)
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(payment_pages.router)
    app.include_router(client_pages.router)
    app.include_router(my_bookings.router)
    app.include_router(calendly_oauth.router)
    if settings.bench_floor_endpoint:  # benchmarks only (bench/README.md)
        app.include_router(bench_floor.router)
    app.add_middleware(RefuseNul)  # PostgreSQL text cannot hold NUL: refuse it as a 422, not a 500
    app.add_middleware(LimitBodies)  # outside RefuseNul (it buffers): 413 past the route family's limit
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.add_middleware(SecurityHeaders)  # CSP, no framing, nosniff, referrer policy on every answer

    @app.get("/healthz", tags=["ops"], responses=HEALTH)
    def healthz():
        try:
            with get_engine().connect() as conn:
                conn.execute(text("select 1"))
        except Exception:
            return JSONResponse({"status": "unhealthy", "database": "unreachable"}, status_code=503)
        return {"status": "ok"}

    @app.exception_handler(HTTPException)  # Starlette's: also the router's own 404 and 405
    async def http_error(request: Request, error: HTTPException):
        if _wants_html(request):
            title, message = HTTP_ERROR_PAGES.get(error.status_code, ("Something is not right", str(error.detail)))
            response = error_page(request, error.status_code, title, message, action_url="/",
                                  action_label="Go to the start page")
            response.headers.update(error.headers or {})  # a 405 keeps its Allow header
            return response
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Throttled)
    async def throttled(request: Request, error: Throttled):
        # 429 with Retry-After in seconds: our page for a browser, {"detail": ...} for anything else.
        headers = {"Retry-After": str(error.retry_after)}
        if _wants_html(request):
            response = error_page(request, 429, "Please wait a little", error.detail, action_url="/",
                                  action_label="Go to the start page")
            response.headers.update(headers)
            return response
        return JSONResponse({"detail": error.detail}, status_code=429, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]} for e in error.errors()]
        if _wants_html(request):
            return error_page(request, 422, "Some information is missing",
                              "; ".join(f"{p['field']}: {p['message']}" for p in problems), action_url="/",
                              action_label="Go to the start page")
        return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        logging.getLogger("webhook_service").exception("unhandled error on %s", request.url.path)
        if _wants_html(request):
            return error_page(request, 500, "Something went wrong on our side",
                              "Nothing was charged twice and nothing was lost. Please try again in a minute.",
                              action_url="/", action_label="Go to the start page")
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    return app



