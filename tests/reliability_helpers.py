"""Helpers for the reliability tests (issue 5, "nothing lost, nothing charged twice"): recorded
provider events, deliveries fired sequentially or all at once, snapshots of everything a booking
owns (to prove a repeat changed nothing), and web/worker subprocesses on the test's database
(started with `devtools.processes`).
"""
from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from pathlib import Path

import requests
from sqlalchemy import select

from core.db import session_scope
from core.models import (
    Booking, BookingHistory, Notification, OutboxEntry, Payment, Refund, WebhookEvent,
)
# PYTHON, Process and wait_healthy are also the tests' (imported from here with the helpers below).
from devtools.processes import PYTHON, Process, free_port, service_env, wait_healthy, web_command  # noqa: F401
from tests.webhook_helpers import calendly_headers, settle, stripe_headers


# ---------------------------------------------------------------- provider switches and records
def delivery(live, *, calendly: str | None = None, stripe: str | None = None) -> None:
    """Switch the stand-ins' webhook delivery: "sync" (on) or "off" (events are only recorded)."""
    if calendly:
        assert live.calendly_sandbox("POST", "/config", {"webhook_delivery": calendly}).status_code == 200
    if stripe:
        assert live.stripe_sandbox("POST", "/config", {"webhook_delivery": stripe}).status_code == 200


def paid_then_quiet(live, start: str) -> tuple[str, dict, str]:
    """A booking scheduled at `start` and paid, then both stand-ins' deliveries switched off so the
    test delivers what follows itself: (booking id, the stand-in's booking answer, payment intent)."""
    booking_id, url = live.start_booking(live.signed_in_client())
    answer = live.pick_slot(url, start)
    live.pay(booking_id)
    settle(live)
    intent = live.booking(booking_id)["stripe_payment_intent_id"]
    delivery(live, calendly="off", stripe="off")
    return booking_id, answer, intent


def calendly_envelope(live, event: str, invitee_uri: str) -> dict:
    """The envelope the Calendly stand-in recorded for `event` of this invitee (the latest one)."""
    found = [d for d in live.calendly_state()["deliveries"] if d["event"] == event and d["invitee"] == invitee_uri]
    assert found, f"the stand-in recorded no {event} for {invitee_uri}"
    return found[-1]["envelope"]


def stripe_events(live, event_type: str, **match) -> list[dict]:
    """Full Stripe events of `event_type` from the stand-in (`GET /v1/events/{id}`), oldest first,
    whose `data.object` has the given field values (e.g. payment_intent=..., id=...)."""
    auth = {"Authorization": f"Bearer {live.settings.stripe_secret_key}"}
    events = []
    for summary in live.stripe_state()["events"]:
        if summary["type"] != event_type:
            continue
        event = requests.get(f"{live.stripe}/v1/events/{summary['id']}", headers=auth, timeout=30).json()
        obj = event["data"]["object"]
        if all(obj.get(key) == value for key, value in match.items()):
            events.append(event)
    return events


def stripe_event(live, event_type: str, **match) -> dict:
    found = stripe_events(live, event_type, **match)
    assert len(found) == 1, f"expected one {event_type} {match} at the stand-in, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------- the client's payment page
def payment_page(live, booking_id: str) -> requests.Response:
    """The client's GET of their emailed payment link, following our own redirects (not Stripe's)."""
    url = live.payment_url(booking_id)
    for _ in range(3):
        answer = requests.get(url, allow_redirects=False, timeout=30, headers={"Accept": "text/html"})
        location = answer.headers.get("location", "")
        if answer.status_code != 303 or not location.startswith("/payment/"):
            return answer
        url = f"{live.web}{location}"
    raise AssertionError("the payment page keeps redirecting to itself")


def checkout_via_page(live, booking_id: str) -> str:
    answer = payment_page(live, booking_id)
    assert answer.status_code == 303 and answer.headers["location"].startswith(live.stripe), answer.text[:500]
    return answer.headers["location"].rsplit("/", 1)[1]


# ---------------------------------------------------------------- deliveries
def signed(provider: str, body: dict, live) -> tuple[bytes, dict]:
    """The body as a provider sends it, with a fresh signature header."""
    if provider == "calendly":
        raw = json.dumps(body, separators=(",", ":")).encode()
        return raw, calendly_headers(raw, live.settings.calendly_webhook_signing_key)
    raw = json.dumps(body, indent=2).encode()
    return raw, stripe_headers(raw, live.settings.stripe_webhook_secret)


def deliver(live, provider: str, body: dict, *, times: int, concurrent: bool,
            targets: list[str] | None = None) -> list[tuple[int, str]]:
    """POST one event `times` times (round robin over `targets`, default the live web service),
    one after another or all released at once from threads; returns [(status, outcome)]."""
    targets = targets or [live.web]
    path = f"/api/webhooks/{provider}"

    def post(index: int) -> tuple[int, str]:
        raw, headers = signed(provider, body, live)
        answer = requests.post(f"{targets[index % len(targets)]}{path}", data=raw, headers=headers, timeout=60)
        assert answer.status_code != 410
        try:
            outcome = answer.json().get("outcome", "")
        except ValueError:
            outcome = answer.text[:200]
        return answer.status_code, outcome

    if not concurrent:
        return [post(i) for i in range(times)]
    return all_at_once(times, post)


