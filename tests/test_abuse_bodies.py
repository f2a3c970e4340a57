"""Request bodies are bounded everywhere, before anything buffers them.

Against a real server (uvicorn on a free port, `tests.servers.serve`) and a raw socket, so the
body really streams: a 50 MB body (chunked, or with a Content-Length far above the limit) sent to
the admin refund API, to a form page and to a webhook endpoint is answered 413 — JSON on /api/,
our page for a person — after the application has read at most about the route family's limit
(counted by an ASGI wrapper around the app: the bytes the server handed on), and the server
keeps answering afterwards.
"""
from __future__ import annotations

import json
import select
import socket
from urllib.parse import urlsplit

import pytest
import requests

from core.config import SANDBOX_SECRETS, get_settings
from tests.servers import serve
from tests.webhook_helpers import stripe_event, stripe_headers, webhook_events

MB = 1024 * 1024
CHUNK = 64 * 1024  # what the client sends at a time
# The server hands the body on as it reads it off the socket, up to 256 KiB at a time (asyncio's
# read size): "about the limit" is the limit plus at most that one read, never the 50 MB.
ONE_READ = 256 * 1024
STRIPE_SECRET = SANDBOX_SECRETS["stripe_webhook_secret"]
ADMIN = {"Authorization": f"Bearer {SANDBOX_SECRETS['admin_api_token']}"}


class CountingApp:
    """Counts the body bytes the server hands to the application (what it read off the socket)."""

    def __init__(self, app) -> None:
        self.app = app
        self.body_bytes = 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                self.body_bytes += len(message.get("body", b""))
            return message
        await self.app(scope, counted if scope["type"] == "http" else receive, send)


@pytest.fixture
def server(settings_env, engine):
    settings_env(run_outbox_after_request="false")
    from webhook_service.app import create_app
    app = CountingApp(create_app())
    with serve(app) as base_url:
        yield base_url, app


def stream_post(base_url: str, path: str, total: int, *, headers: dict | None = None,
                declared: int | None = None) -> tuple[int, dict, bytes, int]:
    """POST `total` bytes of 'x' to `path`, chunked (or with Content-Length `declared`), stopping
    as soon as an answer arrives or the server stops taking bytes. Returns (status, headers, body,
    bytes sent)."""
    url = urlsplit(base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    lines = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sock.setblocking(False)
    sent, pending = 0, b""
    try:
        while sent < total or pending:
            readable, writable, _ = select.select([sock], [sock], [], 20)
            if readable:
                break  # the server answered (or closed)
            assert writable, "the server neither reads the body nor answers"
            if not pending:
                piece = b"x" * min(CHUNK, total - sent)
                sent += len(piece)
                pending = piece if declared is not None else b"%x\r\n%s\r\n" % (len(piece), piece)
                if declared is None and sent >= total:
                    pending += b"0\r\n\r\n"
            pending = pending[sock.send(pending):]
    except (BrokenPipeError, ConnectionResetError):
        pass  # it stopped reading and closed: read its answer
    sock.setblocking(True)
    sock.settimeout(20)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
            if _complete(answer):
                break
    except ConnectionResetError:
        pass
    sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), found, body, sent


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return len(body) >= int(value)
    return False


def assert_healthy(base_url: str) -> None:
    assert requests.get(f"{base_url}/healthz", timeout=10).json() == {"status": "ok"}


# ---------------------------------------------------------------- the admin/JSON API
def test_a_50_mb_chunked_body_to_the_admin_refund_api_is_413_after_reading_about_the_limit(server):
    base_url, app = server
    limit = get_settings().api_max_body_bytes

    status, headers, body, sent = stream_post(base_url, "/api/bookings/bk_00000000000000000000/refund", 50 * MB,
                                              headers={"Content-Type": "application/json"})

    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": f"request body too large (at most {limit} bytes here)"}
    assert limit < app.body_bytes <= limit + ONE_READ  # it stopped at the read that passed the limit
    assert sent < 50 * MB
    assert_healthy(base_url)


def test_a_declared_300_mb_body_to_the_admin_refund_api_is_413_before_reading_any(server):
    base_url, app = server

    status, _headers, body, _sent = stream_post(base_url, "/api/bookings/bk_00000000000000000000/refund", 4 * MB,
                                                headers={"Content-Type": "application/json"}, declared=300 * MB)

    assert status == 413 and "too large" in json.loads(body)["detail"]
    assert app.body_bytes == 0  # refused on the header, not after reading (it answered 401 after 300 MB)
    assert_healthy(base_url)


