"""Webhook signing and delivery of the Calendly stand-in.

Signature header (Calendly's): ``Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex>`` with
``v1 = HMAC_SHA256(key=signing_key utf-8, msg=f"{t}." + raw body)``.

Delivery modes (``config["webhook_delivery"]``): ``sync`` — each webhook is POSTed before the
triggering request answers (10 s timeout); a failed or non-2xx attempt is retried in a background
thread after ``config["retry_delays_seconds"]`` (default 1, 2, 4 s); a 410 answer deletes the
subscription at once, as Calendly does. ``off`` — nothing is sent; the delivery is still recorded
(status ``skipped``) and can be sent later with ``/_sandbox/deliveries/{id}/deliver``.

A notification goes to each ``active`` subscription that covers its host (``CalendlyState.covers``:
the host's own user-scope ones, their organization's, and the pre-registered one unless the host
subscribed its URL themselves). A ``disabled`` subscription gets nothing, not even a record; one
disabled while a delivery waits for a retry ends that delivery (status ``disabled``).
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time

import requests

from .model import CalendlyState, Notification, fmt_time, uuid_from_uri

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
TIMEOUT_SECONDS = 10


def signature_header(body: bytes, signing_key: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(signing_key.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256)
    return f"t={t},v1={mac.hexdigest()}"


def verify_signature(header: str | None, body: bytes, signing_key: str,
                     tolerance_seconds: int = 180) -> bool:
    """Check a ``Calendly-Webhook-Signature`` header (for tests and receivers)."""
    try:
        parts = dict(item.split("=", 1) for item in (header or "").split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - t) > tolerance_seconds:
        return False
    expected = signature_header(body, signing_key, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Dispatcher:
    """Records and sends webhook deliveries for one stand-in state."""

    def __init__(self, state: CalendlyState):
        self.state = state
        self._ids = itertools.count(1)

    def dispatch(self, notifications: list[Notification]) -> None:
        state = self.state
        with state.lock:
            mode = state.data.config["webhook_delivery"]
            delays = [float(d) for d in state.data.config["retry_delays_seconds"]]
            records = []
            for note in notifications:
                host = state.data.users.get(uuid_from_uri(note.host_uri, "users"))
                for sub in list(state.data.subscriptions.values()):
                    if (note.event not in sub.events or sub.state != "active"
                            or host is None or not state.covers(sub, host)):
                        continue
                    record = {
                        "id": f"dlv_{next(self._ids)}", "event": note.event,
                        "invitee": note.invitee_uri, "no_show": note.no_show_uri,
                        "subscription": state.uri("webhook_subscriptions", sub.uuid),
                        "callback_url": sub.callback_url,
                        "status": "skipped" if mode == "off" else "pending",
                        "status_code": None, "attempts": [],
                        "envelope": {"event": note.event, "created_at": note.created_at,
                                     "created_by": sub.creator or note.host_uri,
                                     "payload": note.payload},
                        "_sub": sub.uuid,
                    }
                    state.data.deliveries.append(record)
                    records.append(record)
        if mode == "off":
            return
        for record in records:
            if not self.attempt(record) and record["status"] not in ("gone", "disabled") and delays:
                with state.lock:
                    record["status"] = "retrying"
                threading.Thread(target=self._retry, args=(record, delays), daemon=True,
                                 name="calendly-webhook-retry").start()

    def attempt(self, record: dict) -> bool:
        """One signed POST of ``record``'s envelope; records the outcome; True on 2xx."""
        state = self.state
        with state.lock:
            sub = state.data.subscriptions.get(record["_sub"])
        if sub is None or sub.state != "active":
            with state.lock:
                record["status"] = "gone" if sub is None else "disabled"
            return False
        body = json.dumps(record["envelope"], separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: signature_header(body, sub.signing_key),
                   "User-Agent": "Calendly-Sandbox-Webhooks/1.0"}
        code, error = None, None
        try:
            with requests.Session() as session:
                session.trust_env = False
                code = session.post(sub.callback_url, data=body, headers=headers,
                                    timeout=TIMEOUT_SECONDS, allow_redirects=False).status_code
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = code is not None and 200 <= code < 300
        with state.lock:
            record["attempts"].append({"at": fmt_time(state.now()), "status_code": code,
                                       "error": error})
            record["status_code"] = code
            record["status"] = "delivered" if ok else "failed"
            if code == 410:
                state.data.subscriptions.pop(sub.uuid, None)
                record["status"] = "gone"
        return ok

    def _retry(self, record: dict, delays: list[float]) -> None:
        for index, delay in enumerate(delays):
            time.sleep(delay)
            if self.attempt(record) or record["status"] in ("gone", "disabled"):
                return
            if index < len(delays) - 1:
                with self.state.lock:
                    record["status"] = "retrying"

    @staticmethod
    def public(record: dict) -> dict:
        return {k: v for k, v in record.items() if not k.startswith("_")}
