"""Bookings for the dashboard: the filtered, paged list, its CSV, upcoming sessions, pending
payments, and one booking in full detail.

Lists are paged by the database (LIMIT/OFFSET with a COUNT of the same filter); the payment status
of each row is computed in SQL from the ledgers (see `core.reporting.sql`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, and_, func, literal, or_, select, union_all
from sqlalchemy.orm import Session, joinedload

from core.auth import Viewer, builder_scope, check_booking_access, require_admin
from core.calendly import PayloadError, parse_calendly_webhook
from core.config import get_settings
from core.errors import DomainError, NotFound
from core.keys import calendly_event_key
from core.models import (
    Booking, BookingHistory, Builder, Client, OutboxEntry, Payment, Refund, SessionType, WebhookEvent,
    utcnow,
)
from core.money import format_amount
from core.reporting.csvfile import csv_text, major
from core.reporting.sql import (
    implied_by_payment_statuses, like_escaped, paid_cents_of, payment_status_of, refunded_cents_of,
)
from core.services.ledger import summarize
from core.states import BookingStatus as S, OutboxStatus, PaymentState, WebhookOutcome, can_cancel

MAX_PAGE_SIZE = 500
CSV_MAX_ROWS = 200_000


@dataclass(frozen=True)
class BookingFilters:
    """What the bookings list is narrowed to. Dates are whole days in the viewer's timezone."""

    statuses: tuple[str, ...] = ()
    payment_statuses: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    date_field: str = "created"  # "created" (when booked) or "start" (when the session is)
    session_type_id: int | None = None
    search: str = ""  # part of the client's name or email, or a booking id
    builder_id: int | None = None  # admins only; builders always see their own


@dataclass(frozen=True)
class BookingFacts:
    """What every view of a booking shows: who, when, where it stands and its money."""

    id: str
    status: str
    payment_status: str
    amount_cents: int
    currency: str
    paid_cents: int
    refunded_cents: int
    created_at: datetime
    start_time: datetime | None
    payment_processing_since: datetime | None
    builder_id: int
    builder_name: str
    session_type_name: str
    client_name: str
    client_email: str

    @property
    def payment_on_its_way(self) -> bool:
        """Paid by bank transfer and settling: not an unpaid booking."""
        return self.status == S.PENDING_PAYMENT and self.payment_processing_since is not None


@dataclass(frozen=True)
class BookingRow(BookingFacts):
    session_type_id: int = 0


