"""Payment pages. Query strings are hints only: the state shown comes from our database, and
only Stripe (webhook or API read) can make a booking paid."""
from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlencode

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from core.calendly import CalendlyError
from core.db import session_scope
from core.errors import NotFound
from core.models import Booking
from core.services import booking_access, checkout_service, hold_release, payment_events, slot_binding
from core.services.booking_view import booking_json
from core.services.reconcile import find_scheduled_invitee
from core.states import BookingStatus, WebhookOutcome
from core.stripe import StripeGatewayError
from webhook_service import openapi as oa
from webhook_service.deps import EngineDep, VisitorDep
from webhook_service.outbox_kick import kick_outbox
from webhook_service.rendering import error_page, page

log = logging.getLogger(__name__)
router = APIRouter(prefix="/payment", tags=["payment pages"])

BOOKING_ID = re.compile(r"^bk_[0-9a-f]{20}$")
STRIPE_DOWN = ("We could not reach our payment provider. You have not been charged and your slot is "
               "still held; please try again in a moment.")


def _booking(engine, booking_id: str) -> dict | None:
    with session_scope(engine, read_only=True) as session:
        try:
            return booking_json(session, booking_id)
        except NotFound:
            return None


def _refused_slot(engine, booking_id: str) -> str | None:
    with session_scope(engine, read_only=True) as session:
        return slot_binding.refused_slot(session, booking_id)


def _not_found(request: Request):
    return error_page(request, 404, "Booking not found",
                      "We could not find this booking. Check the link in your email, or book again.",
                      action_url="/", action_label="See all builders")


