"""The `worker` process: drains the outbox, sends payment reminders, ends overdue holds (asking
Stripe first), completes past sessions and prunes throttle counters at every tick; reconciles with
Stripe and Calendly, checks each builder's Calendly webhook subscription (recreating a disabled or
missing one and reconciling that builder's gap), and prunes rejected webhook deliveries, on their
own schedules.

Several workers may run at once: each claim takes rows with SKIP LOCKED (PostgreSQL) or under
SQLite's single write lock, so every entry runs once at a time.
"""
from __future__ import annotations

import logging
import signal
import threading
import time

from sqlalchemy import Engine

from core.config import get_settings
from core.db import get_engine, session_scope
from core.services import booking_service, holds, outbox, throttle
from core.services.side_effects import EXECUTORS
from core.stripe import stripe_gateway

log = logging.getLogger("worker")


def drain_outbox(engine: Engine, *, only_ids=None, limit: int = 50) -> outbox.RunSummary:
    return outbox.run_due(engine, EXECUTORS, limit=limit, only_ids=only_ids)


def tick(engine: Engine, *, now=None) -> dict[str, int]:
    """One round of everything the worker does; each part survives the others' failures.

    `now` (default: the clock) is when the hold and reminder rules look from; tests pass it to
    walk through days of ticks."""
    counts: dict[str, int] = {}
    jobs = {
        "outbox": lambda: drain_outbox(engine).total,
        "reminders": lambda: holds.send_payment_reminders(engine, now=now),
        "expired": lambda: holds.expire_overdue_holds(engine, stripe_gateway(), now=now),
        "completed": lambda: _complete(engine),
        "throttles": lambda: throttle.prune(engine, now),
    }
    for name, job in jobs.items():
        try:
            counts[name] = job()
        except Exception:
            log.exception("worker job %s failed; it runs again next tick", name)
            counts[name] = -1
    return counts


def _complete(engine: Engine) -> int:
    with session_scope(engine) as session:
        return booking_service.complete_past_sessions(session)


def prune_rejected_webhooks(engine: Engine) -> int:
    """Rejected and invalid deliveries older than WEBHOOK_REJECTED_RETENTION_DAYS (anyone can send them)."""
    from datetime import timedelta

    from core.services.webhook_retention import prune_rejected_webhooks as prune
    return prune(engine, older_than=timedelta(days=get_settings().webhook_rejected_retention_days))


def check_subscriptions(engine: Engine) -> dict[str, int]:
    """Builders' Calendly webhook subscriptions not checked for SUBSCRIPTION_CHECK_MINUTES; a
    problem found (and what was done about it) is logged as a warning."""
    from core.calendly.subscriptions import check_all

    counts = check_all(engine)
    troubled = {outcome: n for outcome, n in counts.items() if outcome not in ("active", "taken", "created")}
    if troubled:
        log.warning("webhook subscriptions checked: %s", counts)
    elif counts:
        log.info("webhook subscriptions checked: %s", counts)
    return counts


def run_forever(stop: threading.Event | None = None) -> None:
    settings = get_settings()
    engine = get_engine()
    stop = stop or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("worker started (poll every %.1fs)", settings.worker_poll_seconds)
    last_reconcile = 0.0
    last_prune = float("-inf")  # at start-up, then every WEBHOOK_PRUNE_EVERY_SECONDS (monotonic may start near 0)
    # Asked every minute (or more often if checks are due more often): check_all itself takes only
    # the builders whose check is due, so restarts and several workers do not check more often.
    last_subscription_check = float("-inf")
    subscription_check_every = min(60.0, settings.subscription_check_minutes * 60.0)
    while not stop.is_set():
        counts = tick(engine)
        if any(value for value in counts.values()):
            log.info("worker tick: %s", counts)
        if time.monotonic() - last_reconcile >= settings.reconcile_every_seconds:
            last_reconcile = time.monotonic()
            try:
                from core.services.reconcile import reconcile
                log.info("reconcile: %s", reconcile(engine))
            except Exception:
                log.exception("reconcile failed; it runs again later")
        if time.monotonic() - last_subscription_check >= subscription_check_every:
            last_subscription_check = time.monotonic()
            try:
                check_subscriptions(engine)
            except Exception:
                log.exception("checking webhook subscriptions failed; it runs again later")
        if time.monotonic() - last_prune >= settings.webhook_prune_every_seconds:
            last_prune = time.monotonic()
            try:
                if pruned := prune_rejected_webhooks(engine):
                    log.info("pruned %d rejected webhook events", pruned)
            except Exception:
                log.exception("pruning webhook events failed; it runs again later")
        stop.wait(settings.worker_poll_seconds)
