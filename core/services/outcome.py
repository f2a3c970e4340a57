from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """What a webhook did: 'processed', 'ignored' (nothing to do) or 'unmatched' (kept for review)."""

    outcome: str
    booking_id: str | None = None
    note: str = ""
