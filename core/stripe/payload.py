"""The shape a Stripe event must have before a handler may read it.

Stripe's events are signed, but a signed event can still be one we cannot use (an API version we
do not expect, a bug at the sender, a test tool). Every field a handler reads is checked here, so a
malformed event is refused as PayloadError (422, stored as `invalid`) instead of failing halfway
through processing (500, retried for days) or writing a value the database refuses.
"""
from __future__ import annotations

from collections.abc import Collection

from core.calendly.webhook_payload import PayloadError

MAX_ID = 255  # our columns for Stripe ids
MAX_AMOUNT = 10 ** 12  # far beyond any Stripe amount; keeps BIGINT columns safe


def _string(obj: dict, key: str, where: str, *, required: bool = False, max_length: int = MAX_ID) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise PayloadError(f"{where}.{key} is missing")
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key} must be a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise PayloadError(f"{where}.{key} is longer than {max_length} characters")
    if "\x00" in value:
        raise PayloadError(f"{where}.{key} contains a NUL character")
    return value


def _object(obj: dict, key: str, where: str) -> dict | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise PayloadError(f"{where}.{key} must be an object, got {type(value).__name__}")
    return value


def _amount(obj: dict, key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{where}.{key} must be an integer amount in minor units")
    if not 0 <= value <= MAX_AMOUNT:
        raise PayloadError(f"{where}.{key} is out of range")
    return value


def _currency(obj: dict, where: str) -> str:
    value = _string(obj, "currency", where, required=True, max_length=3)
    if not (len(value) == 3 and value.isascii() and value.isalpha()):
        raise PayloadError(f"{where}.currency must be a three-letter ISO code")
    return value


def _payment_intent(obj: dict, where: str, *, required: bool) -> None:
    value = obj.get("payment_intent")
    if isinstance(value, dict):  # expanded
        _string(value, "id", f"{where}.payment_intent", required=True)
    else:
        _string(obj, "payment_intent", where, required=required)


def _checkout(paid: bool, obj: dict, where: str) -> None:
    _string(obj, "id", where, required=True)
    metadata = _object(obj, "metadata", where)
    if metadata:
        _string(metadata, "booking_id", f"{where}.metadata")
    _string(obj, "client_reference_id", where)
    status = _string(obj, "payment_status", where, max_length=64)
    if paid and status != "unpaid":
        _payment_intent(obj, where, required=True)
        _amount(obj, "amount_total", where)
        _currency(obj, where)


def _refund(obj: dict, where: str) -> None:
    _string(obj, "id", where, required=True)
    _string(obj, "status", where, required=True, max_length=32)
    _amount(obj, "amount", where)
    _currency(obj, where)
    _payment_intent(obj, where, required=False)
    metadata = _object(obj, "metadata", where)
    refund_id = metadata.get("refund_id") if metadata else None
    if refund_id is not None:
        # Ours is str(refund row id); the handler looks a digit string up as a row id.
        text = str(refund_id) if isinstance(refund_id, int) and not isinstance(refund_id, bool) else refund_id
        if not isinstance(text, str):
            raise PayloadError(f"{where}.metadata.refund_id must be a string")
        if text.isdigit() and not (text.isascii() and len(text) <= 18):
            raise PayloadError(f"{where}.metadata.refund_id is not a refund id of ours")
    _string(obj, "reason", where, max_length=500)
    _string(obj, "failure_reason", where, max_length=10_000)


def _charge(obj: dict, where: str) -> None:
    _string(obj, "id", where, required=True)
    _payment_intent(obj, where, required=False)


def _dispute(obj: dict, where: str) -> None:
    _string(obj, "id", where, required=True)
    _payment_intent(obj, where, required=False)
    _string(obj, "status", where, max_length=32)
    _string(obj, "reason", where, max_length=500)


def check_stripe_event(event: dict, *, paid_checkout_events: Collection[str]) -> None:
    """Raise PayloadError unless `event` (id, type, data.object present) is usable by its handler.

    `paid_checkout_events`: the types whose handler records a payment, so their session must carry
    one (`payment_events.PAID_CHECKOUT_EVENTS`, read from the event registry)."""
    _string(event, "id", "event", required=True)
    _string(event, "type", "event", required=True, max_length=10_000)
    kind, obj, where = event["type"], event["data"]["object"], "data.object"
    if kind.startswith("checkout.session."):
        _checkout(kind in paid_checkout_events, obj, where)
    elif kind == "charge.refunded":
        _charge(obj, where)
    elif kind in ("refund.created", "refund.updated", "refund.failed"):
        _refund(obj, where)
    elif kind.startswith("charge.dispute."):
        _dispute(obj, where)
