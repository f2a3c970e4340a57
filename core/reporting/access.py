"""Who is looking: the signed-in dashboard user, and the rows they may see.

Access control lives here, below the UI: every reporting function takes a `Viewer`, and a builder
viewer is confined to their own builder's rows whatever the caller asks for.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import Forbidden
from core.models import Builder, DashboardUser
from core.security import hash_password, verify_password

ADMIN = "admin"
BUILDER = "builder"

# Checked when the email is unknown, so a wrong email costs as much time as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password")


@dataclass(frozen=True)
class Viewer:
    """A signed-in dashboard user. Frozen and hashable: it is part of the dashboard's cache keys."""

    user_id: int
    email: str
    role: str  # "admin" | "builder"
    builder_id: int | None = None
    timezone: str = "UTC"
    name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def actor(self) -> str:
        """How this person appears in booking history: 'admin:ana@example.com'."""
        return f"{self.role}:{self.email}"


def viewer_for_user(session: Session, user: DashboardUser) -> Viewer:
    timezone, name = "UTC", ""
    if user.role == BUILDER and user.builder_id is not None:
        builder = session.get(Builder, user.builder_id)
        if builder is not None:
            timezone, name = builder.timezone or "UTC", builder.name
    return Viewer(user_id=user.id, email=user.email, role=user.role, builder_id=user.builder_id,
                  timezone=timezone, name=name)


def _user_by_email(session: Session, email: str) -> DashboardUser | None:
    return session.execute(
        select(DashboardUser).where(func.lower(DashboardUser.email) == email.strip().lower())
    ).scalar_one_or_none()


def authenticate(session: Session, email: str, password: str) -> Viewer | None:
    """The viewer for a correct email and password; None for anything else."""
    user = _user_by_email(session, email or "")
    if user is None:
        verify_password(password or "", _DUMMY_HASH)
        return None
    if not verify_password(password or "", user.password_hash):
        return None
    if user.role not in (ADMIN, BUILDER) or (user.role == BUILDER and user.builder_id is None):
        return None
    return viewer_for_user(session, user)


def viewer_for_email(session: Session, email: str) -> Viewer | None:
    """For single sign-on: the dashboard account of an identity the provider already verified."""
    user = _user_by_email(session, email or "")
    return viewer_for_user(session, user) if user is not None else None


def require_admin(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise Forbidden("this is for admins only")


def builder_scope(viewer: Viewer, requested_builder_id: int | None = None) -> int | None:
    """The builder id to restrict a query to (None: all builders, admins only)."""
    if viewer.is_admin:
        return requested_builder_id
    if viewer.role != BUILDER or viewer.builder_id is None:
        raise Forbidden("this account may not see any bookings")
    if requested_builder_id is not None and requested_builder_id != viewer.builder_id:
        raise Forbidden("you can only see your own bookings")
    return viewer.builder_id


def check_booking_access(viewer: Viewer, booking_builder_id: int) -> None:
    if not viewer.is_admin and booking_builder_id != viewer.builder_id:
        raise Forbidden("this booking belongs to another builder")