@dataclass(frozen=True)
class BookingPage:
    rows: list[BookingRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max((self.total + self.page_size - 1) // self.page_size, 1)


def _validate(filters: BookingFilters) -> None:
    unknown = set(filters.statuses) - {s.value for s in S}
    if unknown:
        raise DomainError(f"unknown booking status {sorted(unknown)[0]!r}")
    unknown = set(filters.payment_statuses) - {p.value for p in PaymentState}
    if unknown:
        raise DomainError(f"unknown payment status {sorted(unknown)[0]!r}")
    if filters.date_field not in ("created", "start"):
        raise DomainError("date_field must be 'created' or 'start'")
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise DomainError("the start of the date range is after its end")


def day_start(day: date, tz: str) -> datetime:
    try:
        zone = ZoneInfo(tz)
    except Exception:  # an unknown zone name must not break the page: fall back to UTC
        zone = ZoneInfo("UTC")
    return datetime.combine(day, time.min, tzinfo=zone)


def _filtered(query: Select, viewer: Viewer, filters: BookingFilters) -> Select:
    """`query` (over `bookings`) narrowed to what `filters` select and `viewer` may see."""
    _validate(filters)
    scope = builder_scope(viewer, filters.builder_id)
    if scope is not None:
        query = query.where(Booking.builder_id == scope)
    if filters.statuses:
        query = query.where(Booking.status.in_(filters.statuses))
    if filters.payment_statuses:
        implied = implied_by_payment_statuses(filters.payment_statuses)
        if implied is not None:
            query = query.where(implied)
        query = query.where(payment_status_of(Booking.id).in_(filters.payment_statuses))
    column = Booking.created_at if filters.date_field == "created" else Booking.start_time
    if filters.date_from:
        query = query.where(column >= day_start(filters.date_from, viewer.timezone))
    if filters.date_to:
        query = query.where(column < day_start(filters.date_to + timedelta(days=1), viewer.timezone))
    if filters.session_type_id is not None:
        query = query.where(Booking.session_type_id == filters.session_type_id)
    term = filters.search.strip()
    if term:
        # The matching clients' bookings, plus the booking whose id is the term: as a set of ids,
        # so the database finds the few clients first and their bookings by index (instead of
        # joining every booking to its client to test the OR).
        clients = select(Client.id).where(or_(like_escaped(Client.name, term), like_escaped(Client.email, term)))
        by_client = select(Booking.id).where(Booking.client_id.in_(clients))
        query = query.where(Booking.id.in_(union_all(by_client, select(literal(term, String)))))
    return query


def _order(filters: BookingFilters, columns=Booking.__table__.c) -> tuple:
    key = columns.start_time if filters.date_field == "start" else columns.created_at
    return key.desc(), columns.id.desc()


def _list_query(viewer: Viewer, filters: BookingFilters, *, limit: int | None = None, offset: int = 0) -> Select:
    """The rows of the list, in order: first the ids of the page (filtered, sorted and cut by the
    database on the bookings alone), then, for those rows only, their names and ledger sums —
    so a deep OFFSET skips bare index entries, not rows with subqueries computed."""
    page = _filtered(select(Booking.id, Booking.created_at, Booking.start_time), viewer, filters)
    page = page.order_by(*_order(filters)).offset(offset or None)
    if limit is not None:
        page = page.limit(limit)
    page = page.subquery("page")
    return (
        select(
            Booking.id, Booking.created_at, Booking.start_time, Booking.status,
            payment_status_of(Booking.id).label("payment_status"), Booking.amount_cents, Booking.currency,
            paid_cents_of(Booking.id).label("paid_cents"),
            refunded_cents_of(Booking.id).label("refunded_cents"),
            Booking.builder_id, Builder.name.label("builder_name"), Booking.session_type_id,
            SessionType.name.label("session_type_name"), Client.name.label("client_name"),
            Client.email.label("client_email"), Booking.payment_processing_since,
        )
        .select_from(page)
        .join(Booking, Booking.id == page.c.id)
        .join(Builder, Builder.id == Booking.builder_id)
        .join(SessionType, SessionType.id == Booking.session_type_id)
        .join(Client, Client.id == Booking.client_id)
        .order_by(*_order(filters, page.c))
    )


def _row(r) -> BookingRow:
    return BookingRow(
        id=r.id, created_at=r.created_at, start_time=r.start_time, status=r.status,
        payment_status=r.payment_status, amount_cents=int(r.amount_cents), currency=r.currency,
        paid_cents=int(r.paid_cents), refunded_cents=int(r.refunded_cents), builder_id=r.builder_id,
        builder_name=r.builder_name, session_type_id=r.session_type_id,
        session_type_name=r.session_type_name, client_name=r.client_name, client_email=r.client_email,
        payment_processing_since=r.payment_processing_since,
    )


def count_bookings(session: Session, viewer: Viewer, filters: BookingFilters) -> int:
    # count(*), not count(id): the same number (ids are never NULL), and any index that covers
    # the filter answers it without reading the table.
    query = _filtered(select(func.count()).select_from(Booking), viewer, filters)
    return int(session.execute(query).scalar_one())


def list_bookings(session: Session, viewer: Viewer, filters: BookingFilters | None = None,
                  page: int = 1, page_size: int = 50) -> BookingPage:
    """One page (1-based) of the viewer's bookings matching `filters`, newest first, and the total."""
    filters = filters or BookingFilters()
    page_size = min(max(int(page_size), 1), MAX_PAGE_SIZE)
    page = max(int(page), 1)
    total = count_bookings(session, viewer, filters)
    rows = session.execute(_list_query(viewer, filters, limit=page_size, offset=(page - 1) * page_size)).all()
    return BookingPage([_row(r) for r in rows], total, page, page_size)


def bookings_csv(session: Session, viewer: Viewer, filters: BookingFilters | None = None, *,
                 max_rows: int = CSV_MAX_ROWS) -> str:
    """Every booking matching `filters` (up to `max_rows`) as CSV; amounts in major units."""
    filters = filters or BookingFilters()
    query = _list_query(viewer, filters, limit=max_rows).execution_options(yield_per=2000)
    return csv_text(
        ["booking_id", "created_at_utc", "start_time_utc", "status", "payment_status", "session_type",
         "client_name", "client_email", "builder", "currency", "price", "paid", "refunded"],
        ((r.id, r.created_at.isoformat(), r.start_time.isoformat() if r.start_time else "",
          r.status, r.payment_status, r.session_type_name, r.client_name, r.client_email,
          r.builder_name, r.currency, major(r.amount_cents, r.currency),
          major(r.paid_cents, r.currency), major(r.refunded_cents, r.currency))
         for r in session.execute(query)))


# ---------------------------------------------------------------- upcoming sessions
@dataclass(frozen=True)
class UpcomingSession:
    id: str
    start_time: datetime
    end_time: datetime | None
    status: str
    session_type_name: str
    duration_minutes: int | None
    client_name: str
    client_email: str
    invitee_timezone: str | None
    amount_cents: int
    currency: str
    builder_name: str


def upcoming_sessions(session: Session, viewer: Viewer, *, now: datetime | None = None,
                      limit: int = 100, builder_id: int | None = None) -> list[UpcomingSession]:
    """Sessions still to come that hold a slot (confirmed, or waiting for payment), soonest first."""
    scope = builder_scope(viewer, builder_id)
    now = now or utcnow()
    query = (
        select(Booking.id, Booking.start_time, Booking.end_time, Booking.status, SessionType.name,
               SessionType.duration_minutes, Client.name, Client.email, Booking.invitee_timezone,
               Booking.amount_cents, Booking.currency, Builder.name)
        .join(SessionType, SessionType.id == Booking.session_type_id)
        .join(Client, Client.id == Booking.client_id)
        .join(Builder, Builder.id == Booking.builder_id)
        .where(Booking.status.in_((S.CONFIRMED, S.PENDING_PAYMENT)), Booking.start_time >= now)
        .order_by(Booking.start_time, Booking.id)
        .limit(limit)
    )
    if scope is not None:
        query = query.where(Booking.builder_id == scope)
    return [UpcomingSession(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9]), r[10], r[11])
            for r in session.execute(query)]


