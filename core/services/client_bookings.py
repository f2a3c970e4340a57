"""A signed-in client's own bookings (read-only): upcoming and past, with their money.

Only bookings that got a time in Calendly are listed: a "Book now" that never picked a slot is not
a booking the client made. Everything is looked up by the client's email, so one client never sees
another's booking; an id that is not theirs reads exactly like one that does not exist.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, not_, select
from sqlalchemy.orm import Session, joinedload

from core.emails import InvalidEmail, normalize_email
from core.models import Booking, Client, Payment, Refund, utcnow
from core.states import (
    COMMITTED_REFUND_STATUSES, BookingStatus as S, PaymentState, PaymentStatus, RefundRule, RefundStatus,
    can_cancel,
    derive_payment_state,
)

PAGE_SIZE = 20
UPCOMING_LIMIT = 50  # a client with more sessions ahead than this sees the first ones and a count
MAX_PAGE = 10_000
# Statuses in which a session is still ahead of the client (the rest are over, one way or another).
ACTIVE = (S.PENDING_PAYMENT, S.CONFIRMED)

REFUND_WORDS = {
    RefundStatus.REQUESTED: "being refunded",
    RefundStatus.PENDING: "being refunded",
    RefundStatus.REQUIRES_ACTION: "waiting on your bank",
    RefundStatus.SUCCEEDED: "refunded",
    RefundStatus.FAILED: "refund failed (we are on it)",
    RefundStatus.CANCELED: "refund canceled",
}


@dataclass(frozen=True)
class PaymentLine:
    amount_cents: int
    currency: str
    paid_at: datetime
    reference: str  # Stripe's payment id: what the client's bank statement and our support know it by


@dataclass(frozen=True)
class RefundLine:
    amount_cents: int
    currency: str
    status: str
    reason: str
    rule: str  # a states.RefundRule: RefundRule.POLICY is a cancellation's refund
    created_at: datetime

    @property
    def committed(self) -> bool:
        return self.status in COMMITTED_REFUND_STATUSES

    @property
    def words(self) -> str:
        return REFUND_WORDS.get(self.status, self.status)


@dataclass(frozen=True)
class BookingLine:
    id: str
    status: str
    builder_id: int
    builder_name: str
    session_name: str
    duration_minutes: int | None
    start_time: datetime | None
    invitee_timezone: str | None
    amount_cents: int
    currency: str
    hold_expires_at: datetime | None
    payment_processing: bool
    reschedule_url: str | None
    cancel_reason: str | None
    payments: list[PaymentLine] = field(default_factory=list)
    refunds: list[RefundLine] = field(default_factory=list)

    @property
    def paid_cents(self) -> int:
        return sum(p.amount_cents for p in self.payments)

    @property
    def refunded_cents(self) -> int:
        """Refunded or on its way back (the refunds that hold money back from being refunded twice)."""
        return sum(r.amount_cents for r in self.refunds if r.committed)

    @property
    def cancellation_refund_cents(self) -> int:
        """What the cancellation refunded, by the policy (the rest were other refunds: an admin's)."""
        return sum(r.amount_cents for r in self.refunds if r.committed and r.rule == RefundRule.POLICY)

    @property
    def cancellation_refund_done(self) -> bool:
        """The cancellation's refund has reached Stripe's `succeeded` (else it is on its way)."""
        return all(r.status == RefundStatus.SUCCEEDED for r in self.refunds
                   if r.committed and r.rule == RefundRule.POLICY)

    @property
    def payment_state(self) -> PaymentState:
        return derive_payment_state(self.paid_cents, self.refunded_cents, disputed=False)

    @property
    def can_cancel(self) -> bool:
        return can_cancel(self.status)

    @property
    def can_reschedule(self) -> bool:
        return self.status in ACTIVE and bool(self.reschedule_url)

    @property
    def status_words(self) -> str:
        """The status in plain words, as the client would say it."""
        if self.status == S.CONFIRMED:
            return "Confirmed and paid"
        if self.status == S.PENDING_PAYMENT:
            return "Payment on its way" if self.payment_processing else "Waiting for your payment"
        if self.status == S.COMPLETED:
            return "Session done"
        if self.status == S.CANCELED:
            return "Canceled"
        if self.status == S.EXPIRED:
            return "Released: not paid in time"
        return "Waiting for you to pick a time"


@dataclass(frozen=True)
class ClientBookings:
    upcoming: list[BookingLine]
    upcoming_more: int  # upcoming bookings beyond UPCOMING_LIMIT, not listed
    past: list[BookingLine]
    page: int
    has_next_page: bool


def _client_id(session: Session, email: str) -> int | None:
    try:
        email = normalize_email(email)
    except InvalidEmail:
        return None
    return session.execute(select(Client.id).where(Client.email == email)).scalar_one_or_none()


def _ends(now: datetime):
    """Whether a booking's session is still ahead (or under way) at `now`."""
    return and_(Booking.status.in_(ACTIVE), func.coalesce(Booking.end_time, Booking.start_time) >= now)


def _lines(session: Session, bookings: list[Booking]) -> list[BookingLine]:
    """The bookings with their payments and refunds (two queries for the whole page)."""
    ids = [b.id for b in bookings]
    payments: dict[str, list[PaymentLine]] = {i: [] for i in ids}
    refunds: dict[str, list[RefundLine]] = {i: [] for i in ids}
    if ids:
        for p in session.execute(select(Payment).where(Payment.booking_id.in_(ids),
                                                       Payment.status == PaymentStatus.SUCCEEDED)
                                 .order_by(Payment.id)).scalars():
            payments[p.booking_id].append(PaymentLine(p.amount_cents, p.currency, p.created_at,
                                                      p.stripe_payment_intent_id))
        for r in session.execute(select(Refund).where(Refund.booking_id.in_(ids)).order_by(Refund.id)).scalars():
            refunds[r.booking_id].append(RefundLine(r.amount_cents, r.currency, r.status, r.reason, r.rule,
                                                      r.created_at))
    return [BookingLine(
        id=b.id, status=b.status, builder_id=b.builder_id, builder_name=b.builder.name,
        session_name=b.session_type.name, duration_minutes=b.session_type.duration_minutes,
        start_time=b.start_time, invitee_timezone=b.invitee_timezone, amount_cents=b.amount_cents,
        currency=b.currency, hold_expires_at=b.hold_expires_at,
        payment_processing=b.status == S.PENDING_PAYMENT and b.payment_processing_since is not None,
        reschedule_url=b.calendly_reschedule_url, cancel_reason=b.cancel_reason,
        payments=payments[b.id], refunds=refunds[b.id],
    ) for b in bookings]


def _query(client_id: int):
    return (select(Booking).where(Booking.client_id == client_id, Booking.start_time.is_not(None))
            .options(joinedload(Booking.builder, innerjoin=True), joinedload(Booking.session_type, innerjoin=True)))


def list_bookings(session: Session, email: str, *, page: int = 1, page_size: int = PAGE_SIZE,
                  now: datetime | None = None) -> ClientBookings:
    """The client's sessions ahead (soonest first) and one page of the rest (latest first)."""
    now = now or utcnow()
    page = min(max(page, 1), MAX_PAGE)
    client_id = _client_id(session, email)
    if client_id is None:
        return ClientBookings([], 0, [], page, False)
    upcoming = session.execute(_query(client_id).where(_ends(now))
                               .order_by(Booking.start_time, Booking.id).limit(UPCOMING_LIMIT)).scalars().all()
    upcoming_more = 0
    if len(upcoming) == UPCOMING_LIMIT:
        total = session.execute(select(func.count()).select_from(Booking).where(
            Booking.client_id == client_id, Booking.start_time.is_not(None), _ends(now))).scalar_one()
        upcoming_more = total - UPCOMING_LIMIT
    past = session.execute(_query(client_id).where(not_(_ends(now)))
                           .order_by(Booking.start_time.desc(), Booking.id.desc())
                           .offset((page - 1) * page_size).limit(page_size + 1)).scalars().all()
    return ClientBookings(_lines(session, list(upcoming)), upcoming_more, _lines(session, list(past[:page_size])),
                          page, len(past) > page_size)


def own_booking(session: Session, email: str, booking_id: str) -> BookingLine | None:
    """One of the client's bookings (for its receipt), or None when it is not theirs or not there."""
    client_id = _client_id(session, email)
    if client_id is None or not isinstance(booking_id, str):
        return None
    booking = session.execute(_query(client_id).where(Booking.id == booking_id)).scalar_one_or_none()
    return _lines(session, [booking])[0] if booking is not None else None


__all__ = ["BookingLine", "ClientBookings", "PaymentLine", "RefundLine", "list_bookings", "own_booking"]
