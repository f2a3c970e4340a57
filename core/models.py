"""The domain model. Money is integer minor units plus a currency; times are aware UTC.

Ledgers (payments, refunds, history, webhook events, outbox) are append-mostly: rows change
status but are never deleted, so the past can always be explained.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, MetaData, String, Text,
    TypeDecorator, UniqueConstraint, false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.states import OutboxStatus, PaymentStatus, RefundStatus, WebhookOutcome

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_booking_id() -> str:
    # Unguessable: the id appears in payment links and Calendly's utm_content.
    return "bk_" + secrets.token_hex(10)


class UTCDateTime(TypeDecorator):
    """Stores UTC on both engines and always hands back aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused; use aware UTC")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Builder(Base):
    __tablename__ = "builders"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    calendly_user_uri: Mapped[str | None] = mapped_column(String(500), unique=True)
    calendly_organization_uri: Mapped[str | None] = mapped_column(String(500))
    calendly_token_encrypted: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    bio: Mapped[str | None] = mapped_column(Text)  # shown on the home page and the builder's profile
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The Calendly integration (core/calendly/). `calendly_auth`: "token" (a personal access token,
    # for self-hosted single-builder use) or "oauth" (the builder connected through our OAuth app);
    # None until connected. `calendly_status`: waiting (never connected), connected, disconnected
    # (a refresh was refused or the builder disconnected; `calendly_status_reason` says why).
    calendly_auth: Mapped[str | None] = mapped_column(String(16))
    calendly_status: Mapped[str] = mapped_column(String(16), default="waiting", server_default="waiting")
    calendly_status_reason: Mapped[str | None] = mapped_column(Text)
    calendly_connected_at: Mapped[datetime | None]
    # OAuth only: the access token (calendly_token_encrypted) expires; the refresh token is single
    # use and rotates on every refresh (refreshed under a row lock).
    calendly_refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    calendly_token_expires_at: Mapped[datetime | None]
    # Our webhook subscription for this builder, as last seen in Calendly.
    calendly_subscription_uri: Mapped[str | None] = mapped_column(String(500))
    calendly_subscription_state: Mapped[str | None] = mapped_column(String(16))  # active | disabled | missing
    calendly_subscription_checked_at: Mapped[datetime | None]
    calendly_last_reconcile_at: Mapped[datetime | None]

    session_types: Mapped[list["SessionType"]] = relationship(back_populates="builder")


class SessionType(Base):
    """A Calendly event type with our price and (optionally) its own refund policy."""

    __tablename__ = "session_types"
    id: Mapped[int] = mapped_column(primary_key=True)
    builder_id: Mapped[int] = mapped_column(ForeignKey("builders.id"), index=True)
    calendly_event_type_uri: Mapped[str] = mapped_column(String(500), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    refund_full_hours: Mapped[int | None] = mapped_column(Integer)
    refund_partial_percent: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    builder: Mapped[Builder] = relationship(back_populates="session_types")


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Booking(Base):
    __tablename__ = "bookings"
    # The dashboard's lists are ordered by (created_at, id) or (start_time, id), for everyone or
    # one builder: those are the leading columns, so a page is a range of one index. The created
    # ones also carry what the overview counts (status, currency, start_time, builder_id), so the
    # reports over a year of bookings read a narrow index instead of the wide rows (migration 0002).
    __table_args__ = (
        Index("ix_bookings_created_list", "created_at", "id", "builder_id", "status", "currency", "start_time"),
        Index("ix_bookings_builder_created_list", "builder_id", "created_at", "id", "status", "currency",
              "start_time"),
        Index("ix_bookings_start_list", "start_time", "id"),
        Index("ix_bookings_builder_start_list", "builder_id", "start_time", "id"),
        Index("ix_bookings_status_hold", "status", "hold_expires_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_booking_id)
    builder_id: Mapped[int] = mapped_column(ForeignKey("builders.id"))
    session_type_id: Mapped[int] = mapped_column(ForeignKey("session_types.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))  # a states.BookingStatus
    # The price is copied at booking time: a later price change does not alter a booking.
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    invitee_timezone: Mapped[str | None] = mapped_column(String(64))
    calendly_event_uri: Mapped[str | None] = mapped_column(String(500), index=True)
    calendly_invitee_uri: Mapped[str | None] = mapped_column(String(500), unique=True)
    calendly_cancel_url: Mapped[str | None] = mapped_column(String(500))
    calendly_reschedule_url: Mapped[str | None] = mapped_column(String(500))
    hold_expires_at: Mapped[datetime | None]
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    # Fixed once per checkout attempt so that concurrent or retried creations send identical
    # parameters under one idempotency key, and Stripe answers them all with the same session.
    checkout_expires_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    canceled_by: Mapped[str | None] = mapped_column(String(200))
    no_show_at: Mapped[datetime | None]
    reminder_sent_at: Mapped[datetime | None]
    # A delayed payment (bank transfer) is on its way: Checkout completed but not yet paid. While
    # set, the slot is held up to the settlement window (hold_expires_at), nobody is asked to pay
    # again, and the worker leaves the booking alone until then. Cleared when it succeeds or fails.
    payment_processing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    builder: Mapped[Builder] = relationship()
    session_type: Mapped[SessionType] = relationship()
    client: Mapped[Client] = relationship()
    payments: Mapped[list["Payment"]] = relationship(back_populates="booking", order_by="Payment.id")
    refunds: Mapped[list["Refund"]] = relationship(back_populates="booking", order_by="Refund.id")
    history: Mapped[list["BookingHistory"]] = relationship(order_by="BookingHistory.id")


class Payment(Base):
    __tablename__ = "payments"
    # A booking's ledger sums and the revenue per period are answered from these indexes alone.
    __table_args__ = (
        Index("ix_payments_booking_ledger", "booking_id", "status", "amount_cents", "dispute_status"),
        Index("ix_payments_created_ledger", "created_at", "status", "currency", "amount_cents", "booking_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"))
    stripe_payment_intent_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32), default=PaymentStatus.SUCCEEDED)  # a states.PaymentStatus
    # Stripe's dispute status (needs_response, won, lost, ...) while a dispute exists.
    dispute_status: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    booking: Mapped[Booking] = relationship(back_populates="payments")
    refunds: Mapped[list["Refund"]] = relationship(back_populates="payment", order_by="Refund.id")


class Refund(Base):
    """One row per refund: several partial refunds per payment, each with its own status."""

    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_booking_ledger", "booking_id", "status", "amount_cents"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # A states.RefundStatus: requested (decided, not yet sent), then Stripe's status for it.
    status: Mapped[str] = mapped_column(String(32), default=RefundStatus.REQUESTED)
    reason: Mapped[str] = mapped_column(String(500), default="")
    rule: Mapped[str] = mapped_column(String(32))  # a states.RefundRule: why it was refunded
    issued_by: Mapped[str] = mapped_column(String(200))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    booking: Mapped[Booking] = relationship(back_populates="refunds")
    payment: Mapped[Payment] = relationship(back_populates="refunds")


class BookingHistory(Base):
    """Append-only: every status change and every money event of a booking, with its cause."""

    __tablename__ = "booking_history"
    # The Failures page lists refused slots and payments by cause, newest first.
    __table_args__ = (Index("ix_booking_history_cause", "cause", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(Base):
    """Every webhook received, with its raw body and what processing it made of it."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_outcome_received", "outcome", "received_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    # NULL for requests whose signature failed: a forger must not occupy a real event's key.
    dedupe_key: Mapped[str | None] = mapped_column(String(600), unique=True)
    event_type: Mapped[str] = mapped_column(String(100), default="")
    # For a rejected or invalid delivery (unauthenticated input): only a bounded prefix, with the
    # whole body's size and SHA-256 below, so strangers cannot fill the disk. NULL size: kept whole.
    raw_body: Mapped[str] = mapped_column(Text)
    body_size: Mapped[int | None] = mapped_column(Integer)
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    headers: Mapped[dict[str, Any] | None]
    signature_valid: Mapped[bool] = mapped_column(Boolean)
    # A states.WebhookOutcome: received → processed | ignored | unmatched | stray, or failed;
    # rejected (bad signature) and invalid (unusable payload) are stored as such.
    outcome: Mapped[str] = mapped_column(String(16), default=WebhookOutcome.RECEIVED)
    error: Mapped[str | None] = mapped_column(Text)
    booking_id: Mapped[str | None] = mapped_column(String(40), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class OutboxEntry(Base):
    """An external side effect decided in a transaction, carried out after its commit."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # a states.OutboxKind (executors: side_effects)
    booking_id: Mapped[str | None] = mapped_column(String(40), index=True)
    payload: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)  # a states.OutboxStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]


class Notification(Base):
    """Every message we send (or would send), kept whether or not SMTP is configured."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[str | None] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    to_email: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(600), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class DashboardUser(Base):
    __tablename__ = "dashboard_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))  # admin | builder
    builder_id: Mapped[int | None] = mapped_column(ForeignKey("builders.id"))
    # The zone this person reads times in (IANA name); None: a builder's own, else UTC.
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DashboardSession(Base):
    """A signed-in dashboard user, kept across page reloads: a cookie carries the session id, only
    its hash is stored, and the row decides (expiry, sign-out)."""

    __tablename__ = "dashboard_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("dashboard_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]


class CalendlyOAuthState(Base):
    """One "Connect Calendly" in flight: the `state` we sent to Calendly (only its hash kept), the
    PKCE verifier (encrypted), which builder and which dashboard sign-in started it; single use,
    short-lived."""

    __tablename__ = "calendly_oauth_states"
    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    builder_id: Mapped[int] = mapped_column(ForeignKey("builders.id"), index=True)
    dashboard_session_id: Mapped[int | None] = mapped_column(ForeignKey("dashboard_sessions.id"))
    code_verifier_encrypted: Mapped[str] = mapped_column(Text)
    started_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class LoginToken(Base):
    """A client's magic sign-in link; only its hash is stored."""

    __tablename__ = "login_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    next_url: Mapped[str | None] = mapped_column(String(500))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # The client ticked "keep me signed in": the session this link opens is a long one.
    remember: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ClientSession(Base):
    """A signed-in client on our pages. The cookie carries the session id; only its hash is stored,
    and the row decides: sign-out or revocation ends it on the server, whatever cookie remains."""

    __tablename__ = "client_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]


class ThrottleCounter(Base):
    """How many times one key (a hashed email or address) did one throttled thing in one fixed
    window. Shared by every process through the database; rows of ended windows are deleted."""

    __tablename__ = "throttle_counters"
    __table_args__ = (UniqueConstraint("scope", "key_hash", "window_start"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(40))  # rule and key kind, e.g. magic_link:email
    key_hash: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 of the key, never the key itself
    window_start: Mapped[datetime]
    window_end: Mapped[datetime] = mapped_column(index=True)
    hits: Mapped[int] = mapped_column(Integer)


class SystemState(Base):
    """Small key/value facts, e.g. the reconciliation checkpoint."""

    __tablename__ = "system_state"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


__all__ = [
    "Base", "Builder", "SessionType", "Client", "Booking", "Payment", "Refund", "BookingHistory",
    "WebhookEvent", "OutboxEntry", "Notification", "DashboardUser", "LoginToken", "ClientSession",
    "SystemState", "ThrottleCounter",
    "utcnow", "new_booking_id",
]
