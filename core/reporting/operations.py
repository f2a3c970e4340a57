"""What admins run: the refund ledger, failed side effects and webhooks, builders and prices."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.auth import Viewer, builder_scope, require_admin
from core.errors import DomainError
from core.models import (
    Booking, BookingHistory, Builder, Client, OutboxEntry, Refund, SessionType, WebhookEvent,
)
from core.services.payment_events import PAYMENT_MISMATCH
from core.services.slot_binding import SLOT_MISMATCH, STRAY_SLOT
from core.reporting.bookings import (
    CSV_MAX_ROWS, MAX_PAGE_SIZE, OutboxRow, RefundRow, WebhookRow, day_start, outbox_row, refund_row,
    webhook_row,
)
from core.reporting.csvfile import csv_text, major
from core.states import OutboxStatus, RefundStatus, WebhookOutcome

# The statuses the refunds page filters by: every one a refund row can have.
REFUND_STATUSES = tuple(RefundStatus)


@dataclass(frozen=True)
class LedgerRefund(RefundRow):
    """A refund with whose booking it is, for the admin's refund ledger."""

    builder_name: str = ""
    client_email: str = ""
    client_name: str = ""
    session_type_name: str = ""


@dataclass(frozen=True)
class RefundTotal:
    currency: str
    status: str
    count: int
    amount_cents: int


