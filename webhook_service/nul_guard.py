"""Refuse NUL (0x00) in what our pages and APIs read: PostgreSQL text cannot hold it, so a NUL in
a path, a query, a form or a JSON body reached a query and failed as a 500.

Pure ASGI, so the webhook endpoints pass straight through at no cost: their bodies are verified
and stored as raw bytes (`core.services.webhook_ingest` keeps a NUL out of the stored text).
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

DETAIL = "NUL characters (0x00) are not accepted"
EXEMPT_PREFIX = "/api/webhooks/"
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


def _has_nul(body: bytes, content_type: str) -> bool:
    if b"\x00" in body:
        return True
    if "application/x-www-form-urlencoded" in content_type:
        return b"%00" in body
    if "json" in content_type:
        return b"\\u0000" in body
    return False


class RefuseNul:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIX):
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await self._refuse(scope, receive, send)
            return
        if scope["method"] in BODYLESS:
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = next((v.decode("latin-1").lower() for k, v in scope["headers"] if k == b"content-type"), "")
        if _has_nul(body, content_type):
            await self._refuse(scope, receive, send)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send) -> None:
        request = Request(scope)
        if not scope["path"].startswith("/api/") and "text/html" in request.headers.get("accept", ""):
            from webhook_service.rendering import error_page
            response = error_page(request, 422, "Some information is not valid", DETAIL + ".",
                                  action_url="/", action_label="Go to the start page")
        else:
            response = JSONResponse({"detail": DETAIL}, status_code=422)
        await response(scope, receive, send)
