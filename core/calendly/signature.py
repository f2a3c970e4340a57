"""Calendly webhook signatures: header `Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex>`.

`v1 = hex(HMAC_SHA256(key=signing_key as UTF-8, msg=f"{t}." + raw_body))`. Always verify the raw
request bytes exactly as received: re-serialised JSON differs in whitespace and key order.
"""
from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "SignatureError", "sign_calendly_payload", "verify_calendly_signature"]

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
DEFAULT_TOLERANCE_SECONDS = 180  # Calendly's own sample uses 3 minutes
# A real header is ~80 characters; refuse to parse anything absurd.
_MAX_HEADER_LENGTH = 4096
_HEX_DIGITS = frozenset("0123456789abcdef")


class SignatureError(Exception):
    """The signature header is unusable or does not match.

    `reason` is one of "missing", "malformed", "mismatch", "stale", for logs and metrics; the
    HTTP answer should not tell the sender which one it was.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def _digest(raw_body: bytes, signing_key: str, timestamp: int) -> str:
    message = f"{timestamp}.".encode("ascii") + raw_body
    return hmac.new(signing_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _check_inputs(raw_body: object, signing_key: str) -> None:
    # A str body would mean someone decoded (or re-serialised) it first; refuse loudly.
    if not isinstance(raw_body, (bytes, bytearray, memoryview)):
        raise TypeError("raw_body must be the raw request bytes")
    if not signing_key:
        raise ValueError("Calendly signing key is empty")


def sign_calendly_payload(raw_body: bytes, signing_key: str, timestamp: int | None = None) -> str:
    """Return the `Calendly-Webhook-Signature` header value for a body (used by the sandbox and tests)."""
    _check_inputs(raw_body, signing_key)
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(bytes(raw_body), signing_key, t)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    """Split `t=…,v1=…[,v1=…]` into the timestamp and the v1 candidates; unknown keys are ignored."""
    if len(header) > _MAX_HEADER_LENGTH:
        raise SignatureError("malformed", "signature header is too long")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        if not part.strip():
            continue  # tolerate a trailing or doubled comma
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed", "signature header element without '='")
        key, value = key.strip(), value.strip()
        if key == "t":
            if timestamp is not None:
                raise SignatureError("malformed", "signature header has more than one timestamp")
            if not value.isascii() or not value.isdigit():
                raise SignatureError("malformed", "signature timestamp is not an integer")
            timestamp = int(value)
        elif key == "v1":
            candidate = value.lower()
            # A garbled entry next to a good one (e.g. during key rotation) is skipped, not fatal.
            if len(candidate) == 64 and set(candidate) <= _HEX_DIGITS:
                candidates.append(candidate)
    if timestamp is None:
        raise SignatureError("malformed", "signature header has no timestamp")
    if not candidates:
        raise SignatureError("malformed", "signature header has no well-formed v1 signature")
    return timestamp, candidates


def verify_calendly_signature(
    raw_body: bytes,
    header: str | None,
    signing_key: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Return None if `header` signs `raw_body` with `signing_key` recently enough; else raise SignatureError.

    Several `v1=` entries are allowed (as during a key rotation); any one may match. The
    signature is checked before the age, so "stale" always means a genuine but old (or replayed)
    delivery, and "mismatch" a forged or corrupted one. The age check is symmetric: a timestamp
    more than `tolerance_seconds` in the future is stale too.
    """
    _check_inputs(raw_body, signing_key)
    if tolerance_seconds < 0:
        raise ValueError("tolerance_seconds must be >= 0")
    if header is None or not header.strip():
        raise SignatureError("missing", f"no {SIGNATURE_HEADER} header")
    timestamp, candidates = _parse_header(header)
    expected = _digest(bytes(raw_body), signing_key, timestamp)
    # compare_digest keeps the comparison time independent of where the strings differ.
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("mismatch", "signature does not match the body")
    current = time.time() if now is None else now
    if timestamp > 10 ** 15:  # absurd but signed: float arithmetic on it would overflow
        raise SignatureError("stale", "signature timestamp is absurdly far in the future")
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError("stale", f"signature timestamp is {int(current - timestamp)}s from now (tolerance {tolerance_seconds}s)")
