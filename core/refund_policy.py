"""Refund policy: which policy a session type has (`policy_for`), and pure functions on it.

Canceled at least `full_refund_hours` before the start: everything back. Inside that window: a
percentage. From the start on: nothing. A builder (host) canceling always refunds in full — the
client did nothing wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.config import get_settings

if TYPE_CHECKING:
    from core.models import SessionType


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    full_refund_hours: int
    partial_percent: int

    def __post_init__(self) -> None:
        if self.full_refund_hours < 0:
            raise ValueError("full_refund_hours cannot be negative")
        if not 0 <= self.partial_percent <= 100:
            raise ValueError("partial_percent must be between 0 and 100")


@dataclass(frozen=True, slots=True)
class RefundDecision:
    amount_cents: int
    rule: str  # "full", "partial", "none", "host_canceled", "not_scheduled"

    def explain(self, policy: RefundPolicy) -> str:
        return {
            "full": f"canceled at least {policy.full_refund_hours} h before the start: full refund",
            "partial": f"canceled less than {policy.full_refund_hours} h before the start: "
            f"{policy.partial_percent}% refund",
            "none": "canceled after the start: no refund",
            "host_canceled": "the builder canceled: full refund",
            "not_scheduled": "no session time was set: full refund",
        }[self.rule]


def decide_refund(
    policy: RefundPolicy,
    paid_cents: int,
    start_time: datetime | None,
    canceled_at: datetime,
    *,
    canceled_by_host: bool = False,
) -> RefundDecision:
    """How much of `paid_cents` goes back for a cancellation at `canceled_at` (aware datetimes)."""
    if paid_cents <= 0:
        return RefundDecision(0, "none")
    if canceled_by_host:
        return RefundDecision(paid_cents, "host_canceled")
    if start_time is None:
        return RefundDecision(paid_cents, "not_scheduled")
    if canceled_at >= start_time:
        return RefundDecision(0, "none")
    if start_time - canceled_at >= timedelta(hours=policy.full_refund_hours):
        return RefundDecision(paid_cents, "full")
    # Integer arithmetic, rounded down: never refund a fraction of a minor unit more than promised.
    return RefundDecision(paid_cents * policy.partial_percent // 100, "partial")


def policy_for(session_type: SessionType) -> RefundPolicy:
    """The session type's own policy, each part falling back to the marketplace default (settings)."""
    settings = get_settings()
    return RefundPolicy(
        full_refund_hours=session_type.refund_full_hours if session_type.refund_full_hours is not None
        else settings.refund_full_hours,
        partial_percent=session_type.refund_partial_percent if session_type.refund_partial_percent is not None
        else settings.refund_partial_percent,
    )