def sessions_between(session: Session, viewer: Viewer, start: datetime, end: datetime, *,
                     builder_id: int | None = None, limit: int = 500) -> list[UpcomingSession]:
    """Confirmed (and completed) sessions starting in [start, end), soonest first: a calendar's
    week. Unpaid holds are not sessions yet: see `pending_payments`."""
    if end <= start:
        raise DomainError("the end of the period is not after its start")
    scope = builder_scope(viewer, builder_id)
    query = (
        select(Booking.id, Booking.start_time, Booking.end_time, Booking.status, SessionType.name,
               SessionType.duration_minutes, Client.name, Client.email, Booking.invitee_timezone,
               Booking.amount_cents, Booking.currency, Builder.name)
        .join(SessionType, SessionType.id == Booking.session_type_id)
        .join(Client, Client.id == Booking.client_id)
        .join(Builder, Builder.id == Booking.builder_id)
        .where(Booking.status.in_((S.CONFIRMED, S.COMPLETED)), Booking.start_time >= start,
               Booking.start_time < end)
        .order_by(Booking.start_time, Booking.id)
        .limit(limit)
    )
    if scope is not None:
        query = query.where(Booking.builder_id == scope)
    return [UpcomingSession(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9]), r[10], r[11])
            for r in session.execute(query)]


# ---------------------------------------------------------------- pending payments
@dataclass(frozen=True)
class PendingPayment:
    id: str
    client_name: str
    client_email: str
    builder_name: str
    session_type_name: str
    start_time: datetime | None
    amount_cents: int
    currency: str
    waiting_since: datetime  # when the slot was taken and payment became due
    hold_expires_at: datetime | None
    checkout_opened: bool
    reminder_sent_at: datetime | None
    # Paid by bank transfer, settling: the hold lasts the settlement window; no link to resend.
    payment_processing_since: datetime | None = None

    @property
    def payment_on_its_way(self) -> bool:
        return self.payment_processing_since is not None


