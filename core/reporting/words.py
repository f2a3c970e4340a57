"""The dashboard's words, each defined once: the money terms (with the sentence a help tooltip
shows) and what a booking's history causes and actors read as.

Every page and CSV labels its figures with these, so "Net" on the overview, on a booking and on
the earnings page is the same number computed the same way.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    label: str
    help: str


PAID = Term("Paid", "Payments received from clients (succeeded; failed or abandoned checkouts are not counted).")
REFUNDED = Term("Refunded", "Refunds given back to clients: requested, pending or sent. Failed or canceled "
                            "refunds are not counted.")
NET = Term("Net", "Net = paid − refunded.")
PLATFORM_FEE = Term("Platform fee", "The platform's share of the net (a percentage; see the caption).")
PAYOUT = Term("Payout", "Payout = net − platform fee: what the builder keeps.")
PRICE = Term("Price", "The session's price when it was booked (a later price change does not alter it).")
REFUNDABLE = Term("Refundable", "What can still be refunded: paid − refunded.")


REFUND_STATUS_LABELS = {
    "requested": "Requested",
    "pending": "Pending at Stripe",
    "succeeded": "Sent",
    "failed": "Failed",
    "canceled": "Canceled",
    "requires_action": "Waiting on the client",
}


def refund_status_label(status: str) -> str:
    return REFUND_STATUS_LABELS.get(status) or status.replace("_", " ").capitalize()


# What each history cause means, in the words a builder or admin uses. A cause missing here (a
# new one) reads as its code with spaces: `cause_label` never shows nothing.
CAUSE_LABELS = {
    "booking_started": "Booking started",
    "invitee_created": "Time chosen in Calendly",
    "checkout_created": "Payment page created",
    "payment_processing": "Bank payment on its way",
    "payment_received": "Payment received",
    "payment_confirmed": "Payment received, session confirmed",
    "async_payment_failed": "Bank payment failed, slot released",
    "payment_not_settled_in_time": "Bank payment not settled in time, slot released",
    "checkout_expired": "Payment page expired, slot released",
    "hold_expired": "Not paid in time, slot released",
    "never_scheduled": "No time chosen, booking closed",
    "payment_link_resent": "Payment link sent again",
    "rescheduled": "Rescheduled in Calendly",
    "reschedule_old_invitee_canceled": "Old time released after rescheduling",
    "stray_invitee_released": "Extra Calendly slot released",
    "stray_slot_refused": "Calendly slot refused (not this booking's)",
    "slot_mismatch_found": "Slot found not matching its booking",
    "payment_mismatch": "Payment refused (not what this booking owes)",
    "no_show": "Marked as no-show",
    "canceled": "Canceled",
    "session_ended": "Session took place",
    "refund_requested": "Refund requested",
    "no_refund_due": "No refund due under the policy",
    "refund_imported": "Refunded in Stripe",
    "refund_pending": "Refund pending at Stripe",
    "refund_succeeded": "Refund sent",
    "refund_failed": "Refund failed",
    "refund_canceled": "Refund canceled",
    "refund_requires_action": "Refund waiting on the client",
    "dispute": "Payment disputed",
    "outbox_retry_requested": "Side effect retried by an admin",
    "webhook_reprocessed": "Webhook reprocessed by an admin",
}

ACTOR_LABELS = {"client": "Client", "system": "System", "system:worker": "System", "calendly:webhook": "Calendly",
                "stripe:webhook": "Stripe", "calendly:invitee": "Client (in Calendly)",
                "calendly:host": "Builder (in Calendly)"}


def cause_label(cause: str) -> str:
    return CAUSE_LABELS.get(cause) or cause.replace("_", " ").capitalize()


def actor_label(actor: str) -> str:
    """'Admin root@ops.test' for 'admin:root@ops.test'; 'Stripe' for 'stripe:webhook'."""
    if actor in ACTOR_LABELS:
        return ACTOR_LABELS[actor]
    kind, _, who = actor.partition(":")
    if kind in ("admin", "builder"):
        return f"{kind.capitalize()} {who}".strip()
    return {"calendly": "Calendly", "stripe": "Stripe", "system": "System", "cli": "Command line"}.get(kind, actor)
