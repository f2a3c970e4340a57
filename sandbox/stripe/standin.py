"""An offline stand-in for Stripe (Checkout, refunds, events, webhooks) that the official SDK
cannot tell from the real thing.

    app = create_app(secret_key="sk_test_x", webhook_url="http://127.0.0.1:8000/api/webhooks/stripe",
                     webhook_secret="whsec_sandbox", public_url="http://127.0.0.1:8002")
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": "http://127.0.0.1:8002"})

Run: `python -m sandbox.stripe --port 8002`.

Parts: `/v1/...` Stripe's API (api), `/pay/{cs_id}` the hosted checkout page
(pages), `/_sandbox/...` JSON controls for tests and demos (below, no auth). State is in
memory, one `Store` per app (store); a background thread expires sessions past
`expires_at` every 5 s (they are also expired lazily on every request).
"""
from __future__ import annotations

import argparse
import logging
import os
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from . import checkout
from . import money
from .api import register_api
from .pages import register_pages
from .store import Store
from .webhooks import Deliverer
from .wire import StripeError

log = logging.getLogger(__name__)
SWEEP_SECONDS = 5.0


class StandinApp(FastAPI):
    """FastAPI that keeps the server's own `send` in the scope, so a fault can drop the socket."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            scope["standin.raw_send"] = send
        await super().__call__(scope, receive, send)


def _sweep_forever(store: Store, stop: threading.Event) -> None:
    while not stop.wait(SWEEP_SECONDS):
        try:
            store.run(lambda: None)  # lazy expiry runs first in every operation
        except Exception:  # keep sweeping whatever happens
            log.exception("expiry sweep failed")


@asynccontextmanager
async def _lifespan(app: FastAPI):
    stop: threading.Event = app.state.stop
    stop.clear()
    sweeper = threading.Thread(target=_sweep_forever, args=(app.state.store, stop),
                               name="stripe-standin-expiry", daemon=True)
    sweeper.start()
    try:
        yield
    finally:
        stop.set()
        sweeper.join(timeout=1)


def create_app(*, secret_key: str, webhook_url: str | None, webhook_secret: str,
               public_url: str) -> FastAPI:
    """A fresh stand-in with its own state. A `secret_key` ending in "*" accepts any key with
    that prefix (the runner accepts any `sk_test_` key)."""
    app = StandinApp(title="Stripe stand-in (sandbox)", lifespan=_lifespan, docs_url=None,
                     redoc_url=None, openapi_url=None)
    store = Store(public_url=public_url, webhook_url=webhook_url or None)
    stop = threading.Event()
    store.deliverer = Deliverer(store, url=webhook_url or None, secret=webhook_secret, stop=stop)
    app.state.store, app.state.stop, app.state.secret_key = store, stop, secret_key

    @app.exception_handler(StripeError)
    async def _stripe_error(request: Request, error: StripeError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    register_api(app)
    register_pages(app)
    _register_sandbox(app, store)
    # The hosted page's one script (times in the customer's zone): a file, like Stripe's assets.
    app.mount("/assets", StaticFiles(directory=Path(__file__).parent / "static"), name="assets")
    return app


def _register_sandbox(app: FastAPI, store: Store) -> None:
    deliverer: Deliverer = store.deliverer

    @app.get("/_sandbox/state")
    def state() -> dict:
        return store.snapshot()

    @app.post("/_sandbox/config")
    def config(body: dict | None = Body(None)) -> dict:
        body = body or {}
        choices = {"webhook_delivery": ("sync", "off"), "refund_status": ("succeeded", "pending")}
        with store.lock:
            for key, value in body.items():
                if key in choices:
                    if value not in choices[key]:
                        raise StripeError(f"{key} must be one of {list(choices[key])}", param=key)
                    store.config[key] = value
                elif key == "webhook_url":  # point webhooks elsewhere (None: stop sending)
                    store.webhook_url = deliverer.url = value or None
                elif key == "webhook_retry_delays":  # e.g. [0.1, 0.2] for quick tests
                    deliverer.retry_delays = tuple(float(d) for d in value)
                else:
                    raise StripeError(f"Unknown sandbox config key: {key}", param=key)
            return {**store.config, "webhook_url": store.webhook_url,
                    "webhook_retry_delays": list(deliverer.retry_delays)}

    @app.get("/_sandbox/faults")
    def faults() -> list:
        with store.lock:
            return [dict(f) for f in store.faults]

    @app.post("/_sandbox/faults")
    def add_fault(body: dict | None = Body(None)) -> dict:
        with store.lock:
            return dict(store.add_fault(body or {}))

    @app.delete("/_sandbox/faults")
    def clear_faults() -> dict:
        with store.lock:
            cleared = len(store.faults)
            store.faults.clear()
        return {"cleared": cleared}

    @app.post("/_sandbox/checkout/{session_id}/pay")
    def pay(session_id: str, body: dict | None = Body(None)) -> dict:
        body = body or {}
        return store.run(checkout.pay_session, store, session_id,
                         method=body.get("method", "card"), email=body.get("email"))

    @app.post("/_sandbox/checkout/{session_id}/bank_transfer")
    def bank_transfer(session_id: str, body: dict | None = Body(None)) -> dict:
        result = (body or {}).get("result")
        if result not in ("succeeded", "failed"):
            raise StripeError("result must be succeeded or failed", param="result")
        return store.run(checkout.settle_bank_transfer, store, session_id,
                         succeeded=result == "succeeded")

    @app.post("/_sandbox/checkout/{session_id}/expire-now")
    def expire_now(session_id: str) -> dict:
        return store.run(checkout.expire_now, store, session_id)

    @app.post("/_sandbox/charges/{payment_intent_id}/refund")
    def dashboard_refund(payment_intent_id: str, body: dict | None = Body(None)) -> dict:
        return store.run(money.dashboard_refund, store, payment_intent_id, body or {})

    @app.post("/_sandbox/charges/{payment_intent_id}/dispute")
    def dispute(payment_intent_id: str, body: dict | None = Body(None)) -> dict:
        return store.run(money.open_dispute, store, payment_intent_id, body or {})

    @app.post("/_sandbox/refunds/{refund_id}/settle")
    def settle_refund(refund_id: str, body: dict | None = Body(None)) -> dict:
        return store.run(money.settle_refund, store, refund_id, body or {})

    @app.post("/_sandbox/events/{event_id}/redeliver")
    def redeliver(event_id: str) -> dict:
        with store.lock:
            event = store.get("evt_", event_id)
            number = 1 + sum(1 for d in store.deliveries if d["event_id"] == event_id)
        if not deliverer.url:
            raise StripeError("No webhook URL is configured.", param="webhook_url")
        return deliverer.attempt(event, number)

    @app.post("/_sandbox/clock")
    def clock(body: dict | None = Body(None)) -> dict:
        """Move the stand-in's clock forward (e.g. past a session's expires_at)."""
        seconds = (body or {}).get("advance_seconds", 0)
        if not isinstance(seconds, int) or seconds < 0:
            raise StripeError("advance_seconds must be a non-negative integer",
                              param="advance_seconds")
        with store.lock:
            store.clock_offset += seconds
        store.run(lambda: None)  # expire what is now due, and deliver the events
        return {"now": store.now(), "clock_offset": store.clock_offset}


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    base = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    parser = argparse.ArgumentParser(prog="python -m sandbox.stripe",
                                     description="Offline Stripe stand-in (sandbox).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--secret-key", default="sk_test_*",
                        help="API key to accept; a trailing * accepts any key with that prefix "
                             "(default: any sk_test_ key)")
    parser.add_argument("--webhook-url", default=os.environ.get("SANDBOX_STRIPE_WEBHOOK_URL")
                        or f"{base}/api/webhooks/stripe",
                        help="where events are POSTed ('' to only store them)")
    parser.add_argument("--webhook-secret",
                        default=os.environ.get("STRIPE_WEBHOOK_SECRET") or "whsec_sandbox")
    parser.add_argument("--public-url", default=None,
                        help="the stand-in's own base URL (default http://127.0.0.1:<port>)")
    args = parser.parse_args(argv)
    public_url = (args.public_url or f"http://127.0.0.1:{args.port}").rstrip("/")
    app = create_app(secret_key=args.secret_key, webhook_url=args.webhook_url or None,
                     webhook_secret=args.webhook_secret, public_url=public_url)
    print(f"Stripe stand-in listening on http://{args.host}:{args.port} (hosted pages at "
          f"{public_url}/pay/…, webhooks to {args.webhook_url or 'nowhere'})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
