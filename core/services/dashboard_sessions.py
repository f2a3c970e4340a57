"""Dashboard sign-ins that survive a page reload: a signed-in builder or admin is a row here.

The browser keeps a random session id in a cookie; we store only its SHA-256. Each dashboard run
resolves the id to the person it belongs to *as they are now* (their role, builder and time zone
from `dashboard_users`), so sign-out, an operator's revocation or a deleted account ends the
session whatever cookie remains. A session ends after `dashboard_session_idle_hours` without use,
and in any case `dashboard_session_max_days` after signing in.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from core.auth import Viewer, usable_viewer
from core.config import get_settings
from core.models import DashboardSession, DashboardUser, utcnow
from core.security import hash_token

# Writing last_seen_at on every rerun would turn each click into a write; once a minute is plenty.
TOUCH_EVERY = timedelta(minutes=1)
# Ended rows are kept a while (who was signed in when), then deleted.
KEEP_ENDED = timedelta(days=7)


def idle_lifetime() -> timedelta:
    return timedelta(hours=get_settings().dashboard_session_idle_hours)


def max_lifetime() -> timedelta:
    return timedelta(days=get_settings().dashboard_session_max_days)


def _expiry(created_at: datetime, now: datetime) -> datetime:
    return min(now + idle_lifetime(), created_at + max_lifetime())


def start(session: Session, user_id: int) -> tuple[str, DashboardSession]:
    """Open a session for this dashboard user; returns the id (for the cookie only) and the row."""
    purge_ended(session)
    now = utcnow()
    sid = secrets.token_urlsafe(32)
    row = DashboardSession(session_hash=hash_token(sid), user_id=user_id, created_at=now, last_seen_at=now,
                           expires_at=_expiry(now, now))
    session.add(row)
    session.flush()
    return sid, row


def _live_row(session: Session, sid: str | None) -> DashboardSession | None:
    if not sid:
        return None
    row = session.execute(
        select(DashboardSession).where(DashboardSession.session_hash == hash_token(sid))
    ).scalar_one_or_none()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    return row


def resolve(session: Session, sid: str | None, *, signed_in_as: Viewer | None = None) -> Viewer | None:
    """The person this session id signs in, or None when the id is unknown, expired or revoked, or
    the account is gone or can no longer sign in. `signed_in_as` is who this browser tab was
    signed in as: a different role or builder now (an admin changed the account) ends the session,
    so nobody carries rights they were not signed in with."""
    row = _live_row(session, sid)
    if row is None:
        return None
    user = session.get(DashboardUser, row.user_id)
    viewer = usable_viewer(session, user) if user is not None else None
    changed = signed_in_as is not None and viewer is not None and (
        (viewer.user_id, viewer.role, viewer.builder_id)
        != (signed_in_as.user_id, signed_in_as.role, signed_in_as.builder_id))
    if viewer is None or changed:
        row.revoked_at = utcnow()
        return None
    now = utcnow()
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = _expiry(row.created_at, now)
    return viewer


def revoke(session: Session, sid: str | None) -> bool:
    """Sign-out: end this one session; True if it was live."""
    if not sid:
        return False
    result = session.execute(
        update(DashboardSession)
        .where(DashboardSession.session_hash == hash_token(sid), DashboardSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount > 0


def revoke_all(session: Session, user_id: int) -> int:
    """End every live session of one dashboard user (a lost laptop, a changed role); how many."""
    now = utcnow()
    result = session.execute(
        update(DashboardSession)
        .where(DashboardSession.user_id == user_id, DashboardSession.revoked_at.is_(None),
               DashboardSession.expires_at > now)
        .values(revoked_at=now)
    )
    return result.rowcount


def purge_ended(session: Session, *, keep: timedelta = KEEP_ENDED) -> int:
    """Delete sessions that ended (expired or revoked) more than `keep` ago; how many."""
    cutoff = utcnow() - keep
    result = session.execute(
        delete(DashboardSession).where(or_(DashboardSession.expires_at < cutoff,
                                           DashboardSession.revoked_at < cutoff))
    )
    return result.rowcount
