"""Calendly API v2 routes of the stand-in (bearer token required, any token accepted)."""
from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from .model import (
    WEBHOOK_EVENTS, CalendlyError, CalendlyState, Link, Subscription, User, fmt_time, invalid, not_found,
    parse_time, permission_denied, uuid_from_uri,
)
from .ops import cancel_event, mark_no_show
from .webhooks import Dispatcher

router = APIRouter()


def get_state(request: Request) -> CalendlyState:
    return request.app.state.calendly


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.calendly_dispatcher


def auth(request: Request) -> User:
    """The user of the bearer token: an OAuth access token acts as the user who approved it (401
    once expired or revoked); any other token is a personal access token, its own user."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CalendlyError(401, "Unauthenticated", "The access token is invalid")
    state = get_state(request)
    with state.lock:
        identity, refused = request.app.state.calendly_oauth.bearer_identity(token.strip(), state.now())
    if refused:
        raise CalendlyError(401, "Unauthenticated", refused)
    return state.user_for_token(identity)


MAX_BODY_BYTES = 1_000_000


class BodyTooLarge(Exception):
    pass


async def capped_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (``BodyTooLarge``) past ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> dict:
    """The JSON object body; an empty body counts as ``{}``."""
    try:
        raw = await capped_body(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        raise CalendlyError(413, "Payload Too Large", "The request body is too large.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise CalendlyError(400, "Invalid Argument", "The request body must be a JSON object.")
    if not isinstance(body, dict):
        raise CalendlyError(400, "Invalid Argument", "The request body must be a JSON object.")
    return body


def page_count(request: Request, default: int = 20) -> int:
    raw = request.query_params.get("count")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise invalid("count", "must be an integer between 1 and 100")
    return int(raw)


def bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise invalid(name, "must be true or false")
    return raw.lower() == "true"


def owned_user(state: CalendlyState, user: User, value: Any, parameter: str = "user") -> None:
    """``value`` must be the token's user URI: malformed → 400, someone else → 403."""
    if value in (None, ""):
        raise invalid(parameter, "is required")
    target = uuid_from_uri(value, "users")
    if target is None:
        raise invalid(parameter, "must be a valid user URI")
    if target != user.uuid:
        raise permission_denied()


# ---------------------------------------------------------------- users
def _one(request: Request, collection: str, uuid: str, to_json: str) -> dict:
    """`GET /{collection}/{uuid}`: the resource as JSON, or Calendly's 404."""
    state = get_state(request)
    with state.lock:
        found = getattr(state.data, collection).get(uuid.lower())
        if found is None:
            raise not_found()
        return {"resource": getattr(state, to_json)(found)}


@router.get("/users/me")
def users_me(request: Request, user: User = Depends(auth)):
    return {"resource": get_state(request).user_json(user)}


@router.get("/users/{user_uuid}")
def users_get(user_uuid: str, request: Request, user: User = Depends(auth)):
    return _one(request, "users", user_uuid, "user_json")


# ---------------------------------------------------------------- event types
@router.get("/event_types")
def event_types_list(request: Request, user: User = Depends(auth)):
    state, q = get_state(request), request.query_params
    if q.get("organization") and not q.get("user"):
        if uuid_from_uri(q["organization"], "organizations") != user.org_uuid:
            raise permission_denied()
    else:
        owned_user(state, user, q.get("user"))
    active, count = bool_param(request, "active"), page_count(request)
    with state.lock:
        items = [state.event_type_json(et) for et in state.event_types_of(user)
                 if active is None or et.active == active]
        return state.paginate(items, path="/event_types", params=dict(q), count=count,
                              page_token=q.get("page_token"))


@router.get("/event_types/{et_uuid}")
def event_types_get(et_uuid: str, request: Request, user: User = Depends(auth)):
    return _one(request, "event_types", et_uuid, "event_type_json")


# ---------------------------------------------------------------- scheduling links
@router.post("/scheduling_links", status_code=201)
def scheduling_links_create(request: Request, user: User = Depends(auth),
                            body: dict = Depends(json_body)):
    state = get_state(request)
    if body.get("owner_type") != "EventType":
        raise invalid("owner_type", "must be EventType")
    if body.get("max_event_count") != 1:
        raise invalid("max_event_count", "must be 1")
    et_uuid = uuid_from_uri(body.get("owner"), "event_types")
    if et_uuid is None:
        raise invalid("owner", "must be an event type URI")
    with state.lock:
        et = state.data.event_types.get(et_uuid)
        if et is None:
            raise not_found()
        if et.user_uuid != user.uuid:
            raise permission_denied()
        if not et.active:
            raise invalid("owner", "the event type is not active")
        link = Link(str(uuid.uuid4()), et.uuid, state.now())
        state.data.links[link.uuid] = link
        return {"resource": state.link_json(link)}


