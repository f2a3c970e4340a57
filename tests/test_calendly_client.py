"""CalendlyClient against a local HTTP server that replays recorded Calendly answers.

The recordings in tests/calendly_recordings/ carry production URIs (https://api.calendly.com/...);
the server rewrites that prefix to its own address, as if it were Calendly.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from core.calendly import (
    CalendlyAPIError,
    CalendlyClient,
    CalendlyError,
    CalendlyUnavailable,
    EventTypeCache,
)

RECORDINGS = Path(__file__).parent / "calendly_recordings"
PRODUCTION = "https://api.calendly.com"
TOKEN = "eyJraWQiOiIxY2UxZTEzNjE3ZGNmNzY2YjNjZWJjY2Y4ZGM1YmFmYThh.test-personal-access-token"
USER_URI_PATH = "/users/5f2a9c1e-8b3d-4e6f-9a07-1c2d3e4f5a6b"
EVENT_UUID = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"
INVITEE_UUID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
EVENT_TYPE_UUID = "7d1e2f3a-5b6c-4d7e-9f80-a1b2c3d4e5f6"


def recording(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())


# ----- the fake Calendly -------------------------------------------------------------------


class FakeCalendly:
    """Routes requests to recordings; a script of canned answers (or hangs) runs first."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []
        self.script: deque[dict[str, Any]] = deque()
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.script.clear()

    def then(self, status: int, *, file: str | None = None, body: Any = None, headers: dict | None = None, times: int = 1) -> None:
        """Answer the next `times` requests with this status and body."""
        for _ in range(times):
            self.script.append({"status": status, "file": file, "body": body, "headers": headers or {}})

    def hang(self, seconds: float, *, times: int = 1) -> None:
        """Hold the next `times` requests for `seconds` before answering."""
        for _ in range(times):
            self.script.append({"hang": seconds})

    def route(self, method: str, path: str, query: dict) -> tuple[int, str]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["users", "me"]:
            return 200, "users_me.json"
        if method == "GET" and parts == ["event_types"]:
            return 200, "event_types_page2.json" if "page_token" in query else "event_types_page1.json"
        if method == "GET" and len(parts) == 2 and parts[0] == "event_types":
            return 200, "event_type.json"
        if method == "GET" and len(parts) == 2 and parts[0] == "scheduled_events":
            return 200, "scheduled_event.json"
        if method == "GET" and len(parts) == 4 and parts[0] == "scheduled_events" and parts[2] == "invitees":
            return 200, "invitee.json"
        if method == "POST" and parts == ["scheduling_links"]:
            return 201, "scheduling_link.json"
        if method == "POST" and len(parts) == 3 and parts[0] == "scheduled_events" and parts[2] == "cancellation":
            return 201, "cancellation.json"
        if method == "POST" and parts == ["webhook_subscriptions"]:
            return 201, "webhook_subscription.json"
        return 404, "error_404.json"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        with self.lock:
            self.requests.append({
                "method": handler.command,
                "path": split.path,
                "query": query,
                "headers": dict(handler.headers.items()),
                "json": json.loads(raw) if raw else None,
            })
            step = self.script.popleft() if self.script else None
        if step and "hang" in step:
            time.sleep(step["hang"])
            step = None
        headers: dict[str, str] = {}
        if step:
            status, headers = step["status"], step["headers"]
            if step["file"]:
                text = (RECORDINGS / step["file"]).read_text()
            elif isinstance(step["body"], (dict, list)):
                text = json.dumps(step["body"])
            else:
                text = step["body"] or ""
        else:
            status, name = self.route(handler.command, split.path, query)
            text = (RECORDINGS / name).read_text()
        # Rewrite production URIs, plain and URL-encoded (inside next_page's query), to ours.
        text = text.replace(PRODUCTION, self.base_url).replace(quote(PRODUCTION, safe=""), quote(self.base_url, safe=""))
        payload = text.encode()
        try:
            handler.send_response(status)
            content_type = headers.pop("Content-Type", "application/json") if headers else "application/json"
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.server.fake.handle(self)  # type: ignore[attr-defined]

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # aborted connections in the timeout tests are expected