def _owner_email(engine, booking_id: str) -> str | None:
    with session_scope(engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        return booking.client.email if booking is not None else None


def _private(request: Request, visitor, back_to: str):
    """A booking that is not this visitor's: nothing about it, and a way in for its owner."""
    return page(request, "booking_private.html", signed_in_as=visitor.email,
                login_url=f"/login?{urlencode({'next': back_to})}")


_last_calendly_lookup: dict[str, float] = {}
CALENDLY_LOOKUP_EVERY = 10.0  # seconds; the page refreshes every 2 s, Calendly's rate limit is per builder


def _ask_calendly(engine, booking_id: str) -> bool:
    """The webhook is late: look the invitee up in Calendly (at most every few seconds per booking)."""
    now = time.monotonic()
    if now - _last_calendly_lookup.get(booking_id, -CALENDLY_LOOKUP_EVERY) < CALENDLY_LOOKUP_EVERY:
        return False
    if len(_last_calendly_lookup) > 10_000:  # bounded: it only throttles, losing it is harmless
        _last_calendly_lookup.clear()
    _last_calendly_lookup[booking_id] = now
    try:
        return find_scheduled_invitee(engine, booking_id) == WebhookOutcome.PROCESSED
    except CalendlyError as error:
        log.warning("Calendly lookup for %s failed: %s", booking_id, type(error).__name__)
        return False


@router.get("/calendly-return", summary="Calendly's redirect after booking (one static URL)", status_code=303,
            response_class=RedirectResponse, responses=oa.merge(oa.PAGE, oa.page_answers(400)))
def calendly_return(request: Request, visitor: VisitorDep, utm_content: str = ""):
    booking_id = utm_content.strip()
    if not BOOKING_ID.match(booking_id):
        return error_page(request, 400, "We could not match your booking",
                          "Calendly sent you back without our booking reference. If you booked a slot, "
                          "the payment link is on its way to your email.", action_url="/",
                          action_label="See all builders")
    return RedirectResponse(f"/payment/{booking_id}", status_code=303)


@router.get("/success", summary="Stripe's success redirect", response_class=HTMLResponse,
            responses=oa.merge(oa.PAGE, oa.page_answers(404)))
def success(request: Request, engine: EngineDep, visitor: VisitorDep, background: BackgroundTasks,
            session_id: str = "", t: str = ""):
    with session_scope(engine, read_only=True) as session:
        booking = session.execute(
            select(Booking).where(Booking.stripe_checkout_session_id == session_id)
        ).scalar_one_or_none() if session_id.startswith("cs_") else None
        booking_id, status = (booking.id, booking.status) if booking else (None, None)
        owner = booking.client.email if booking else ""
        on_its_way = booking is not None and booking.payment_processing_since is not None
    if booking_id is None:
        return _not_found(request)
    # (Not for a bank payment on its way: Stripe has told us about it already.)
    if status == BookingStatus.PENDING_PAYMENT and not on_its_way:
        # Stripe advises fulfilling from the session on the success page too; we still only trust
        # what Stripe's API says, never the redirect itself.
        try:
            checkout = payment_events.sync_checkout(engine, session_id, actor="stripe:api")
            if checkout.outcome == WebhookOutcome.PROCESSED:
                kick_outbox(background, engine)
        except StripeGatewayError:
            log.warning("could not read checkout session on the success page; the webhook will tell")
    if not booking_access.may_see(booking_id, owner, visitor_email=visitor.email, token=t):
        return _private(request, visitor, f"/payment/success?{urlencode({'session_id': session_id})}")
    return page(request, "booking_status.html", booking=_booking(engine, booking_id), from_success=True,
                pay_path=booking_access.payment_path(booking_id))


@router.get("/cancel", summary="Stripe's cancel redirect", response_class=HTMLResponse,
            responses=oa.merge(oa.PAGE, oa.page_answers(404)))
def cancel(request: Request, engine: EngineDep, visitor: VisitorDep, booking: str = "", t: str = ""):
    data = _booking(engine, booking) if BOOKING_ID.match(booking) else None
    if data is None:
        return _not_found(request)
    if not booking_access.may_see(booking, data["client"]["email"], visitor_email=visitor.email, token=t):
        return _private(request, visitor, f"/payment/{booking}")
    if data["status"] == BookingStatus.PENDING_PAYMENT and not data["payment_processing"]:
        # Back from Stripe without paying: pay after all, another time, or let the time go now.
        return page(request, "checkout_left.html", booking=data, pay_path=booking_access.payment_path(booking),
                    csrf=visitor.csrf_token(), token=booking_access.link_token(booking))
    return page(request, "booking_status.html", booking=data, from_cancel=True,
                pay_path=booking_access.payment_path(booking))


@router.post("/{booking_id}/release", include_in_schema=False)
async def release(booking_id: str, request: Request, engine: EngineDep, visitor: VisitorDep,
                  background: BackgroundTasks, csrf_token: Annotated[str, Form()] = "", t: Annotated[str, Form()] = "",
                  then: Annotated[str, Form()] = ""):
    """Let an unpaid booking's time go now (core.services.hold_release); `then=rebook` goes on to
    book the same session at another time."""
    visitor.check_csrf(csrf_token)
    if not BOOKING_ID.match(booking_id):
        return _not_found(request)
    owner = await run_in_threadpool(_owner_email, engine, booking_id)
    if owner is None:
        return _not_found(request)
    if not booking_access.may_see(booking_id, owner, visitor_email=visitor.email, token=t):
        return _private(request, visitor, f"/payment/{booking_id}")
    own_path = booking_access.payment_path(booking_id)
    try:
        released = await run_in_threadpool(hold_release.release_hold, engine, booking_id,
                                           actor=f"client:{visitor.email or owner}")
    except hold_release.ReleaseRefused as error:
        return error_page(request, 409, "This time cannot be released", str(error), action_url=own_path,
                          action_label="See your booking")
    kick_outbox(background, engine)  # the Calendly cancellation and the checkout's expiry, now
    if then == "rebook":
        return RedirectResponse(f"/book/{released.event_type_id}", status_code=303)
    return RedirectResponse(own_path, status_code=303)


@router.get("/{booking_id}", summary="Pay for a booking (redirects to Stripe Checkout)", response_class=HTMLResponse,
            responses=oa.merge(oa.PAGE, oa.page_answers(303, 404, 503)))
async def pay(booking_id: str, request: Request, engine: EngineDep, visitor: VisitorDep, t: str = ""):
    if not BOOKING_ID.match(booking_id):
        return _not_found(request)
    # Only its client goes on to Stripe (whose page shows the email and price) or sees its details.
    owner = await run_in_threadpool(_owner_email, engine, booking_id)
    if owner is None:
        return _not_found(request)
    if not booking_access.may_see(booking_id, owner, visitor_email=visitor.email, token=t):
        return _private(request, visitor, f"/payment/{booking_id}")
    # Our own links on, and back to, this page keep the way in this visitor used (session or token).
    own_path = booking_access.payment_path(booking_id) if t else f"/payment/{booking_id}"
    try:
        result = await run_in_threadpool(checkout_service.open_checkout, engine, booking_id)
    except NotFound:
        return _not_found(request)
    except StripeGatewayError as error:
        log.warning("checkout creation failed for %s: %s", booking_id, type(error).__name__)
        return error_page(request, 503, "Payment is temporarily unavailable", STRIPE_DOWN,
                          action_url=own_path, action_label="Try again")
    if result.status == "redirect":
        return RedirectResponse(result.url, status_code=303)
    if result.status == "waiting" and await run_in_threadpool(_ask_calendly, engine, booking_id):
        return RedirectResponse(own_path, status_code=303)
    data = _booking(engine, booking_id)
    if result.status == "waiting":
        refused = await run_in_threadpool(_refused_slot, engine, booking_id)
        return page(request, "payment_wait.html", booking=data, refused=refused)
    return page(request, "booking_status.html", booking=data, pay_path=own_path)