@dataclass(frozen=True)
class RefundLedger:
    rows: list[LedgerRefund]
    total: int
    page: int
    page_size: int
    totals: list[RefundTotal] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max((self.total + self.page_size - 1) // self.page_size, 1)


@dataclass(frozen=True)
class RefundFilters:
    """What the refund ledger is narrowed to. Dates are whole days in the viewer's timezone."""

    statuses: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    currency: str | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    builder_id: int | None = None  # admins only; a builder always sees their own


def _refunds_narrowed(query, viewer: Viewer, filters: RefundFilters, since: datetime | None):
    """`query` (over refunds, joined to their bookings when a builder is in scope) narrowed."""
    if set(filters.statuses) - set(REFUND_STATUSES):
        raise DomainError(f"unknown refund status in {filters.statuses}")
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise DomainError("the start of the date range is after its end")
    scope = builder_scope(viewer, filters.builder_id)
    if filters.statuses:
        query = query.where(Refund.status.in_(filters.statuses))
    if filters.rules:
        query = query.where(Refund.rule.in_(filters.rules))
    if filters.currency:
        query = query.where(Refund.currency == filters.currency.upper())
    if since is not None:
        query = query.where(Refund.created_at >= since)
    if filters.date_from:
        query = query.where(Refund.created_at >= day_start(filters.date_from, viewer.timezone))
    if filters.date_to:
        query = query.where(Refund.created_at < day_start(filters.date_to + timedelta(days=1), viewer.timezone))
    if scope is not None:
        query = query.where(Booking.builder_id == scope)
    return query


def _ledger_rows(viewer: Viewer, filters: RefundFilters, since: datetime | None):
    return _refunds_narrowed(
        select(Refund, Builder.name, Client.email, Client.name, SessionType.name)
        .join(Booking, Booking.id == Refund.booking_id)
        .join(Builder, Builder.id == Booking.builder_id)
        .join(Client, Client.id == Booking.client_id)
        .join(SessionType, SessionType.id == Booking.session_type_id), viewer, filters, since,
    ).order_by(Refund.created_at.desc(), Refund.id.desc())


def refund_ledger(session: Session, viewer: Viewer, *, statuses: tuple[str, ...] = (),
                  rules: tuple[str, ...] = (), since: datetime | None = None,
                  builder_id: int | None = None, page: int = 1, page_size: int = 50,
                  filters: RefundFilters | None = None) -> RefundLedger:
    """Every refund, newest first, paged; with totals per currency and status for the same filter.

    `filters` narrows by status, rule, currency, dates and builder; the older keywords (statuses,
    rules, builder_id) are its fields given one by one."""
    filters = filters or RefundFilters(statuses=tuple(statuses), rules=tuple(rules), builder_id=builder_id)
    scope = builder_scope(viewer, filters.builder_id)
    page_size = min(max(int(page_size), 1), MAX_PAGE_SIZE)
    page = max(int(page), 1)

    totals = select(Refund.currency, Refund.status, func.count(Refund.id), func.sum(Refund.amount_cents))
    if scope is not None:
        # Only a builder's totals need the bookings: every refund has one (foreign key), so an
        # admin's totals are the refunds table alone.
        totals = totals.join(Booking, Booking.id == Refund.booking_id)
    totals = session.execute(_refunds_narrowed(totals, viewer, filters, since)
                             .group_by(Refund.currency, Refund.status)
                             .order_by(Refund.currency, Refund.status)).all()
    rows = session.execute(_ledger_rows(viewer, filters, since)
                           .limit(page_size).offset((page - 1) * page_size)).all()
    return RefundLedger(
        rows=[LedgerRefund(**vars(refund_row(refund)), builder_name=builder, client_email=email,
                           client_name=name or "", session_type_name=session_type or "")
              for refund, builder, email, name, session_type in rows],
        total=sum(int(t[2]) for t in totals), page=page, page_size=page_size,
        totals=[RefundTotal(t[0], t[1], int(t[2]), int(t[3])) for t in totals],
    )


def refunds_csv(session: Session, viewer: Viewer, filters: RefundFilters | None = None, *,
                max_rows: int = CSV_MAX_ROWS) -> str:
    """Every refund matching `filters` (up to `max_rows`), newest first, as CSV; amounts in major units."""
    filters = filters or RefundFilters()
    query = _ledger_rows(viewer, filters, None).limit(max_rows).execution_options(yield_per=2000)
    return csv_text(
        ["refund_id", "created_at_utc", "booking_id", "builder", "client_name", "client_email",
         "session_type", "currency", "amount", "status", "rule", "reason", "issued_by", "stripe_refund_id",
         "failure_reason"],
        ((r.id, r.created_at.isoformat(), r.booking_id, builder, name, email, session_type, r.currency,
          major(r.amount_cents, r.currency), r.status, r.rule, r.reason, r.issued_by,
          r.stripe_refund_id or "", r.failure_reason or "")
         for r, builder, email, name, session_type in session.execute(query)))


def refund_currencies(session: Session, viewer: Viewer) -> list[str]:
    """The currencies the viewer's refunds are in (what the refunds page filters by)."""
    scope = builder_scope(viewer)
    query = select(Refund.currency).distinct().order_by(Refund.currency)
    if scope is not None:
        query = query.join(Booking, Booking.id == Refund.booking_id).where(Booking.builder_id == scope)
    return list(session.execute(query).scalars())


def failed_outbox(session: Session, viewer: Viewer, *, include_retrying: bool = True,
                  limit: int = 200) -> list[OutboxRow]:
    """Side effects that failed for good, and (optionally) those failing and being retried."""
    require_admin(viewer)
    condition = OutboxEntry.status == OutboxStatus.FAILED
    if include_retrying:
        retrying = (OutboxEntry.status == OutboxStatus.PENDING) & OutboxEntry.last_error.is_not(None)
        condition = or_(condition, retrying)
    entries = session.execute(
        select(OutboxEntry).where(condition).order_by(OutboxEntry.id.desc()).limit(limit)
    ).scalars()
    return [outbox_row(e) for e in entries]


def failed_webhooks(session: Session, viewer: Viewer, *, limit: int = 200) -> list[WebhookRow]:
    """Webhook deliveries whose processing failed (they can be reprocessed)."""
    require_admin(viewer)
    events = session.execute(
        select(WebhookEvent).where(WebhookEvent.outcome == WebhookOutcome.FAILED)
        .order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc()).limit(limit)
    ).scalars()
    return [webhook_row(e) for e in events]


