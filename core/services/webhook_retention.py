"""How long stored webhook events are kept, and the pruning that enforces it.

An event goes once it is older than the retention age, except when something still needs it:
- it belongs to a booking (`booking_id` set): it is part of that booking's history;
- a booking history row names it (`details["webhook_event_id"]`, e.g. an admin's reprocess);
- it has not finished (`received` or `failed`): it is still to be retried or replayed, and the
  booking page finds a failed one by its body.
Everything else — finished deliveries (processed, ignored, …) no booking kept, and rejected or
invalid ones — is deleted in batches. The CLI prunes all of those (`python -m core prune-webhooks`);
the worker prunes rejected and invalid ones (anyone can send those) on its own schedule.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, select

from core.db import session_scope
from core.models import BookingHistory, WebhookEvent, utcnow
from core.services.webhook_ingest import FINISHED
from core.states import WebhookOutcome

UNAUTHENTICATED_OUTCOMES = (WebhookOutcome.REJECTED, WebhookOutcome.INVALID)
PRUNABLE_OUTCOMES = (*FINISHED, *UNAUTHENTICATED_OUTCOMES)
HISTORY_REFERENCE_KEY = "webhook_event_id"
BATCH_SIZE = 500


@dataclass
class PruneSummary:
    cutoff: datetime
    deleted: int = 0
    kept_for_bookings: int = 0  # old enough, but a booking or its history refers to them
    kept_unfinished: int = 0  # old enough, but still received/failed
    by_outcome: dict[str, int] = field(default_factory=dict)

    def line(self, *, dry_run: bool = False) -> str:
        verb = "would delete" if dry_run else "deleted"
        outcomes = ", ".join(f"{count} {name}" for name, count in sorted(self.by_outcome.items())) or "none"
        return (f"{verb} {self.deleted} webhook events received before {self.cutoff:%Y-%m-%d %H:%M} UTC "
                f"({outcomes}); kept {self.kept_for_bookings} that bookings refer to and "
                f"{self.kept_unfinished} still to be processed")


def referenced_event_ids(engine: Engine) -> set[int]:
    """Webhook event ids that booking history rows name (read once per prune run)."""
    reference = BookingHistory.details[HISTORY_REFERENCE_KEY].as_string()
    with session_scope(engine, read_only=True) as session:
        values = session.execute(select(reference).where(reference.is_not(None))).scalars()
        return {int(value) for value in values if str(value).isdigit()}


def prune_webhook_events(engine: Engine, *, older_than: timedelta,
                         outcomes: Collection[str] = PRUNABLE_OUTCOMES, batch_size: int = BATCH_SIZE,
                         dry_run: bool = False, progress: Callable[[int, int], None] | None = None,
                         now: datetime | None = None) -> PruneSummary:
    """Delete the stored webhook events older than `older_than` that nothing needs (see module doc).

    Batches of `batch_size`, each its own transaction, walked by id so a kept row is never read
    twice; `progress(done, total)` is called after each batch.
    """
    outcomes = tuple(o for o in outcomes if o in PRUNABLE_OUTCOMES)
    summary = PruneSummary(cutoff=(now or utcnow()) - older_than)
    old = WebhookEvent.received_at < summary.cutoff
    with session_scope(engine, read_only=True) as session:
        summary.kept_unfinished = session.execute(select(func.count()).select_from(WebhookEvent).where(
            old, WebhookEvent.outcome.not_in(PRUNABLE_OUTCOMES))).scalar_one()
        linked = session.execute(select(func.count()).select_from(WebhookEvent).where(
            old, WebhookEvent.outcome.in_(outcomes), WebhookEvent.booking_id.is_not(None))).scalar_one()
        total = session.execute(select(func.count()).select_from(WebhookEvent).where(
            old, WebhookEvent.outcome.in_(outcomes), WebhookEvent.booking_id.is_(None))).scalar_one()
    referenced = referenced_event_ids(engine)
    prunable = (old, WebhookEvent.outcome.in_(outcomes), WebhookEvent.booking_id.is_(None))
    summary.kept_for_bookings = linked
    last_id, seen = 0, 0
    while True:
        with session_scope(engine, read_only=dry_run) as session:
            rows = session.execute(select(WebhookEvent.id, WebhookEvent.outcome).where(
                *prunable, WebhookEvent.id > last_id).order_by(WebhookEvent.id).limit(batch_size)).all()
            if not rows:
                break
            last_id = rows[-1].id
            seen += len(rows)
            doomed = [row for row in rows if row.id not in referenced]
            summary.kept_for_bookings += len(rows) - len(doomed)
            if doomed and not dry_run:
                # The same conditions again: a row linked to a booking meanwhile stays.
                gone = session.execute(delete(WebhookEvent).where(
                    WebhookEvent.id.in_([row.id for row in doomed]), *prunable)
                    .returning(WebhookEvent.outcome).execution_options(synchronize_session=False)).scalars().all()
            else:
                gone = [row.outcome for row in doomed]
            summary.deleted += len(gone)
            for outcome in gone:
                summary.by_outcome[outcome] = summary.by_outcome.get(outcome, 0) + 1
        if progress:
            progress(min(seen, total), total)
    return summary


def prune_rejected_webhooks(engine: Engine, *, older_than: timedelta) -> int:
    """The worker's part: rejected and invalid deliveries older than the configured age."""
    return prune_webhook_events(engine, older_than=older_than, outcomes=UNAUTHENTICATED_OUTCOMES).deleted
