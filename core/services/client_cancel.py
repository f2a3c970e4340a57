"""A client cancels their own booking from "My bookings".

The terms (what the refund policy gives back right now) are stated before the client confirms;
the confirmation carries the amount it was shown, and the cancellation goes ahead only if the
policy still gives exactly that (the session may have come inside the full-refund window while
the page was open). The cancellation itself is the one every other cancellation is
(`booking_service.cancel_booking_locked`): the Calendly event is canceled through the outbox, an
open checkout is closed, the refund follows the policy and the client is emailed.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.emails import normalize_email
from core.errors import DomainError, NotFound
from core.models import Booking
from core.services import booking_service, refunds
from core.services.ledger import summarize
from core.services.transitions import lock_booking
from core.states import BookingStatus as S, can_cancel

DEFAULT_REASON = "Canceled by the client"
MAX_REASON = 500


@dataclass(frozen=True)
class CancelTerms:
    """What canceling now means for the client's money."""

    booking_id: str
    currency: str
    paid_cents: int
    refunded_cents: int  # refunded (or on its way back) before this cancellation
    refund_cents: int  # what canceling now gives back
    why: str  # the policy's reason, or why there is nothing to refund
    payment_on_its_way: bool

    @property
    def charged(self) -> bool:
        return self.paid_cents > 0


class TermsChanged(DomainError):
    """The policy gives another amount than the client was shown: nothing was canceled."""

    def __init__(self, terms: CancelTerms):
        super().__init__("the refund has changed since you opened the page; please look at it again")
        self.terms = terms


@dataclass(frozen=True)
class Canceled:
    booking_id: str
    refund_cents: int  # refunded by this cancellation (0 when it was canceled already)
    already: bool  # it was canceled before this request: nothing was done


def _owned(booking: Booking | None, email: str) -> Booking:
    """The booking if it is this client's and was scheduled (what My bookings lists), else NotFound
    (the same answer for someone else's booking and for one that does not exist)."""
    if booking is None or booking.start_time is None or booking.client.email != normalize_email(email):
        raise NotFound("no such booking among yours")
    return booking


def _terms(session: Session, booking: Booking) -> CancelTerms:
    summary = summarize(session, booking)
    on_its_way = booking.status == S.PENDING_PAYMENT and booking.payment_processing_since is not None
    if summary.paid_cents <= 0:
        refund, why = 0, "You have not been charged, so there is nothing to refund."
        if on_its_way:
            why += " If your bank payment arrives after you cancel, it is refunded in full."
    elif summary.refundable_cents <= 0:
        refund, why = 0, "Everything you paid has already been refunded."
    else:
        refund, why = refunds.suggested_refund(session, booking.id)  # the policy, as refund_by_policy applies it
        why = why[:1].upper() + why[1:] + "."
        if summary.refunded_cents:
            why += " It applies to what has not been refunded yet."
    return CancelTerms(booking.id, booking.currency, summary.paid_cents, summary.refunded_cents, refund, why,
                       on_its_way)


def terms(session: Session, email: str, booking_id: str) -> CancelTerms:
    """What canceling the client's booking now would refund (NotFound if it is not theirs)."""
    booking = _owned(session.get(Booking, booking_id), email)
    if not can_cancel(booking.status):
        raise DomainError("this booking can no longer be canceled")
    return _terms(session, booking)


def cancel(session: Session, email: str, booking_id: str, *, expected_refund_cents: int,
           reason: str = "") -> Canceled:
    """Cancel the client's booking if the refund is still the one they were shown.

    Canceling twice is not an error: the second time does nothing and says so (`already`)."""
    _owned(session.get(Booking, booking_id), email)  # checked before the lock: a stranger locks nothing
    booking = lock_booking(session, booking_id)
    if booking.status == S.CANCELED:
        return Canceled(booking.id, 0, already=True)
    if not can_cancel(booking.status):
        raise DomainError("this booking can no longer be canceled")
    now = _terms(session, booking)
    if now.refund_cents != expected_refund_cents:
        raise TermsChanged(now)
    refund = booking_service.cancel_booking_locked(
        session, booking, actor=f"client:{normalize_email(email)}",
        reason=" ".join(reason.split())[:MAX_REASON] or DEFAULT_REASON)
    return Canceled(booking.id, refund, already=False)


__all__ = ["CancelTerms", "Canceled", "TermsChanged", "terms", "cancel"]
