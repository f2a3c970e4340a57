"""Several processes at once, as in production: four single-worker uvicorn processes of the web
service (separate processes, not `--workers 4`: see the Nagle trap in reference/streamlit.md) on
the test's database, talking to the stand-ins this test serves on free ports; and two workers
draining one outbox.

- 20 simultaneous deliveries of one event spread over the 4 processes: one state change.
- 20 simultaneous payment-page loads over the 4 processes: one Checkout Session at Stripe.
- 20 simultaneous deliveries of a paid booking's cancellation: one refund at Stripe, once the
  processes' after-request drains and ours are done.
- 500 refunds in one outbox, drained by 2 `python -m core worker` processes, or by 2 threads with
  engines of their own: each refund reaches Stripe exactly once (its idempotency key seen once).

These run on SQLite as well as PostgreSQL: the embedded default runs `web` and `worker` as separate
processes on one SQLite file (Procfile), so it must be exactly-once there too.
"""
from __future__ import annotations

import ast
import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from core.db import make_engine, session_scope
from core.models import OutboxEntry, Payment, Refund
from core.services import outbox
from core.services.booking_access import payment_path
from core.services.outbox import enqueue
from core.services.side_effects import EXECUTORS
from tests.reliability_helpers import (
    PYTHON, Process, all_at_once, paid_then_quiet, calendly_envelope, deliver, delivery, new_items,
    one_processed_rest_duplicate, rows_per_key, snapshot, stand_in_refunds, stand_in_sessions,
    start_web, stripe_event, system_env, wait_healthy,
)
from tests.webhook_helpers import future_slot, payments, refunds, settle

PROCESSES = 4
DELIVERIES = 20
OUTBOX_SIZE = 500


@pytest.fixture
def cluster(live, tmp_path):
    """Four web processes of this live system; yields their base URLs."""
    started = [start_web(live, tmp_path, index) for index in range(PROCESSES)]
    try:
        for url, process in started:
            wait_healthy(url, process)
        yield [url for url, _process in started]
    finally:
        for _url, process in started:
            process.stop()
    for _url, process in started:  # a process that logged a failure failed the test
        assert "Traceback" not in process.output(), process.output()


def _causes(snap: dict) -> list[str]:
    return [cause for cause, _from, _to in snap["history"]]


@pytest.mark.slow
def test_one_event_delivered_twenty_times_to_four_processes_changes_the_state_once(live, cluster):
    booking_id, url = live.start_booking(live.signed_in_client())
    delivery(live, calendly="off", stripe="off")
    answer = live.pick_slot(url, future_slot(days=3, hour=11))
    envelope = calendly_envelope(live, "invitee.created", answer["invitee"])
    before = snapshot(live.engine, booking_id)

    answers = deliver(live, "calendly", envelope, times=DELIVERIES, concurrent=True, targets=cluster)
    settle(live)

    assert one_processed_rest_duplicate(answers), answers
    after = snapshot(live.engine, booking_id)
    assert after["booking"][0] == "PENDING_PAYMENT"
    assert after["booking"][1] == answer["invitee"]
    assert new_items(_causes(before), _causes(after)) == Counter({"invitee_created": 1})
    assert [kind for kind, _key, _status in after["outbox"]] == ["notify"]
    assert rows_per_key(live.engine, f"calendly:invitee.created:{answer['invitee']}") == 1


@pytest.mark.slow
def test_twenty_payment_page_loads_on_four_processes_open_one_checkout_session(live, cluster):
    booking_id = live.book()
    delivery(live, stripe="off")

    pages = all_at_once(DELIVERIES, lambda i: requests.get(
        f"{cluster[i % PROCESSES]}{payment_path(booking_id)}", allow_redirects=False, timeout=60))

    assert [page.status_code for page in pages] == [303] * DELIVERIES
    [location] = {page.headers["location"] for page in pages}
    [session] = stand_in_sessions(live, booking_id)
    assert location == session["url"] and session["status"] == "open"
    assert live.booking(booking_id)["stripe_checkout_session_id"] == session["id"]
    keys = [k for k in live.stripe_state()["idempotency_keys"] if k.startswith(f"checkout:{booking_id}:")]
    assert len(keys) == 1, keys  # every process asked with the same key
    causes = _causes(snapshot(live.engine, booking_id))
    assert causes.count("checkout_created") == 1
    assert not [e for e in snapshot(live.engine, booking_id)["outbox"] if e[0] == "stripe_expire_checkout"]

    # ... and the payment, delivered 20 times over the 4 processes, confirms it once.
    live.stripe_sandbox("POST", f"/checkout/{session['id']}/pay")
    event = stripe_event(live, "checkout.session.completed", id=session["id"])
    answers = deliver(live, "stripe", event, times=DELIVERIES, concurrent=True, targets=cluster)
    settle(live)

    assert one_processed_rest_duplicate(answers), answers
    assert live.status(booking_id) == "CONFIRMED"
    [payment] = payments(live.engine, booking_id)
    assert payment.amount_cents == 4900
    causes = _causes(snapshot(live.engine, booking_id))
    assert causes.count("payment_confirmed") == 1 and causes.count("payment_received") == 1
    assert rows_per_key(live.engine, f"stripe:{event['id']}") == 1


