"""Security headers on every answer of the web service (a pure ASGI middleware: it never buffers a body).

The client pages load one stylesheet and small scripts from /static (the browser's time zone),
never an inline script or style, so the policy allows exactly that: an injected `<script>` or
`on…=` attribute does not run. No page of ours may be framed (clickjacking of the Book/Pay buttons), no answer may
be sniffed into another type, and no URL of ours (booking ids, emailed link tokens) leaves the
site in a Referer header.
"""
from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The interactive API docs (sandbox only, webhook_service/api_docs.py): Swagger UI from our /static
# with our own init script, still nothing inline. Its stylesheet draws icons as data: images, and
# the page reads the schema (and "Try it out" calls the API) on this site.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
OTHER_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
HEADERS = ((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()), *OTHER_HEADERS)
DOCS_HEADERS = ((b"content-security-policy", DOCS_CONTENT_SECURITY_POLICY.encode()), *OTHER_HEADERS)
DOCS_PATH = "/docs"


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers_to_add = DOCS_HEADERS if scope.get("path", "") == DOCS_PATH else HEADERS

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in headers_to_add if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
