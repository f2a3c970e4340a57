"""The outbox: side effects written in the state change's transaction, carried out after commit.

Entries are claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on
SQLite), so several workers never run the same entry at once. A crash mid-effect leaves the lease
to expire and the entry is retried with the same idempotency key, which makes the retry safe.
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.db import insert_ignore, session_scope
from core.keys import Effect, effect_key, outbox_key
from core.errors import DomainError, NotFound
from core.models import OutboxEntry, utcnow
from core.states import OutboxKind, OutboxStatus

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 12  # with exponential backoff capped at an hour: about a day of retrying


class PermanentFailure(Exception):
    """The provider refused the effect for good (e.g. 4xx): retrying cannot help."""


class RetryLater(Exception):
    """A transient failure (5xx, 429, timeout): try again after backoff."""


def enqueue(
    session: Session, kind: OutboxKind, idempotency_key: str, payload: dict[str, Any],
    booking_id: str | None = None,
) -> int | None:
    """Add an entry unless one with this key exists; returns the new id or None (duplicate)."""
    return insert_ignore(
        session, OutboxEntry.__table__,
        {"kind": kind, "payload": payload, "booking_id": booking_id,
         # Keys built from outside input (an email, a URI, a provider's id) are hashed to fit.
         "idempotency_key": outbox_key(idempotency_key),
         "status": OutboxStatus.PENDING, "attempts": 0, "next_attempt_at": utcnow(), "created_at": utcnow()},
        ["idempotency_key"],
    )


def cancel_calendly_event_later(session: Session, *, booking_id: str, event_uri: str,
                                builder_id: int | None, reason: str) -> int | None:
    """Cancel a Calendly event from the outbox with the token of `builder_id`, the builder who hosts
    it (None when no builder of ours does: the entry then fails at once, for an admin to see).
    One entry per event, whoever asks for it (expiry, a cancellation, a stray slot)."""
    return enqueue(session, OutboxKind.CALENDLY_CANCEL, effect_key(Effect.CALENDLY_CANCEL, event_uri),
                   {"builder_id": builder_id, "event_uri": event_uri, "reason": reason}, booking_id=booking_id)


# What a client whose slot is refused reads in Calendly's cancellation email.
STRAY_SLOT_REASON = ("This time was booked with a link that was not for it; please book again through "
                     "the builder's profile.")


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 3600))


def claim(engine: Engine, *, limit: int = 20, only_ids: Iterable[int] | None = None) -> list[OutboxEntry]:
    """Take up to `limit` due entries for this worker by pushing their next try past a lease."""
    now = utcnow()
    with session_scope(engine) as session:
        query = (
            select(OutboxEntry)
            .where(OutboxEntry.status == OutboxStatus.PENDING, OutboxEntry.next_attempt_at <= now)
            .order_by(OutboxEntry.next_attempt_at, OutboxEntry.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if only_ids is not None:
            query = query.where(OutboxEntry.id.in_(list(only_ids)))
        entries = list(session.execute(query).scalars())
        for entry in entries:
            entry.attempts += 1
            entry.next_attempt_at = now + LEASE
        return entries


Executor = Callable[[Engine, OutboxEntry], None]


@dataclass
class RunSummary:
    done: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.done + self.retried + self.failed


def run_entry(engine: Engine, entry: OutboxEntry, executors: dict[OutboxKind, Executor]) -> OutboxStatus:
    """Carry out one claimed entry and record the outcome; returns its status afterwards: done,
    pending (to be retried after backoff) or failed (for good)."""
    executor = executors.get(entry.kind)
    try:
        if executor is None:
            raise PermanentFailure(f"no executor for outbox kind {entry.kind!r}")
        executor(engine, entry)
    except PermanentFailure as error:
        _finish(engine, entry.id, status=OutboxStatus.FAILED, error=str(error))
        log.warning("outbox %s %s failed for good: %s", entry.id, entry.kind, error)
        return OutboxStatus.FAILED
    except Exception as error:  # transient by default: better one retry too many than a lost refund
        detail = str(error) if isinstance(error, RetryLater) else traceback.format_exc(limit=5)
        if entry.attempts >= MAX_ATTEMPTS:
            _finish(engine, entry.id, status=OutboxStatus.FAILED,
                    error=f"gave up after {entry.attempts} attempts: {detail}")
            return OutboxStatus.FAILED
        _finish(engine, entry.id, status=OutboxStatus.PENDING, error=detail, retry_in=backoff(entry.attempts))
        log.info("outbox %s %s will retry: %s", entry.id, entry.kind, error)
        return OutboxStatus.PENDING
    _finish(engine, entry.id, status=OutboxStatus.DONE)
    return OutboxStatus.DONE


def _finish(engine: Engine, entry_id: int, *, status: OutboxStatus, error: str | None = None,
            retry_in: timedelta | None = None) -> None:
    with session_scope(engine) as session:
        entry = session.get(OutboxEntry, entry_id)
        entry.status = status
        entry.last_error = error
        if status == OutboxStatus.DONE:
            entry.done_at = utcnow()
        if retry_in is not None:
            entry.next_attempt_at = utcnow() + retry_in


# Which RunSummary count an entry's status after its run adds to.
RUN_SUMMARY_FIELDS = {OutboxStatus.DONE: "done", OutboxStatus.PENDING: "retried",
                      OutboxStatus.FAILED: "failed"}


def run_due(engine: Engine, executors: dict[OutboxKind, Executor], *, limit: int = 50,
            only_ids: Iterable[int] | None = None) -> RunSummary:
    summary = RunSummary()
    for entry in claim(engine, limit=limit, only_ids=only_ids):
        field = RUN_SUMMARY_FIELDS[run_entry(engine, entry, executors)]
        setattr(summary, field, getattr(summary, field) + 1)
    return summary


def retry_now(session: Session, entry_id: int) -> OutboxEntry:
    """An admin's 'retry': a failed (or waiting) entry becomes due again."""
    entry = session.execute(
        select(OutboxEntry).where(OutboxEntry.id == entry_id).with_for_update()
    ).scalar_one_or_none()
    if entry is None:
        raise NotFound(f"no outbox entry {entry_id}")
    if entry.status == OutboxStatus.DONE:
        raise DomainError(f"outbox entry {entry_id} is already done")
    entry.status = OutboxStatus.PENDING
    entry.next_attempt_at = utcnow()
    return entry