def test_bodies_under_the_api_limit_still_reach_the_route(server):
    base_url, _app = server
    refund = f"{base_url}/api/bookings/bk_00000000000000000000/refund"

    assert requests.post(refund, json={"amount_cents": 100}, timeout=10).status_code == 401
    answer = requests.post(refund, json={"amount_cents": 100}, headers=ADMIN, timeout=10)
    assert (answer.status_code, answer.json()) == (404, {"detail": "no such booking"})


def test_the_api_limit_is_a_setting(settings_env, engine):
    settings_env(run_outbox_after_request="false", api_max_body_bytes=1000)
    from webhook_service.app import create_app
    with serve(create_app()) as base_url:
        refund = f"{base_url}/api/bookings/bk_00000000000000000000/refund"
        padded = {"amount_cents": 100, "pad": "x" * 1000}
        assert requests.post(refund, json=padded, headers=ADMIN, timeout=10).status_code == 413
        assert requests.post(refund, json={"amount_cents": 100}, headers=ADMIN, timeout=10).status_code == 404


# ---------------------------------------------------------------- form pages
@pytest.mark.parametrize("path", ["/bookings", "/login"])
def test_a_50_mb_form_post_gets_our_413_page_after_reading_about_the_form_limit(server, path):
    base_url, app = server
    limit = get_settings().form_max_body_bytes

    status, headers, body, _sent = stream_post(base_url, path, 50 * MB, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})

    assert status == 413 and headers["content-type"].startswith("text/html")
    assert "Too much information" in body.decode() and "64 KiB at most" in body.decode()
    assert limit < app.body_bytes <= limit + ONE_READ  # the NUL guard behind it never buffered 50 MB
    assert_healthy(base_url)


def test_a_form_post_declaring_too_much_is_413_json_for_a_script(server):
    base_url, app = server

    status, headers, body, _sent = stream_post(base_url, "/login", 1 * MB, declared=200 * MB,
                                               headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert (status, headers["content-type"]) == (413, "application/json")
    assert "too large" in json.loads(body)["detail"] and app.body_bytes == 0


def test_a_form_under_the_limit_still_reaches_the_page(server):
    base_url, _app = server

    answer = requests.post(f"{base_url}/login", data={"email": "x@example.com", "csrf_token": "wrong"},
                           headers={"Accept": "text/html"}, timeout=10)

    assert answer.status_code == 403  # the route ran: a wrong CSRF token, not a size problem


# ---------------------------------------------------------------- webhooks: the same one rule
@pytest.mark.parametrize("declared", [None, 100 * MB], ids=["chunked", "content_length"])
def test_a_50_mb_webhook_is_413_after_reading_about_the_webhook_limit_and_nothing_is_stored(server, engine, declared):
    base_url, app = server
    limit = get_settings().webhook_max_body_bytes
    signature = stripe_headers(b"x", STRIPE_SECRET)["Stripe-Signature"]

    status, _headers, body, _sent = stream_post(base_url, "/api/webhooks/stripe", 50 * MB, declared=declared,
                                                headers={"Content-Type": "application/json",
                                                         "Stripe-Signature": signature})

    assert status == 413 and json.loads(body) == {"outcome": "rejected", "detail": "body too large"}
    assert app.body_bytes <= limit + ONE_READ
    assert webhook_events(engine) == []
    assert_healthy(base_url)


def test_a_signed_webhook_just_under_the_limit_is_processed(server, engine):
    base_url, _app = server
    limit = get_settings().webhook_max_body_bytes
    event = stripe_event("customer.created", {"id": "cus_1", "object": "customer", "note": ""})
    padding = limit - len(json.dumps(event).encode()) - 16
    event["data"]["object"]["note"] = "x" * padding
    raw = json.dumps(event).encode()
    assert limit - 64 < len(raw) <= limit

    answer = requests.post(f"{base_url}/api/webhooks/stripe", data=raw, headers=stripe_headers(raw, STRIPE_SECRET),
                           timeout=10)

    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
    assert [row.outcome for row in webhook_events(engine)] == ["ignored"]
