"""Every dedupe and idempotency key we build, in one place, bounded by the column it goes to.

Keys are deterministic: the same event, refund or cancellation always gets the same key, so a
retry after a crash or a redelivered webhook is recognised instead of applied twice. Keys built
from outside input (emails, URIs, provider ids) are bounded: a long one keeps its start plus a hash.
"""
from __future__ import annotations

import hashlib
from enum import StrEnum

from core.models import Notification, OutboxEntry, WebhookEvent

# Lengths come from the columns the keys are stored in.
DEDUPE_KEY_LENGTH: int = WebhookEvent.__table__.c.dedupe_key.type.length
# The outbox's key is also sent to Stripe as Idempotency-Key, whose limit is 255 as well.
IDEMPOTENCY_KEY_LENGTH: int = OutboxEntry.__table__.c.idempotency_key.type.length
NOTIFICATION_KEY_LENGTH: int = min(Notification.__table__.c.dedupe_key.type.length, IDEMPOTENCY_KEY_LENGTH)


def bounded_key(key: str, limit: int) -> str:
    """`key` if it fits a column of `limit` characters, else its start plus a hash of all of it.

    Deterministic, so an idempotency or dedupe key built from long outside input still names the
    same thing on every retry instead of failing the insert.
    """
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[:limit - len(digest) - 8]}:sha256:{digest}"


# ---------------------------------------------------------------- webhook dedupe keys
def stripe_event_key(event_id: str) -> str:
    """A Stripe event, by its id (delivered, redelivered or read back by reconcile)."""
    return bounded_key(f"stripe:{event_id}", DEDUPE_KEY_LENGTH)


def calendly_event_key(event: str, invitee_uri: str, no_show_uri: str | None = None) -> str:
    """A Calendly delivery (Calendly sends no event id): event name and invitee URI, plus the
    no-show URI for no-shows, so marking, unmarking and re-marking are three distinct events."""
    key = f"calendly:{event}:{invitee_uri}"
    if no_show_uri:
        key += f":{no_show_uri}"
    return bounded_key(key, DEDUPE_KEY_LENGTH)


def calendly_unhandled_key(event: str, reference: str) -> str:
    """A Calendly event we do not handle, by its payload's URI (or its body's hash)."""
    return bounded_key(f"calendly:{event}:{reference}", DEDUPE_KEY_LENGTH)


def webhook_dedupe_key(key: str) -> str:
    """Any dedupe key, bounded to the column (keys arrive from the parsers already prefixed)."""
    return bounded_key(key, DEDUPE_KEY_LENGTH)


# ---------------------------------------------------------------- outbox and Stripe idempotency keys
def outbox_key(key: str) -> str:
    return bounded_key(key, IDEMPOTENCY_KEY_LENGTH)


class Effect(StrEnum):
    """A side effect an idempotency key names; the value is the key's prefix, then its ids."""

    CHECKOUT = "checkout"                      # booking id, the hold's end: one session per hold
    CHECKOUT_EXPIRE = "checkout-expire"        # Checkout Session id
    CALENDLY_CANCEL = "calendly-cancel"        # event URI: one cancellation, whoever asks for it
    REFUND = "refund"                          # booking id, refund row id: never paid out twice
    REFUSED_PAYMENT_REFUND = "refund-refused"  # payment intent id: a refused payment goes back once
    REFUND_SYNC = "refund-sync"                # Stripe event id


def effect_key(effect: Effect, *ids: object) -> str:
    """The key of one side effect: the outbox entry's, and the Idempotency-Key Stripe sees."""
    return outbox_key(":".join([effect.value, *(str(part) for part in ids)]))


def notification_key(booking_id: str, kind: str, to_email: str, dedupe: str = "") -> str:
    """One message per booking, kind, recipient and repeat (it is the outbox key too)."""
    return bounded_key(f"notify:{booking_id}:{kind}:{to_email}:{dedupe}", NOTIFICATION_KEY_LENGTH)


def magic_link_key(token_hash: str) -> str:
    return bounded_key(f"magic:{token_hash}", NOTIFICATION_KEY_LENGTH)
