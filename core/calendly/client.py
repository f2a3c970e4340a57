"""A small Calendly API v2 client on `requests`, plus a per-builder event-type cache.

Only the calls this project needs. Every call has a `(connect, read)` timeout; 429 and 5xx answers
and network failures are retried a bounded number of times; other 4xx answers raise
`CalendlyAPIError` at once. The bearer token is sent only to `base_url` and is scrubbed from every
exception message and log line.

Retried POSTs and what a caller sees when the first attempt did land but its answer was lost:
- `POST /scheduled_events/{uuid}/cancellation` answers 403, as it does for an event in the past or
  another user's: callers must read the event back and see `status: canceled` before calling it done.
- `POST /webhook_subscriptions` answers 409 (the URL already has a subscription).
- `POST /scheduling_links` silently creates a second single-use link; the first is never used.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import requests

__all__ = [
    "DEFAULT_BASE_URL",
    "CalendlyError",
    "CalendlyAPIError",
    "CalendlyUnavailable",
    "CalendlyClient",
    "EventTypeCache",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.calendly.com"
# Calendly refuses `count` above 100 on list endpoints.
MAX_PAGE_SIZE = 100
# A guard against a server that keeps answering with a next page (10,000 event types is absurd).
MAX_PAGES = 100
# A connect that takes longer than this is a dead host, whatever the read timeout is.
MAX_CONNECT_TIMEOUT = 5.0
# Failures that mean "the answer was lost", worth another attempt.
_RETRYABLE_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class CalendlyError(Exception):
    """Base class of every error this client raises."""


class CalendlyAPIError(CalendlyError):
    """Calendly answered with an HTTP error (4xx other than 429).

    Branch on `status`, not on `title` (Calendly's advice). `details` is the list of
    `{"parameter", "message"}` dicts Calendly sends for validation errors, possibly empty.
    """

    def __init__(self, status: int, title: str, message: str, details: list[dict] | None = None) -> None:
        self.status = status
        self.title = title
        self.message = message
        self.details = list(details or [])
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"Calendly {self.status} {self.title}".rstrip()
        if self.message:
            text += f": {self.message}"
        parts = []
        for detail in self.details:
            if not isinstance(detail, dict):
                continue
            parameter, message = detail.get("parameter"), detail.get("message")
            if parameter and message:
                parts.append(f"{parameter}: {message}")
            elif message or parameter:
                parts.append(str(message or parameter))
        if parts:
            text += f" ({'; '.join(parts)})"
        return text


class CalendlyUnavailable(CalendlyError):
    """Calendly could not be reached or kept failing (network error, timeout, 429 or 5xx).

    `status` is the last HTTP status seen, or None when no answer arrived at all.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class CalendlyClient:
    """Calendly API v2 client for one bearer token (a builder's PAT or OAuth access token).

    `sleep` is injectable so tests (and callers with their own scheduling) do not wait.
    `max_retries` counts retries after the first attempt, so at most `max_retries + 1` requests.
    A `requests.Session` is not guaranteed thread-safe: use one client per thread (or per request).
    """

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        max_sleep_seconds: float = 10.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if not token:
            raise ValueError("Calendly token is empty")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self._timeout = (min(timeout, MAX_CONNECT_TIMEOUT), timeout)
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_sleep_seconds = max_sleep_seconds
        self._session = session or requests.Session()
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the token
        return f"CalendlyClient(base_url={self.base_url!r})"

    # ----- reading -------------------------------------------------------------------------

    def get_current_user(self) -> dict:
        """Return the token owner's User resource (`GET /users/me`)."""
        return self._resource("GET", f"{self.base_url}/users/me")

    def list_event_types(self, user_uri: str, *, active: bool | None = True, page_size: int = MAX_PAGE_SIZE) -> list[dict]:
        """Return all of a user's event types, following `pagination.next_page` to the end.

        `active=None` lists active and inactive types alike.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        params: dict[str, str] | None = {"user": user_uri, "count": str(page_size)}
        if active is not None:
            params["active"] = "true" if active else "false"
        return self._collect(f"{self.base_url}/event_types", params, "event_types")

    def list_scheduled_events(self, user_uri: str, *, invitee_email: str | None = None,
                              min_start_time: str | None = None, status: str | None = None) -> list[dict]:
        """All of a user's scheduled events matching the filters (all pages)."""
        params: dict[str, str] | None = {"user": user_uri, "count": str(MAX_PAGE_SIZE)}
        for name, value in (("invitee_email", invitee_email), ("min_start_time", min_start_time), ("status", status)):
            if value:
                params[name] = value
        return self._collect(f"{self.base_url}/scheduled_events", params, "scheduled_events")

    def list_invitees(self, event_uri_or_uuid: str, *, email: str | None = None) -> list[dict]:
        """All invitees of one scheduled event (all pages)."""
        params: dict[str, str] | None = {"count": str(MAX_PAGE_SIZE)}
        if email:
            params["email"] = email
        url = self._resource_url("scheduled_events", event_uri_or_uuid) + "/invitees"
        return self._collect(url, params, "invitees")

    def _collect(self, url: str | None, params: dict[str, str] | None, what: str) -> list[dict]:
        """Follow `pagination.next_page` to the end, gathering every page's collection."""
        collected: list[dict] = []
        pages = 0
        while url:
            pages += 1
            if pages > MAX_PAGES:
                raise CalendlyError(f"Calendly {what} pagination did not end after {MAX_PAGES} pages")
            data = self._request("GET", url, params=params)
            page = data.get("collection")
            if not isinstance(page, list):
                raise CalendlyError(f"Calendly {what} answer has no 'collection' list")
            collected.extend(page)
            url, params = self._next_page(data.get("pagination"), url, params)
        return collected

    def get_event_type(self, uri_or_uuid: str) -> dict:
        """Return one EventType resource, by URI or bare uuid."""
        return self._resource("GET", self._resource_url("event_types", uri_or_uuid))

    def get_scheduled_event(self, uri_or_uuid: str) -> dict:
        """Return one scheduled Event resource, by URI or bare uuid."""
        return self._resource("GET", self._resource_url("scheduled_events", uri_or_uuid))

    def get_invitee(self, invitee_uri: str) -> dict:
        """Return one Invitee resource; its URI is `…/scheduled_events/<event>/invitees/<invitee>`.

        A URI on another host (e.g. production URIs against a sandbox base) is re-rooted on
        `base_url` from its last four path segments. Raises ValueError for anything else.
        """
        if self._is_ours(invitee_uri):
            return self._resource("GET", invitee_uri)
        segments = [s for s in urlsplit(invitee_uri).path.split("/") if s]
        if len(segments) < 4 or segments[-4] != "scheduled_events" or segments[-2] != "invitees":
            raise ValueError("not a Calendly invitee URI (…/scheduled_events/<uuid>/invitees/<uuid>)")
        event_uuid, invitee_uuid = quote(segments[-3], safe=""), quote(segments[-1], safe="")
        return self._resource("GET", f"{self.base_url}/scheduled_events/{event_uuid}/invitees/{invitee_uuid}")

    # ----- writing -------------------------------------------------------------------------

    def create_scheduling_link(self, event_type_uri: str) -> str:
        """Create a single-use scheduling link for an event type and return its `booking_url`."""
        body = {"max_event_count": 1, "owner": event_type_uri, "owner_type": "EventType"}
        resource = self._resource("POST", f"{self.base_url}/scheduling_links", json_body=body)
        booking_url = resource.get("booking_url")
        if not isinstance(booking_url, str) or not booking_url:
            raise CalendlyError("Calendly scheduling link answer has no booking_url")
        return booking_url

    def cancel_scheduled_event(self, uri_or_uuid: str, reason: str) -> dict:
        """Cancel a scheduled event; return the Cancellation resource.

        Calendly answers 403 for an event in the past, already canceled or not this user's; a retry
        after a lost answer gets it too. That 403 is raised as CalendlyAPIError: read the event back
        (`get_scheduled_event`) to know whether it is canceled.
        """
        url = self._resource_url("scheduled_events", uri_or_uuid) + "/cancellation"
        return self._resource("POST", url, json_body={"reason": reason})

    def create_webhook_subscription(
        self,
        *,
        url: str,
        events: list[str],
        organization: str,
        user: str | None,
        scope: str,
        signing_key: str,
    ) -> dict:
        """Create a webhook subscription; return its resource (409 if the URL is already subscribed).

        The signing key is write-only at Calendly: the caller must keep its own copy.
        `user` is omitted from the request when None (organization-scoped subscriptions).
        """
        body: dict[str, Any] = {
            "url": url,
            "events": list(events),
            "organization": organization,
            "scope": scope,
            "signing_key": signing_key,
        }
        if user is not None:
            body["user"] = user
        return self._resource("POST", f"{self.base_url}/webhook_subscriptions", json_body=body)

    def list_webhook_subscriptions(self, *, organization: str, scope: str, user: str | None = None) -> list[dict]:
        """All webhook subscriptions of an organization, or of one user in it (`scope="user"`), with
        their `state` (active or disabled), all pages."""
        params: dict[str, str] | None = {"organization": organization, "scope": scope, "count": str(MAX_PAGE_SIZE)}
        if user is not None:
            params["user"] = user
        return self._collect(f"{self.base_url}/webhook_subscriptions", params, "webhook_subscriptions")

    def delete_webhook_subscription(self, uri_or_uuid: str) -> None:
        """Delete a webhook subscription (CalendlyAPIError 404 when it is already gone)."""
        self._request("DELETE", self._resource_url("webhook_subscriptions", uri_or_uuid))

    # ----- plumbing ------------------------------------------------------------------------

    def _is_ours(self, uri: str) -> bool:
        # The trailing "/" keeps "https://api.calendly.com.evil.test/..." from passing, so the
        # bearer token only ever goes to base_url.
        return uri.startswith(self.base_url + "/")

    def _resource_url(self, collection: str, uri_or_uuid: str) -> str:
        """URL of `/{collection}/{uuid}`: a URI on base_url as is, else its last path segment."""
        if not uri_or_uuid or not uri_or_uuid.strip():
            raise ValueError(f"empty {collection} uri or uuid")
        if self._is_ours(uri_or_uuid):
            return uri_or_uuid.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        path = urlsplit(uri_or_uuid).path if "://" in uri_or_uuid else uri_or_uuid
        uuid = path.rstrip("/").rsplit("/", 1)[-1]
        if not uuid:
            raise ValueError(f"no uuid in {collection} reference")
        return f"{self.base_url}/{collection}/{quote(uuid, safe='')}"

    def _next_page(self, pagination: Any, url: str,
                   params: dict[str, str] | None) -> tuple[str | None, dict[str, str] | None]:
        """Where the next page of the list at `url` is: `next_page` (a full URL, with its own
        query) or None."""
        if not isinstance(pagination, dict):
            return None, None
        next_page = pagination.get("next_page")
        if isinstance(next_page, str) and next_page:
            if self._is_ours(next_page):
                return next_page, None
            # Never follow a link to another host with our token; rebuild it from the token.
            token = pagination.get("next_page_token")
            if isinstance(token, str) and token:
                # The same list (scheduled events, subscriptions, ...) on our base_url, next page.
                return url.split("?", 1)[0], {**(params or {}), "page_token": token}
            raise CalendlyError("Calendly next_page points outside base_url; refusing to follow it")
        return None, None

    def _resource(self, method: str, url: str, *, json_body: dict | None = None) -> dict:
        data = self._request(method, url, json_body=json_body)
        resource = data.get("resource")
        if not isinstance(resource, dict):
            raise CalendlyError(f"Calendly answer to {method} {self._path(url)} has no 'resource' object")
        return resource

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict | None = None,
    ) -> dict:
        """One API call with retries; returns the decoded JSON object ({} for an empty body)."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if method != "GET":
            headers["Content-Type"] = "application/json"
        path = self._path(url)
        attempt = 0
        while True:
            status: int | None = None
            try:
                response = self._session.request(
                    method, url, params=params, json=json_body, headers=headers, timeout=self._timeout
                )
            except _RETRYABLE_EXCEPTIONS as exc:
                failure = f"{type(exc).__name__}"
                delay = self._backoff(attempt)
            except requests.RequestException as exc:
                # A bad URL or similar: another attempt would fail the same way.
                raise CalendlyError(self._scrub(f"Calendly {method} {path} failed: {type(exc).__name__}: {exc}")) from None
            else:
                status = response.status_code
                if status < 400:
                    return self._decode(response, method, path)
                if status == 429:
                    failure = "429 rate limited"
                    delay = self._rate_limit_delay(response, attempt)
                elif status >= 500:
                    failure = f"{status} server error"
                    delay = self._backoff(attempt)
                else:
                    raise self._api_error(response)
            if attempt >= self.max_retries:
                raise CalendlyUnavailable(
                    f"Calendly {method} {path} failed after {attempt + 1} attempts: {failure}", status=status
                )
            delay = max(0.0, min(delay, self.max_sleep_seconds))
            log.warning("Calendly %s %s: %s; retry %d/%d in %.2fs", method, path, failure, attempt + 1, self.max_retries, delay)
            self._sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return self.backoff_seconds * 2**attempt

    def _rate_limit_delay(self, response: requests.Response, attempt: int) -> float:
        # X-RateLimit-Reset is the number of seconds until the window resets.
        try:
            reset = float(response.headers.get("X-RateLimit-Reset", ""))
        except ValueError:
            return self._backoff(attempt)
        return reset if reset >= 0 else self._backoff(attempt)

    def _decode(self, response: requests.Response, method: str, path: str) -> dict:
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise CalendlyError(f"Calendly {response.status_code} answer to {method} {path} is not JSON") from None
        if not isinstance(data, dict):
            raise CalendlyError(f"Calendly {response.status_code} answer to {method} {path} is not a JSON object")
        return data

    def _api_error(self, response: requests.Response) -> CalendlyAPIError:
        """Build the error from `{title, message, details}`, tolerating a non-JSON body."""
        title, message, details = response.reason or "", "", []
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            title = str(data.get("title") or title)
            message = str(data.get("message") or "")
            raw_details = data.get("details")
            if isinstance(raw_details, list):
                details = [d for d in raw_details if isinstance(d, dict)]
        elif response.text:
            message = response.text.strip()[:200]
        details = [{k: self._scrub(v) if isinstance(v, str) else v for k, v in d.items()} for d in details]
        return CalendlyAPIError(response.status_code, self._scrub(title), self._scrub(message), details)

    def _scrub(self, text: str) -> str:
        # Belt and braces: nothing we raise or log should ever carry the token, even if a proxy
        # or a misbehaving server echoes the Authorization header back.
        return text.replace(self._token, "[token]")

    @staticmethod
    def _path(url: str) -> str:
        return urlsplit(url).path or "/"


class EventTypeCache:
    """Per-builder TTL cache of event-type lists, so a busy profile page does not spend the
    builder's Calendly rate limit (500 requests/minute, 50 on free plans).

    Thread-safe. Concurrent misses for the same builder run the loader once; a loader that raises
    caches nothing. `invalidate` during a load discards that load's result.
    """

    def __init__(self, ttl_seconds: float = 300.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, list[dict]]] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        # Bumped by invalidate()/clear(); a load stores its result only if nothing was bumped
        # while it ran, so an invalidation is never undone by a slow, older load.
        self._generations: dict[str, int] = {}
        self._epoch = 0

    def get(self, builder_key: str, loader: Callable[[], list[dict]]) -> list[dict]:
        """Return the cached list for `builder_key`, calling `loader` when absent or expired.

        Returns a fresh list each time, so callers may reorder it without touching the cache.
        """
        with self._lock:
            cached = self._fresh(builder_key)
            if cached is not None:
                return list(cached)
            key_lock = self._key_locks.setdefault(builder_key, threading.Lock())
        with key_lock:
            with self._lock:
                # Another thread may have loaded it while we waited for the key lock.
                cached = self._fresh(builder_key)
                if cached is not None:
                    return list(cached)
                generation = (self._epoch, self._generations.get(builder_key, 0))
            value = list(loader())
            with self._lock:
                if (self._epoch, self._generations.get(builder_key, 0)) == generation:
                    self._entries[builder_key] = (self._clock() + self.ttl_seconds, value)
            return list(value)

    def invalidate(self, builder_key: str) -> None:
        """Forget one builder's entry (e.g. after they change their Calendly connection)."""
        with self._lock:
            self._entries.pop(builder_key, None)
            self._generations[builder_key] = self._generations.get(builder_key, 0) + 1

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def _fresh(self, builder_key: str) -> list[dict] | None:
        entry = self._entries.get(builder_key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[builder_key]
            return None
        return value