@pytest.fixture(scope="module")
def fake_server():
    server = _Server(("127.0.0.1", 0), _Handler)
    fake = FakeCalendly()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake(fake_server: FakeCalendly) -> FakeCalendly:
    fake_server.reset()
    return fake_server


class Sleeps(list):
    """An injected sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(fake: FakeCalendly, sleeps: Sleeps) -> CalendlyClient:
    return CalendlyClient(TOKEN, fake.base_url, timeout=2.0, sleep=sleeps)


# ----- reading -------------------------------------------------------------------------------


def test_get_current_user_sends_bearer_token(client: CalendlyClient, fake: FakeCalendly) -> None:
    user = client.get_current_user()
    assert user["uri"] == f"{fake.base_url}{USER_URI_PATH}"
    assert user["slug"] == "maya-okafor"
    (request,) = fake.requests
    assert request["method"] == "GET" and request["path"] == "/users/me"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_every_call_has_a_connect_and_read_timeout(fake: FakeCalendly) -> None:
    seen: list[Any] = []

    class RecordingSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            seen.append(kwargs.get("timeout"))
            return super().request(*args, **kwargs)

    client = CalendlyClient(TOKEN, fake.base_url, timeout=7.5, session=RecordingSession())
    client.get_current_user()
    client.create_scheduling_link(f"{fake.base_url}/event_types/{EVENT_TYPE_UUID}")
    assert seen == [(5.0, 7.5), (5.0, 7.5)]


def test_list_event_types_follows_every_page_in_order(client: CalendlyClient, fake: FakeCalendly) -> None:
    user_uri = f"{fake.base_url}{USER_URI_PATH}"
    types = client.list_event_types(user_uri, page_size=2)
    assert [t["name"] for t in types] == ["Discovery Call", "Architecture Review", "Pair Programming (90 min)"]
    first, second = fake.requests
    assert first["query"] == {"user": user_uri, "count": "2", "active": "true"}
    # The second request is exactly pagination.next_page, with the query Calendly put in it.
    assert second["query"] == {
        "active": "true", "count": "2", "page_token": "ZXZlbnRfdHlwZXM6Mjp7ImlkIjoiN2QxZTJmM2EifQ", "user": user_uri,
    }
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in fake.requests)


def test_list_event_types_active_none_lists_all(client: CalendlyClient, fake: FakeCalendly) -> None:
    client.list_event_types("u", active=None)
    assert "active" not in fake.requests[0]["query"]
    client.list_event_types("u", active=False)
    assert fake.requests[-2]["query"]["active"] == "false"


def test_list_event_types_rejects_a_bad_page_size(client: CalendlyClient) -> None:
    with pytest.raises(ValueError):
        client.list_event_types("u", page_size=101)


def test_next_page_on_another_host_is_rebuilt_from_the_token(client: CalendlyClient, fake: FakeCalendly) -> None:
    page = recording("event_types_page1.json")
    page["pagination"]["next_page"] = "http://evil.invalid/event_types?page_token=abc"
    page["pagination"]["next_page_token"] = "abc"
    fake.then(200, body=page)
    types = client.list_event_types("u")
    assert len(types) == 3
    assert fake.requests[1]["path"] == "/event_types"
    assert fake.requests[1]["query"]["page_token"] == "abc"


def test_a_rebuilt_next_page_stays_on_the_list_being_read(client: CalendlyClient, fake: FakeCalendly) -> None:
    page = recording("event_types_page1.json")  # its items stand in for scheduled events here
    page["pagination"]["next_page"] = "http://evil.invalid/scheduled_events?page_token=abc"
    page["pagination"]["next_page_token"] = "abc"
    last = recording("event_types_page2.json")
    fake.then(200, body=page)
    fake.then(200, body=last)
    listed = client.list_scheduled_events("u")
    assert len(listed) == len(page["collection"]) + len(last["collection"])
    assert fake.requests[1]["path"] == "/scheduled_events"  # not /event_types
    assert fake.requests[1]["query"]["page_token"] == "abc"


def test_next_page_on_another_host_without_token_is_refused(client: CalendlyClient, fake: FakeCalendly) -> None:
    page = recording("event_types_page1.json")
    page["pagination"]["next_page"] = "http://evil.invalid/event_types?page_token=abc"
    page["pagination"]["next_page_token"] = None
    fake.then(200, body=page)
    with pytest.raises(CalendlyError, match="outside base_url"):
        client.list_event_types("u")
    assert len(fake.requests) == 1


def test_endless_pagination_is_cut_off(client: CalendlyClient, fake: FakeCalendly) -> None:
    page = recording("event_types_page1.json")
    page["pagination"]["next_page"] = f"{fake.base_url}/event_types?page=again"
    fake.then(200, body=page, times=200)
    with pytest.raises(CalendlyError, match="did not end"):
        client.list_event_types("u")
    assert len(fake.requests) == 100


@pytest.mark.parametrize("form", ["uuid", "our_uri", "production_uri"])
def test_get_scheduled_event_accepts_uuid_or_uri(client: CalendlyClient, fake: FakeCalendly, form: str) -> None:
    reference = {
        "uuid": EVENT_UUID,
        "our_uri": f"{fake.base_url}/scheduled_events/{EVENT_UUID}",
        "production_uri": f"{PRODUCTION}/scheduled_events/{EVENT_UUID}",
    }[form]
    event = client.get_scheduled_event(reference)
    assert event["uri"] == f"{fake.base_url}/scheduled_events/{EVENT_UUID}"
    assert event["status"] == "active"
    assert fake.requests[0]["path"] == f"/scheduled_events/{EVENT_UUID}"


def test_get_event_type_accepts_uuid_or_uri(client: CalendlyClient, fake: FakeCalendly) -> None:
    assert client.get_event_type(EVENT_TYPE_UUID)["duration"] == 60
    client.get_event_type(f"{PRODUCTION}/event_types/{EVENT_TYPE_UUID}/")
    assert [r["path"] for r in fake.requests] == [f"/event_types/{EVENT_TYPE_UUID}"] * 2


def test_a_lookalike_host_is_not_treated_as_ours(fake: FakeCalendly, sleeps: Sleeps) -> None:
    client = CalendlyClient(TOKEN, fake.base_url, sleep=sleeps)
    # Same prefix, different host: only the uuid is taken from it.
    client.get_scheduled_event(f"{fake.base_url}0.evil.invalid/scheduled_events/{EVENT_UUID}")
    assert fake.requests[0]["path"] == f"/scheduled_events/{EVENT_UUID}"


@pytest.mark.parametrize("base", ["ours", "production"])
def test_get_invitee_by_uri(client: CalendlyClient, fake: FakeCalendly, base: str) -> None:
    root = fake.base_url if base == "ours" else PRODUCTION
    invitee = client.get_invitee(f"{root}/scheduled_events/{EVENT_UUID}/invitees/{INVITEE_UUID}")
    assert invitee["email"] == "jordan.lee@example.org"
    assert invitee["tracking"]["utm_content"] == "bk_01JNX4Q8R2M7T5V9W3Y6Z0A1B2"
    assert fake.requests[0]["path"] == f"/scheduled_events/{EVENT_UUID}/invitees/{INVITEE_UUID}"


def test_get_invitee_rejects_a_non_invitee_uri(client: CalendlyClient) -> None:
    with pytest.raises(ValueError):
        client.get_invitee(f"{PRODUCTION}/scheduled_events/{EVENT_UUID}")


# ----- writing -------------------------------------------------------------------------------


def test_create_scheduling_link(client: CalendlyClient, fake: FakeCalendly) -> None:
    event_type_uri = f"{fake.base_url}/event_types/{EVENT_TYPE_UUID}"
    assert client.create_scheduling_link(event_type_uri) == "https://calendly.com/d/cq4-8jx-w2m/architecture-review"
    (request,) = fake.requests
    assert request["method"] == "POST" and request["path"] == "/scheduling_links"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"] == {"max_event_count": 1, "owner": event_type_uri, "owner_type": "EventType"}


@pytest.mark.parametrize("form", ["uuid", "uri"])
def test_cancel_scheduled_event(client: CalendlyClient, fake: FakeCalendly, form: str) -> None:
    reference = EVENT_UUID if form == "uuid" else f"{fake.base_url}/scheduled_events/{EVENT_UUID}"
    cancellation = client.cancel_scheduled_event(reference, "Payment not completed")
    assert cancellation["canceler_type"] == "host"
    (request,) = fake.requests
    assert request["path"] == f"/scheduled_events/{EVENT_UUID}/cancellation"
    assert request["json"] == {"reason": "Payment not completed"}
    assert request["headers"]["Content-Type"] == "application/json"


def test_cancellation_retried_after_a_lost_answer_surfaces_403_for_the_caller(client: CalendlyClient, fake: FakeCalendly) -> None:
    # The first attempt canceled the event but its answer was lost (here: a 502 from a proxy);
    # the retry is told "already canceled". Callers treat this 403 as done.
    fake.then(502, body="Bad Gateway", headers={"Content-Type": "text/plain"})
    fake.then(403, file="error_403_permission_denied.json")
    with pytest.raises(CalendlyAPIError) as caught:
        client.cancel_scheduled_event(EVENT_UUID, "Payment not completed")
    assert caught.value.status == 403
    assert len(fake.requests) == 2


@pytest.mark.parametrize("user", [True, False])
def test_create_webhook_subscription(client: CalendlyClient, fake: FakeCalendly, user: bool) -> None:
    user_uri = f"{fake.base_url}{USER_URI_PATH}"
    org_uri = f"{fake.base_url}/organizations/b7e4d2c1-3a5f-4c8e-9d1b-2e3f4a5b6c7d"
    resource = client.create_webhook_subscription(
        url="https://bookings.buildappswith.com/webhooks/calendly",
        events=["invitee.created", "invitee.canceled"],
        organization=org_uri,
        user=user_uri if user else None,
        scope="user" if user else "organization",
        signing_key="our-signing-key",
    )
    assert resource["state"] == "active"
    body = fake.requests[0]["json"]
    assert body["url"] == "https://bookings.buildappswith.com/webhooks/calendly"
    assert body["events"] == ["invitee.created", "invitee.canceled"]
    assert body["signing_key"] == "our-signing-key"
    assert body["organization"] == org_uri
    assert ("user" in body) is user


# ----- retries -------------------------------------------------------------------------------


def test_429_waits_for_the_rate_limit_reset(client: CalendlyClient, fake: FakeCalendly, sleeps: Sleeps) -> None:
    fake.then(429, file="error_429.json", headers={"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"})
    assert client.get_current_user()["slug"] == "maya-okafor"
    assert sleeps == [7.0]
    assert len(fake.requests) == 2


def test_429_wait_is_capped_and_falls_back_to_backoff(fake: FakeCalendly, sleeps: Sleeps) -> None:
    client = CalendlyClient(TOKEN, fake.base_url, backoff_seconds=0.25, max_sleep_seconds=10.0, sleep=sleeps)
    fake.then(429, file="error_429.json", headers={"X-RateLimit-Reset": "3600"})
    fake.then(429, file="error_429.json")  # no header: exponential backoff
    client.get_current_user()
    assert sleeps == [10.0, 0.5]


def test_5xx_is_retried_with_exponential_backoff(client: CalendlyClient, fake: FakeCalendly, sleeps: Sleeps) -> None:
    fake.then(500, body={"title": "Internal Server Error", "message": "boom"}, times=2)
    assert client.get_current_user()["slug"] == "maya-okafor"
    assert sleeps == [0.5, 1.0]
    assert len(fake.requests) == 3


def test_retries_exhausted_raise_unavailable(client: CalendlyClient, fake: FakeCalendly, sleeps: Sleeps) -> None:
    fake.then(503, body="Service Unavailable", headers={"Content-Type": "text/plain"}, times=10)
    with pytest.raises(CalendlyUnavailable) as caught:
        client.get_current_user()
    assert caught.value.status == 503
    assert len(fake.requests) == 4  # first attempt + max_retries
    assert sleeps == [0.5, 1.0, 2.0]


def test_429_exhausted_raises_unavailable_with_status(client: CalendlyClient, fake: FakeCalendly) -> None:
    fake.then(429, file="error_429.json", headers={"X-RateLimit-Reset": "1"}, times=10)
    with pytest.raises(CalendlyUnavailable) as caught:
        client.get_current_user()
    assert caught.value.status == 429


def test_timeout_is_retried_then_unavailable(fake: FakeCalendly, sleeps: Sleeps) -> None:
    client = CalendlyClient(TOKEN, fake.base_url, timeout=0.2, max_retries=1, sleep=sleeps)
    fake.hang(1.0, times=2)
    started = time.monotonic()
    with pytest.raises(CalendlyUnavailable) as caught:
        client.get_current_user()
    assert time.monotonic() - started < 0.9
    assert caught.value.status is None
    assert "Timeout" in str(caught.value)
    assert len(fake.requests) == 2
    assert sleeps == [0.5]


def test_timeout_then_success(fake: FakeCalendly, sleeps: Sleeps) -> None:
    client = CalendlyClient(TOKEN, fake.base_url, timeout=0.2, sleep=sleeps)
    fake.hang(1.0)
    assert client.get_current_user()["slug"] == "maya-okafor"
    assert sleeps == [0.5]


def test_connection_refused_is_unavailable(sleeps: Sleeps) -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = CalendlyClient(TOKEN, f"http://127.0.0.1:{port}", timeout=0.5, max_retries=2, sleep=sleeps)
    with pytest.raises(CalendlyUnavailable) as caught:
        client.get_current_user()
    assert caught.value.status is None
    assert len(sleeps) == 2


# ----- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "file", "title", "message", "details", "text"),
    [
        (400, "error_400_invalid_argument.json", "Invalid Argument", "The supplied parameters are invalid.",
         [{"parameter": "user", "message": "must be a valid URI"}],
         "Calendly 400 Invalid Argument: The supplied parameters are invalid. (user: must be a valid URI)"),
        (403, "error_403_permission_denied.json", "Permission Denied", "You do not have permission to access this resource.",
         [{"parameter": "event", "message": "event is in the past or already canceled"}],
         "Calendly 403 Permission Denied: You do not have permission to access this resource. "
         "(event: event is in the past or already canceled)"),
        (404, "error_404.json", "Resource Not Found", "The server could not find the requested resource.", [],
         "Calendly 404 Resource Not Found: The server could not find the requested resource."),
    ],
)
def test_client_errors_raise_api_error_at_once(
    client: CalendlyClient, fake: FakeCalendly, sleeps: Sleeps,
    status: int, file: str, title: str, message: str, details: list, text: str,
) -> None:
    fake.then(status, file=file)
    with pytest.raises(CalendlyAPIError) as caught:
        client.get_scheduled_event(EVENT_UUID)
    error = caught.value
    assert (error.status, error.title, error.message, error.details) == (status, title, message, details)
    assert str(error) == text
    assert TOKEN not in str(error) and TOKEN not in repr(error)
    assert len(fake.requests) == 1 and sleeps == []


def test_unknown_resource_is_404_from_the_router(client: CalendlyClient) -> None:
    with pytest.raises(CalendlyAPIError) as caught:
        client._resource("GET", f"{client.base_url}/nope")  # noqa: SLF001 (route not wrapped by a method)
    assert caught.value.status == 404


def test_non_json_error_body_is_tolerated(client: CalendlyClient, fake: FakeCalendly) -> None:
    fake.then(409, body="<html><body>Conflict</body></html>", headers={"Content-Type": "text/html"})
    with pytest.raises(CalendlyAPIError) as caught:
        client.get_current_user()
    assert caught.value.status == 409
    assert caught.value.title == "Conflict"
    assert "Conflict" in caught.value.message
    assert caught.value.details == []


def test_success_without_resource_is_a_calendly_error(client: CalendlyClient, fake: FakeCalendly) -> None:
    fake.then(200, body={"unexpected": True})
    with pytest.raises(CalendlyError):
        client.get_current_user()
    fake.then(200, body="not json", headers={"Content-Type": "text/plain"})
    with pytest.raises(CalendlyError, match="not JSON"):
        client.get_current_user()


def test_token_never_appears_in_errors_or_logs(client: CalendlyClient, fake: FakeCalendly, caplog: pytest.LogCaptureFixture) -> None:
    # A misbehaving proxy echoes the Authorization header back in the error body.
    echo = {"title": f"Bearer {TOKEN}", "message": f"bad token {TOKEN}", "details": [{"parameter": "token", "message": TOKEN}]}
    fake.then(401, body=echo)
    caplog.set_level(logging.DEBUG, logger="core.calendly")
    with pytest.raises(CalendlyAPIError) as api_error:
        client.get_current_user()
    fake.then(500, body=echo, times=10)
    with pytest.raises(CalendlyUnavailable) as unavailable:
        client.get_current_user()
    for error in (api_error.value, unavailable.value):
        assert TOKEN not in str(error) and TOKEN not in repr(error)
        assert TOKEN not in repr(getattr(error, "details", ""))
    assert caplog.records, "retries are logged"
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert TOKEN not in repr(client)


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError):
        CalendlyClient("")


# ----- EventTypeCache ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting_loader(result: list[dict]) -> Any:
    def loader() -> list[dict]:
        loader.calls += 1  # type: ignore[attr-defined]
        return result

    loader.calls = 0  # type: ignore[attr-defined]
    return loader


def test_cache_loads_once_within_ttl_and_again_after() -> None:
    clock = FakeClock()
    cache = EventTypeCache(ttl_seconds=300, clock=clock)
    loader = counting_loader([{"name": "Discovery Call"}])
    assert cache.get("builder-1", loader) == [{"name": "Discovery Call"}]
    clock.now += 299
    cache.get("builder-1", loader)
    assert loader.calls == 1
    clock.now += 1
    cache.get("builder-1", loader)
    assert loader.calls == 2


def test_cache_is_per_builder_and_invalidates() -> None:
    cache = EventTypeCache(clock=FakeClock())
    first, second = counting_loader([{"n": 1}]), counting_loader([{"n": 2}])
    assert cache.get("a", first) == [{"n": 1}]
    assert cache.get("b", second) == [{"n": 2}]
    cache.invalidate("a")
    cache.get("a", first)
    cache.get("b", second)
    assert (first.calls, second.calls) == (2, 1)
    cache.clear()
    cache.get("b", second)
    assert second.calls == 2


def test_cache_does_not_keep_failures_and_hands_out_copies() -> None:
    cache = EventTypeCache(clock=FakeClock())

    def failing() -> list[dict]:
        raise CalendlyUnavailable("down")

    with pytest.raises(CalendlyUnavailable):
        cache.get("a", failing)
    loader = counting_loader([{"n": 1}, {"n": 2}])
    got = cache.get("a", loader)
    got.reverse()
    assert cache.get("a", loader) == [{"n": 1}, {"n": 2}]
    assert loader.calls == 1


class CountingLock:
    """A lock that counts who came to take it: each caller of `cache.get` that missed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = threading.Lock()
        self.arrivals = 0

    def __enter__(self):
        with self._count:
            self.arrivals += 1
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


