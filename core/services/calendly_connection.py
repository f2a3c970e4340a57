"""A builder's Calendly connection: connecting through our OAuth app, keeping its token fresh, and
disconnecting.

Connecting: `start_connect` stores a one-time `state` (only its hash) with the PKCE verifier
(encrypted) and which dashboard sign-in started it, and returns Calendly's authorize URL. Calendly
sends the person back to our callback (`CALLBACK_PATH`), which calls `finish_connect`: the state must
exist, be unused and unexpired (`STATE_LIFETIME`), and the dashboard sign-in that started it must
still be live and still allowed to act for that builder. The code is then exchanged and the tokens
stored encrypted.

Refreshing: Calendly's refresh tokens are single use and rotate. `access_token` refreshes under a
lock on the builder's row (FOR UPDATE on PostgreSQL; SQLite's write lock, taken by every write
transaction here) and reads the row again once it holds it, so when two processes both see an
expiring token only the first spends the refresh token; the second finds the new pair. A refresh
refused with `invalid_grant` means the connection is gone: the builder is marked disconnected,
their session types stop being offered, and admins and the builder are told by mail.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from core.auth import ADMIN, usable_viewer
from core.calendly import CalendlyError, CalendlyUnavailable
from core.calendly import oauth
from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError, NotFound
from core.keys import bounded_key
from core.models import Builder, CalendlyOAuthState, DashboardSession, DashboardUser, Notification, utcnow
from core.security import decrypt_secret, encrypt_secret, hash_token
from core.services.outbox import enqueue
from core.states import OutboxKind

log = logging.getLogger(__name__)

CALLBACK_PATH = "/calendly/oauth/callback"
# A "Connect Calendly" must come back within this long (Calendly's codes last 10 minutes too).
STATE_LIFETIME = timedelta(minutes=10)
# Refresh an access token this long before it expires, so no request starts with a dying one.
REFRESH_MARGIN = timedelta(minutes=5)
# Used and expired states are deleted after this long.
KEEP_STATES = timedelta(days=1)

WAITING, CONNECTED, DISCONNECTED = "waiting", "connected", "disconnected"
TOKEN, OAUTH = "token", "oauth"

START_AGAIN = "Start again from the dashboard: open Connect Calendly and press the button once more."


class CalendlyDisconnected(DomainError, CalendlyError):
    """The builder's Calendly connection is gone (refused refresh, disconnected): they must
    reconnect. A CalendlyError too, so every caller that copes with Calendly being away copes."""


def redirect_uri() -> str:
    return get_settings().public_base_url + CALLBACK_PATH


def _secret_key() -> str:
    return get_settings().app_secret_key


# ---------------------------------------------------------------- connecting
def _sign_in_may_act_for(session: Session, dashboard_session_id: int, builder_id: int) -> bool:
    """The dashboard sign-in is live (not revoked, not expired) and its person is an admin or this
    builder's own account, as they are now."""
    row = session.get(DashboardSession, dashboard_session_id)
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return False
    user = session.get(DashboardUser, row.user_id)
    viewer = usable_viewer(session, user) if user is not None else None
    return viewer is not None and (viewer.role == ADMIN or viewer.builder_id == builder_id)


def start_connect(session: Session, builder_id: int, *, started_by: str, dashboard_session_id: int | None) -> str:
    """Begin connecting a builder's Calendly: returns the authorize URL to send the browser to.
    `dashboard_session_id` binds the callback to that sign-in (None only for the CLI)."""
    settings = get_settings()
    if not settings.calendly_client_id:
        raise DomainError("Calendly OAuth is not set up here: set CALENDLY_CLIENT_ID and CALENDLY_CLIENT_SECRET")
    builder = session.get(Builder, builder_id)
    if builder is None:
        raise NotFound(f"no builder {builder_id}")
    if dashboard_session_id is not None and not _sign_in_may_act_for(session, dashboard_session_id, builder_id):
        raise DomainError("this dashboard sign-in cannot connect Calendly for this builder")
    now = utcnow()
    session.execute(delete(CalendlyOAuthState).where(CalendlyOAuthState.expires_at < now - KEEP_STATES))
    state = secrets.token_urlsafe(32)
    verifier, challenge = oauth.pkce_pair()
    session.add(CalendlyOAuthState(
        state_hash=hash_token(state), builder_id=builder_id, dashboard_session_id=dashboard_session_id,
        code_verifier_encrypted=encrypt_secret(verifier, _secret_key()), started_by=started_by[:200],
        created_at=now, expires_at=now + STATE_LIFETIME))
    session.flush()
    log.info("Calendly connect started for builder %s by %s", builder_id, started_by)
    # The sandbox's authorize page preselects the builder's demo account from their email.
    return oauth.authorize_url(state=state, code_challenge=challenge,
                               login_hint=builder.email if settings.sandbox else None)


