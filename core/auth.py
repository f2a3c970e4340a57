"""Who is acting, and what they may do: dashboard sign-in, password checks, roles and rights.

Dashboard users sign in with an email and a password (checked here, hashed by `core.security`);
single sign-on maps a verified email to its account (`viewer_for_email`); the admin JSON API's
bearer token acts as `API_ADMIN`. Every reporting query and admin action takes the resulting
`Viewer` and checks it below the UI: an admin sees and does everything, a builder only their own
builder's rows whatever the caller asks for. (Clients sign in with magic links instead:
`core.services.client_login`.)
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
    """Someone acting as admin or builder: a signed-in dashboard user, or the admin API.
    Frozen and hashable: it is part of the dashboard's cache keys."""

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


# The admin JSON API's bearer token (webhook_service.deps.require_admin_token): an admin with no
# dashboard account, shown as "admin:api" in booking history.
API_ADMIN = Viewer(user_id=0, email="api", role=ADMIN)


def viewer_for_user(session: Session, user: DashboardUser) -> Viewer:
    """The viewer for a dashboard account. Times are shown in the zone the person chose
    (`DashboardUser.timezone`), else a builder's own zone, else UTC."""
    timezone, name = "UTC", ""
    if user.role == BUILDER and user.builder_id is not None:
        builder = session.get(Builder, user.builder_id)
        if builder is not None:
            timezone, name = builder.timezone or "UTC", builder.name
    return Viewer(user_id=user.id, email=user.email, role=user.role, builder_id=user.builder_id,
                  timezone=user.timezone or timezone, name=name)


def usable_viewer(session: Session, user: DashboardUser) -> Viewer | None:
    """The viewer for an account that may sign in (a known role; a builder account tied to a
    builder); None otherwise."""
    if user.role not in (ADMIN, BUILDER) or (user.role == BUILDER and user.builder_id is None):
        return None
    return viewer_for_user(session, user)


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
    return usable_viewer(session, user)


def viewer_for_email(session: Session, email: str) -> Viewer | None:
    """For single sign-on: the dashboard account of an identity the provider already verified."""
    user = _user_by_email(session, email or "")
    return viewer_for_user(session, user) if user is not None else None


def require_admin(viewer: Viewer) -> None:
    """Admin-only actions and reports; Forbidden for a builder."""
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


def check_builder_access(viewer: Viewer, owner_builder_id: int, what: str) -> None:
    """Forbidden unless the viewer is an admin or the builder who owns the thing (`what`, for the message)."""
    if not viewer.is_admin and owner_builder_id != viewer.builder_id:
        raise Forbidden(f"this {what} belongs to another builder")


def check_booking_access(viewer: Viewer, booking_builder_id: int) -> None:
    check_builder_access(viewer, booking_builder_id, "booking")
