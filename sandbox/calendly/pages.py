"""HTML pages of the Calendly stand-in: booking, cancellation and rescheduling (Jinja2, autoescape)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader

from .api import get_dispatcher, get_state
from .model import QUESTION, CalendlyError, CalendlyState, Invitee, fmt_slot
from .ops import (
    TRACKING_KEYS, BookingResult, book, cancel_invitee, find_invitee, free_slots, redirect_for,
    reschedule, tracking_from,
)

router = APIRouter()
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=True)


def render(template: str, status: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(templates.get_template(template).render(**context), status_code=status)


def message(title: str, text: str = "", status: int = 200, ok: bool = False,
            details: list | None = None, links: list | None = None, zone: str | None = None) -> HTMLResponse:
    """`details`: (label, text) rows, or (label, text, UTC time) for a time the page's script shows
    in `zone` (the invitee's; the browser's when None); `links`: (label, url) buttons onward."""
    return render("message.html", status, title=title, message=text, ok=ok,
                  details=details or [], links=links or [], zone=zone)


def not_found_page() -> HTMLResponse:
    return message("Page not found", "This link is not valid.", 404)


async def form_body(request: Request) -> dict:
    form = await request.form()
    return {key: str(value) for key, value in form.items()}


def when(start: datetime) -> str:
    """A time as the page shows it without its script (UTC, named); the script (static/local-times.js)
    rewrites every <time datetime> into the invitee's zone."""
    return f"{start:%A} {start.day} {start:%B %Y, %H:%M} UTC"


def when_row(label: str, start: datetime) -> tuple[str, str, str]:
    return (label, when(start), fmt_slot(start))


def back_to_site(state: CalendlyState, inv: Invitee) -> list[tuple[str, str]]:
    """The sandbox's way back to the booking site (its redirect URL, carrying the booking's
    reference). Real Calendly shows no such link after a cancellation; our emails carry it there."""
    url = redirect_for(state, inv)
    return [("Back to the booking site", url)] if url else []


def slot_days(slots: list[datetime], chosen: str | None) -> list[dict]:
    days: dict[str, dict] = {}
    for start in slots:
        label = f"{start:%A} {start.day} {start:%B}"
        value = fmt_slot(start)
        days.setdefault(label, {"label": label, "slots": []})["slots"].append(
            {"value": value, "label": start.strftime("%H:%M"), "checked": value == chosen})
    return list(days.values())


def finish_booking(request: Request, result: BookingResult) -> HTMLResponse | RedirectResponse:
    get_dispatcher(request).dispatch(result.notifications)
    if result.redirect_url:
        return RedirectResponse(result.redirect_url, status_code=303)
    state = get_state(request)
    with state.lock:
        et = state.data.event_types[result.event.event_type_uuid]
        host = state.data.users[result.event.user_uuid]
        details = [("What", et.name), ("Host", host.name), when_row("When", result.event.start),
                   ("Invitee", f"{result.invitee.name} ({result.invitee.email})")]
        zone = result.invitee.timezone
    return message("You are scheduled", "A calendar invitation has been sent to your email address.",
                   ok=True, details=details, zone=zone)


# ---------------------------------------------------------------- booking
def _book_page(state: CalendlyState, link_uuid: str, values: dict, error: str | None = None,
               status: int = 200) -> HTMLResponse:
    with state.lock:
        link = state.data.links.get(link_uuid.lower())
        if link is None:
            return not_found_page()
        if link.used_by:
            return _used_link_page(state, link.used_by)
        et = state.data.event_types[link.event_type_uuid]
        host = state.data.users[et.user_uuid]
        name = values.get("name") or " ".join(
            p for p in (values.get("first_name"), values.get("last_name")) if p)
        hidden = [(k, values[k]) for k in TRACKING_KEYS if values.get(k)]
        return render("book.html", status, title=et.name, host_name=host.name,
                      event_type_name=et.name, duration=et.duration, question=QUESTION,
                      name=name, email=values.get("email", ""), a1=values.get("a1", ""),
                      hidden=hidden, error=error, action=f"/book/{link.uuid}",
                      days=slot_days(free_slots(state, et.user_uuid, et.duration),
                                     values.get("start_time")),
                      rescheduling=False, current_start=None)


def _used_link_page(state: CalendlyState, invitee_uuid: str) -> HTMLResponse:
    """A single-use link already booked (often the browser's Back button after booking): what was
    booked with it, and the way back to the booking site to go on from there."""
    inv = state.data.invitees[invitee_uuid]
    ev = state.data.events[inv.event_uuid]
    canceled = inv.status != "active"
    details = [("What", state.data.event_types[ev.event_type_uuid].name),
               when_row("Booked for", ev.start), ("Invitee", f"{inv.name} ({inv.email})")]
    if canceled:
        details.append(("Status", "Canceled"))
    text = ("You already picked a time with this link, and each link books one time only. "
            + ("That booking has since been canceled. " if canceled else "Your time is kept. ")
            + "Go back to the booking site to see your booking, pay for it, or start again with another time.")
    return message("This scheduling link has already been used", text, 409, details=details,
                   links=[(label, url) for label, url in back_to_site(state, inv)], zone=inv.timezone)


@router.get("/book/{link_uuid}", response_class=HTMLResponse)
def book_page(link_uuid: str, request: Request):
    return _book_page(get_state(request), link_uuid, dict(request.query_params))


