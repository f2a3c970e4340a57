"""Bookings: starting one, and what Calendly's webhooks mean for it.

Handlers look at the booking's current state, never at which event came before: duplicates and
any order of delivery end in the same place (docs/architecture.md, rules 2 and 3).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.calendly import CalendlyWebhook, PayloadError, parse_calendly_webhook
from core.config import get_settings
from core.errors import DomainError, NotFound
from core.keys import calendly_event_key
from core.models import Booking, BookingHistory, Client, SessionType, WebhookEvent, utcnow
from core.services import checkout_service, refunds, slot_binding
from core.services.notifications import notify
from core.services.outbox import STRAY_SLOT_REASON, cancel_calendly_event_later
from core.services.outcome import Outcome
from core.services.transitions import WITH_PARTIES, lock_booking, record, transition
from core.states import BookingStatus as S, WebhookOutcome as O, can_cancel

CALENDLY = "calendly:webhook"


def get_or_create_client(session: Session, email: str, name: str = "") -> Client:
    from core.emails import normalize_email  # one email rule for every entry point
    email = normalize_email(email)
    client = session.execute(select(Client).where(Client.email == email)).scalar_one_or_none()
    if client is None:
        client = Client(email=email, name=name.strip())
        session.add(client)
        session.flush()
    elif name and not client.name:
        client.name = name.strip()
    return client


def start_booking(session: Session, session_type_id: int, client_email: str, client_name: str,
                  *, actor: str) -> Booking:
    """A booking in PENDING_SCHEDULING for a bookable session type, priced as the type is now."""
    session_type = session.get(SessionType, session_type_id)
    if session_type is None:
        raise NotFound("this session type does not exist")
    if not session_type.active:
        raise DomainError("this session type is not bookable at the moment")
    client = get_or_create_client(session, client_email, client_name)
    booking = Booking(
        builder_id=session_type.builder_id, session_type_id=session_type.id, client_id=client.id,
        status=S.PENDING_SCHEDULING, amount_cents=session_type.price_cents,
        currency=session_type.currency,
    )
    session.add(booking)
    session.flush()
    record_creation(session, booking, actor)
    return booking


def record_creation(session: Session, booking: Booking, actor: str) -> None:
    session.add(BookingHistory(booking_id=booking.id, from_status=None, to_status=booking.status,
                               cause="booking_started", actor=actor))


def _find_booking(session: Session, *refs: str | None, invitee_uris: tuple[str | None, ...] = ()) -> Booking | None:
    """By our id (utm_content) first, else by a Calendly invitee URI we stored; locked."""
    for ref in refs:
        if ref:
            booking = session.get(Booking, ref, with_for_update={"of": Booking}, populate_existing=True,
                                  options=WITH_PARTIES)
            if booking is not None:
                return booking
    uris = [uri for uri in invitee_uris if uri]
    if not uris:
        return None
    return session.execute(
        select(Booking).where(Booking.calendly_invitee_uri.in_(uris)).with_for_update()
    ).scalars().first()


def _cancel_calendly_event(session: Session, booking: Booking, event_uri: str, reason: str) -> None:
    """Cancel the booking's own Calendly event (its builder hosts it) from the outbox."""
    cancel_calendly_event_later(session, booking_id=booking.id, event_uri=event_uri,
                                builder_id=booking.builder_id, reason=reason)


def _refuse_stray_slot(session: Session, booking: Booking, hook: CalendlyWebhook, why: str) -> Outcome:
    """A slot carrying this booking's id that is not its slot: leave the booking as it is, record
    it, and free the slot with its host's token (or leave it to an admin when no builder of ours
    hosts it)."""
    owner = slot_binding.owner_of(session, hook.event_type_uri, hook.host_uris)
    record(session, booking, cause=slot_binding.STRAY_SLOT, actor=CALENDLY, details={
        "invitee": hook.invitee_uri, "event": hook.event_uri, "event_type": hook.event_type_uri,
        "hosts": list(hook.host_uris), "why": why, "owner_builder_id": owner.id if owner else None})
    cancel_calendly_event_later(session, booking_id=booking.id, event_uri=hook.event_uri,
                                builder_id=owner.id if owner else None, reason=STRAY_SLOT_REASON)
    released = "its host's Calendly event is canceled" if owner else \
        "no builder of ours hosts it: an admin must cancel it in Calendly"
    return Outcome(O.STRAY, booking.id, f"stray slot refused: {why}; {released}")


