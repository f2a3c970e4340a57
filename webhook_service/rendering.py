"""Jinja2 pages: autoescaped, with helpers for money and times in the client's time zone.

Templates call `local_time(value, tz)` / `local_time_iso(value, tz)` with the zone they know (a
booking's Calendly invitee zone, or none); the page fills in the rest of the rule
(`core.timezones.client_zone`: else the browser's zone, else UTC), so no page decides it again.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from core.avatars import avatar_for
from core.config import get_settings
from core.money import format_amount
from core.timezones import client_zone, format_local, known_zone

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def local_time(value: datetime | None, tz: str | None = None) -> str:
    """`value` in zone `tz` (UTC when it is not a real zone), the zone named."""
    return format_local(value, tz, missing="not scheduled yet")


def local_time_iso(value: str | None, tz: str | None = None) -> str:
    return local_time(datetime.fromisoformat(value) if value else None, tz)


def _page_zone(context, tz: str | None, shown: bool) -> str:
    """The zone a page shows a time in; notes when it fell back to the browser's zone or UTC
    (base.html tells the browser script, which may reload once after saving its zone)."""
    zone = client_zone(tz, context.get("browser_zone"))
    notes = context.get("zone_notes")
    if shown and not known_zone(tz) and isinstance(notes, dict):
        notes["fallback"] = zone
    return zone


@pass_context
def _local_time_on_page(context, value: datetime | None, tz: str | None = None) -> str:
    return local_time(value, _page_zone(context, tz, value is not None))


@pass_context
def _local_time_iso_on_page(context, value: str | None, tz: str | None = None) -> str:
    return local_time_iso(value, _page_zone(context, tz, bool(value)))


def http_url(value: str | None) -> str | None:
    """A link from a provider, only if it is http(s): autoescaping does not stop a javascript: href."""
    text = (value or "").strip()
    return text if text.lower().startswith(("https://", "http://")) else None


templates.env.globals.update(money=format_amount, local_time=_local_time_on_page,
                             local_time_iso=_local_time_iso_on_page, http_url=http_url,
                             avatar=avatar_for)


def page(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
    from webhook_service.deps import browser_zone, save_visitor, visitor_of

    visitor = visitor_of(request)
    context.setdefault("browser_zone", browser_zone(request))
    context["zone_notes"] = {}
    context.setdefault("visitor", visitor)
    context.setdefault("sandbox", get_settings().sandbox)
    context.setdefault("remember_days", get_settings().client_session_remember_days)
    response = templates.TemplateResponse(request=request, name=name, context=context, status_code=status_code)
    if visitor is not None:
        save_visitor(response, visitor)
    return response


def error_page(request: Request, status_code: int, title: str, message: str, *, action_url: str | None = None,
               action_label: str | None = None) -> HTMLResponse:
    return page(request, "error.html", status_code, title=title, message=message, action_url=action_url,
                action_label=action_label)
