"""The `/v1/...` API: authentication, injected faults, idempotency, then the route's handler.

Order of a request: API key check (401) → route lookup (404 "Unrecognized request URL") →
form decoding → Idempotency-Key counted → a matching sandbox fault, if any (500, 429, close and
timeout act before any effect; 500_after after it) → under the store lock: lazy expiry,
idempotent replay or the handler, storing the first answer for the key → webhooks for the
events it caused → the answer.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
import json
import logging
import re
from typing import Any, Callable

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from . import checkout
from . import money
from .store import Store
from .wire import (API_VERSION, StripeError, api_error_body, as_list, check_params,
                          created_filter, decode_form, expand_paths, new_id, paginate,
                          rate_limit_body, to_bool, to_str)

log = logging.getLogger(__name__)
IDEMPOTENCY_TTL = 24 * 60 * 60
Handler = Callable[[Store, dict, dict, dict], dict]


def list_events(store: Store, params: dict, ids: dict, request: dict) -> dict:
    check_params(params, {"type", "types", "created", "limit", "starting_after", "ending_before",
                          "delivery_success", "expand"})
    if "type" in params and "types" in params:
        raise StripeError("You may only specify one of these parameters: type, types.",
                          param="types")
    patterns = ([to_str(params["type"], "type")] if "type" in params else
                [to_str(t, "types") for t in as_list(params.get("types"), "types")])
    if len(patterns) > 20:
        raise StripeError("You may pass at most 20 event types.", param="types")
    created = created_filter(params.get("created"))
    delivered = (to_bool(params["delivery_success"], "delivery_success")
                 if "delivery_success" in params else None)
    events = [e for e in reversed(store.events)
              if created(e["created"])
              and (not patterns or any(fnmatch.fnmatchcase(e["type"], p) for p in patterns))
              and (delivered is None or (e["pending_webhooks"] == 0) == delivered)]
    return store.expand(paginate(events, params, "/v1/events", "event"), expand_paths(params))


def retrieve_event(store: Store, params: dict, ids: dict, request: dict) -> dict:
    check_params(params, {"expand"})
    return store.expand(store.get("evt_", ids["id"]), expand_paths(params))


_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/checkout/sessions", checkout.create_session),
    ("GET", "/v1/checkout/sessions", checkout.list_sessions),
    ("GET", "/v1/checkout/sessions/{id}", checkout.retrieve_session),
    ("POST", "/v1/checkout/sessions/{id}/expire", checkout.expire_session),
    ("GET", "/v1/checkout/sessions/{id}/line_items", checkout.list_line_items),
    ("GET", "/v1/payment_intents/{id}", checkout.retrieve_payment_intent),
    ("GET", "/v1/charges/{id}", checkout.retrieve_charge),
    ("POST", "/v1/refunds", money.create_refund),
    ("GET", "/v1/refunds", money.list_refunds),
    ("GET", "/v1/refunds/{id}", money.retrieve_refund),
    ("GET", "/v1/disputes/{id}", money.retrieve_dispute),
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/events/{id}", retrieve_event),
]
ROUTES = [(method, re.compile("^" + pattern.replace("{id}", "(?P<id>[^/]+)") + "/?$"), handler)
          for method, pattern, handler in _ROUTES]


def match_route(method: str, path: str) -> tuple[Handler, dict] | None:
    for route_method, pattern, handler in ROUTES:
        found = pattern.match(path)
        if found and route_method == method:
            return handler, found.groupdict()
    return None


def _mask(key: str) -> str:
    return key[:8] + "*" * (len(key) - 12) + key[-4:] if len(key) > 12 else key


def check_auth(header: str | None, secret_key: str) -> dict | None:
    """None if the key is right, else Stripe's 401 body. A key ending in "*" is a prefix."""
    if not header:
        return {"error": {"type": "invalid_request_error", "message":
                          "You did not provide an API key. You need to provide your API key in "
                          "the Authorization header, using Bearer auth (e.g. 'Authorization: "
                          "Bearer YOUR_SECRET_KEY')."}}
    scheme, _, value = header.partition(" ")
    key = value.strip() if scheme.lower() == "bearer" else ""
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(value.strip()).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    if secret_key.endswith("*"):
        ok = key.startswith(secret_key[:-1]) and len(key) > len(secret_key) - 1
    else:
        ok = key == secret_key
    if ok:
        return None
    return {"error": {"type": "invalid_request_error",
                      "message": f"Invalid API Key provided: {_mask(key)}"}}


def _json(status: int, body: Any, headers: dict) -> Response:
    text = body if isinstance(body, str) else json.dumps(body, indent=2)
    return Response(text, status_code=status, headers=headers, media_type="application/json")


