"""Booking operations of the Calendly stand-in: slots, book, cancel, reschedule, no-show.

Each operation changes state under the lock and returns the ``Notification``s it causes (in
delivery order); the caller hands them to the webhook dispatcher after the lock is released.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from .model import (
    QUESTION, SLOT_DAYS, SLOT_HOURS, UTC, CalendlyError, CalendlyState, Event, Invitee,
    Notification, fmt_offset, fmt_time, invalid, invitee_zone, not_found, parse_time, permission_denied,
)

TRACKING_KEYS = ("utm_campaign", "utm_source", "utm_medium", "utm_content", "utm_term",
                 "salesforce_uuid")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass
class BookingResult:
    invitee: Invitee
    event: Event
    redirect_url: str | None
    notifications: list[Notification] = field(default_factory=list)


def tracking_from(values) -> dict:
    return {key: (str(values.get(key)).strip() or None) if values.get(key) is not None else None
            for key in TRACKING_KEYS}


# ---------------------------------------------------------------- slots
def _busy(state: CalendlyState, user_uuid: str, start: datetime, end: datetime,
          ignore_event: str | None = None) -> bool:
    return any(ev.user_uuid == user_uuid and ev.status == "active" and ev.uuid != ignore_event
               and ev.start < end and start < ev.end for ev in state.data.events.values())


def free_slots(state: CalendlyState, user_uuid: str, duration: int,
               ignore_event: str | None = None) -> list[datetime]:
    """Free on-the-hour starts, UTC 09..16, from tomorrow for SLOT_DAYS days."""
    with state.lock:
        now = state.now()
        today = now.date()
        out = []
        for day in range(1, SLOT_DAYS + 1):
            for hour in SLOT_HOURS:
                start = datetime.combine(today + timedelta(days=day), time(hour), tzinfo=UTC)
                end = start + timedelta(minutes=duration)
                if start > now and not _busy(state, user_uuid, start, end, ignore_event):
                    out.append(start)
        return out


def choose_slot(state: CalendlyState, user_uuid: str, duration: int, start_time,
                ignore_event: str | None = None) -> datetime:
    """The validated start (or the first free slot when none given); raises CalendlyError."""
    if start_time in (None, ""):
        slots = free_slots(state, user_uuid, duration, ignore_event)
        if not slots:
            raise CalendlyError(409, "Slot Unavailable", "No free slot is left.")
        return slots[0]
    start = parse_time(start_time)
    if start is None:
        raise invalid("start_time", "must be an ISO 8601 time")
    if start.minute or start.second or start.microsecond or start.hour not in SLOT_HOURS:
        raise invalid("start_time", "must be on the hour, 09:00 to 16:00 UTC")
    if start <= state.now():
        raise invalid("start_time", "must be in the future")
    if _busy(state, user_uuid, start, start + timedelta(minutes=duration), ignore_event):
        raise CalendlyError(409, "Slot Unavailable", "This time slot is no longer available.",
                            [{"parameter": "start_time", "message": "is not available"}])
    return start


# ---------------------------------------------------------------- helpers
def notify(state: CalendlyState, event_name: str, inv: Invitee) -> Notification:
    ev = state.data.events[inv.event_uuid]
    host = state.data.users[ev.user_uuid]
    return Notification(event_name, state.invitee_uri(inv), state.invitee_json(inv, embed_event=True),
                        state.user_uri(host), fmt_time(state.now()),
                        inv.no_show["uri"] if inv.no_show else None)


def redirect_for(state: CalendlyState, inv: Invitee) -> str | None:
    """Our service's return URL with the parameters Calendly appends after a booking."""
    if not state.redirect_url:
        return None
    ev = state.data.events[inv.event_uuid]
    et = state.data.event_types[ev.event_type_uuid]
    params = {
        "assigned_to": state.data.users[ev.user_uuid].name, "event_type_uuid": et.uuid,
        "event_type_name": et.name, "event_start_time": fmt_offset(ev.start),
        "event_end_time": fmt_offset(ev.end), "invitee_uuid": inv.uuid,
        "invitee_full_name": inv.name, "invitee_email": inv.email,
    }
    for qa in inv.questions_and_answers:
        params[f"answer_{qa['position'] + 1}"] = qa["answer"]
    params.update({k: inv.tracking[k] for k in UTM_KEYS if inv.tracking.get(k)})
    parts = urlsplit(state.redirect_url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _person(name, email) -> tuple[str, str]:
    name = (name or "").strip() if isinstance(name, str) else ""
    email = (email or "").strip() if isinstance(email, str) else ""
    if not name:
        raise invalid("name", "is required")
    if len(name) > 200:
        raise invalid("name", "is too long")
    if not EMAIL_RE.match(email):
        raise invalid("email", "must be a valid email address")
    return name, email


def _new_booking(state: CalendlyState, et_uuid: str, start: datetime, name: str, email: str,
                 tracking: dict, qa: list, old_invitee: str | None = None,
                 zone: str | None = None) -> tuple[Event, Invitee]:
    et = state.data.event_types[et_uuid]
    now = state.now()
    ev = Event(str(uuid.uuid4()), et.uuid, et.user_uuid, start,
               start + timedelta(minutes=et.duration), now, now)
    inv = Invitee(str(uuid.uuid4()), ev.uuid, name, email, dict(tracking), qa, now, now,
                  old_invitee=old_invitee, timezone=invitee_zone(zone))
    state.data.events[ev.uuid] = ev
    state.data.invitees[inv.uuid] = inv
    return ev, inv


def find_invitee(state: CalendlyState, invitee_uuid: str) -> Invitee:
    inv = state.data.invitees.get(str(invitee_uuid).lower())
    if inv is None:
        raise not_found()
    return inv


# ---------------------------------------------------------------- operations
def book(state: CalendlyState, link_uuid: str, *, start_time, name, email, answer,
         tracking: dict, zone: str | None = None) -> BookingResult:
    """`zone`: the time zone the invitee saw the times in (the page detects the browser's); it
    becomes the invitee's `timezone`, as at Calendly."""
    with state.lock:
        link = state.data.links.get(str(link_uuid).lower())
        if link is None:
            raise not_found()
        if link.used_by:
            raise CalendlyError(409, "Already Used", "This scheduling link has already been used")
        et = state.data.event_types[link.event_type_uuid]
        if not et.active:
            raise invalid("owner", "the event type is not active")
        name, email = _person(name, email)
        start = choose_slot(state, et.user_uuid, et.duration, start_time)
        answer = answer.strip() if isinstance(answer, str) else ""
        qa = [{"question": QUESTION, "answer": answer, "position": 0}] if answer else []
        ev, inv = _new_booking(state, et.uuid, start, name, email, tracking, qa, zone=zone)
        link.used_by = inv.uuid
        return BookingResult(inv, ev, redirect_for(state, inv),
                             [notify(state, "invitee.created", inv)])


def _check_cancellable(state: CalendlyState, ev: Event) -> None:
    if ev.status == "canceled":
        raise permission_denied("Event is already canceled.")
    if ev.start <= state.now():
        raise permission_denied("Event in the past cannot be canceled.")


def cancel_event(state: CalendlyState, ev: Event, *, canceled_by: str, reason,
                 canceler_type: str) -> tuple[dict, list[Notification]]:
    with state.lock:
        _check_cancellable(state, ev)
        now = state.now()
        reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
        cancellation = {"canceled_by": canceled_by, "reason": reason,
                        "canceler_type": canceler_type, "created_at": fmt_time(now)}
        ev.status, ev.cancellation, ev.updated_at = "canceled", cancellation, now
        notes = []
        for inv in state.data.invitees.values():
            if inv.event_uuid == ev.uuid and inv.status == "active":
                inv.status, inv.cancellation, inv.updated_at = "canceled", dict(cancellation), now
                notes.append(inv)
        return cancellation, [notify(state, "invitee.canceled", inv) for inv in notes]


def cancel_invitee(state: CalendlyState, invitee_uuid: str, reason) -> tuple[dict, list]:
    with state.lock:
        inv = find_invitee(state, invitee_uuid)
        if inv.status != "active":
            raise permission_denied("Event is already canceled.")
        return cancel_event(state, state.data.events[inv.event_uuid], canceled_by=inv.name,
                            reason=reason, canceler_type="invitee")


def reschedule(state: CalendlyState, invitee_uuid: str, start_time, zone: str | None = None) -> BookingResult:
    with state.lock:
        old = find_invitee(state, invitee_uuid)
        old_ev = state.data.events[old.event_uuid]
        if old.status != "active":
            raise permission_denied("Event is already canceled.")
        _check_cancellable(state, old_ev)
        et = state.data.event_types[old_ev.event_type_uuid]
        start = choose_slot(state, et.user_uuid, et.duration, start_time, ignore_event=old_ev.uuid)
        ev, new = _new_booking(state, et.uuid, start, old.name, old.email, old.tracking,
                               [dict(q) for q in old.questions_and_answers],
                               old_invitee=state.invitee_uri(old), zone=zone or old.timezone)
        now = state.now()
        cancellation = {"canceled_by": old.name, "reason": "Rescheduled",
                        "canceler_type": "invitee", "created_at": fmt_time(now)}
        old_ev.status, old_ev.cancellation, old_ev.updated_at = "canceled", cancellation, now
        old.status, old.cancellation, old.updated_at = "canceled", dict(cancellation), now
        old.rescheduled, old.new_invitee = True, state.invitee_uri(new)
        canceled, created = notify(state, "invitee.canceled", old), notify(state, "invitee.created", new)
        order = ([created, canceled] if state.data.config["reschedule_order"] == "create_first"
                 else [canceled, created])
        return BookingResult(new, ev, redirect_for(state, new), order)


def mark_no_show(state: CalendlyState, invitee_uuid: str) -> tuple[Invitee, list[Notification]]:
    with state.lock:
        inv = find_invitee(state, invitee_uuid)
        if inv.no_show:
            raise invalid("invitee", "is already marked as a no-show")
        no_show_uuid = str(uuid.uuid4())
        now = state.now()
        inv.no_show = {"uri": state.uri("invitee_no_shows", no_show_uuid),
                       "created_at": fmt_time(now)}
        inv.updated_at = now
        state.data.no_shows[no_show_uuid] = inv.uuid
        return inv, [notify(state, "invitee_no_show.created", inv)]