def apply_invitee_created(session: Session, hook: CalendlyWebhook) -> Outcome:
    booking = _find_booking(session, hook.booking_ref, invitee_uris=(hook.invitee_uri, hook.old_invitee_uri))
    if booking is None:
        return Outcome(O.UNMATCHED, note="no booking for this invitee (utm_content missing or unknown)")
    details = {"invitee": hook.invitee_uri, "event": hook.event_uri,
               "start_time": hook.start_time.isoformat() if hook.start_time else None}
    if booking.calendly_invitee_uri == hook.invitee_uri:
        return Outcome(O.IGNORED, booking.id, "this invitee is already on the booking")
    why = slot_binding.mismatch(booking, hook.event_type_uri, hook.host_uris)
    if why is not None:
        return _refuse_stray_slot(session, booking, hook, why)

    status = S(booking.status)
    if status == S.PENDING_SCHEDULING:
        _attach_invitee(booking, hook)
        booking.hold_expires_at = utcnow() + timedelta(minutes=get_settings().hold_minutes)
        transition(session, booking, S.PENDING_PAYMENT, cause="invitee_created", actor=CALENDLY, details=details)
        canceled = _canceled_before_created(session, hook)
        if canceled is not None:
            _cancel_as_calendly_did(session, booking, canceled)
            return Outcome(O.PROCESSED, booking.id, "its invitee.canceled arrived first: canceled")
        notify(session, booking, "awaiting_payment")
        return Outcome(O.PROCESSED, booking.id)

    if status in (S.PENDING_PAYMENT, S.CONFIRMED) and hook.old_invitee_uri and (
        booking.calendly_invitee_uri in (hook.old_invitee_uri, None)
    ):
        # A reschedule: the same booking moves to the new time and keeps its payment.
        old_event = booking.calendly_event_uri
        _attach_invitee(booking, hook)
        record(session, booking, cause="rescheduled", actor=CALENDLY,
               details={**details, "old_invitee": hook.old_invitee_uri, "old_event": old_event})
        canceled = _canceled_before_created(session, hook)
        if canceled is not None:
            _cancel_as_calendly_did(session, booking, canceled)
            return Outcome(O.PROCESSED, booking.id, "rescheduled; its invitee.canceled arrived first: canceled")
        if status == S.CONFIRMED:
            notify(session, booking, "booking_rescheduled", dedupe=hook.invitee_uri)
        return Outcome(O.PROCESSED, booking.id, "rescheduled")

    # A slot was taken for a booking that can no longer use it (canceled, expired, or already
    # scheduled): give the slot back so the builder's calendar is not blocked by it.
    _cancel_calendly_event(session, booking, hook.event_uri, "This booking is no longer active.")
    record(session, booking, cause="stray_invitee_released", actor=CALENDLY, details=details)
    return Outcome(O.PROCESSED, booking.id, "stray invitee: Calendly event canceled")


def _canceled_before_created(session: Session, hook: CalendlyWebhook) -> CalendlyWebhook | None:
    """This invitee's own invitee.canceled if it arrived before this invitee.created.

    It was ignored then (the invitee was not on the booking yet), so without this the booking
    would wait for a payment for a slot Calendly has already freed. A reschedule's cancel half
    (rescheduled=true) is not a cancellation of the booking.
    """
    key = calendly_event_key("invitee.canceled", hook.invitee_uri)
    raw = session.execute(select(WebhookEvent.raw_body).where(
        WebhookEvent.dedupe_key == key, WebhookEvent.signature_valid.is_(True))).scalar_one_or_none()
    if raw is None:
        return None
    try:
        canceled = parse_calendly_webhook(raw.encode(), api_base=get_settings().calendly_api_base)
    except PayloadError:
        return None
    return None if canceled.rescheduled else canceled


def _cancel_as_calendly_did(session: Session, booking: Booking, hook: CalendlyWebhook) -> None:
    cancel_booking_locked(
        session, booking, actor=f"calendly:{hook.canceler_type or 'invitee'}",
        reason=hook.cancel_reason or "Canceled in Calendly", canceled_by=hook.canceled_by,
        by_host=hook.canceler_type == "host", calendly_already_canceled=True,
    )


def _attach_invitee(booking: Booking, hook: CalendlyWebhook) -> None:
    booking.calendly_invitee_uri = hook.invitee_uri
    booking.calendly_event_uri = hook.event_uri
    booking.start_time = hook.start_time
    booking.end_time = hook.end_time
    booking.invitee_timezone = hook.timezone or booking.invitee_timezone
    booking.calendly_cancel_url = hook.cancel_url
    booking.calendly_reschedule_url = hook.reschedule_url