@router.post("/book/{link_uuid}")
def book_submit(link_uuid: str, request: Request, form: dict = Depends(form_body)):
    state = get_state(request)
    try:
        result = book(state, link_uuid, start_time=form.get("start_time") or "INVALID",
                      name=form.get("name"), email=form.get("email"), answer=form.get("a1"),
                      tracking=tracking_from(form), zone=form.get("timezone"))
    except CalendlyError as error:
        if error.status == 404 or error.title == "Already Used":
            return _book_page(state, link_uuid, form)
        return _book_page(state, link_uuid, form, error=_describe(error), status=error.status)
    return finish_booking(request, result)


def _describe(error: CalendlyError) -> str:
    if error.details:
        detail = error.details[0]
        if detail.get("parameter") == "start_time" and error.status == 400:
            return "Please pick one of the offered times."
        return f"{detail['parameter'].replace('_', ' ').capitalize()} {detail['message']}."
    return error.message


# ---------------------------------------------------------------- cancellation
def _invitee_or_none(state: CalendlyState, invitee_uuid: str) -> Invitee | None:
    try:
        return find_invitee(state, invitee_uuid)
    except CalendlyError:
        return None


def _closed_page(state: CalendlyState, inv: Invitee) -> HTMLResponse | None:
    ev = state.data.events[inv.event_uuid]
    if inv.status != "active":
        return message("This event has already been canceled",
                       (inv.cancellation or {}).get("reason") or "", 403)
    if ev.start <= state.now():
        return message("This event is in the past", "It can no longer be changed.", 403)
    return None


def _open_invitee(state: CalendlyState, invitee_uuid: str) -> tuple[Invitee | None, HTMLResponse | None]:
    """The invitee a cancel or reschedule page is about, or the page to show instead (an unknown
    invitee, or one whose event is over or canceled)."""
    inv = _invitee_or_none(state, invitee_uuid)
    if inv is None:
        return None, not_found_page()
    return inv, _closed_page(state, inv)


def _invitee_page(request: Request, invitee_uuid: str, page) -> HTMLResponse:
    """GET of a cancel or reschedule page: `page(state, invitee)`, or the page to show instead."""
    state = get_state(request)
    with state.lock:
        inv, instead = _open_invitee(state, invitee_uuid)
        return instead or page(state, inv)


def _cancel_page(state: CalendlyState, inv: Invitee, error: str | None = None,
                 reason: str = "", status: int = 200) -> HTMLResponse:
    ev = state.data.events[inv.event_uuid]
    return render("cancel.html", status, title="Cancel event",
                  host_name=state.data.users[ev.user_uuid].name,
                  event_type_name=state.data.event_types[ev.event_type_uuid].name,
                  when=when(ev.start), start=fmt_slot(ev.start), zone=inv.timezone, name=inv.name, email=inv.email, error=error,
                  reason=reason, action=f"/cancellations/{inv.uuid}")


@router.get("/cancellations/{invitee_uuid}", response_class=HTMLResponse)
def cancel_page(invitee_uuid: str, request: Request):
    return _invitee_page(request, invitee_uuid, _cancel_page)


@router.post("/cancellations/{invitee_uuid}")
def cancel_submit(invitee_uuid: str, request: Request, form: dict = Depends(form_body)):
    state = get_state(request)
    with state.lock:
        inv, instead = _open_invitee(state, invitee_uuid)
        if instead is not None:
            return instead
        _, notes = cancel_invitee(state, inv.uuid, form.get("reason"))
        ev = state.data.events[inv.event_uuid]
        details = [("What", state.data.event_types[ev.event_type_uuid].name),
                   when_row("When", ev.start)]
        links, zone = back_to_site(state, inv), inv.timezone
    get_dispatcher(request).dispatch(notes)  # the booking site hears of it before the client goes back
    return message("Cancellation confirmed", "Your event has been canceled.", ok=True,
                   details=details, links=links, zone=zone)


# ---------------------------------------------------------------- rescheduling
def _reschedule_page(state: CalendlyState, inv: Invitee, error: str | None = None,
                     status: int = 200, chosen: str | None = None) -> HTMLResponse:
    ev = state.data.events[inv.event_uuid]
    et = state.data.event_types[ev.event_type_uuid]
    slots = [s for s in free_slots(state, et.user_uuid, et.duration, ignore_event=ev.uuid)
             if s != ev.start]
    return render("book.html", status, title=f"Reschedule {et.name}",
                  host_name=state.data.users[et.user_uuid].name, event_type_name=et.name,
                  duration=et.duration, question=QUESTION, name=inv.name, email=inv.email,
                  a1="", hidden=[], error=error, action=f"/reschedulings/{inv.uuid}",
                  days=slot_days(slots, chosen), rescheduling=True, current_start=when(ev.start),
                  current_start_utc=fmt_slot(ev.start), zone=inv.timezone)


@router.get("/reschedulings/{invitee_uuid}", response_class=HTMLResponse)
def reschedule_page(invitee_uuid: str, request: Request):
    return _invitee_page(request, invitee_uuid, _reschedule_page)


@router.post("/reschedulings/{invitee_uuid}")
def reschedule_submit(invitee_uuid: str, request: Request, form: dict = Depends(form_body)):
    state = get_state(request)
    with state.lock:
        inv, instead = _open_invitee(state, invitee_uuid)
        if instead is not None:
            return instead
        try:
            result = reschedule(state, inv.uuid, form.get("start_time") or "INVALID",
                                zone=form.get("timezone"))
        except CalendlyError as error:
            return _reschedule_page(state, inv, _describe(error), error.status,
                                    form.get("start_time"))
    return finish_booking(request, result)