# History causes that mean "a client-chosen value did not match its booking": refused, recorded,
# and (where a builder of ours could) undone automatically, but an admin should know.
ATTENTION_CAUSES = {
    STRAY_SLOT: "A Calendly slot named this booking but was not its slot",
    SLOT_MISMATCH: "Reconcile found this booking holding a slot that is not its own",
    PAYMENT_MISMATCH: "A payment named this booking but was not what it owes",
}


@dataclass(frozen=True)
class AttentionItem:
    created_at: datetime
    booking_id: str
    what: str
    why: str
    status: str


def needs_attention(session: Session, viewer: Viewer, *, limit: int = 200) -> list[AttentionItem]:
    """Refused slots and payments, newest first (read from one index on the history's cause)."""
    require_admin(viewer)
    rows = session.execute(
        select(BookingHistory).where(BookingHistory.cause.in_(list(ATTENTION_CAUSES)))
        .order_by(BookingHistory.id.desc()).limit(limit)
    ).scalars()
    return [AttentionItem(row.created_at, row.booking_id, ATTENTION_CAUSES[row.cause],
                          str((row.details or {}).get("why") or ""), row.to_status) for row in rows]


@dataclass(frozen=True)
class SessionTypePrice:
    id: int
    name: str
    duration_minutes: int | None
    price_cents: int
    currency: str
    active: bool
    refund_full_hours: int | None
    refund_partial_percent: int | None
    calendly_event_type_uri: str
    bookings: int


@dataclass(frozen=True)
class BuilderPrices:
    builder_id: int
    name: str
    email: str
    timezone: str
    session_types: list[SessionTypePrice]


def builders_and_prices(session: Session, viewer: Viewer, *, builder_id: int | None = None) -> list[BuilderPrices]:
    """Builders with their session types, prices and how often each was booked."""
    scope = builder_scope(viewer, builder_id)
    builders = select(Builder).order_by(Builder.name, Builder.id)
    types = select(SessionType).order_by(SessionType.price_cents, SessionType.id)
    counts = select(Booking.session_type_id, func.count(Booking.id)).group_by(Booking.session_type_id)
    if scope is not None:
        builders = builders.where(Builder.id == scope)
        types = types.where(SessionType.builder_id == scope)
        counts = counts.where(Booking.builder_id == scope)
    booked = dict(session.execute(counts).all())
    by_builder: dict[int, list[SessionTypePrice]] = defaultdict(list)
    for t in session.execute(types).scalars():
        by_builder[t.builder_id].append(SessionTypePrice(
            t.id, t.name, t.duration_minutes, t.price_cents, t.currency, t.active, t.refund_full_hours,
            t.refund_partial_percent, t.calendly_event_type_uri, int(booked.get(t.id, 0))))
    return [BuilderPrices(b.id, b.name, b.email, b.timezone, by_builder.get(b.id, []))
            for b in session.execute(builders).scalars()]


def session_type_options(session: Session, viewer: Viewer, *, builder_id: int | None = None) -> list[tuple[int, str]]:
    """(id, label) of the session types the viewer may filter by."""
    scope = builder_scope(viewer, builder_id)
    query = (select(SessionType.id, SessionType.name, Builder.name)
             .join(Builder, Builder.id == SessionType.builder_id).order_by(Builder.name, SessionType.name))
    if scope is not None:
        query = query.where(SessionType.builder_id == scope)
    return [(tid, name if scope is not None else f"{builder} · {name}") for tid, name, builder in session.execute(query)]


def builder_options(session: Session, viewer: Viewer) -> list[tuple[int, str]]:
    scope = builder_scope(viewer)
    query = select(Builder.id, Builder.name).order_by(Builder.name)
    if scope is not None:
        query = query.where(Builder.id == scope)
    return [(bid, name) for bid, name in session.execute(query)]
