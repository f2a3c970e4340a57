"""Adding people: builders, their priced session types, and dashboard accounts; a person's own time
zone. The CLI (`core.commands`) and the dashboard's admin pages both call these rules.

The `*_by` functions are the dashboard's: they check the viewer's rights (`core.auth`) and log who
changed what (these changes touch no booking, so there is no booking history row to write).
"""
from __future__ import annotations

import logging
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.auth import ADMIN, BUILDER, Viewer, check_builder_access, require_admin
from core.calendly import CalendlyClient, CalendlyError
from core.config import get_settings
from core.emails import normalize_email
from core.errors import DomainError, NotFound
from core.models import Builder, DashboardUser, SessionType, utcnow
from core.providers import calendly_for
from core.security import encrypt_secret, hash_password
from core.services import catalog
from core.services.calendly_connection import CalendlyDisconnected

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
MAX_NAME_LENGTH = 200
MAX_BIO_LENGTH = 2000


def time_zones() -> list[str]:
    """Every IANA zone name a person can choose, sorted (UTC first)."""
    return ["UTC", *sorted(zone for zone in available_timezones() if zone != "UTC" and "/" in zone)]


def checked_timezone(zone: str | None) -> str:
    """The zone name if it is a real IANA zone; DomainError saying what to enter otherwise."""
    zone = (zone or "").strip()
    try:
        if zone == "UTC" or "/" in zone:  # region names; not abbreviations such as "EST"
            ZoneInfo(zone)
            return zone
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise DomainError(f"{zone or 'an empty name'} is not a time zone: choose one like Europe/London or "
                      "America/New_York")


def calendly_user_for_token(token: str) -> dict:
    """The Calendly user a personal access token belongs to (asks Calendly)."""
    try:
        return CalendlyClient(token.strip(), get_settings().calendly_api_base).get_current_user()
    except CalendlyError as error:
        raise DomainError(f"Calendly did not accept this token: {error}") from None


def add_builder(session: Session, *, name: str, email: str, timezone: str | None = None, bio: str | None = None,
                calendly_token: str | None = None, calendly_user: dict | None = None) -> Builder:
    """Store a builder. With a Calendly token (and the Calendly user it belongs to, from
    `calendly_user_for_token`) they can be booked once a session type is priced; the token is
    stored encrypted. Without a zone, the Calendly user's (else UTC)."""
    email = normalize_email(email)
    name = (name or "").strip() or (calendly_user or {}).get("name", "").strip()
    if not name:
        raise DomainError("please enter the builder's name")
    if len(name) > MAX_NAME_LENGTH:
        raise DomainError(f"the name is too long (at most {MAX_NAME_LENGTH} characters)")
    bio = (bio or "").strip() or None
    if bio and len(bio) > MAX_BIO_LENGTH:
        raise DomainError(f"the bio is too long (at most {MAX_BIO_LENGTH} characters)")
    if calendly_token and not calendly_user:
        raise DomainError("a Calendly token needs the Calendly user it belongs to")
    uri = (calendly_user or {}).get("uri")
    timezone = checked_timezone(timezone or (calendly_user or {}).get("timezone") or "UTC")
    if session.execute(select(Builder.id).where(func.lower(Builder.email) == email)).first():
        raise DomainError(f"a builder with email {email} already exists")
    if uri and session.execute(select(Builder.id).where(Builder.calendly_user_uri == uri)).first():
        raise DomainError(f"a builder with the Calendly account {uri} already exists")
    builder = Builder(
        name=name, email=email, timezone=timezone, bio=bio, calendly_user_uri=uri,
        calendly_organization_uri=(calendly_user or {}).get("current_organization"),
        calendly_token_encrypted=(encrypt_secret(calendly_token.strip(), get_settings().app_secret_key)
                                  if calendly_token else None),
        # With a personal access token the builder is connected now; without one they wait to
        # connect their own Calendly (core.services.calendly_connection).
        calendly_auth="token" if calendly_token else None,
        calendly_status="connected" if calendly_token else "waiting",
        calendly_connected_at=utcnow() if calendly_token else None,
    )
    session.add(builder)
    session.flush()
    return builder


def connect_calendly(session: Session, builder_id: int, *, calendly_token: str, calendly_user: dict) -> Builder:
    """Give a builder (added without one) their Calendly token, or replace it; the Calendly user
    must stay the same once bookings may refer to it."""
    builder = session.get(Builder, builder_id)
    if builder is None:
        raise NotFound("this builder no longer exists")
    uri = calendly_user["uri"]
    if builder.calendly_user_uri and builder.calendly_user_uri != uri:
        raise DomainError(f"this token belongs to another Calendly user than {builder.name}'s ({builder.calendly_user_uri})")
    if session.execute(select(Builder.id).where(Builder.calendly_user_uri == uri, Builder.id != builder_id)).first():
        raise DomainError(f"a builder with the Calendly account {uri} already exists")
    builder.calendly_user_uri = uri
    builder.calendly_organization_uri = calendly_user.get("current_organization")
    builder.calendly_token_encrypted = encrypt_secret(calendly_token.strip(), get_settings().app_secret_key)
    # A personal access token replaces any OAuth connection: it does not expire, nothing to refresh.
    builder.calendly_refresh_token_encrypted = None
    builder.calendly_token_expires_at = None
    builder.calendly_auth = "token"
    builder.calendly_status = "connected"
    builder.calendly_status_reason = None
    builder.calendly_connected_at = utcnow()
    session.flush()
    return builder


