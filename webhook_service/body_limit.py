"""Bound every request body before anything buffers it: 413 past the limit of the route's family.

Pure ASGI, outside the NUL guard (which buffers the body) and before routing, so authentication
or parsing never sees more than the limit. Two ways in:
- a Content-Length above the limit is refused before a byte of the body is read;
- a chunked (or under-declared) body is counted as it arrives; the chunk that passes the limit is
  not handed on, the 413 is sent at once, and the application is told the client went away, so
  it stops reading (whatever it then tries to answer is dropped).

One limit per family, from the settings: the webhook endpoints (WEBHOOK_MAX_BODY_BYTES, the rule
the webhook route applies too), the JSON and admin API (API_MAX_BODY_BYTES), and everything else —
the client pages' forms (FORM_MAX_BODY_BYTES).
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.config import get_settings
from core.states import WebhookOutcome

WEBHOOK_PREFIX = "/api/webhooks/"
API_PREFIX = "/api/"


def body_limit_for(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    settings = get_settings()
    if path.startswith(WEBHOOK_PREFIX):
        return settings.webhook_max_body_bytes
    if path.startswith(API_PREFIX):
        return settings.api_max_body_bytes
    return settings.form_max_body_bytes


def _declared_length(scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # Nonsense (not ASCII digits) is left to the server and the route: it is no size.
            return int(value) if value.isdigit() and len(value) < 20 else None
    return None


def too_large_response(scope, limit: int) -> Response:
    path = scope["path"]
    headers = {"connection": "close"}  # the rest of the body is not read: this connection is done
    if path.startswith(WEBHOOK_PREFIX):  # the webhook endpoints' own answer shape
        return JSONResponse({"outcome": WebhookOutcome.REJECTED, "detail": "body too large"}, status_code=413,
                            headers=headers)
    detail = f"request body too large (at most {limit} bytes here)"
    request = Request(scope)
    if not path.startswith(API_PREFIX) and "text/html" in request.headers.get("accept", ""):
        from webhook_service.rendering import error_page
        response = error_page(request, 413, "Too much information",
                              f"What was sent is larger than this page accepts ({limit // 1024} KiB at most). "
                              "Nothing was saved.", action_url="/", action_label="Go to the start page")
        response.headers["connection"] = "close"
        return response
    return JSONResponse({"detail": detail}, status_code=413, headers=headers)


class LimitBodies:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await too_large_response(scope, limit)(scope, receive, send)
            return

        received = 0
        started = refused = answered = False

        async def guarded_send(message) -> None:
            nonlocal started
            if answered:
                return  # the client has its 413; what the application says now is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def counted_receive():
            nonlocal received, refused, answered
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:  # (an application that already answered finishes its answer)
                        await too_large_response(scope, limit)(scope, receive, send)
                        answered = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not answered:
                raise
            # The application failed on the "disconnect" it was given; the client has its 413.
