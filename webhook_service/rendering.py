"""Jinja2 pages: autoescaped, with helpers for money and times in the client's timezone."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from core.avatars import avatar_for
from core.config import get_settings
from core.money import format_amount

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def local_time(value: datetime | None, tz: str | None = None) -> str:
    if value is None:
        return "not scheduled yet"
    try:
        zone = ZoneInfo(tz) if tz else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = value.astimezone(zone)
    return f"{local:%A %d %B %Y, %H:%M} ({zone.key})"


def local_time_iso(value: str | None, tz: str | None = None) -> str:
    return local_time(datetime.fromisoformat(value) if value else None, tz)


def http_url(value: str | None) -> str | None:
    """A link from a provider, only if it is http(s): autoescaping does not stop a javascript: href."""
    text = (value or "").strip()
    return text if text.lower().startswith(("https://", "http://")) else None


templates.env.globals.update(money=format_amount, local_time=local_time, local_time_iso=local_time_iso,
                             http_url=http_url, avatar=avatar_for)


def page(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
    from webhook_service.deps import save_visitor

    visitor = getattr(request.state, "visitor", None)
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
