"""Webhook delivery: Stripe's body (pretty JSON) and `Stripe-Signature: t=…,v1=…` header.

Mode `sync` (default): each event is POSTed before the triggering request answers (timeout
10 s); an event that gets an error or a non-2xx answer is retried in a background thread after
1, 2 and 4 s. Mode `off`: events are only stored (for reconciliation tests). Every attempt is
recorded in `store.deliveries` with the status it got.
"""
from __future__ import annotations

import json
import threading
import time

import requests
import stripe

from .store import Store

TIMEOUT_SECONDS = 10
RETRY_DELAYS = (1, 2, 4)


class Deliverer:
    def __init__(self, store: Store, *, url: str | None, secret: str,
                 stop: threading.Event) -> None:
        self.store, self.url, self.secret, self.stop = store, url, secret, stop
        self.retry_delays = RETRY_DELAYS

    def enabled(self) -> bool:
        return bool(self.url) and self.store.config["webhook_delivery"] == "sync"

    def deliver(self, events: list[dict]) -> None:
        for event in events:
            if not self.enabled():
                return
            if not self.attempt(event, 1)["ok"]:
                self._retry_later(event)

    def attempt(self, event: dict, number: int) -> dict:
        """POST one event to the webhook URL once; record and return the attempt."""
        with self.store.lock:
            payload = json.dumps(event, indent=2)
        header = stripe.WebhookSignature.generate_signature_header(payload, self.secret)
        record = {"event_id": event["id"], "type": event["type"], "attempt": number,
                  "url": self.url, "status": None, "error": None, "ok": False,
                  "at": round(time.time(), 3)}
        try:
            with requests.Session() as session:
                session.trust_env = False  # never route local webhooks through a proxy
                response = session.post(self.url, data=payload.encode("utf-8"), timeout=TIMEOUT_SECONDS,
                                        headers={"Content-Type": "application/json",
                                                 "Stripe-Signature": header,
                                                 "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
            record["status"] = response.status_code
            record["ok"] = 200 <= response.status_code < 300
        except requests.RequestException as error:
            record["error"] = f"{type(error).__name__}: {error}"
        with self.store.lock:
            self.store.deliveries.append(record)
            if record["ok"]:
                event["pending_webhooks"] = 0
        return dict(record)

    def _retry_later(self, event: dict) -> None:
        def retry() -> None:
            for number, delay in enumerate(self.retry_delays, start=2):
                if self.stop.wait(delay) or not self.enabled():
                    return
                if self.attempt(event, number)["ok"]:
                    return

        threading.Thread(target=retry, name=f"stripe-webhook-retry-{event['id']}",
                         daemon=True).start()
