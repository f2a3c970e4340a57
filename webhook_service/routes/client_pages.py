"""Client pages: builders, a builder's profile, sign-in by magic link, starting a booking."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from core.calendly import CalendlyError
from core.db import session_scope
from core.errors import DomainError, NotFound
from core.services import catalog, client_login, client_sessions, scheduling, throttle
from core.services.calendly_connection import CalendlyDisconnected
from webhook_service import openapi as oa
from webhook_service.deps import EngineDep, SettingsDep, VisitorDep, request_address, save_visitor
from webhook_service.rendering import error_page, page

router = APIRouter(tags=["client pages"])

CALENDLY_DOWN = ("We could not reach Calendly to show this builder's sessions. Nothing was booked; "
                 "please try again in a minute.")


@router.get("/", include_in_schema=False)
def home(request: Request, engine: EngineDep, visitor: VisitorDep,
         page_number: Annotated[str, Query(alias="page")] = "1"):
    # A page number from the address bar: anything but a plain small number is the first page.
    number = int(page_number) if page_number.isascii() and page_number.isdigit() and len(page_number) <= 6 else 1
    with session_scope(engine, read_only=True) as session:
        listing = catalog.builder_cards(session, page=number)
    return page(request, "home.html", listing=listing)


@router.get("/profile/{builder_id}", summary="A builder's bookable session types", response_class=HTMLResponse,
            responses=oa.merge(oa.PAGE, oa.page_answers(404, 503)))
def profile(builder_id: str, request: Request, engine: EngineDep, visitor: VisitorDep):
    # ASCII digits that fit a database integer: "²" is a digit to isdigit() but not to int(), and
    # SQLite refuses integers past 2**63 (both were 500s).
    if not (builder_id.isascii() and builder_id.isdigit() and len(builder_id) <= 18):
        return error_page(request, 404, "Builder not found", "This profile link is not valid.", action_url="/",
                          action_label="See all builders")
    try:
        builder, offered = scheduling.offered_session_types(engine, int(builder_id))
    except NotFound:
        return error_page(request, 404, "Builder not found", "There is no builder at this address.",
                          action_url="/", action_label="See all builders")
    except CalendlyDisconnected as error:
        return error_page(request, 503, "Sessions not bookable right now", str(error), action_url="/",
                          action_label="See all builders")
    except CalendlyError:
        return error_page(request, 503, "Sessions unavailable", CALENDLY_DOWN, action_url=str(request.url),
                          action_label="Try again")
    return page(request, "profile.html", builder=builder, offered=offered, csrf=visitor.csrf_token())


@router.post("/bookings", summary="Start a booking (form from the profile page)", status_code=303,
             response_class=RedirectResponse,
             responses=oa.merge(oa.FORM, oa.page_answers(404, 409, 503), oa.THROTTLED_PAGE))
def create_booking(
    request: Request, engine: EngineDep, visitor: VisitorDep,
    event_type_id: Annotated[str, Form()], builder_id: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
):
    visitor.check_csrf(csrf_token)
    if not visitor.email:
        # Signing in brings the client back to the session they chose, one click from booking it.
        back = (f"/book/{event_type_id}" if _looks_like_event_type(event_type_id)
                else f"/profile/{builder_id}" if builder_id.isdigit() else "/")
        return RedirectResponse(f"/login?next={quote(back)}", status_code=303)
    throttle.hit(engine, throttle.BOOKING, address=request_address(request), client=visitor.email)
    try:
        started = scheduling.start_scheduling(engine, event_type_id, client_email=visitor.email,
                                              client_name=visitor.name or visitor.email.split("@")[0],
                                              actor=f"client:{visitor.email}")
    except NotFound as error:
        return error_page(request, 404, "Session not found", str(error).capitalize() + ".", action_url="/",
                          action_label="See all builders")
    except CalendlyDisconnected as error:
        return error_page(request, 409, "Cannot book this session", str(error), action_url="/",
                          action_label="See all builders")
    except DomainError as error:
        return error_page(request, 409, "Cannot book this session", str(error).capitalize() + ".",
                          action_url=f"/profile/{builder_id}" if builder_id.isdigit() else "/",
                          action_label="Back to the profile")
    except CalendlyError:
        return error_page(request, 503, "Calendly is unavailable", CALENDLY_DOWN,
                          action_url=f"/profile/{builder_id}" if builder_id.isdigit() else "/",
                          action_label="Back to the profile")
    response = RedirectResponse(started.scheduling_url, status_code=303)
    save_visitor(response, visitor)
    return response


def _looks_like_event_type(event_type_id: str) -> bool:
    return 0 < len(event_type_id) <= 64 and scheduling.UUID_CHARS.issuperset(event_type_id)


@router.get("/book/{event_type_id}", include_in_schema=False)
def book_session(event_type_id: str, request: Request, engine: EngineDep, visitor: VisitorDep):
    """One session, ready to book: where "Sign in to book" (and "Choose another time") lead back to."""
    if not _looks_like_event_type(event_type_id):
        return error_page(request, 404, "Session not found", "This session link is not valid.", action_url="/",
                          action_label="See all builders")
    try:
        builder, item = scheduling.offered_session_type(engine, event_type_id)
    except NotFound:
        return error_page(request, 404, "Session not found", "This session is not offered any more.",
                          action_url="/", action_label="See all builders")
    except CalendlyDisconnected as error:
        return error_page(request, 503, "Sessions not bookable right now", str(error), action_url="/",
                          action_label="See all builders")
    except CalendlyError:
        return error_page(request, 503, "Sessions unavailable", CALENDLY_DOWN, action_url=str(request.url),
                          action_label="Try again")
    return page(request, "book_session.html", builder=builder, item=item, csrf=visitor.csrf_token(),
                login_url=f"/login?next={quote(f'/book/{event_type_id}')}")


@router.get("/login", summary="Sign-in form", response_class=HTMLResponse, responses=oa.PAGE)
def login_form(request: Request, visitor: VisitorDep, next: str = "/"):
    return page(request, "login.html", next=client_login.safe_next(next), csrf=visitor.csrf_token(), error=None)


@router.post("/login", summary="Send a magic sign-in link", response_class=HTMLResponse,
             responses=oa.merge(oa.FORM, oa.THROTTLED_PAGE))
def login_send(
    request: Request, engine: EngineDep, settings: SettingsDep, visitor: VisitorDep,
    email: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/", csrf_token: Annotated[str, Form()] = "",
    remember: Annotated[str, Form()] = "",
):
    visitor.check_csrf(csrf_token)
    throttle.hit(engine, throttle.MAGIC_LINK, address=request_address(request), email=email)
    try:
        with session_scope(engine) as session:
            link = client_login.send_magic_link(session, email, next, remember=bool(remember))
    except DomainError as error:
        return page(request, "login.html", 422, next=client_login.safe_next(next), csrf=visitor.csrf_token(),
                    error=str(error))
    visitor.name = name.strip()[:200] or visitor.name
    visitor.changed = True
    return page(request, "login_sent.html", email=email.strip().lower(),
                sandbox_link=link if settings.sandbox else None)


@router.get("/login/verify", summary="Follow a magic sign-in link", status_code=303, response_class=RedirectResponse,
            responses=oa.merge(oa.PAGE, oa.page_answers(400)))
def login_verify(request: Request, engine: EngineDep, visitor: VisitorDep, token: str = ""):
    try:
        with session_scope(engine) as session:
            signed_in = client_sessions.sign_in_with_link(session, token,
                                                          previous_sid=visitor.sid if visitor.email else None)
    except DomainError as error:
        return error_page(request, 400, "Sign-in link not valid", str(error).capitalize() + ".",
                          action_url="/login", action_label="Get a new link")
    visitor.sign_in(signed_in)
    response = RedirectResponse(signed_in.next_url, status_code=303)
    save_visitor(response, visitor)
    return response


@router.post("/logout", include_in_schema=False)
def logout(engine: EngineDep, visitor: VisitorDep, csrf_token: Annotated[str, Form()] = ""):
    visitor.check_csrf(csrf_token)
    if visitor.email:  # end it on the server: a copy of the cookie must stop working too
        with session_scope(engine) as session:
            client_sessions.end(session, visitor.sid)
    visitor.sign_out()
    response = RedirectResponse("/signed-out", status_code=303)
    save_visitor(response, visitor)
    return response
