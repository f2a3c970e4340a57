"""The words of every message about a booking, one function per kind, in the reader's time zone.

Clients read times in their own zone (`recipient_zone`); a builder reads a new booking in theirs.
Money is stated plainly: what was paid, what comes back and why, and nothing about refunds when
nothing was paid.
"""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.mail import ics
from core.mail.content import CALENDAR_FILENAME, MailContent
from core.mail.times import first_known_zone, format_when
from core.models import Booking, BookingHistory, Refund, utcnow
from core.money import format_amount
from core.refund_policy import policy_for
from core.services import booking_access
from core.services.ledger import summarize
from core.states import RefundRule

REFUND_ARRIVAL = "Refunds usually reach your card or bank within 5 to 10 business days."


class Facts:
    """The pieces every message about one booking uses, worked out once."""

    def __init__(self, session: Session, booking: Booking, *, to_builder: bool) -> None:
        self.session, self.booking, self.to_builder = session, booking, to_builder
        self.zone = recipient_zone(booking, to_builder=self.to_builder)
        self.session_name = booking.session_type.name or "your session"
        self.builder = booking.builder.name
        self.with_builder = f"{self.session_name} with {self.builder}"
        self.price = format_amount(booking.amount_cents, booking.currency)
        self.when = format_when(booking.start_time, self.zone)
        self.link = booking_access.payment_link(booking.id)
        self.greeting = f"Hi {(booking.builder.name if self.to_builder else booking.client.name) or 'there'},"

    def at(self, moment) -> str:
        return format_when(moment, self.zone, missing="the end of the hold")

    def session_details(self) -> list[tuple[str, str]]:
        return [("Session", self.session_name), ("With", self.builder), ("When", self.when),
                ("Price", self.price)]

    def change_links(self) -> list[tuple[str, str]]:
        """Calendly's own reschedule and cancel pages for this invitee (they tell us both)."""
        return [(label, url) for label, url in (("Reschedule", self.booking.calendly_reschedule_url),
                                                ("Cancel", self.booking.calendly_cancel_url)) if url]

    def policy_line(self) -> str:
        policy = policy_for(self.booking.session_type)
        if policy.partial_percent:
            later = f"{policy.partial_percent}% back if you cancel later, nothing once it has started"
        else:
            later = "nothing back if you cancel later"
        return f"Full refund if you cancel at least {policy.full_refund_hours} h before the start; {later}."


def recipient_zone(booking: Booking, *, to_builder: bool = False) -> str:
    """The zone a message's times are in: the builder's for the builder; for the client, the one
    Calendly says they booked in, else their saved one, else UTC."""
    if to_builder:
        return first_known_zone(booking.builder.timezone)
    return first_known_zone(booking.invitee_timezone, booking.client.timezone)


def _calendar(facts: Facts, *, canceled: bool = False) -> str | None:
    booking = facts.booking
    if booking.start_time is None or booking.end_time is None:
        return None
    moves = facts.session.execute(select(func.count()).select_from(BookingHistory).where(
        BookingHistory.booking_id == booking.id, BookingHistory.cause == "rescheduled")).scalar_one()
    host = urlparse(get_settings().public_base_url).hostname or "bookings"
    return ics.calendar(
        method="CANCEL" if canceled else "PUBLISH", uid=f"{booking.id}@{host}",
        sequence=moves + (1 if canceled else 0), stamp=utcnow(),
        start=booking.start_time, end=booking.end_time, summary=facts.with_builder,
        description=f"{facts.with_builder}. Your booking: {facts.link}", url=facts.link, canceled=canceled)


def _awaiting_payment(facts: Facts, extra: dict) -> MailContent:
    return MailContent(
        subject=f"Complete your payment for {facts.with_builder}",
        paragraphs=[facts.greeting,
                    f"You picked {facts.when} for {facts.with_builder}, and we have not received your "
                    f"payment yet. The slot is held for you until {facts.at(facts.booking.hold_expires_at)}.",
                    f"Pay {facts.price} to confirm it. Changed your mind? There is nothing to do: the hold "
                    "ends on its own and you are not charged."],
        action_label=f"Pay {facts.price}", action_url=facts.link, details=facts.session_details())