def check_password_rules(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise DomainError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def new_password() -> str:
    """A password to hand to a new user once (they can be given another by the CLI)."""
    return secrets.token_urlsafe(12)


def add_user(session: Session, *, email: str, password: str, role: str, builder_id: int | None) -> DashboardUser:
    """A dashboard account: an admin, or a builder's (tied to that builder)."""
    email = normalize_email(email)
    if role not in (ADMIN, BUILDER):
        raise DomainError("role must be admin or builder")
    if role == BUILDER and builder_id is None:
        raise DomainError("a builder account needs the builder it belongs to")
    if role == BUILDER and session.get(Builder, builder_id) is None:
        raise NotFound(f"no builder {builder_id}")
    check_password_rules(password)
    if session.execute(select(DashboardUser.id).where(func.lower(DashboardUser.email) == email)).first():
        raise DomainError(f"a dashboard user {email} already exists")
    user = DashboardUser(email=email, password_hash=hash_password(password), role=role,
                         builder_id=builder_id if role == BUILDER else None)
    session.add(user)
    session.flush()
    return user


def set_timezone(session: Session, user_id: int, zone: str) -> str:
    """The zone a dashboard user reads times in; returns it."""
    user = session.get(DashboardUser, user_id)
    if user is None:
        raise NotFound("this dashboard account no longer exists")
    user.timezone = checked_timezone(zone)
    session.flush()
    return user.timezone


def priced_event_type_uris(session: Session, builder_id: int) -> set[str]:
    return set(session.execute(
        select(SessionType.calendly_event_type_uri).where(SessionType.builder_id == builder_id)).scalars())


# ---------------------------------------------------------------- from the dashboard, rights checked
def add_builder_by(session: Session, viewer: Viewer, **fields) -> Builder:
    require_admin(viewer)
    builder = add_builder(session, **fields)
    log.info("builder %s (%s) added by %s", builder.id, builder.email, viewer.actor)
    return builder


def add_user_by(session: Session, viewer: Viewer, **fields) -> DashboardUser:
    require_admin(viewer)
    user = add_user(session, **fields)
    log.info("dashboard user %s (%s, %s) added by %s", user.id, user.email, user.role, viewer.actor)
    return user


def connect_calendly_by(session: Session, viewer: Viewer, builder_id: int, **fields) -> Builder:
    require_admin(viewer)
    builder = connect_calendly(session, builder_id, **fields)
    log.info("Calendly account %s connected to builder %s by %s", builder.calendly_user_uri, builder_id, viewer.actor)
    return builder


def price_event_type_by(session: Session, viewer: Viewer, builder_id: int, event_type: dict, amount_cents: int,
                        currency: str) -> SessionType:
    """Price one of a builder's Calendly event types (an admin any builder's, a builder their own)."""
    check_builder_access(viewer, builder_id, "builder's price list")
    session_type = catalog.set_price(session, builder_id=builder_id, event_type=event_type,
                                     amount_cents=amount_cents, currency=currency)
    log.info("session type %s of builder %s priced at %s %s by %s", session_type.id, builder_id,
             amount_cents, session_type.currency, viewer.actor)
    return session_type


def unpriced_event_types(session: Session, viewer: Viewer, builder_id: int) -> list[dict]:
    """The builder's active Calendly event types that have no price yet (asks Calendly with the
    builder's token; the caller's transaction stays read-only)."""
    check_builder_access(viewer, builder_id, "builder's price list")
    builder = session.get(Builder, builder_id)
    if builder is None:
        raise NotFound("this builder no longer exists")
    if builder.calendly_status == "disconnected":
        reason = builder.calendly_status_reason or "no reason given"
        raise DomainError(f"{builder.name}'s Calendly is disconnected ({reason}): connect Calendly again, "
                          "then their event types can be priced")
    if not builder.calendly_token_encrypted or not builder.calendly_user_uri:
        raise DomainError(f"{builder.name} has no Calendly account connected yet: connect Calendly first "
                          "(the builder's Calendly page), then their event types can be priced")
    try:
        # Someone is waiting on the page: one quick retry, not the worker's patient back-off.
        client = calendly_for(builder, timeout=5.0, max_retries=1)
        event_types = client.list_event_types(builder.calendly_user_uri)
    except CalendlyDisconnected as error:
        raise DomainError(str(error)) from None
    except CalendlyError as error:
        raise DomainError(f"Calendly could not list {builder.name}'s event types ({error}); try again shortly") from None
    priced = priced_event_type_uris(session, builder_id)
    return [event_type for event_type in event_types if event_type.get("uri") not in priced]


def builders_by_name(session: Session) -> list[Builder]:
    return list(session.execute(select(Builder).order_by(func.lower(Builder.name), Builder.id)).scalars())


def dashboard_users(session: Session) -> list[tuple[DashboardUser, str | None]]:
    """Every dashboard account with its builder's name (None for admins), admins first."""
    rows = session.execute(
        select(DashboardUser, Builder.name).outerjoin(Builder, Builder.id == DashboardUser.builder_id)
        .order_by(DashboardUser.role, func.lower(DashboardUser.email))
    ).all()
    return [(user, builder_name) for user, builder_name in rows]


__all__ = ["add_builder", "add_user", "set_timezone", "checked_timezone", "time_zones", "new_password",
           "calendly_user_for_token", "connect_calendly", "connect_calendly_by", "add_builder_by", "add_user_by",
           "price_event_type_by", "builders_by_name", "dashboard_users", "priced_event_type_uris",
           "unpriced_event_types"]
