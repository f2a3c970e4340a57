"""My bookings: a signed-in client's bookings, a receipt for each, cancelling one (with the refund
stated before they confirm), and the page sign-out lands on.

Every booking page here is its owner's only: another client's booking id (or one that does not
exist) answers the same 404, so an id reveals nothing.
"""
from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from core.db import session_scope
from core.errors import DomainError, NotFound
from core.services import client_bookings, client_cancel
from core.states import BookingStatus
from webhook_service import openapi as oa
from webhook_service.deps import EngineDep, Visitor, VisitorDep
from webhook_service.outbox_kick import kick_outbox
from webhook_service.rendering import error_page, page

router = APIRouter(tags=["client pages"])

BOOKING_ID = re.compile(r"^bk_[0-9a-f]{20}$")
REFUND_ARRIVES = "Banks usually take 5–10 business days to show a refund on your statement."


def _sign_in_first(back_to: str) -> RedirectResponse:
    return RedirectResponse(f"/login?{urlencode({'next': back_to})}", status_code=303)


def _not_yours(request: Request) -> HTMLResponse:
    return error_page(request, 404, "Booking not found",
                      "There is no booking of yours at this address. If you booked with another email "
                      "address, sign out and sign in with that one.",
                      action_url="/my-bookings", action_label="See my bookings")


def _page_number(value: str) -> int:
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 5 else 1


def _own(engine, visitor: Visitor, booking_id: str) -> client_bookings.BookingLine | None:
    if not BOOKING_ID.match(booking_id):
        return None
    with session_scope(engine, read_only=True) as session:
        return client_bookings.own_booking(session, visitor.email, booking_id)


@router.get("/my-bookings", summary="A signed-in client's bookings", response_class=HTMLResponse,
            responses=oa.merge(oa.PAGE, oa.page_answers(303)))
def my_bookings(request: Request, engine: EngineDep, visitor: VisitorDep,
                page_number: Annotated[str, Query(alias="page")] = "1"):
    if not visitor.email:
        return _sign_in_first("/my-bookings")
    with session_scope(engine, read_only=True) as session:
        mine = client_bookings.list_bookings(session, visitor.email, page=_page_number(page_number))
    return page(request, "my_bookings.html", mine=mine)


@router.get("/my-bookings/{booking_id}/receipt", summary="The receipt of one of the client's bookings",
            response_class=HTMLResponse, responses=oa.merge(oa.PAGE, oa.page_answers(303, 404)))
def receipt(booking_id: str, request: Request, engine: EngineDep, visitor: VisitorDep):
    if not visitor.email:
        return _sign_in_first(f"/my-bookings/{booking_id}/receipt" if BOOKING_ID.match(booking_id) else "/my-bookings")
    booking = _own(engine, visitor, booking_id)
    if booking is None:
        return _not_yours(request)
    return page(request, "receipt.html", b=booking)


def _confirm_page(request: Request, booking, terms, visitor: Visitor, *, changed: bool = False,
                  status_code: int = 200) -> HTMLResponse:
    return page(request, "cancel_confirm.html", status_code, b=booking, terms=terms, changed=changed,
                csrf=visitor.csrf_token())


@router.get("/my-bookings/{booking_id}/cancel", summary="What canceling would refund, before confirming",
            response_class=HTMLResponse, responses=oa.merge(oa.PAGE, oa.page_answers(303, 404, 409)))
def cancel_form(booking_id: str, request: Request, engine: EngineDep, visitor: VisitorDep):
    if not visitor.email:
        return _sign_in_first(f"/my-bookings/{booking_id}/cancel" if BOOKING_ID.match(booking_id) else "/my-bookings")
    booking = _own(engine, visitor, booking_id)
    if booking is None:
        return _not_yours(request)
    if booking.status == BookingStatus.CANCELED:
        return RedirectResponse(f"/my-bookings/{booking_id}/canceled", status_code=303)
    try:
        with session_scope(engine, read_only=True) as session:
            terms = client_cancel.terms(session, visitor.email, booking_id)
    except NotFound:
        return _not_yours(request)
    except DomainError:
        return _cannot_cancel(request, booking)
    return _confirm_page(request, booking, terms, visitor)


def _cannot_cancel(request: Request, booking) -> HTMLResponse:
    return error_page(request, 409, "This booking can no longer be canceled",
                      f"Its status is “{booking.status_words}”: there is nothing left to cancel.",
                      action_url="/my-bookings", action_label="Back to my bookings")


@router.post("/my-bookings/{booking_id}/cancel", summary="Cancel one of the client's bookings", status_code=303,
             response_class=RedirectResponse, responses=oa.merge(oa.FORM, oa.page_answers(404, 409)))
def cancel(
    booking_id: str, request: Request, engine: EngineDep, visitor: VisitorDep, background: BackgroundTasks,
    csrf_token: Annotated[str, Form()] = "", expected_refund_cents: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
):
    visitor.check_csrf(csrf_token)
    if not visitor.email:
        return _sign_in_first("/my-bookings")
    booking = _own(engine, visitor, booking_id)
    if booking is None:
        return _not_yours(request)
    shown = expected_refund_cents.strip()
    if not (shown.isascii() and shown.isdigit() and len(shown) <= 15):
        return error_page(request, 422, "Please confirm from the cancellation page",
                          "This form did not say which refund you were shown, so nothing was canceled.",
                          action_url=f"/my-bookings/{booking_id}/cancel", action_label="See the refund")
    try:
        with session_scope(engine) as session:
            done = client_cancel.cancel(session, visitor.email, booking_id, expected_refund_cents=int(shown),
                                        reason=reason)
    except client_cancel.TermsChanged as changed:
        return _confirm_page(request, booking, changed.terms, visitor, changed=True, status_code=409)
    except NotFound:
        return _not_yours(request)
    except DomainError:
        return _cannot_cancel(request, booking)
    kick_outbox(background, engine)  # the refund and Calendly's cancellation go out now, not at the next tick
    query = "?already=1" if done.already else ""
    return RedirectResponse(f"/my-bookings/{booking_id}/canceled{query}", status_code=303)


@router.get("/my-bookings/{booking_id}/canceled", summary="A canceled booking and its refund",
            response_class=HTMLResponse, responses=oa.merge(oa.PAGE, oa.page_answers(303, 404)))
def canceled(booking_id: str, request: Request, engine: EngineDep, visitor: VisitorDep, already: str = ""):
    if not visitor.email:
        return _sign_in_first(f"/my-bookings/{booking_id}/canceled" if BOOKING_ID.match(booking_id) else "/my-bookings")
    booking = _own(engine, visitor, booking_id)
    if booking is None:
        return _not_yours(request)
    if booking.status != BookingStatus.CANCELED:
        return RedirectResponse(f"/my-bookings/{booking_id}/cancel", status_code=303)
    return page(request, "cancel_done.html", b=booking, already=already == "1", refund_arrives=REFUND_ARRIVES)


@router.get("/signed-out", summary="Where signing out lands", response_class=HTMLResponse, responses=oa.PAGE)
def signed_out(request: Request, visitor: VisitorDep):
    return page(request, "signed_out.html")
