"""Clients sign in by a magic link sent through the notification channel."""
from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.emails import normalize_email
from core.errors import DomainError
from core.keys import magic_link_key
from core.models import LoginToken, Notification, utcnow
from core.security import hash_token
from core.services.outbox import enqueue
from core.states import OutboxKind

LINK_LIFETIME = timedelta(minutes=20)


def safe_next(next_url: str | None) -> str:
    """Only local paths: a sign-in link must never redirect off-site."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//"):
        return "/"
    return next_url


def send_magic_link(session: Session, email: str, next_url: str | None, *, remember: bool = False) -> str:
    """Store a one-time token (hashed) and the message carrying it; returns the link.

    `remember`: the client asked to stay signed in; the session the link opens is a long one."""
    email = normalize_email(email)
    token = secrets.token_urlsafe(32)
    session.add(LoginToken(email=email, token_hash=hash_token(token), next_url=safe_next(next_url),
                           expires_at=utcnow() + LINK_LIFETIME, remember=bool(remember)))
    link = f"{get_settings().public_base_url}/login/verify?{urlencode({'token': token})}"
    notification = Notification(
        kind="magic_link", to_email=email, subject="Your sign-in link",
        body=f"Sign in to book your session:\n{link}\nThe link works once, for 20 minutes.",
        dedupe_key=magic_link_key(hash_token(token)))
    session.add(notification)
    session.flush()
    enqueue(session, OutboxKind.NOTIFY, notification.dedupe_key, {"notification_id": notification.id})
    return link


def redeem_magic_link(session: Session, token: str) -> tuple[str, str]:
    """The email it was sent to and where to go next; a used or expired link is refused."""
    email, next_url, _remember = redeem_magic_link_for_session(session, token)
    return email, next_url


def redeem_magic_link_for_session(session: Session, token: str) -> tuple[str, str, bool]:
    """As redeem_magic_link, plus whether the client asked to be remembered."""
    row = session.execute(
        select(LoginToken).where(LoginToken.token_hash == hash_token(token)).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        raise DomainError("this sign-in link is invalid, already used or expired; ask for a new one")
    row.used_at = utcnow()
    return row.email, safe_next(row.next_url), bool(row.remember)