@dataclass
class ConnectResult:
    ok: bool
    builder_id: int | None
    builder_name: str
    message: str  # for a person
    # connected | denied (the person said no) | refused (bad state: start again) | failed (Calendly
    # refused the code or could not be reached; nothing changed)
    outcome: str = ""


def _claim_state(session: Session, state: str) -> tuple[CalendlyOAuthState | None, str]:
    """The state row, locked and now used, or None with why it is refused."""
    if not state or len(state) > 200:
        return None, "This Calendly connection link is not one of ours."
    row = session.execute(select(CalendlyOAuthState).where(CalendlyOAuthState.state_hash == hash_token(state))
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        return None, "This Calendly connection link is not one of ours."
    if row.used_at is not None:
        return None, "This Calendly connection link was already used."
    if row.expires_at <= utcnow():
        return None, "This Calendly connection link has expired (it lasts 10 minutes)."
    if row.dashboard_session_id is not None and not _sign_in_may_act_for(session, row.dashboard_session_id,
                                                                         row.builder_id):
        return None, "The dashboard sign-in that started this connection has ended."
    row.used_at = utcnow()
    return row, ""


def finish_connect(engine: Engine, *, state: str, code: str | None, error: str | None) -> ConnectResult:
    """The callback: check the state, exchange the code, store the tokens encrypted, then set up
    our webhook subscription and read the builder's event types (both best effort)."""
    with session_scope(engine) as session:
        row, why = _claim_state(session, state or "")
        builder = session.get(Builder, row.builder_id) if row is not None else None
        builder_id, name = (builder.id, builder.name) if builder is not None else (None, "")
        verifier = decrypt_secret(row.code_verifier_encrypted, _secret_key()) if row is not None else ""
    if error:
        text = ("You did not connect Calendly; nothing changed." if error == "access_denied"
                else f"Calendly did not connect ({error[:60]}); nothing changed.")
        return ConnectResult(False, builder_id, name, text, "denied")
    if row is None or builder is None:
        return ConnectResult(False, None, "", f"{why} {START_AGAIN}", "refused")
    if not code:
        return ConnectResult(False, builder_id, name, f"Calendly sent no authorization code. {START_AGAIN}", "refused")
    try:
        grant = oauth.exchange_code(code, verifier)
    except CalendlyUnavailable:
        return ConnectResult(False, builder_id, name, "Calendly could not be reached; nothing changed. "
                             "Please try again in a minute from the dashboard.", "failed")
    except CalendlyError as refusal:
        log.warning("Calendly refused the code for builder %s: %s", builder_id, refusal)
        return ConnectResult(False, builder_id, name, f"Calendly refused the connection (the approval may have "
                             f"taken more than 10 minutes); nothing changed. {START_AGAIN}", "failed")
    try:
        with session_scope(engine) as session:
            _store_grant(session, builder_id, grant)
    except DomainError as refusal:
        _revoke_quietly(grant.refresh_token)
        _revoke_quietly(grant.access_token)
        words = str(refusal)
        return ConnectResult(False, builder_id, name, f"{words[:1].upper()}{words[1:]}; nothing changed.", "failed")
    log.info("Calendly account %s connected to builder %s through OAuth", grant.owner, builder_id)
    found = _after_connect(engine, builder_id)
    return ConnectResult(True, builder_id, name, f"Calendly is connected for {name}.{found}", "connected")


def _store_grant(session: Session, builder_id: int, grant: oauth.TokenGrant) -> None:
    builder = session.execute(select(Builder).where(Builder.id == builder_id).with_for_update()).scalar_one()
    if builder.calendly_user_uri and builder.calendly_user_uri != grant.owner:
        raise DomainError(f"the Calendly account you approved is not {builder.name}'s ({builder.calendly_user_uri})")
    taken = session.execute(select(Builder.name).where(Builder.calendly_user_uri == grant.owner,
                                                       Builder.id != builder_id)).scalar()
    if taken is not None:
        raise DomainError(f"this Calendly account is already connected to another builder ({taken})")
    key = _secret_key()
    builder.calendly_user_uri = grant.owner
    builder.calendly_organization_uri = grant.organization or builder.calendly_organization_uri
    builder.calendly_token_encrypted = encrypt_secret(grant.access_token, key)
    builder.calendly_refresh_token_encrypted = encrypt_secret(grant.refresh_token, key)
    builder.calendly_token_expires_at = grant.expires_at
    builder.calendly_auth = OAUTH
    builder.calendly_status = CONNECTED
    builder.calendly_status_reason = None
    builder.calendly_connected_at = utcnow()


def _after_connect(engine: Engine, builder_id: int) -> str:
    """Our webhook subscription and a fresh read of the event types; a failure here leaves the
    connection in place (the integration health page and the worker's check pick it up)."""
    try:
        from core.calendly.subscriptions import ensure_subscription
    except ImportError:  # written alongside (core/calendly/subscriptions.py)
        log.warning("webhook subscriptions are not managed yet: none created for builder %s", builder_id)
    else:
        try:
            ensure_subscription(engine, builder_id)
        except Exception as error:  # noqa: BLE001 - the connection stands; the worker retries
            log.warning("webhook subscription for builder %s not set up yet: %s", builder_id, error)
    from core.services import scheduling
    scheduling.EVENT_TYPES.invalidate(str(builder_id))
    try:
        _builder, offered = scheduling.offered_session_types(engine, builder_id)
    except CalendlyError as error:
        log.warning("event types of builder %s not read after connecting: %s", builder_id, error)
        return ""
    return f" {len(offered)} event type{'s' if len(offered) != 1 else ''} found in Calendly."


# ---------------------------------------------------------------- the token in use
def access_token(engine: Engine, builder_id: int, *, force_refresh: bool = False,
                 stale_token: str | None = None) -> str:
    """The builder's Calendly token. For OAuth, refreshed when it expires within REFRESH_MARGIN or
    when forced (a 401); `stale_token` is the token that was refused: if another process already
    replaced it, the new one is returned without refreshing again."""
    key = _secret_key()
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        if builder is None:
            raise NotFound(f"no builder {builder_id}")
        current = _usable(builder, key)
        if builder.calendly_auth != OAUTH or not _needs_refresh(builder, force_refresh):
            return current
    disconnected: CalendlyDisconnected | None = None
    with session_scope(engine) as session:
        # The lock: FOR UPDATE on PostgreSQL; on SQLite this transaction began with BEGIN IMMEDIATE.
        builder = session.execute(select(Builder).where(Builder.id == builder_id).with_for_update()).scalar_one()
        current = _usable(builder, key)
        if stale_token is not None and current != stale_token:
            return current  # the refused token was already replaced by another process
        if not _needs_refresh(builder, force_refresh):
            return current  # another process refreshed while we waited for the lock
        try:
            grant = oauth.refresh(decrypt_secret(builder.calendly_refresh_token_encrypted, key))
        except oauth.OAuthRefused as refusal:
            if refusal.error != "invalid_grant":
                raise CalendlyUnavailable(f"Calendly refused to refresh the token: {refusal.error}") from None
            mark_disconnected(session, builder, "Calendly refused to renew the connection (the refresh token was "
                                                "revoked or already used): the builder must connect Calendly again")
            disconnected = CalendlyDisconnected(f"{builder.name} must connect Calendly again")
        else:
            builder.calendly_token_encrypted = encrypt_secret(grant.access_token, key)
            builder.calendly_refresh_token_encrypted = encrypt_secret(grant.refresh_token, key)
            builder.calendly_token_expires_at = grant.expires_at
            log.info("Calendly token of builder %s refreshed (expires %s)", builder_id, grant.expires_at.isoformat())
            return grant.access_token
    raise disconnected  # after the commit: the disconnection is stored


def _usable(builder: Builder, key: str) -> str:
    if builder.calendly_status == DISCONNECTED:
        raise CalendlyDisconnected(f"{builder.name} is not connected to Calendly: "
                                   f"{builder.calendly_status_reason or 'they must connect Calendly again'}")
    if not builder.calendly_token_encrypted:
        raise CalendlyDisconnected(f"{builder.name} has not connected Calendly yet")
    return decrypt_secret(builder.calendly_token_encrypted, key)


def _needs_refresh(builder: Builder, force: bool) -> bool:
    if not builder.calendly_refresh_token_encrypted:
        return False
    expires = builder.calendly_token_expires_at
    return force or expires is None or expires <= utcnow() + REFRESH_MARGIN


# ---------------------------------------------------------------- losing the connection
def mark_disconnected(session: Session, builder: Builder, reason: str) -> None:
    """The connection is gone: tokens dropped, status and reason stored, admins and the builder
    told by mail. Their session types stop being offered (scheduling, catalog) until they reconnect."""
    already = builder.calendly_status == DISCONNECTED
    builder.calendly_status = DISCONNECTED
    builder.calendly_status_reason = reason
    builder.calendly_token_encrypted = None
    builder.calendly_refresh_token_encrypted = None
    builder.calendly_token_expires_at = None
    session.flush()
    log.warning("builder %s (%s) disconnected from Calendly: %s", builder.id, builder.name, reason)
    from core.services import scheduling
    scheduling.EVENT_TYPES.invalidate(str(builder.id))
    if not already:
        _tell_people(session, builder, reason)


def _tell_people(session: Session, builder: Builder, reason: str) -> None:
    admins = session.execute(select(DashboardUser.email).where(DashboardUser.role == ADMIN)).scalars()
    when = utcnow().isoformat()
    body = (f"{builder.name}'s Calendly is no longer connected: {reason}.\n\n"
            f"Until it is connected again, {builder.name}'s session types cannot be booked. Existing bookings "
            f"are kept. Sign in to the dashboard ({get_settings().dashboard_url}) and open Connect Calendly "
            "to connect it again.")
    for to_email in dict.fromkeys([builder.email, *admins]):
        notification = Notification(
            kind="calendly_disconnected", to_email=to_email, subject=f"Calendly disconnected: {builder.name}"[:300],
            body=body, dedupe_key=bounded_key(f"calendly_disconnected:{builder.id}:{to_email}:{when}", 600))
        session.add(notification)
        session.flush()
        enqueue(session, OutboxKind.NOTIFY, notification.dedupe_key, {"notification_id": notification.id})


def disconnect(engine: Engine, builder_id: int, *, actor: str) -> None:
    """End a builder's connection on purpose: our webhook subscription deleted (while the token
    still works), the OAuth tokens revoked at Calendly, the builder marked disconnected. Calendly
    being unreachable does not stop it: our side forgets the tokens either way."""
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        if builder is None:
            raise NotFound(f"no builder {builder_id}")
        key = _secret_key()
        auth = builder.calendly_auth
        tokens = [decrypt_secret(value, key) for value in (builder.calendly_refresh_token_encrypted,
                                                           builder.calendly_token_encrypted) if value]
    try:
        from core.calendly.subscriptions import delete_subscription
    except ImportError:  # written alongside (core/calendly/subscriptions.py)
        log.warning("webhook subscriptions are not managed yet: none deleted for builder %s", builder_id)
    else:
        try:
            delete_subscription(engine, builder_id)
        except Exception as error:  # noqa: BLE001 - disconnecting must not depend on Calendly answering
            log.warning("webhook subscription of builder %s not deleted: %s", builder_id, error)
    if auth == OAUTH:
        for token in tokens:
            _revoke_quietly(token)
    with session_scope(engine) as session:
        builder = session.execute(select(Builder).where(Builder.id == builder_id).with_for_update()).scalar_one()
        builder.calendly_status = DISCONNECTED
        builder.calendly_status_reason = f"disconnected by {actor}"
        builder.calendly_token_encrypted = None
        builder.calendly_refresh_token_encrypted = None
        builder.calendly_token_expires_at = None
        builder.calendly_subscription_uri = None
        builder.calendly_subscription_state = None
    from core.services import scheduling
    scheduling.EVENT_TYPES.invalidate(str(builder_id))
    log.info("builder %s disconnected from Calendly by %s", builder_id, actor)


def _revoke_quietly(token: str) -> None:
    try:
        oauth.revoke(token)
    except CalendlyError as error:
        log.warning("Calendly token not revoked: %s", error)


__all__ = ["CALLBACK_PATH", "ConnectResult", "CalendlyDisconnected", "redirect_uri", "start_connect",
           "finish_connect", "access_token", "mark_disconnected", "disconnect"]
