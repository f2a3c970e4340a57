"""Stripe webhook signatures: header `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=…]`.

Checked by the SDK on the raw request bytes, plus the bound the SDK leaves out (a timestamp from
the future). Failures raise the same `SignatureError` as Calendly's, with the same reasons.
"""
from __future__ import annotations

import time

import stripe

from core.calendly.signature import SignatureError

SIGNATURE_HEADER = "Stripe-Signature"
# Seconds, either way: the SDK's default for old ones, Calendly's bound for both.
DEFAULT_TOLERANCE_SECONDS = 300


def verify_stripe_signature(raw_body: bytes, header: str | None, secret: str,
                            tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> None:
    """Raise SignatureError unless `header` signs `raw_body` with `secret`, within `tolerance`."""
    if not header:
        raise SignatureError("missing", "no Stripe-Signature header")
    if not header.isascii():  # the SDK's compare_digest raises TypeError on non-ASCII text
        raise SignatureError("malformed", "Stripe-Signature header is not ASCII")
    try:
        stripe.WebhookSignature.verify_header(raw_body.decode("utf-8", "replace"), header, secret,
                                              tolerance=tolerance)
    except stripe.SignatureVerificationError as error:
        reason = "stale" if "tolerance" in str(error).lower() else "mismatch"
        raise SignatureError(reason, str(error)) from None
    # The SDK refuses old timestamps only: a signed `t` a year ahead would stay replayable for a
    # year. Read `t` as the SDK did (the first element named exactly "t"; it parsed, or the SDK
    # would have refused), in integers so an absurd one cannot overflow a float.
    timestamp = next(int(item[1]) for item in (part.split("=", 2) for part in header.split(",")) if item[0] == "t")
    now = int(time.time())
    if timestamp > now + tolerance:
        ahead = "over a year" if timestamp - now > 366 * 86400 else f"{timestamp - now}s"
        raise SignatureError("future", f"signature timestamp is {ahead} in the future (tolerance {tolerance}s)")


__all__ = ["SIGNATURE_HEADER", "SignatureError", "verify_stripe_signature"]
