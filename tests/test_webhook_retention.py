"""Rejected webhooks cannot fill the disk, and stored events are kept by a retention policy.

- A delivery refused for its signature (or signed but invalid) keeps its kept headers, its size,
  the SHA-256 of its body and a 2 KiB prefix only: 50 unsigned 256 KB deliveries, sent to a real
  server, store a few KiB each instead of the whole body.
- `python -m core prune-webhooks --older-than 90d` deletes old events nothing needs, never one a
  booking refers to (by `booking_id` or by a history row) nor one still to be processed; bad input
  is one line and exit 2.
- The worker prunes rejected and invalid deliveries older than WEBHOOK_REJECTED_RETENTION_DAYS.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from core.config import SANDBOX_SECRETS
from core.db import session_scope
from core.models import BookingHistory, WebhookEvent, utcnow
from core.services.webhook_ingest import REJECTED_BODY_PREFIX_BYTES
from core.services.webhook_retention import prune_webhook_events
from tests import factories
from tests.reliability_helpers import Process
from tests.servers import serve
from tests.webhook_helpers import calendly_headers, stripe_headers, webhook_events
from tests.cli_runner import run_cli

REPO_ROOT = Path(__file__).resolve().parent.parent
CALENDLY_KEY = SANDBOX_SECRETS["calendly_webhook_signing_key"]
STRIPE_SECRET = SANDBOX_SECRETS["stripe_webhook_secret"]


@pytest.fixture
def web(settings_env, engine):
    settings_env(run_outbox_after_request="false")
    from webhook_service.app import create_app
    with serve(create_app()) as base_url:
        yield base_url


def _big_body(size: int, marker: str) -> bytes:
    head = json.dumps({"event": "invitee.created", "id": marker, "padding": ""}).encode()[:-2]
    return head + b"x" * (size - len(head) - 2) + b'"}'


def _stored_bytes(engine) -> int:
    with session_scope(engine, read_only=True) as session:
        rows = session.execute(select(WebhookEvent.raw_body, WebhookEvent.headers, WebhookEvent.error)).all()
    return sum(len(body.encode()) + len(json.dumps(headers)) + len(error or "") for body, headers, error in rows)


# ---------------------------------------------------------------- what a refused delivery keeps
def test_unsigned_webhooks_of_256_kb_store_a_bounded_prefix_size_and_hash(web, engine):
    bodies = [_big_body(250 * 1024, f"forged-{n}") for n in range(50)]

    for n, raw in enumerate(bodies):
        path = "/api/webhooks/stripe" if n % 2 else "/api/webhooks/calendly"
        answer = requests.post(web + path, data=raw, headers={"Content-Type": "application/json",
                                                              "Stripe-Signature": "t=1,v1=" + "0" * 64}, timeout=30)
        assert answer.status_code == 400 and answer.json()["outcome"] == "rejected"

    rows = webhook_events(engine)
    assert len(rows) == 50
    for row, raw in zip(rows, bodies):
        assert (row.outcome, row.signature_valid, row.dedupe_key) == ("rejected", False, None)
        assert (row.body_size, row.body_sha256) == (len(raw), hashlib.sha256(raw).hexdigest())
        assert raw.decode().startswith(row.raw_body) and len(row.raw_body) == REJECTED_BODY_PREFIX_BYTES
        assert row.headers["content-type"] == "application/json"
    # 50 × 250 KB sent; what is kept stays a few KiB per delivery (it was the whole 12.5 MB).
    assert _stored_bytes(engine) < 50 * 4 * 1024


@pytest.mark.parametrize("provider", ["calendly", "stripe"])
def test_a_signed_but_invalid_delivery_keeps_a_bounded_prefix_too(web, engine, provider):
    raw = b"[" * 3 + b"x" * 200_000  # not JSON, validly signed
    headers = calendly_headers(raw, CALENDLY_KEY) if provider == "calendly" else stripe_headers(raw, STRIPE_SECRET)

    answer = requests.post(f"{web}/api/webhooks/{provider}", data=raw, headers=headers, timeout=30)

    assert answer.status_code == 422 and answer.json()["outcome"] == "invalid"
    [row] = webhook_events(engine)
    assert (row.outcome, row.signature_valid, row.body_size) == ("invalid", True, len(raw))
    assert row.body_sha256 == hashlib.sha256(raw).hexdigest()
    assert row.raw_body == raw[:REJECTED_BODY_PREFIX_BYTES].decode()


def test_a_small_rejected_delivery_is_kept_whole(web, engine):
    raw = json.dumps({"event": "invitee.created", "payload": {}}).encode()

    answer = requests.post(f"{web}/api/webhooks/calendly", data=raw, timeout=30)

    assert answer.status_code == 400
    [row] = webhook_events(engine)
    assert (row.raw_body, row.body_size, row.error) == (raw.decode(), len(raw), "signature missing")


# ---------------------------------------------------------------- the retention policy
def _event(session, outcome: str, age_days: float, *, booking_id: str | None = None, name: str = "") -> int:
    signed = outcome != "rejected"
    event = WebhookEvent(
        provider="stripe", dedupe_key=f"stripe:evt_{name}" if signed and outcome != "invalid" else None,
        event_type="checkout.session.completed", raw_body="{}", headers={}, signature_valid=signed,
        outcome=outcome, booking_id=booking_id, attempts=1, received_at=utcnow() - timedelta(days=age_days),
        error=name)
    session.add(event)
    session.flush()
    return event.id


@pytest.fixture
def history(engine):
    """Old and young events of every kind; returns {name: id} and which names must survive 90d."""
    with session_scope(engine) as session:
        booking = factories.make_booking(session, "CONFIRMED")
        ids = {
            "old_rejected": _event(session, "rejected", 200, name="old_rejected"),
            "old_invalid": _event(session, "invalid", 100, name="old_invalid"),
            "old_ignored": _event(session, "ignored", 91, name="old_ignored"),
            "old_processed_no_booking": _event(session, "processed", 120, name="old_processed_no_booking"),
            "old_processed_of_a_booking": _event(session, "processed", 400, booking_id=booking.id,
                                                 name="old_processed_of_a_booking"),
            "old_unmatched_named_in_history": _event(session, "unmatched", 300, name="old_unmatched_named_in_history"),
            "old_failed": _event(session, "failed", 150, name="old_failed"),
            "old_received": _event(session, "received", 150, name="old_received"),
            "young_rejected": _event(session, "rejected", 89, name="young_rejected"),
            "young_processed": _event(session, "processed", 1, name="young_processed"),
        }
        session.add(BookingHistory(booking_id=booking.id, from_status="CONFIRMED", to_status="CONFIRMED",
                                   cause="webhook_reprocessed", actor="admin:test",
                                   details={"webhook_event_id": ids["old_unmatched_named_in_history"],
                                            "outcome": "unmatched"}))
    gone = {"old_rejected", "old_invalid", "old_ignored", "old_processed_no_booking"}
    return ids, gone


def _remaining(engine) -> set[str]:
    with session_scope(engine, read_only=True) as session:
        return set(session.execute(select(WebhookEvent.error)).scalars())


def test_prune_webhooks_deletes_old_events_nothing_needs(engine, db_url, tmp_path, history):
    ids, gone = history

    done = run_cli(db_url, tmp_path, "prune-webhooks", "--older-than", "90d")

    assert done.returncode == 0, done.stderr
    assert _remaining(engine) == set(ids) - gone
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "checked 5/5"  # progress: 5 old and not linked by booking_id, 1 of them named in history
    assert lines[-1].startswith("deleted 4 webhook events received before ")
    assert "(1 ignored, 1 invalid, 1 processed, 1 rejected); kept 2 that bookings refer to and 2 still to be " \
           "processed" in lines[-1]
    assert "Traceback" not in done.stderr


def test_prune_webhooks_dry_run_and_rejected_only(engine, db_url, tmp_path, history):
    ids, _gone = history

    dry = run_cli(db_url, tmp_path, "prune-webhooks", "--older-than", "13w", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.strip().splitlines()[-1].startswith("would delete 4 ")
    assert _remaining(engine) == set(ids)

    rejected = run_cli(db_url, tmp_path, "prune-webhooks", "--older-than", "2160h", "--rejected-only")
    assert rejected.returncode == 0, rejected.stderr
    assert _remaining(engine) == set(ids) - {"old_rejected", "old_invalid"}


@pytest.mark.parametrize("args,fragment", [
    (("--older-than", "ninety days"), "not a duration: 'ninety days'"),
    (("--older-than", "90"), "not a duration: '90'"),
    (("--older-than=-5d",), "not a duration"),
    (("--older-than", "0d"), "too short"),
    (("--older-than", "3d"), "keep webhook events at least 7d"),
    (("--older-than", "١٢d"), "not a duration"),
    ((), "the following arguments are required: --older-than"),
])
def test_prune_webhooks_bad_input_is_one_line_exit_2(engine, db_url, tmp_path, history, args, fragment):
    ids, _gone = history

    done = run_cli(db_url, tmp_path, "prune-webhooks", *args)

    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and fragment in done.stderr, done.stderr
    assert _remaining(engine) == set(ids)


def test_pruning_walks_batches_past_the_rows_it_keeps(engine):
    """Small batches with kept (history-named) rows among them: every prunable row still goes."""
    with session_scope(engine) as session:
        booking = factories.make_booking(session, "CONFIRMED")
        named = [_event(session, "ignored", 200, name=f"named-{n}") for n in range(5)]
        for event_id in named:
            session.add(BookingHistory(booking_id=booking.id, from_status=None, to_status="CONFIRMED",
                                       cause="webhook_reprocessed", actor="admin:test",
                                       details={"webhook_event_id": event_id}))
        for n in range(7):
            _event(session, "rejected", 200, name=f"loose-{n}")
    calls = []

    summary = prune_webhook_events(engine, older_than=timedelta(days=90), batch_size=2,
                                   progress=lambda done, total: calls.append((done, total)))

    assert summary.deleted == 7 and summary.kept_for_bookings == 5
    assert _remaining(engine) == {f"named-{n}" for n in range(5)}
    assert calls[-1] == (12, 12) and len(calls) == 6


# ---------------------------------------------------------------- the worker
def test_the_worker_prunes_old_rejected_webhooks_only(engine, db_url, tmp_path, history):
    ids, _gone = history
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SANDBOX"}}
    env.update(DATABASE_URL=db_url, SANDBOX="true", PYTHONPATH=str(REPO_ROOT), WORKER_POLL_SECONDS="0.1",
               WEBHOOK_REJECTED_RETENTION_DAYS="30", RECONCILE_EVERY_SECONDS="1000000000",
               STRIPE_API_BASE="http://127.0.0.1:9", CALENDLY_API_BASE="http://127.0.0.1:9")
    worker = Process([sys.executable, "-m", "core", "worker"], env, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while "old_rejected" in _remaining(engine) and time.monotonic() < deadline:
            assert worker.proc.poll() is None, worker.output()
            time.sleep(0.1)
    finally:
        worker.stop()

    # Rejected/invalid older than 30 days went (the 89-day-old one too); everything else stays.
    assert _remaining(engine) == set(ids) - {"old_rejected", "old_invalid", "young_rejected"}
    assert "pruned 3 rejected webhook events" in worker.output()
    assert "Traceback" not in worker.output()


def test_pruning_counts_match_the_rows(engine, history):
    ids, gone = history
    with session_scope(engine, read_only=True) as session:
        before = session.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()

    summary = prune_webhook_events(engine, older_than=timedelta(days=90))

    assert summary.deleted == len(gone) == before - len(_remaining(engine))
    assert (summary.kept_for_bookings, summary.kept_unfinished) == (2, 2)