def in_threads(workers: int, run, *, name: str, timeout: float) -> None:
    """Run `run(index)` in `workers` threads and wait for all; fail if one is stuck."""
    threads = [threading.Thread(target=run, args=(i,), name=f"{name}-{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), f"a thread ({name}) is stuck"


def all_at_once(workers: int, body) -> list:
    """Run body(i) in `workers` threads released together by a barrier; re-raise any failure."""
    barrier = threading.Barrier(workers, timeout=30)
    results: list = [None] * workers
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = body(index)
        except BaseException as error:  # noqa: BLE001 — re-raised below
            errors.append(error)

    in_threads(workers, run, name="at-once", timeout=120)
    if errors:
        raise errors[0]
    return results


def one_processed_rest_duplicate(answers: list[tuple[int, str]]) -> bool:
    return sorted(answers) == sorted([(200, "processed")] + [(200, "duplicate")] * (len(answers) - 1))


# ---------------------------------------------------------------- what a booking owns
def snapshot(engine, booking_id: str) -> dict:
    """Everything about a booking that a repeated event could change, in a comparable form."""
    with session_scope(engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        return {
            "booking": (booking.status, booking.calendly_invitee_uri, booking.calendly_event_uri,
                        booking.start_time, booking.stripe_checkout_session_id, booking.no_show_at),
            "payments": [(p.stripe_payment_intent_id, p.amount_cents, p.status, p.dispute_status)
                         for p in session.execute(select(Payment).where(Payment.booking_id == booking_id)
                                                  .order_by(Payment.id)).scalars()],
            "refunds": [(r.id, r.amount_cents, r.status, r.rule, r.stripe_refund_id)
                        for r in session.execute(select(Refund).where(Refund.booking_id == booking_id)
                                                 .order_by(Refund.id)).scalars()],
            "history": [(h.cause, h.from_status, h.to_status)
                        for h in session.execute(select(BookingHistory).where(BookingHistory.booking_id == booking_id)
                                                 .order_by(BookingHistory.id)).scalars()],
            "outbox": [(e.kind, e.idempotency_key, e.status)
                       for e in session.execute(select(OutboxEntry).where(OutboxEntry.booking_id == booking_id)
                                                .order_by(OutboxEntry.id)).scalars()],
            "notifications": sorted(n.dedupe_key for n in session.execute(
                select(Notification).where(Notification.booking_id == booking_id)).scalars()),
        }


def webhook_rows(engine) -> list[tuple[str, str, str]]:
    """(dedupe key, event type, outcome) of every stored delivery with a valid signature."""
    with session_scope(engine, read_only=True) as session:
        return [(e.dedupe_key, e.event_type, e.outcome) for e in session.execute(
            select(WebhookEvent).where(WebhookEvent.dedupe_key.is_not(None)).order_by(WebhookEvent.id)).scalars()]


def rows_per_key(engine, dedupe_key: str) -> int:
    return sum(1 for key, _type, _outcome in webhook_rows(engine) if key == dedupe_key)


def new_items(before: list, after: list) -> Counter:
    """What `after` has beyond `before` (a list that only grows)."""
    assert after[:len(before)] == before, "an earlier row changed"
    return Counter(after[len(before):])


def stand_in_refunds(live, intent: str) -> list[dict]:
    return [r for r in live.stripe_state()["refunds"] if r["payment_intent"] == intent]


def stand_in_sessions(live, booking_id: str) -> list[dict]:
    return [s for s in live.stripe_state()["sessions"] if s["client_reference_id"] == booking_id]


def calendly_cancellations(live, event_uuid: str) -> int:
    """How many times our side asked Calendly to cancel this event."""
    return live.calendly_state()["request_counts"].get(f"POST /scheduled_events/{event_uuid}/cancellation", 0)


# ---------------------------------------------------------------- subprocesses on the test's database
def system_env(live, **extra: str) -> dict[str, str]:
    """The environment of a `web`/`worker` process of this live system (same database, same
    stand-ins, same secrets and public URL, so Stripe idempotent requests carry equal parameters)."""
    settings = live.settings
    return service_env(
        DATABASE_URL=settings.database_url, SANDBOX="true",
        PUBLIC_BASE_URL=settings.public_base_url, CALENDLY_API_BASE=settings.calendly_api_base,
        STRIPE_API_BASE=settings.stripe_api_base, STRIPE_SECRET_KEY=settings.stripe_secret_key,
        STRIPE_WEBHOOK_SECRET=settings.stripe_webhook_secret,
        CALENDLY_WEBHOOK_SIGNING_KEY=settings.calendly_webhook_signing_key,
        ADMIN_API_TOKEN=settings.admin_api_token, APP_SECRET_KEY=settings.app_secret_key, **extra)


def start_web(live, tmp_path: Path, index: int, **extra: str) -> tuple[str, Process]:
    """One single-worker uvicorn process of the web service on a free port."""
    port = free_port()
    process = Process(web_command(port, log_level="warning"), system_env(live, **extra), tmp_path / f"web-{index}.log")
    return f"http://127.0.0.1:{port}", process


def run_script(live, tmp_path: Path, name: str, code: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
    """Run a small Python script against this live system in a fresh interpreter."""
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    return subprocess.run([PYTHON, str(script)], cwd=tmp_path, env=system_env(live, **extra),
                          capture_output=True, text=True, timeout=timeout)
