"""What a handler did with what a provider told us: the webhook event's outcome and why."""
from __future__ import annotations

from dataclasses import dataclass

from core.states import WebhookOutcome


@dataclass(frozen=True)
class Outcome:
    """`outcome` is processed, ignored (nothing to do), unmatched (kept for review) or stray (a
    Calendly slot that names a booking but is not its slot; refused, see slot_binding); see
    `WebhookOutcome`."""

    outcome: WebhookOutcome
    booking_id: str | None = None
    note: str = ""
