"""A process killed between Stripe's answer and our commit: the retry replays the same
idempotency key, so Stripe holds one refund (one Checkout Session) and our ledger one row.

The doomed process is a fresh interpreter running the real code on the live system's database
and stand-ins, with the step right after the Stripe call replaced by SIGKILL to itself.
"""
from __future__ import annotations

import signal
import textwrap

import pytest
from sqlalchemy import update

from core.db import session_scope
from core.models import Booking, OutboxEntry, utcnow
from core.worker import drain_outbox
from tests.reliability_helpers import delivery, run_script, stand_in_refunds, stand_in_sessions
from tests.webhook_helpers import outbox_entries, refunds, settle
from webhook_service import outbox_kick

KILL_ME = "import os, signal\ndef killed(*args, **kwargs):\n    print('stripe answered; killed', flush=True)\n" \
          "    os.kill(os.getpid(), signal.SIGKILL)\n"


@pytest.fixture
def no_kick(monkeypatch):
    """The web service in this process does not drain after requests: only the test does."""
    monkeypatch.setattr(outbox_kick, "_drain", lambda engine: None)


def _entry(engine, entry_id: int) -> OutboxEntry:
    with session_scope(engine, read_only=True) as session:
        return session.get(OutboxEntry, entry_id)


@pytest.mark.parametrize("stripe_webhooks", ["off", "on"])
def test_a_worker_killed_after_stripe_refunded_leaves_one_refund_after_the_retry(live, tmp_path, no_kick,
                                                                                stripe_webhooks):
    """With webhooks on, Stripe's charge.refunded reaches us before the killed worker would have
    recorded the answer: its refund sync fills our row in, and the retry then sends nothing."""
    booking_id = live.book()
    live.pay(booking_id)
    settle(live)
    intent = live.booking(booking_id)["stripe_payment_intent_id"]
    delivery(live, stripe="sync" if stripe_webhooks == "on" else "off")
    answer = live.admin("POST", f"/api/bookings/{booking_id}/refund", json={"amount_cents": None})
    assert answer.status_code == 202, answer.text
    [entry] = outbox_entries(live.engine, booking_id, "stripe_refund")

    killed = run_script(live, tmp_path, "refund_then_die", KILL_ME + textwrap.dedent(f"""
        from core.db import get_engine
        from core.services import payment_events
        from core.worker import drain_outbox
        payment_events.apply_refund_object = killed  # what runs right after Stripe's answer
        drain_outbox(get_engine(), only_ids=[{entry.id}])
        print("not killed")
    """))

    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert "stripe answered; killed" in killed.stdout
    [at_stripe] = stand_in_refunds(live, intent)
    assert live.stripe_state()["idempotency_keys"][entry.idempotency_key] == 1
    leased = _entry(live.engine, entry.id)
    assert (leased.status, leased.attempts) == ("pending", 1) and leased.next_attempt_at > utcnow()
    [ours] = refunds(live.engine, booking_id)
    assert (ours.status, ours.stripe_refund_id) == ("requested", None)  # the answer was lost
    assert drain_outbox(live.engine, only_ids=[entry.id]).total == 0  # the dead worker's lease holds it
    if stripe_webhooks == "on":
        [sync] = outbox_entries(live.engine, booking_id, "stripe_sync_refunds")
        assert drain_outbox(live.engine, only_ids=[sync.id]).done == 1
        [ours] = refunds(live.engine, booking_id)
        assert (ours.status, ours.stripe_refund_id) == ("succeeded", at_stripe["id"])

    with session_scope(live.engine) as session:  # the lease runs out
        session.execute(update(OutboxEntry).where(OutboxEntry.id == entry.id).values(next_attempt_at=utcnow()))
    settle(live)

    assert [r["id"] for r in stand_in_refunds(live, intent)] == [at_stripe["id"]]
    [ours] = refunds(live.engine, booking_id)
    assert (ours.status, ours.stripe_refund_id, ours.amount_cents) == ("succeeded", at_stripe["id"], 4900)
    done = _entry(live.engine, entry.id)
    assert (done.status, done.attempts, done.last_error) == ("done", 2, None)
    sent = live.stripe_state()["idempotency_keys"][entry.idempotency_key]
    assert sent == (2 if stripe_webhooks == "off" else 1)  # the retry replays the same key, or needs none
    data = live.booking(booking_id)
    assert (data["payment_status"], data["refunded_cents"]) == ("refunded", 4900)


def test_a_web_process_killed_after_stripe_created_the_checkout_gets_the_same_session_next_time(live, tmp_path,
                                                                                                 no_kick):
    booking_id = live.book()

    killed = run_script(live, tmp_path, "checkout_then_die", KILL_ME + textwrap.dedent(f"""
        from core.db import get_engine
        from core.services import checkout_service
        from core.stripe.gateway import StripeGateway, stripe_client
        client = stripe_client()
        create = client.v1.checkout.sessions.create
        def create_then_die(*args, **kwargs):
            print("session", create(*args, **kwargs).id, flush=True)
            killed()
        client.v1.checkout.sessions.create = create_then_die
        checkout_service.open_checkout(get_engine(), "{booking_id}", StripeGateway(client))
        print("not killed")
    """))

    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    first_id = killed.stdout.split("session ", 1)[1].split()[0]
    assert [s["id"] for s in stand_in_sessions(live, booking_id)] == [first_id]
    with session_scope(live.engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        assert booking.stripe_checkout_session_id is None and booking.checkout_expires_at is not None

    again = live.checkout(booking_id)  # the client reloads the payment page

    assert again == first_id
    assert [s["id"] for s in stand_in_sessions(live, booking_id)] == [first_id]
    [key] = [k for k in live.stripe_state()["idempotency_keys"] if k.startswith(f"checkout:{booking_id}:")]
    assert live.stripe_state()["idempotency_keys"][key] == 2
    assert live.booking(booking_id)["stripe_checkout_session_id"] == first_id
    assert live.checkout(booking_id) == first_id
    live.stripe_sandbox("POST", f"/checkout/{first_id}/pay")
    assert live.status(booking_id) == "CONFIRMED"
    assert outbox_entries(live.engine, booking_id, "stripe_expire_checkout") == []
