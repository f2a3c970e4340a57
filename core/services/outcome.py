from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """What a webhook did: 'processed', 'ignored' (nothing to do), 'unmatched' (kept for review) or
    'stray' (a Calendly slot that names a booking but is not its slot; refused, see slot_binding)."""

    outcome: str
    booking_id: str | None = None
    note: str = ""