def pending_payments(session: Session, viewer: Viewer, *, builder_id: int | None = None,
                     limit: int = 500) -> list[PendingPayment]:
    """Bookings waiting for payment right now, the ones whose hold ends first on top."""
    scope = builder_scope(viewer, builder_id)
    entered = (
        select(func.min(BookingHistory.created_at))
        .where(BookingHistory.booking_id == Booking.id, BookingHistory.to_status == S.PENDING_PAYMENT,
               or_(BookingHistory.from_status.is_(None), BookingHistory.from_status != S.PENDING_PAYMENT))
        .scalar_subquery()
    )
    query = (
        select(Booking.id, Client.name, Client.email, Builder.name, SessionType.name, Booking.start_time,
               Booking.amount_cents, Booking.currency, func.coalesce(entered, Booking.created_at),
               Booking.hold_expires_at, Booking.stripe_checkout_session_id, Booking.reminder_sent_at,
               Booking.payment_processing_since)
        .join(Client, Client.id == Booking.client_id)
        .join(Builder, Builder.id == Booking.builder_id)
        .join(SessionType, SessionType.id == Booking.session_type_id)
        .where(Booking.status == S.PENDING_PAYMENT)
        # NULL holds last on both engines.
        .order_by(Booking.hold_expires_at.is_(None), Booking.hold_expires_at, Booking.id)
        .limit(limit)
    )
    if scope is not None:
        query = query.where(Booking.builder_id == scope)
    return [PendingPayment(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), r[7], r[8], r[9],
                           r[10] is not None, r[11], r[12])
            for r in session.execute(query)]


# ---------------------------------------------------------------- one booking in detail
@dataclass(frozen=True)
class HistoryRow:
    at: datetime
    from_status: str | None
    to_status: str
    cause: str
    actor: str
    details: dict | None


@dataclass(frozen=True)
class PaymentRow:
    id: int
    stripe_payment_intent_id: str
    stripe_checkout_session_id: str | None
    amount_cents: int
    currency: str
    status: str
    dispute_status: str | None
    created_at: datetime


@dataclass(frozen=True)
class RefundRow:
    id: int
    booking_id: str
    amount_cents: int
    currency: str
    status: str
    rule: str
    reason: str
    issued_by: str
    stripe_refund_id: str | None
    failure_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str
    booking_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    done_at: datetime | None

    @property
    def retryable(self) -> bool:
        return self.status != OutboxStatus.DONE


@dataclass(frozen=True)
class WebhookRow:
    id: int
    provider: str
    event_type: str
    outcome: str
    error: str | None
    booking_id: str | None
    attempts: int
    signature_valid: bool
    received_at: datetime
    processed_at: datetime | None
    replayable: bool


def outbox_row(e: OutboxEntry) -> OutboxRow:
    return OutboxRow(e.id, e.kind, e.booking_id, e.status, e.attempts, e.next_attempt_at, e.last_error,
                     e.created_at, e.done_at)


def webhook_row(w: WebhookEvent) -> WebhookRow:
    return WebhookRow(w.id, w.provider, w.event_type, w.outcome, w.error, w.booking_id, w.attempts,
                      w.signature_valid, w.received_at, w.processed_at,
                      replayable=(w.signature_valid and w.dedupe_key is not None
                                  and w.outcome == WebhookOutcome.FAILED))


def refund_row(r: Refund) -> RefundRow:
    return RefundRow(r.id, r.booking_id, r.amount_cents, r.currency, r.status, r.rule, r.reason, r.issued_by,
                     r.stripe_refund_id, r.failure_reason, r.created_at)


@dataclass(frozen=True)
class BookingDetail(BookingFacts):
    refundable_cents: int
    end_time: datetime | None
    hold_expires_at: datetime | None
    invitee_timezone: str | None
    calendly_event_uri: str | None
    stripe_checkout_session_id: str | None
    cancel_reason: str | None
    canceled_by: str | None
    suggested_refund_cents: int
    suggested_refund_reason: str
    # The client's answers to the event type's questions, as asked in Calendly: (question, answer).
    answers: list[tuple[str, str]] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    payments: list[PaymentRow] = field(default_factory=list)
    refunds: list[RefundRow] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)
    webhooks: list[WebhookRow] = field(default_factory=list)

    @property
    def can_cancel(self) -> bool:
        return can_cancel(self.status)

    @property
    def can_resend_payment_link(self) -> bool:
        return self.status == S.PENDING_PAYMENT and not self.payment_on_its_way

    @property
    def net_cents(self) -> int:
        """Net = paid − refunded (see `core.reporting.words`)."""
        return self.paid_cents - self.refunded_cents

    def money(self, amount_cents: int) -> str:
        return format_amount(amount_cents, self.currency)