@pytest.mark.slow
def test_twenty_cancellations_of_a_paid_booking_on_four_processes_refund_once(live, cluster):
    booking_id, answer, intent = paid_then_quiet(live, future_slot(days=4, hour=9))
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    envelope = calendly_envelope(live, "invitee.canceled", answer["invitee"])

    # Each process that processes it drains the outbox after answering: drains race each other.
    answers = deliver(live, "calendly", envelope, times=DELIVERIES, concurrent=True, targets=cluster)
    settle(live)

    assert one_processed_rest_duplicate(answers), answers
    data = live.booking(booking_id)
    assert data["status"] == "CANCELED" and data["payment_status"] == "refunded"
    [refund] = refunds(live.engine, booking_id)
    assert (refund.amount_cents, refund.status) == (4900, "succeeded")
    [at_stripe] = stand_in_refunds(live, intent)
    assert (at_stripe["id"], at_stripe["amount"]) == (refund.stripe_refund_id, 4900)
    assert live.stripe_state()["idempotency_keys"][f"refund:{booking_id}:{refund.id}"] == 1  # sent once
    causes = _causes(snapshot(live.engine, booking_id))
    assert causes.count("canceled") == 1 and causes.count("refund_requested") == 1


# ---------------------------------------------------------------- one outbox, two workers
def _paid_booking_with_refunds(live, count: int) -> tuple[str, str, list[int]]:
    """A paid booking whose outbox holds `count` one-cent refunds (as admin refunds would be)."""
    booking_id = live.book()
    live.pay(booking_id)
    settle(live)
    delivery(live, calendly="off", stripe="off")  # no charge.refunded echoes into the outbox
    with session_scope(live.engine) as session:
        payment = session.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one()
        entry_ids = []
        for _ in range(count):
            refund = Refund(payment_id=payment.id, booking_id=booking_id, amount_cents=1, currency="USD",
                            status="requested", reason="reliability test", rule="manual", issued_by="test")
            session.add(refund)
            session.flush()
            entry_ids.append(enqueue(session, "stripe_refund", f"refund:{booking_id}:{refund.id}",
                                     {"refund_id": refund.id}, booking_id=booking_id))
        intent = payment.stripe_payment_intent_id
    return booking_id, intent, entry_ids


def _pending(engine) -> int:
    with session_scope(engine, read_only=True) as session:
        return session.execute(select(func.count()).select_from(OutboxEntry)
                               .where(OutboxEntry.status == "pending")).scalar_one()


def _assert_each_refund_sent_once(live, booking_id: str, intent: str, entry_ids: list[int]) -> None:
    with session_scope(live.engine, read_only=True) as session:
        entries = session.execute(select(OutboxEntry).where(OutboxEntry.id.in_(entry_ids))).scalars().all()
        assert [(e.status, e.attempts) for e in entries] == [("done", 1)] * len(entry_ids)
        ours = session.execute(select(Refund).where(Refund.booking_id == booking_id)).scalars().all()
        keys = [e.idempotency_key for e in entries]
    assert len(ours) == len(entry_ids) and all(r.status == "succeeded" for r in ours)
    at_stripe = stand_in_refunds(live, intent)
    assert len(at_stripe) == len(entry_ids)
    assert sorted(r["id"] for r in at_stripe) == sorted(r.stripe_refund_id for r in ours)
    assert len({r.stripe_refund_id for r in ours}) == len(ours)
    seen = live.stripe_state()["idempotency_keys"]
    assert Counter(seen[key] for key in keys) == Counter({1: len(keys)}), "a refund was sent twice"
    assert live.booking(booking_id)["refunded_cents"] == len(entry_ids)


@pytest.mark.slow
def test_two_worker_processes_drain_five_hundred_refunds_each_exactly_once(live, tmp_path):
    booking_id, intent, entry_ids = _paid_booking_with_refunds(live, OUTBOX_SIZE)
    env = system_env(live, WORKER_POLL_SECONDS="0.05", RECONCILE_EVERY_SECONDS="1000000000")
    workers = [Process([PYTHON, "-m", "core", "worker"], env, tmp_path / f"worker-{i}.log") for i in range(2)]
    try:
        deadline = time.monotonic() + 150
        while _pending(live.engine) and time.monotonic() < deadline:
            assert all(w.proc.poll() is None for w in workers), [w.output() for w in workers]
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.stop()
    assert _pending(live.engine) == 0, "the workers did not drain the outbox in time"

    _assert_each_refund_sent_once(live, booking_id, intent, entry_ids)
    ran = [sum(ast.literal_eval(line.split("worker tick: ", 1)[1])["outbox"]
               for line in worker.output().splitlines() if "worker tick: " in line) for worker in workers]
    assert sum(ran) == OUTBOX_SIZE and all(ran), ran  # both took part, nothing ran twice
    for worker in workers:
        assert "Traceback" not in worker.output(), worker.output()


@pytest.mark.slow
def test_two_draining_threads_with_their_own_engines_run_each_entry_once(live):
    booking_id, intent, entry_ids = _paid_booking_with_refunds(live, OUTBOX_SIZE)
    executed: list[tuple[int, int]] = []
    lock = threading.Lock()

    def drain(index: int) -> int:
        engine = make_engine(live.settings.database_url)

        def counted_refund(engine_, entry):
            with lock:
                executed.append((index, entry.id))
            EXECUTORS["stripe_refund"](engine_, entry)

        executors = {**EXECUTORS, "stripe_refund": counted_refund}
        try:
            idle_rounds = 0
            while idle_rounds < 3:
                idle_rounds = 0 if outbox.run_due(engine, executors, limit=25).total else idle_rounds + 1
                time.sleep(0.01 * idle_rounds)
        finally:
            engine.dispose()
        return index

    all_at_once(2, drain)

    assert _pending(live.engine) == 0
    assert Counter(entry_id for _thread, entry_id in executed) == Counter({i: 1 for i in entry_ids})
    per_thread = Counter(thread for thread, _entry in executed)
    assert set(per_thread) == {0, 1}, per_thread  # both drained: the claims really competed
    _assert_each_refund_sent_once(live, booking_id, intent, entry_ids)