def _payment_reminder(facts: Facts, extra: dict) -> MailContent:
    return MailContent(
        subject=f"Your slot for {facts.with_builder} is about to be released",
        paragraphs=[facts.greeting,
                    f"Your hold on {facts.when} ends at {facts.at(facts.booking.hold_expires_at)}. "
                    f"Pay {facts.price} before then to keep it; after that the slot is released and you "
                    "are not charged."],
        action_label=f"Pay {facts.price}", action_url=facts.link, details=facts.session_details())


def _payment_processing(facts: Facts, extra: dict) -> MailContent:
    return MailContent(
        subject=f"Payment on its way: {facts.with_builder}",
        paragraphs=[facts.greeting,
                    f"Your bank payment of {facts.price} is being processed; banks take a few business "
                    f"days. Your slot on {facts.when} stays held for you until "
                    f"{facts.at(facts.booking.hold_expires_at)}.",
                    "There is nothing more to pay: we will email you as soon as the payment is confirmed."],
        action_label="See your booking", action_url=facts.link, details=facts.session_details())


def _booking_confirmed(facts: Facts, extra: dict) -> MailContent:
    calendar = _calendar(facts)
    paragraphs = [facts.greeting,
                  f"Your payment of {facts.price} was received. {facts.with_builder} is confirmed for "
                  f"{facts.when}."]
    if calendar:
        paragraphs.append(f"The attached {CALENDAR_FILENAME} adds it to your calendar.")
    paragraphs.append(f"Need to change it? {facts.policy_line()}")
    return MailContent(subject=f"Confirmed: {facts.with_builder}", paragraphs=paragraphs,
                       action_label="See your booking", action_url=facts.link, links=facts.change_links(),
                       details=facts.session_details(), calendar=calendar,
                       calendar_method="PUBLISH" if calendar else None)


def _builder_new_booking(facts: Facts, extra: dict) -> MailContent:
    client = facts.booking.client
    who = client.name or client.email
    return MailContent(
        subject=f"New paid booking: {facts.session_name}",
        paragraphs=[facts.greeting, f"{who} booked and paid {facts.price} for {facts.session_name} on {facts.when}."],
        action_label="Open the dashboard", action_url=get_settings().dashboard_url,
        details=[("Client", f"{client.name} <{client.email}>" if client.name else client.email),
                 ("Session", facts.session_name), ("When", facts.when), ("Paid", facts.price)])


def _refund_reason(facts: Facts) -> str | None:
    reason = facts.session.execute(
        select(Refund.reason).where(Refund.booking_id == facts.booking.id, Refund.rule == RefundRule.POLICY)
        .order_by(Refund.id.desc()).limit(1)).scalar_one_or_none()
    return _sentence(reason) if reason else None


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:]


