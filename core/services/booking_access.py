"""Who may see a booking's details (the client's name and email, the price) on the client pages.

A booking id alone is not enough: it travels in Calendly's utm_content and in URLs that others
may see. Its details are shown to the signed-in client who owns it, or to whoever holds the link
we emailed to that client (the booking id plus a token derived from it with our secret key).
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from core.config import get_settings

TOKEN_PARAM = "t"


def link_token(booking_id: str) -> str:
    """The token that the client's emailed links carry for this booking (deterministic: a retried
    Checkout Session creation sends identical URLs)."""
    key = get_settings().app_secret_key.encode()
    return hmac.new(key, f"booking-link:{booking_id}".encode(), hashlib.sha256).hexdigest()[:32]


def token_is_valid(booking_id: str, token: str | None) -> bool:
    if not token:
        return False
    return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), link_token(booking_id).encode())


def with_token(path: str, booking_id: str) -> str:
    """`path` (ours, maybe with a query already) carrying the booking's link token."""
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}{urlencode({TOKEN_PARAM: link_token(booking_id)})}"


def payment_path(booking_id: str) -> str:
    """The client's own link to pay for, or look at, their booking (relative)."""
    return with_token(f"/payment/{booking_id}", booking_id)


def payment_link(booking_id: str) -> str:
    """The same, absolute: the link our emails carry."""
    return f"{get_settings().public_base_url}{payment_path(booking_id)}"


def may_see(booking_id: str, owner_email: str, *, visitor_email: str | None, token: str | None) -> bool:
    """The owner signed in, or the emailed link."""
    if visitor_email and hmac.compare_digest(visitor_email.lower().encode(), owner_email.lower().encode()):
        return True
    return token_is_valid(booking_id, token)
