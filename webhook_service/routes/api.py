"""JSON APIs: the seed's scheduling contracts, and the admin API behind the bearer token."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from core.auth import API_ADMIN
from core.calendly import CalendlyError
from core.db import session_scope
from core.emails import InvalidEmail, normalize_email
from core.errors import DomainError, NotFound, RefundRefused
from core.services import admin_actions, scheduling, throttle
from core.services.booking_view import booking_json
from webhook_service import openapi as oa
from webhook_service.deps import (
    AdminDep, EngineDep, SettingsDep, VisitorDep, request_address, require_admin_token,
)
from webhook_service.outbox_kick import kick_outbox

router = APIRouter(prefix="/api", tags=["api"])


def _event_type_json(item: scheduling.OfferedSessionType) -> dict:
    return {
        "id": item.id, "uri": item.uri, "name": item.name, "description": item.description,
        "duration": item.duration, "slug": item.slug, "color": item.color, "active": item.bookable,
        "created_at": item.created_at, "updated_at": item.updated_at,
        "profile": {"name": item.profile.get("name", ""), "type": item.profile.get("type", "User")},
        "scheduling_url": item.scheduling_url, "price": item.price_cents, "currency": item.currency,
    }


@router.get("/scheduling/calendly/event-types", summary="A builder's session types (seed contract)",
            responses=oa.merge(oa.JSON_API, oa.api_errors(404, 503)))
def event_types(engine: EngineDep, builderId: Annotated[str, Query(min_length=1, max_length=20)]):
    if not (builderId.isascii() and builderId.isdigit() and len(builderId) <= 18):  # int() and the database take it
        raise HTTPException(422, "builderId must be a builder's numeric id")
    try:
        _builder, offered = scheduling.offered_session_types(engine, int(builderId))
    except NotFound:
        raise HTTPException(404, "no builder with this id") from None
    except CalendlyError:
        raise HTTPException(503, "Calendly is unavailable; try again shortly") from None
    return {"data": [_event_type_json(item) for item in offered],
            "pagination": {"next_page": None, "previous_page": None}}


class QuestionAnswer(BaseModel):
    name: str = Field(max_length=500)
    value: str = Field(max_length=5000)


class SchedulingLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eventTypeId: str = Field(min_length=1, max_length=500)
    inviteeEmail: str = Field(default="", max_length=320)
    inviteeName: str = Field(default="", max_length=200)
    customQuestions: list[QuestionAnswer] | None = Field(default=None, max_length=20)
    metadata: dict[str, str] | None = None


@router.post("/scheduling/calendly/scheduling-link", summary="Start a booking; returns the Calendly link (seed contract)",
             responses=oa.merge(oa.JSON_API_WITH_BODY, oa.api_errors(401, 403, 404, 409, 503), oa.THROTTLED_API))
def scheduling_link(request: Request, body: SchedulingLinkRequest, engine: EngineDep, settings: SettingsDep,
                    visitor: VisitorDep, authorization: Annotated[str | None, Header()] = None):
    if authorization:
        require_admin_token(settings, authorization)  # server-to-server: the marketplace app signs in
        name, actor = body.inviteeName, "marketplace:api"
        if not body.inviteeEmail.strip():
            raise HTTPException(422, "inviteeEmail is required for server-to-server calls")
        try:
            email = normalize_email(body.inviteeEmail)
        except InvalidEmail as error:
            raise HTTPException(422, f"inviteeEmail: {error}") from None
    elif visitor.email:
        email, name, actor = visitor.email, body.inviteeName or visitor.name or "", f"client:{visitor.email}"
    else:
        raise HTTPException(401, "sign in first, or call with Authorization: Bearer <admin token>")
    # Per client always; per address only for a client's own calls (the marketplace's server calls
    # for everyone from one address).
    throttle.hit(engine, throttle.BOOKING, client=email,
                 address=None if authorization else request_address(request))
    try:
        started = scheduling.start_scheduling(engine, body.eventTypeId, client_email=email, client_name=name,
                                              actor=actor)
    except NotFound as error:
        raise HTTPException(404, str(error)) from None
    except DomainError as error:
        raise HTTPException(409, str(error)) from None
    except CalendlyError:
        raise HTTPException(503, "Calendly is unavailable; nothing was booked") from None
    return {"schedulingUrl": started.scheduling_url, "bookingId": started.booking_id}


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_cents: StrictInt | None = Field(default=None, gt=0)
    reason: str = Field(default="", max_length=500)


@router.get("/bookings/{booking_id}", summary="A booking with its money (admin)",
            responses=oa.merge(oa.JSON_API, oa.ADMIN, oa.api_errors(404)))
def get_booking(booking_id: str, engine: EngineDep, _admin: AdminDep):
    with session_scope(engine, read_only=True) as session:
        try:
            return booking_json(session, booking_id)
        except NotFound:
            raise HTTPException(404, "no such booking") from None


@router.post("/bookings/{booking_id}/refund", summary="Refund a booking in full or in part (admin)", status_code=202,
             responses=oa.merge(oa.JSON_API_WITH_BODY, oa.ADMIN, oa.api_errors(404, 409)))
def refund_booking(booking_id: str, body: RefundRequest, engine: EngineDep, _admin: AdminDep,
                   background: BackgroundTasks):
    try:
        with session_scope(engine) as session:
            # The same admin action as the dashboard's button; the bearer token acts as API_ADMIN.
            amount = admin_actions.refund(session, API_ADMIN, booking_id, body.amount_cents,
                                          reason=body.reason.strip() or "Refund by admin (API)")
    except NotFound:
        raise HTTPException(404, "no such booking") from None
    except RefundRefused as error:
        raise HTTPException(409, str(error)) from None
    kick_outbox(background, engine)
    with session_scope(engine, read_only=True) as session:
        return JSONResponse({"refunded_cents": amount, "booking": booking_json(session, booking_id)}, status_code=202)