def apply_invitee_canceled(session: Session, hook: CalendlyWebhook) -> Outcome:
    booking = _find_booking(session, hook.booking_ref, invitee_uris=(hook.invitee_uri,))
    if booking is None:
        return Outcome(O.UNMATCHED, note="no booking for this invitee")
    if hook.rescheduled:
        # The other half of a reschedule (its invitee.created) moves the booking; never refund here.
        record(session, booking, cause="reschedule_old_invitee_canceled", actor=CALENDLY,
               details={"invitee": hook.invitee_uri, "new_invitee": hook.new_invitee_uri})
        return Outcome(O.PROCESSED, booking.id, "reschedule: old invitee canceled")
    if booking.calendly_invitee_uri != hook.invitee_uri:
        return Outcome(O.IGNORED, booking.id, "this invitee is not (or no longer) the booking's")
    if S(booking.status) not in (S.PENDING_PAYMENT, S.CONFIRMED):
        return Outcome(O.IGNORED, booking.id, f"booking already {booking.status}")
    _cancel_as_calendly_did(session, booking, hook)
    return Outcome(O.PROCESSED, booking.id)


def apply_no_show(session: Session, hook: CalendlyWebhook) -> Outcome:
    booking = _find_booking(session, hook.booking_ref, invitee_uris=(hook.invitee_uri,))
    if booking is None:
        return Outcome(O.UNMATCHED, note="no booking for this invitee")
    if booking.no_show_at is not None:
        return Outcome(O.IGNORED, booking.id, "no-show already recorded")
    booking.no_show_at = utcnow()
    record(session, booking, cause="no_show", actor=CALENDLY, details={"no_show": hook.no_show_uri})
    return Outcome(O.PROCESSED, booking.id)


def cancel_booking_locked(
    session: Session, booking: Booking, *, actor: str, reason: str, canceled_by: str | None = None,
    by_host: bool = False, calendly_already_canceled: bool = False,
) -> int:
    """Cancel a locked booking: refund by policy, release the slot and the checkout. Returns the refund."""
    transition(session, booking, S.CANCELED, cause="canceled", actor=actor,
               details={"reason": reason, "by_host": by_host})
    booking.cancel_reason = reason
    booking.canceled_by = (canceled_by or actor)[:200]  # a name from Calendly; the column holds 200
    if booking.calendly_event_uri and not calendly_already_canceled:
        _cancel_calendly_event(session, booking, booking.calendly_event_uri, reason)
    checkout_service.close_checkout(session, booking)
    refund_cents = refunds.refund_by_policy(session, booking, actor=actor, by_host=by_host)
    notify(session, booking, "booking_canceled", refund_cents=refund_cents)
    return refund_cents


def cancel_booking(session: Session, booking_id: str, *, actor: str, reason: str) -> int:
    """An admin's cancellation: the Calendly event is canceled and the refund follows the policy."""
    booking = lock_booking(session, booking_id)
    if not can_cancel(booking.status):
        raise DomainError(f"a {booking.status.lower().replace('_', ' ')} booking cannot be canceled")
    return cancel_booking_locked(session, booking, actor=actor, reason=reason)


def complete_past_sessions(session: Session, *, now=None, limit: int = 500) -> int:
    """Confirmed bookings whose session has ended become COMPLETED."""
    now = now or utcnow()
    bookings = session.execute(
        select(Booking).where(Booking.status == S.CONFIRMED, Booking.end_time < now)
        .limit(limit).with_for_update(skip_locked=True)
    ).scalars().all()
    for booking in bookings:
        transition(session, booking, S.COMPLETED, cause="session_ended", actor="system:worker")
    return len(bookings)


# ---------------------------------------------------------------- the Calendly event registry
# Every Calendly event we handle, and its handler; webhook ingest dispatches through it (the legacy
# `invitee.rescheduled` is parsed as `invitee.created`). Handlers take the parsed webhook; they are
# looked up by name when called, so the registry always calls this module's current functions.
CalendlyHandler = Callable[[Session, CalendlyWebhook], Outcome]

CALENDLY_EVENTS: dict[str, CalendlyHandler] = {
    "invitee.created": lambda session, hook: apply_invitee_created(session, hook),
    "invitee.canceled": lambda session, hook: apply_invitee_canceled(session, hook),
    "invitee_no_show.created": lambda session, hook: apply_no_show(session, hook),
}


__all__ = ["Outcome", "start_booking", "apply_invitee_created", "apply_invitee_canceled",
           "apply_no_show", "cancel_booking", "cancel_booking_locked", "complete_past_sessions",
           "get_or_create_client", "CALENDLY_EVENTS"]
