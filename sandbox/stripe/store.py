"""The stand-in's in-memory state: objects, events, deliveries, idempotency records, faults.

One `Store` per app. Every read or change happens under `store.lock` (re-entrant). Operations
append the events they cause to an outbox; `Store.run` takes them out while still holding the
lock and hands them to the webhook deliverer after releasing it, so a webhook handler may call
back into the stand-in while the triggering request is still waiting for its answer.
"""
from __future__ import annotations

import copy
import threading
import time
from typing import Any, Callable

from .wire import API_VERSION, StripeError, new_id

KINDS = {  # id prefix → (store attribute, Stripe's name in "No such …" messages)
    "cs_": ("sessions", "checkout.session"),
    "pi_": ("payment_intents", "payment_intent"),
    "ch_": ("charges", "charge"),
    "re_": ("refunds", "refund"),
    "dp_": ("disputes", "dispute"),
    "evt_": ("events_by_id", "event"),
}
FAULT_MODES = {"500", "429", "timeout", "close", "500_after"}


class Store:
    def __init__(self, *, public_url: str, webhook_url: str | None) -> None:
        self.lock = threading.RLock()
        self.public_url = public_url.rstrip("/")
        self.webhook_url = webhook_url
        self.sessions: dict[str, dict] = {}
        self.session_extra: dict[str, dict] = {}  # line items, descriptions, payment_intent_data
        self.payment_intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.disputes: dict[str, dict] = {}
        self.events: list[dict] = []  # oldest first
        self.events_by_id: dict[str, dict] = {}
        self.deliveries: list[dict] = []
        self.idempotency: dict[str, dict] = {}
        self.idempotency_counts: dict[str, int] = {}
        self.faults: list[dict] = []
        self.config = {"webhook_delivery": "sync", "refund_status": "succeeded"}
        self.clock_offset = 0
        self.deliverer: Any = None  # set by create_app
        self._outbox: list[dict] = []

    # ------------------------------------------------------------------ basics

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    def run(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an operation atomically (after lazy expiry), then deliver the events it caused."""
        error: BaseException | None = None
        result = None
        with self.lock:
            try:
                self.expire_due_sessions()
                result = copy.deepcopy(operation(*args, **kwargs))
            except BaseException as exc:  # re-raised below, after delivering what happened
                error = exc
            events = self.take_outbox()
        self.deliver(events)
        if error is not None:
            raise error
        return result

    def take_outbox(self) -> list[dict]:
        with self.lock:
            events, self._outbox = self._outbox, []
        return events

    def deliver(self, events: list[dict]) -> None:
        if events and self.deliverer is not None:
            self.deliverer.deliver(events)

    def emit(self, type: str, obj: dict, *, previous: dict | None = None,
             request: dict | None = None) -> dict:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = copy.deepcopy(previous)
        event = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": {"id": (request or {}).get("id"),
                        "idempotency_key": (request or {}).get("idempotency_key")},
            "type": type,
        }
        self.events.append(event)
        self.events_by_id[event["id"]] = event
        self._outbox.append(event)
        return event

    # ------------------------------------------------------------------ lookups

    def get(self, kind_prefix: str, object_id: str, *, param: str = "id", status: int = 404) -> dict:
        attribute, name = KINDS[kind_prefix]
        obj = getattr(self, attribute).get(object_id) if isinstance(object_id, str) else None
        if obj is None:
            raise StripeError(f"No such {name}: '{object_id}'", status=status, param=param,
                              code="resource_missing")
        return obj

    def lookup(self, object_id: str) -> dict | None:
        for prefix, (attribute, _name) in KINDS.items():
            if object_id.startswith(prefix):
                return getattr(self, attribute).get(object_id)
        return None

    def expand(self, obj: dict, paths: list[str]) -> dict:
        """A copy of `obj` with `expand[]` paths (e.g. "payment_intent.latest_charge") resolved."""
        result = copy.deepcopy(obj)
        for path in paths:
            result = self._expand(result, path.split("."), path)
        return result

    def _expand(self, obj: Any, parts: list[str], path: str) -> Any:
        if not parts or not isinstance(obj, dict):
            return obj
        head, rest = parts[0], parts[1:]
        if obj.get("object") == "list" and head == "data":
            obj["data"] = [self._expand(item, rest, path) for item in obj["data"]]
            return obj
        if head == "line_items" and obj.get("object") == "checkout.session":
            items = self.session_extra[obj["id"]]["line_items"]
            value: Any = {"object": "list", "data": copy.deepcopy(items), "has_more": False,
                          "url": f"/v1/checkout/sessions/{obj['id']}/line_items"}
        elif head not in obj:
            raise StripeError(f"This property cannot be expanded ({head}).", param="expand")
        else:
            value = obj[head]
            if isinstance(value, str):
                found = self.lookup(value)
                if found is None:
                    raise StripeError(f"This property cannot be expanded ({head}).", param="expand")
                value = copy.deepcopy(found)
        obj[head] = self._expand(value, rest, path)
        return obj

    # ------------------------------------------------------------------ checkout session expiry

    def expire_session(self, session: dict, *, request: dict | None = None) -> None:
        session["status"] = "expired"
        session["url"] = None
        self.emit("checkout.session.expired", session, request=request)

    def expire_due_sessions(self) -> None:
        now = self.now()
        for session in self.sessions.values():
            if session["status"] == "open" and session["expires_at"] <= now:
                self.expire_session(session)

    # ------------------------------------------------------------------ faults

    def add_fault(self, spec: dict) -> dict:
        mode = str(spec.get("mode", ""))
        if mode not in FAULT_MODES:
            raise StripeError(f"mode must be one of {sorted(FAULT_MODES)}", param="mode")
        count = spec.get("count", 1)
        delay = spec.get("delay_seconds", 30)
        if not isinstance(count, int) or count < 1:
            raise StripeError("count must be a positive integer", param="count")
        if not isinstance(delay, (int, float)) or delay < 0:
            raise StripeError("delay_seconds must be a number >= 0", param="delay_seconds")
        fault = {"method": str(spec.get("method") or "*").upper(),
                 "path_prefix": str(spec.get("path_prefix") or "/v1/"),
                 "mode": mode, "remaining": count, "delay_seconds": delay}
        self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> dict | None:
        """Consume one matching fault (the oldest first), if any."""
        with self.lock:
            for fault in self.faults:
                if fault["method"] in ("*", method) and path.startswith(fault["path_prefix"]):
                    fault["remaining"] -= 1
                    if fault["remaining"] <= 0:
                        self.faults.remove(fault)
                    return dict(fault)
        return None

    # ------------------------------------------------------------------ sandbox view

    def snapshot(self) -> dict:
        with self.lock:
            return copy.deepcopy({
                "config": self.config,
                "clock_offset": self.clock_offset,
                "sessions": list(self.sessions.values()),
                "payment_intents": list(self.payment_intents.values()),
                "charges": list(self.charges.values()),
                "refunds": list(self.refunds.values()),
                "disputes": list(self.disputes.values()),
                "events": [{"id": e["id"], "type": e["type"], "created": e["created"],
                            "object_id": e["data"]["object"].get("id")} for e in self.events],
                "deliveries": self.deliveries,
                "idempotency_keys": self.idempotency_counts,
                "faults": self.faults,
            })