def _replay_or_conflict(store: Store, key: str | None, method: str, path: str,
                        fingerprint: str) -> tuple[int, str, dict] | None:
    record = store.idempotency.get(key) if key is not None else None
    if record is None or store.now() - record["created"] > IDEMPOTENCY_TTL:
        return None
    if (record["method"], record["path"]) != (method, path):
        message = ("Keys for idempotent requests can only be used for the same endpoint they were "
                   f"first used for ('{record['method']} {record['path']}' vs '{method} {path}'). "
                   f"Try using a key other than '{key}' if you meant to execute a different request.")
    elif record["fingerprint"] != fingerprint:
        message = ("Keys for idempotent requests can only be used with the same parameters they "
                   f"were first used with. Try using a key other than '{key}' if you meant to "
                   "execute a different request.")
    else:
        return record["status"], record["body"], {"Idempotent-Replayed": "true",
                                                   "Original-Request": record["request_id"]}
    body = {"error": {"type": "idempotency_error", "message": message}}
    return 400, json.dumps(body, indent=2), {}


def execute(store: Store, handler: Handler, ids: dict, params: dict, key: str | None,
            request_id: str, method: str, path: str) -> tuple[int, str, dict]:
    """Run one API call atomically (or replay it); deliver its webhooks; return the answer."""
    fingerprint = json.dumps(params, sort_keys=True)
    with store.lock:
        try:
            store.expire_due_sessions()
            outcome = _replay_or_conflict(store, key, method, path, fingerprint)
            if outcome is None:
                try:
                    status, body = 200, handler(store, params, ids,
                                                {"id": request_id, "idempotency_key": key})
                except StripeError as error:
                    status, body = error.status, error.body()
                text = json.dumps(body, indent=2)
                if key is not None:
                    store.idempotency[key] = {"method": method, "path": path, "status": status,
                                              "fingerprint": fingerprint, "body": text,
                                              "request_id": request_id, "created": store.now()}
                outcome = (status, text, {})
        except Exception:  # a bug in the stand-in: answer like Stripe, store nothing
            log.exception("stand-in failed on %s %s", method, path)
            outcome = (500, json.dumps(api_error_body()), {})
        events = store.take_outbox()
    store.deliver(events)
    return outcome


async def _drop_connection(request: Request) -> Response:
    """Close the client's TCP connection without answering (the "close" fault)."""
    send = request.scope.get("standin.raw_send")
    cycle = getattr(send, "__self__", None)  # uvicorn's RequestResponseCycle
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("sandbox fault: connection dropped without an answer")
    transport.close()
    for _ in range(100):  # let uvicorn notice, so it does not try to answer
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.01)
    return Response(status_code=500)  # never sent: the connection is gone


async def _sleep(app: FastAPI, seconds: float) -> bool:
    """Sleep, but give up (False) when the app shuts down."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if app.state.stop.is_set():
            return False
        await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
    return True


def register_api(app: FastAPI) -> None:
    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
    async def stripe_api(request: Request, path: str) -> Response:
        store: Store = request.app.state.store
        method, url_path = request.method, "/v1/" + path
        request_id = new_id("req_", 14)
        headers = {"Request-Id": request_id,
                   "Stripe-Version": request.headers.get("stripe-version") or API_VERSION}
        auth_error = check_auth(request.headers.get("authorization"), request.app.state.secret_key)
        if auth_error:
            return _json(401, auth_error, headers)
        route = match_route(method, url_path)
        if route is None:
            return _json(404, {"error": {"type": "invalid_request_error", "message":
                                         f"Unrecognized request URL ({method}: {url_path}). Please "
                                         "see https://stripe.com/docs or we can help at "
                                         "https://support.stripe.com/."}}, headers)
        raw = request.url.query
        if method == "POST":
            body = (await request.body()).decode("utf-8", "replace")
            raw = "&".join(part for part in (raw, body) if part)
        try:
            params = decode_form(raw)
        except StripeError as error:
            return _json(error.status, error.body(), headers)
        key = request.headers.get("idempotency-key") if method == "POST" else None
        if key is not None:
            headers["Idempotency-Key"] = key
            if len(key) > 255:
                return _json(400, StripeError("Idempotency-Key must be at most 255 characters.",
                                              param="Idempotency-Key").body(), headers)
            with store.lock:
                store.idempotency_counts[key] = store.idempotency_counts.get(key, 0) + 1
        fault = store.take_fault(method, url_path)
        mode = fault["mode"] if fault else None
        if mode == "500":
            return _json(500, api_error_body("An unknown error occurred (sandbox fault)"), headers)
        if mode == "429":
            return _json(429, rate_limit_body(), headers)
        if mode == "close":
            return await _drop_connection(request)
        if mode == "timeout" and not await _sleep(request.app, fault["delay_seconds"]):
            return _json(503, api_error_body("The stand-in is shutting down"), headers)
        status, text, extra = await run_in_threadpool(
            execute, store, route[0], route[1], params, key, request_id, method, url_path)
        headers.update(extra)
        if mode == "500_after":
            return _json(500, api_error_body("An unknown error occurred (sandbox fault, after "
                                             "the effect)"), headers)
        return _json(status, text, headers)