def test_cache_runs_one_loader_for_concurrent_misses() -> None:
    cache = EventTypeCache()
    key_lock = cache._key_locks.setdefault("a", CountingLock())  # the lock misses for "a" queue on
    gate = threading.Event()
    calls: list[int] = []

    def slow_loader() -> list[dict]:
        calls.append(1)
        assert gate.wait(5), "the loader was never released"
        return [{"n": 1}]

    results: list[list[dict]] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("a", slow_loader))) for _ in range(8)]
    for thread in threads:
        thread.start()
    # All eight have missed and queued for the key while the first one's load is still running.
    deadline = time.monotonic() + 5
    while key_lock.arrivals < 8 or not calls:
        assert time.monotonic() < deadline, f"only {key_lock.arrivals} of 8 reached the cache concurrently"
        time.sleep(0.001)
    assert results == []  # nobody got an answer before the load finished
    gate.set()
    for thread in threads:
        thread.join(3)
    assert len(calls) == 1
    assert results == [[{"n": 1}]] * 8


def test_invalidate_during_a_load_discards_its_result() -> None:
    cache = EventTypeCache(clock=FakeClock())

    def loader_that_races() -> list[dict]:
        cache.invalidate("a")  # the builder reconnected Calendly while we were loading
        return [{"stale": True}]

    assert cache.get("a", loader_that_races) == [{"stale": True}]
    fresh = counting_loader([{"stale": False}])
    assert cache.get("a", fresh) == [{"stale": False}]
    assert fresh.calls == 1
