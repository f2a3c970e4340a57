"""Calendly's OAuth callback: where a builder's browser lands after approving (or denying) our app.

Only translation here; the rules are core.services.calendly_connection's. Success goes back to the
dashboard; every other outcome is a page of ours saying what happened and leading back to it.
"""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from core.services.calendly_connection import CALLBACK_PATH, finish_connect
from webhook_service.deps import EngineDep, SettingsDep
from webhook_service.rendering import page

router = APIRouter(tags=["calendly oauth"])
log = logging.getLogger(__name__)


class HideCallbackQuery(logging.Filter):
    """uvicorn's access log writes each request's path with its query: for our callback that is the
    authorization code and the state. Keep the path, drop the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) \
                and args[2].startswith(CALLBACK_PATH + "?"):
            record.args = (*args[:2], CALLBACK_PATH + "?[hidden]", *args[3:])
        return True


logging.getLogger("uvicorn.access").addFilter(HideCallbackQuery())

TITLES = {"denied": "Calendly not connected", "refused": "This link cannot be used",
          "failed": "Calendly not connected"}
# A refused state or code is a bad request; a person saying no is not.
STATUS = {"refused": 400, "failed": 400}


@router.get(CALLBACK_PATH, include_in_schema=False)
def calendly_oauth_callback(request: Request, engine: EngineDep, settings: SettingsDep, state: str = "",
                            code: str | None = None, error: str | None = None):
    # The query carries the code: never log the URL, only the outcome.
    result = finish_connect(engine, state=state[:500], code=(code or "")[:2000] or None,
                            error=(error or "")[:100] or None)
    log.info("Calendly OAuth callback: %s (builder %s)", result.outcome, result.builder_id)
    if result.ok:
        return RedirectResponse(f"{settings.dashboard_url}/?calendly=connected", status_code=303)
    response = page(request, "calendly_connect.html", STATUS.get(result.outcome, 200),
                    title=TITLES.get(result.outcome, "Calendly not connected"), message=result.message,
                    ok=result.outcome == "denied", dashboard_url=settings.dashboard_url)  # a no is no fault
    response.headers["Cache-Control"] = "no-store"
    return response
