"""Client sessions on the server: a signed-in client is a row here, not just a signed cookie.

The cookie carries a random session id; we store only its hash. Every request that reads who is
signed in looks the row up, so signing out (or an operator's revocation) ends the session for
every copy of the cookie. Sessions are short unless the client asked to be remembered.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.config import get_settings
from core.emails import normalize_email
from core.models import ClientSession, utcnow
from core.security import hash_token
from core.services import client_login

# Writing last_seen_at on every page view would turn reads into writes; once a minute is plenty.
TOUCH_EVERY = timedelta(minutes=1)
# Expired or revoked rows are kept a while (for an operator's questions), then deleted.
KEEP_ENDED = timedelta(days=7)


@dataclass(frozen=True)
class SignedIn:
    """A session just opened by a magic link: the id for the cookie and where to go next."""

    sid: str
    email: str
    next_url: str
    expires_at: datetime
    remember: bool


def lifetime(remember: bool) -> timedelta:
    settings = get_settings()
    if remember:
        return timedelta(days=settings.client_session_remember_days)
    return timedelta(hours=settings.client_session_hours)


def start(session: Session, email: str, *, remember: bool) -> tuple[str, ClientSession]:
    """Open a session for `email`; returns the session id (for the cookie only) and its row."""
    now = utcnow()
    session.execute(delete(ClientSession).where(ClientSession.expires_at < now - KEEP_ENDED))
    sid = secrets.token_urlsafe(32)
    row = ClientSession(session_hash=hash_token(sid), email=email, remember=remember, created_at=now,
                        last_seen_at=now, expires_at=now + lifetime(remember))
    session.add(row)
    session.flush()
    return sid, row


def sign_in_with_link(session: Session, token: str, *, previous_sid: str | None = None) -> SignedIn:
    """Redeem a magic link (single use) and open the session it grants, in one transaction; the
    browser's previous session (`previous_sid`), if any, ends: it is replaced, not left behind."""
    email, next_url, remember = client_login.redeem_magic_link_for_session(session, token)
    end(session, previous_sid)
    sid, row = start(session, email, remember=remember)
    return SignedIn(sid=sid, email=email, next_url=next_url, expires_at=row.expires_at, remember=remember)


def current(session: Session, sid: str | None) -> ClientSession | None:
    """The live session with this id, or None when it is unknown, expired or revoked."""
    if not sid:
        return None
    row = session.execute(
        select(ClientSession).where(ClientSession.session_hash == hash_token(sid))
    ).scalar_one_or_none()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end(session: Session, sid: str | None) -> bool:
    """Sign-out: revoke this one session; True if it was live."""
    if not sid:
        return False
    result = session.execute(
        update(ClientSession)
        .where(ClientSession.session_hash == hash_token(sid), ClientSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount > 0


def revoke_all(session: Session, email: str) -> int:
    """Revoke every live session of this client (a lost device, a stolen cookie); returns how many."""
    email = normalize_email(email)
    now = utcnow()
    result = session.execute(
        update(ClientSession)
        .where(ClientSession.email == email, ClientSession.revoked_at.is_(None), ClientSession.expires_at > now)
        .values(revoked_at=now)
    )
    return result.rowcount
