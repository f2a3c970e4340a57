"""Keys built from outside input (emails, URIs, provider ids) that must fit their columns."""
from __future__ import annotations

import hashlib


def bounded_key(key: str, limit: int) -> str:
    """`key` if it fits a column of `limit` characters, else its start plus a hash of all of it.

    Deterministic, so an idempotency or dedupe key built from long outside input still names the
    same thing on every retry instead of failing the insert.
    """
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[:limit - len(digest) - 8]}:sha256:{digest}"