def _booking_canceled(facts: Facts, extra: dict) -> MailContent:
    booking = facts.booking
    refund = int(extra.get("refund_cents") or 0)
    ledger = summarize(facts.session, booking)  # this cancellation's refund is in it already
    paid = ledger.paid_cents > 0
    paragraphs = [facts.greeting, f"Your booking of {facts.with_builder} for {facts.when} was canceled."]
    details = facts.session_details()[:3]
    calendar = None
    if refund:
        amount = format_amount(refund, booking.currency)
        reason = _refund_reason(facts)
        paragraphs.append(f"{amount} will be refunded to the card or account you paid with. {REFUND_ARRIVAL}")
        details += [("Refund", amount)] + ([("Why", reason)] if reason else [])
    elif paid and ledger.refundable_cents == 0:
        paragraphs.append("Your payment had already been refunded in full.")
    elif paid:
        from core.services.refunds import suggested_refund  # refunds sends messages: import late

        _amount, why = suggested_refund(facts.session, booking.id)
        paragraphs.append(f"No refund is due under the cancellation policy ({why.split(':')[0]}).")
        details.append(("Refund", "none"))
    elif booking.payment_processing_since is not None:
        paragraphs.append("Your bank payment is still on its way; when it arrives it is refunded in full.")
    else:
        paragraphs.append("You had not paid for it, so nothing was charged.")
    if paid:
        calendar = _calendar(facts, canceled=True)
        if calendar:
            paragraphs.append(f"The attached {CALENDAR_FILENAME} removes it from your calendar.")
    return MailContent(subject=f"Canceled: {facts.with_builder}", paragraphs=paragraphs,
                       action_label="Book another time", action_url=_profile_link(booking),
                       details=details, calendar=calendar, calendar_method="CANCEL" if calendar else None)


def _profile_link(booking: Booking) -> str:
    return f"{get_settings().public_base_url}/profile/{booking.builder_id}"


def _booking_expired(facts: Facts, extra: dict) -> MailContent:
    return MailContent(
        subject=f"Hold released: {facts.with_builder}",
        paragraphs=[facts.greeting,
                    f"We did not receive your payment in time, so the slot on {facts.when} was released. "
                    "You have not been charged."],
        action_label="Book another time", action_url=_profile_link(facts.booking),
        details=facts.session_details()[:3])


def _refund_issued(facts: Facts, extra: dict) -> MailContent:
    amount = format_amount(int(extra["amount_cents"]), facts.booking.currency)
    reason = _sentence(extra.get("reason") or "")
    paragraphs = [facts.greeting,
                  f"{amount} of your payment for {facts.with_builder} is on its way back to the card or "
                  f"account you paid with. {REFUND_ARRIVAL}"]
    if reason:
        paragraphs.append(f"Reason: {reason}")
    details = [("Refund", amount)] + ([("Reason", reason)] if reason else []) + facts.session_details()[:3]
    return MailContent(subject=f"Refund of {amount}: {facts.with_builder}", paragraphs=paragraphs,
                       action_label="See your booking", action_url=facts.link, details=details)


def _booking_rescheduled(facts: Facts, extra: dict) -> MailContent:
    calendar = _calendar(facts)
    paragraphs = [facts.greeting,
                  f"{facts.with_builder} is now on {facts.when}. Your payment carries over; there is "
                  "nothing more to pay."]
    if calendar:
        paragraphs.append(f"The attached {CALENDAR_FILENAME} moves it in your calendar.")
    return MailContent(subject=f"Rescheduled: {facts.with_builder}", paragraphs=paragraphs,
                       action_label="See your booking", action_url=facts.link, links=facts.change_links(),
                       details=facts.session_details(), calendar=calendar,
                       calendar_method="PUBLISH" if calendar else None)


WRITERS: dict[str, Callable[[Facts, dict], MailContent]] = {
    "awaiting_payment": _awaiting_payment,
    "payment_reminder": _payment_reminder,
    "payment_processing": _payment_processing,
    "booking_confirmed": _booking_confirmed,
    "builder_new_booking": _builder_new_booking,
    "booking_canceled": _booking_canceled,
    "booking_expired": _booking_expired,
    "refund_issued": _refund_issued,
    "booking_rescheduled": _booking_rescheduled,
}


# Messages a booking's builder receives (in their own time zone); every other kind goes to the client.
BUILDER_KINDS = frozenset({"builder_new_booking"})


def write(session: Session, booking: Booking, kind: str, extra: dict) -> MailContent:
    writer = WRITERS.get(kind)
    if writer is None:
        raise ValueError(f"unknown notification kind {kind}")
    return writer(Facts(session, booking, to_builder=kind in BUILDER_KINDS), extra)