def client_answers(session: Session, booking: Booking) -> list[tuple[str, str]]:
    """The answers the client gave in Calendly when booking this slot.

    A booking does not copy them: they are read from the stored invitee.created delivery of its
    current invitee (kept as long as its booking: `core.services.webhook_retention`).
    """
    if not booking.calendly_invitee_uri:
        return []
    raw = session.execute(select(WebhookEvent.raw_body).where(
        WebhookEvent.dedupe_key == calendly_event_key("invitee.created", booking.calendly_invitee_uri),
        WebhookEvent.signature_valid.is_(True))).scalar_one_or_none()
    if not raw:
        return []
    try:
        hook = parse_calendly_webhook(raw, api_base=get_settings().calendly_api_base)
    except PayloadError:
        return []
    return [(question, answer) for question, answer in hook.questions_and_answers]


def booking_detail(session: Session, viewer: Viewer, booking_id: str) -> BookingDetail:
    """Everything about one booking: money, history, webhooks, payments, refunds, side effects."""
    from core.services.refunds import suggested_refund

    # With its builder, session type and client in the same statement (three lazy loads otherwise).
    booking = session.get(Booking, booking_id, options=[
        joinedload(Booking.builder), joinedload(Booking.session_type), joinedload(Booking.client)])
    if booking is None:
        raise NotFound(f"no booking {booking_id}")
    check_booking_access(viewer, booking.builder_id)
    summary = summarize(session, booking)
    suggested, why = suggested_refund(session, booking_id) if summary.refundable_cents else (0, "")
    webhooks = session.execute(
        select(WebhookEvent).where(or_(
            WebhookEvent.booking_id == booking_id,
            # A failed event was rolled back before it could be linked; find it by its body.
            and_(WebhookEvent.booking_id.is_(None), WebhookEvent.outcome == WebhookOutcome.FAILED,
                 WebhookEvent.raw_body.contains(booking_id, autoescape=True)),
        )).order_by(WebhookEvent.received_at, WebhookEvent.id)
    ).scalars()
    outbox = session.execute(
        select(OutboxEntry).where(OutboxEntry.booking_id == booking_id).order_by(OutboxEntry.id)
    ).scalars()
    history = session.execute(
        select(BookingHistory).where(BookingHistory.booking_id == booking_id).order_by(BookingHistory.id)
    ).scalars()
    return BookingDetail(
        id=booking.id, status=booking.status, payment_status=summary.state.value,
        amount_cents=booking.amount_cents, currency=booking.currency, paid_cents=summary.paid_cents,
        refunded_cents=summary.refunded_cents, refundable_cents=summary.refundable_cents,
        created_at=booking.created_at, start_time=booking.start_time, end_time=booking.end_time,
        hold_expires_at=booking.hold_expires_at, invitee_timezone=booking.invitee_timezone,
        payment_processing_since=booking.payment_processing_since,
        builder_id=booking.builder_id, builder_name=booking.builder.name,
        session_type_name=booking.session_type.name, client_name=booking.client.name,
        client_email=booking.client.email, calendly_event_uri=booking.calendly_event_uri,
        stripe_checkout_session_id=booking.stripe_checkout_session_id,
        cancel_reason=booking.cancel_reason, canceled_by=booking.canceled_by,
        suggested_refund_cents=suggested, suggested_refund_reason=why,
        answers=client_answers(session, booking),
        history=[HistoryRow(h.created_at, h.from_status, h.to_status, h.cause, h.actor, h.details)
                 for h in history],
        payments=[PaymentRow(p.id, p.stripe_payment_intent_id, p.stripe_checkout_session_id, p.amount_cents,
                             p.currency, p.status, p.dispute_status, p.created_at)
                  for p in session.execute(select(Payment).where(Payment.booking_id == booking_id)
                                           .order_by(Payment.id)).scalars()],
        refunds=[refund_row(r) for r in session.execute(
            select(Refund).where(Refund.booking_id == booking_id).order_by(Refund.id)).scalars()],
        outbox=[outbox_row(e) for e in outbox],
        webhooks=[webhook_row(w) for w in webhooks],
    )


@dataclass(frozen=True)
class WebhookPayload:
    id: int
    provider: str
    event_type: str
    raw_body: str
    headers: dict


def webhook_payload(session: Session, viewer: Viewer, event_id: int) -> WebhookPayload:
    """A stored webhook's raw body and kept headers (admins only: it holds clients' details)."""
    require_admin(viewer)
    event = session.get(WebhookEvent, event_id)
    if event is None:
        raise NotFound(f"no webhook event {event_id}")
    return WebhookPayload(event.id, event.provider, event.event_type, event.raw_body, event.headers or {})