# ---------------------------------------------------------------- scheduled events
@router.get("/scheduled_events")
def scheduled_events_list(request: Request, user: User = Depends(auth)):
    state, q = get_state(request), request.query_params
    owned_user(state, user, q.get("user"))
    status, count = q.get("status"), page_count(request)
    if status not in (None, "active", "canceled"):
        raise invalid("status", "must be active or canceled")
    bounds = {}
    for name in ("min_start_time", "max_start_time"):
        if q.get(name):
            bounds[name] = parse_time(q[name])
            if bounds[name] is None:
                raise invalid(name, "must be an ISO 8601 time")
    with state.lock:
        events = sorted((ev for ev in state.data.events.values() if ev.user_uuid == user.uuid),
                        key=lambda ev: ev.start, reverse=q.get("sort") == "start_time:desc")
        items = [state.event_json(ev) for ev in events
                 if (status is None or ev.status == status)
                 and ("min_start_time" not in bounds or ev.start >= bounds["min_start_time"])
                 and ("max_start_time" not in bounds or ev.start < bounds["max_start_time"])]
        return state.paginate(items, path="/scheduled_events", params=dict(q), count=count,
                              page_token=q.get("page_token"))


DEMO_EVENT_PREFIX = "demo-"  # the uuids of core/demo_bookings.py's events


def _event(state: CalendlyState, event_uuid: str):
    ev = state.data.events.get(event_uuid.lower())
    if ev is None:
        raise not_found()
    return ev


@router.get("/scheduled_events/{event_uuid}")
def scheduled_events_get(event_uuid: str, request: Request, user: User = Depends(auth)):
    state = get_state(request)
    with state.lock:
        return {"resource": state.event_json(_event(state, event_uuid))}


@router.get("/scheduled_events/{event_uuid}/invitees")
def invitees_list(event_uuid: str, request: Request, user: User = Depends(auth)):
    state, q = get_state(request), request.query_params
    status, count = q.get("status"), page_count(request)
    if status not in (None, "active", "canceled"):
        raise invalid("status", "must be active or canceled")
    with state.lock:
        ev = _event(state, event_uuid)
        items = [state.invitee_json(inv) for inv in state.data.invitees.values()
                 if inv.event_uuid == ev.uuid and (status is None or inv.status == status)
                 and (not q.get("email") or inv.email.lower() == q["email"].lower())]
        return state.paginate(items, path=f"/scheduled_events/{ev.uuid}/invitees",
                              params=dict(q), count=count, page_token=q.get("page_token"))


@router.get("/scheduled_events/{event_uuid}/invitees/{invitee_uuid}")
def invitees_get(event_uuid: str, invitee_uuid: str, request: Request,
                 user: User = Depends(auth)):
    state = get_state(request)
    with state.lock:
        inv = state.data.invitees.get(invitee_uuid.lower())
        if inv is None or inv.event_uuid != event_uuid.lower():
            raise not_found()
        return {"resource": state.invitee_json(inv)}


@router.post("/scheduled_events/{event_uuid}/cancellation", status_code=201)
def scheduled_events_cancel(event_uuid: str, request: Request, user: User = Depends(auth),
                            body: dict = Depends(json_body)):
    state = get_state(request)
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 10000):
        raise invalid("reason", "must be a string of at most 10000 characters")
    with state.lock:
        if event_uuid.lower().startswith(DEMO_EVENT_PREFIX) and event_uuid.lower() not in state.data.events:
            # A held slot of the demo data (written straight into our database, never booked here):
            # canceling it succeeds, as it would have in Calendly, so an expiring demo hold frees its
            # slot instead of failing on the dashboard's Failures page.
            return {"resource": {"canceled_by": user.name, "reason": reason, "canceler_type": "host",
                                 "created_at": fmt_time(state.now())}}
        ev = _event(state, event_uuid)
        if ev.user_uuid != user.uuid:
            raise permission_denied()
        cancellation, notes = cancel_event(state, ev, canceled_by=user.name, reason=reason,
                                           canceler_type="host")
    get_dispatcher(request).dispatch(notes)
    return {"resource": cancellation}


# ---------------------------------------------------------------- no-shows
@router.post("/invitee_no_shows", status_code=201)
def no_shows_create(request: Request, user: User = Depends(auth), body: dict = Depends(json_body)):
    state = get_state(request)
    inv_uuid = uuid_from_uri(body.get("invitee"), "invitees")
    if inv_uuid is None:
        raise invalid("invitee", "must be an invitee URI")
    inv, notes = mark_no_show(state, inv_uuid)
    get_dispatcher(request).dispatch(notes)
    with state.lock:
        return {"resource": {**inv.no_show, "invitee": state.invitee_uri(inv)}}


