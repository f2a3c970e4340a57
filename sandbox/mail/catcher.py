"""The web side: a list of caught mail (newest first) and one page per message, plus a JSON API.

Anything may send mail to the catcher, so a message is untrusted: its HTML is shown only inside a
sandboxed frame, served with a `sandbox` content policy (no scripts, no forms, no outside loads),
attachments are always downloads, and every page is autoescaped. Bad ids get a page that says so.

Run: `python -m sandbox.mail --smtp-port 8025 --web-port 8003`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import quote

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException

from .smtp import smtp_controller
from .store import CaughtMessage, MailStore

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)

PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; "
               "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
# The message's own HTML: a sandbox (no scripts, forms or same-origin), only inline styles and
# embedded images, never a request to anyone else (a tracking pixel stays unloaded).
MESSAGE_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


class NotFound(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(404, detail)


def _page(name: str, status: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status,
                        headers={"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def _summary(message: CaughtMessage) -> dict:
    return {"id": message.id, "received_at": message.received_at.isoformat(), "from": message.mail_from,
            "to": message.rcpt_to, "subject": message.subject,
            "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": len(a.data)}
                            for a in message.attachments()]}


def _download(data: bytes, filename: str, content_type: str) -> Response:
    safe_name = quote(filename.replace("\r", "").replace("\n", ""), safe="")
    return Response(data, media_type=content_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{safe_name}",
        "Content-Security-Policy": "sandbox; default-src 'none'", "X-Content-Type-Options": "nosniff"})


def create_app(store: MailStore, *, smtp_port: int) -> FastAPI:
    app = FastAPI(title="Mail catcher (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store

    def find(message_id: str) -> CaughtMessage:
        message = store.get(int(message_id)) if message_id.isdigit() and len(message_id) < 12 else None
        if message is None:
            raise NotFound(f"There is no message {message_id[:40]!r} here: it may have been dropped to keep "
                           f"the newest {store.max_messages}, or the catcher was restarted.")
        return message

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": error.detail}, status_code=error.status_code)
        title = "Not found" if error.status_code == 404 else "Not allowed"
        detail = error.detail if isinstance(error, NotFound) else \
            f"Nothing at {request.url.path[:80]} ({error.status_code}): the catcher has the list of mail and one page per message."
        return _page("error.html", error.status_code, title=title, detail=detail)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, error: RequestValidationError):
        return _page("error.html", 400, title="Bad request", detail="This address is not one the catcher knows.")

    @app.get("/", response_class=HTMLResponse)
    def inbox():
        return _page("list.html", messages=store.newest_first(), smtp_port=smtp_port)

    @app.get("/messages/{message_id}", response_class=HTMLResponse)
    def message_page(message_id: str):
        message = find(message_id)
        return _page("message.html", message=message, text=message.body("plain"), html=message.body("html"),
                     attachments=message.attachments())

    @app.get("/messages/{message_id}/html", response_class=HTMLResponse)
    def message_html(message_id: str):
        html = find(message_id).body("html")
        if html is None:
            raise NotFound(f"Message {message_id} has no HTML part.")
        return HTMLResponse(html, headers={"Content-Security-Policy": MESSAGE_POLICY,
                                           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    @app.get("/messages/{message_id}/raw")
    def message_raw(message_id: str):
        message = find(message_id)
        return _download(message.raw, f"message-{message.id}.eml", "message/rfc822")

    @app.get("/messages/{message_id}/attachments/{index}")
    def attachment(message_id: str, index: str):
        attachments = find(message_id).attachments()
        if not index.isdigit() or int(index) >= len(attachments):
            raise NotFound(f"Message {message_id} has {len(attachments)} attachment(s); there is no "
                           f"attachment {index[:20]!r}.")
        found = attachments[int(index)]
        return _download(found.data, found.filename, found.content_type)

    @app.get("/api/messages")
    def api_messages() -> list[dict]:
        return [_summary(message) for message in store.newest_first()]

    @app.delete("/api/messages")
    def api_clear() -> dict:  # a DELETE: a page elsewhere cannot send one without our consent (CORS)
        return {"cleared": store.clear()}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Local mail catcher: SMTP in, web pages out.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--web-port", type=int, default=8003)
    parser.add_argument("--max-messages", type=int, default=200)
    parser.add_argument("--max-message-bytes", type=int, default=2 * 1024 * 1024)
    parser.add_argument("--max-total-bytes", type=int, default=32 * 1024 * 1024)
    args = parser.parse_args()
    store = MailStore(max_messages=args.max_messages, max_message_bytes=args.max_message_bytes,
                      max_total_bytes=args.max_total_bytes)
    controller = smtp_controller(store, host=args.host, port=args.smtp_port)
    controller.start()
    print(f"mail catcher: SMTP on {args.host}:{args.smtp_port}, pages on http://{args.host}:{args.web_port}/",
          flush=True)
    try:
        uvicorn.run(create_app(store, smtp_port=args.smtp_port), host=args.host, port=args.web_port,
                    log_level="warning", proxy_headers=False)
    finally:
        controller.stop()