@router.get("/invitee_no_shows/{no_show_uuid}")
def no_shows_get(no_show_uuid: str, request: Request, user: User = Depends(auth)):
    state = get_state(request)
    with state.lock:
        inv_uuid = state.data.no_shows.get(no_show_uuid.lower())
        if inv_uuid is None:
            raise not_found()
        inv = state.data.invitees[inv_uuid]
        return {"resource": {**inv.no_show, "invitee": state.invitee_uri(inv)}}


# ---------------------------------------------------------------- webhook subscriptions
MAX_SUBSCRIPTIONS = 500


def _visible(state: CalendlyState, sub: Subscription, user: User) -> bool:
    """A subscription a token's user may see or delete: their own user-scope ones, their
    organization's, and the pre-registered one."""
    return sub.preregistered or state.covers(sub, user)


def _same_scope(sub: Subscription, url: str, scope: str, organization: str, user: str | None) -> bool:
    return (not sub.preregistered and sub.callback_url == url and sub.scope == scope
            and uuid_from_uri(sub.organization, "organizations") == uuid_from_uri(organization, "organizations")
            and (scope == "organization" or uuid_from_uri(sub.user, "users") == uuid_from_uri(user, "users")))


@router.post("/webhook_subscriptions", status_code=201)
def subscriptions_create(request: Request, user: User = Depends(auth),
                         body: dict = Depends(json_body)):
    state = get_state(request)
    url, events, scope = body.get("url"), body.get("events"), body.get("scope")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise invalid("url", "must be an http(s) URL")
    if (not isinstance(events, list) or not events
            or any(e not in WEBHOOK_EVENTS for e in events)):
        raise invalid("events", f"must be a non-empty list of: {', '.join(WEBHOOK_EVENTS)}")
    if scope not in ("user", "organization"):
        raise invalid("scope", "must be user or organization")
    org_uuid = uuid_from_uri(body.get("organization"), "organizations")
    if org_uuid is None:
        raise invalid("organization", "must be an organization URI")
    if org_uuid != user.org_uuid:
        raise permission_denied()
    if scope == "user":
        owned_user(state, user, body.get("user"))
    key = body.get("signing_key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > 1000):
        raise invalid("signing_key", "must be a non-empty string")
    with state.lock:
        subs = state.data.subscriptions.values()
        if any(_same_scope(s, url, scope, body["organization"], body.get("user")) for s in subs):
            raise CalendlyError(409, "Already Exists", "Hook with this url already exists")
        if len(state.data.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise invalid("url", f"at most {MAX_SUBSCRIPTIONS} webhook subscriptions exist at once")
        sub = Subscription(str(uuid.uuid4()), url, list(dict.fromkeys(events)), scope,
                           body["organization"], body.get("user") if scope == "user" else None,
                           state.user_uri(user), key or secrets.token_hex(16), state.now())
        state.data.subscriptions[sub.uuid] = sub
        if any(s.preregistered and s.callback_url == url for s in subs):
            state.data.claims.add((scope, user.uuid if scope == "user" else user.org_uuid, url))
        return {"resource": state.subscription_json(sub)}


@router.get("/webhook_subscriptions")
def subscriptions_list(request: Request, user: User = Depends(auth)):
    """The token's user's subscriptions matching the filters; the pre-registered one only when
    the ``organization`` filter names its organization or there is none."""
    state, q = get_state(request), request.query_params
    count = page_count(request)
    with state.lock:
        items = [state.subscription_json(s) for s in state.data.subscriptions.values()
                 if _visible(state, s, user)
                 and (not q.get("organization") or s.organization == q["organization"])
                 and (s.preregistered or (
                     (not q.get("scope") or s.scope == q["scope"])
                     and (not q.get("user") or s.user == q["user"])))]
        return state.paginate(items, path="/webhook_subscriptions", params=dict(q), count=count,
                              page_token=q.get("page_token"))


def _subscription(state: CalendlyState, sub_uuid: str, user: User) -> Subscription:
    sub = state.data.subscriptions.get(sub_uuid.lower())
    if sub is None or not _visible(state, sub, user):
        raise not_found()
    return sub


@router.get("/webhook_subscriptions/{sub_uuid}")
def subscriptions_get(sub_uuid: str, request: Request, user: User = Depends(auth)):
    state = get_state(request)
    with state.lock:
        return {"resource": state.subscription_json(_subscription(state, sub_uuid, user))}


@router.delete("/webhook_subscriptions/{sub_uuid}", status_code=204)
def subscriptions_delete(sub_uuid: str, request: Request, user: User = Depends(auth)):
    state = get_state(request)
    with state.lock:
        state.data.subscriptions.pop(_subscription(state, sub_uuid, user).uuid)
    return Response(status_code=204)
