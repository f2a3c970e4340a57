"""``/_sandbox`` controls of the Calendly stand-in (JSON, no auth): config, faults, shortcuts, state,
webhook subscription states (OAuth's are in ``oauth_routes``)."""
from __future__ import annotations

import asyncio
import copy
import itertools

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from .api import get_dispatcher, get_state, json_body
from .model import CalendlyState, invalid, not_found
from .ops import BookingResult, book, cancel_event, cancel_invitee, find_invitee
from .ops import mark_no_show, reschedule, tracking_from
from .webhooks import Dispatcher

router = APIRouter(prefix="/_sandbox")
FAULT_MODES = ("500", "429", "timeout")
_fault_ids = itertools.count(1)


# ---------------------------------------------------------------- faults (ASGI middleware)
class FaultMiddleware:
    """Counts requests per ``METHOD path`` and makes matching calls fail before any effect."""

    def __init__(self, app, state: CalendlyState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        with self.state.lock:
            counts = self.state.data.request_counts
            counts[f"{method} {path}"] = counts.get(f"{method} {path}", 0) + 1
            fault = next((f for f in self.state.data.faults if f["remaining"] > 0
                          and f["method"] in (None, "*", method)
                          and path.startswith(f["path_prefix"])), None)
            if fault is not None:
                fault["remaining"] -= 1
                fault["triggered"] += 1
        if fault is None:
            return await self.app(scope, receive, send)
        if fault["delay_seconds"]:
            await asyncio.sleep(fault["delay_seconds"])
        if fault["mode"] == "429":
            response = JSONResponse(
                {"title": "Too Many Requests", "message": "You have exceeded the rate limit."},
                429, headers={"X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "0",
                              "X-RateLimit-Reset": "1"})
        elif fault["mode"] == "timeout":
            response = JSONResponse({"title": "Gateway Timeout",
                                     "message": "The request timed out."}, 504)
        else:
            response = JSONResponse({"title": "Internal Server Error",
                                     "message": "An internal server error occurred."}, 500)
        await response(scope, receive, send)


@router.post("/faults", status_code=201)
def faults_add(request: Request, body: dict = Depends(json_body)):
    mode = str(body.get("mode", "500"))
    if mode not in FAULT_MODES:
        raise invalid("mode", f"must be one of {', '.join(FAULT_MODES)}")
    count, delay = body.get("count", 1), body.get("delay_seconds")
    if not isinstance(count, int) or count < 1:
        raise invalid("count", "must be a positive integer")
    if delay is None:
        delay = 15.0 if mode == "timeout" else 0.0
    if not isinstance(delay, (int, float)) or delay < 0:
        raise invalid("delay_seconds", "must be a non-negative number")
    method = body.get("method")
    fault = {"id": f"flt_{next(_fault_ids)}", "method": method.upper() if method else None,
             "path_prefix": body.get("path_prefix") or "/", "mode": mode, "count": count,
             "remaining": count, "triggered": 0, "delay_seconds": float(delay)}
    state = get_state(request)
    with state.lock:
        state.data.faults.append(fault)
    return {"fault": dict(fault)}


def _copy_of(request: Request, name: str) -> dict:
    """`{name: a copy of that part of the state}`, read under the lock."""
    state = get_state(request)
    with state.lock:
        return {name: copy.deepcopy(getattr(state.data, name))}


@router.get("/faults")
def faults_list(request: Request):
    return _copy_of(request, "faults")


@router.delete("/faults")
def faults_clear(request: Request):
    state = get_state(request)
    with state.lock:
        state.data.faults.clear()
    return {"faults": []}


# ---------------------------------------------------------------- config, state, reset
@router.get("/config")
def config_get(request: Request):
    return _copy_of(request, "config")


@router.post("/config")
def config_set(request: Request, body: dict = Depends(json_body)):
    choices = {"webhook_delivery": ("sync", "off"),
               "reschedule_order": ("cancel_first", "create_first")}
    for key, value in body.items():
        if key in choices and value not in choices[key]:
            raise invalid(key, f"must be one of {', '.join(choices[key])}")
        if key == "retry_delays_seconds" and (not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and v >= 0 for v in value)):
            raise invalid(key, "must be a list of non-negative numbers")
        if key == "clock_offset_seconds" and not isinstance(value, (int, float)):
            raise invalid(key, "must be a number")
        if key not in choices and key not in ("retry_delays_seconds", "clock_offset_seconds"):
            raise invalid(key, "is not a sandbox setting")
    state = get_state(request)
    with state.lock:
        state.data.config.update(body)
        return {"config": copy.deepcopy(state.data.config)}


@router.get("/state")
def state_get(request: Request):
    state = get_state(request)
    with state.lock:
        d = state.data
        return {
            "config": copy.deepcopy(d.config),
            "users": [state.user_json(u) for u in d.users.values()],
            "links": [{"uuid": link.uuid, **state.link_json(link),
                       "used": link.used_by is not None,
                       "invitee": (state.invitee_uri(d.invitees[link.used_by])
                                   if link.used_by else None)} for link in d.links.values()],
            "events": [state.event_json(ev) for ev in d.events.values()],
            "invitees": [state.invitee_json(inv) for inv in d.invitees.values()],
            "subscriptions": [state.subscription_json(s) for s in d.subscriptions.values()],
            "deliveries": [copy.deepcopy(Dispatcher.public(r)) for r in d.deliveries],
            "faults": copy.deepcopy(d.faults),
            "request_counts": dict(d.request_counts),
        }


@router.post("/reset")
def state_reset(request: Request):
    get_state(request).reset()
    return {"ok": True}


@router.post("/deliveries/{delivery_id}/deliver")
def delivery_send(delivery_id: str, request: Request):
    """Send a recorded delivery once more (e.g. one recorded while delivery was off)."""
    state, dispatcher = get_state(request), get_dispatcher(request)
    with state.lock:
        record = next((r for r in state.data.deliveries if r["id"] == delivery_id), None)
    if record is None:
        raise not_found()
    dispatcher.attempt(record)
    with state.lock:
        return {"delivery": copy.deepcopy(Dispatcher.public(record))}


# ---------------------------------------------------------------- webhook subscription states
def _set_subscription_state(request: Request, sub_uuid: str, value: str) -> dict:
    state = get_state(request)
    with state.lock:
        sub = state.data.subscriptions.get(sub_uuid.lower())
        if sub is None:
            raise not_found()
        sub.state = value
        return {"subscription": state.subscription_json(sub)}


@router.post("/webhook_subscriptions/{sub_uuid}/disable")
def subscription_disable(sub_uuid: str, request: Request):
    """As Calendly does after a day of failed deliveries: the subscription stays, listed as
    ``disabled``, and gets no deliveries until it is recreated (or enabled here)."""
    return _set_subscription_state(request, sub_uuid, "disabled")


@router.post("/webhook_subscriptions/{sub_uuid}/enable")
def subscription_enable(sub_uuid: str, request: Request):
    return _set_subscription_state(request, sub_uuid, "active")


# ---------------------------------------------------------------- booking shortcuts
def _booking_json(state: CalendlyState, result: BookingResult) -> dict:
    with state.lock:
        return {"event": state.event_uri(result.event), "invitee": state.invitee_uri(result.invitee),
                "event_uuid": result.event.uuid, "invitee_uuid": result.invitee.uuid,
                "start_time": state.event_json(result.event)["start_time"],
                "redirect_url": result.redirect_url,
                "cancel_url": state.uri("cancellations", result.invitee.uuid),
                "reschedule_url": state.uri("reschedulings", result.invitee.uuid)}


@router.post("/links/{link_uuid}/book", status_code=201)
def link_book(link_uuid: str, request: Request, body: dict = Depends(json_body)):
    state = get_state(request)
    result = book(state, link_uuid, start_time=body.get("start_time"), name=body.get("name"),
                  email=body.get("email"), answer=body.get("a1"), tracking=tracking_from(body),
                  zone=body.get("timezone"))
    get_dispatcher(request).dispatch(result.notifications)
    return _booking_json(state, result)


@router.post("/invitees/{invitee_uuid}/cancel")
def invitee_cancel(invitee_uuid: str, request: Request, body: dict = Depends(json_body)):
    """Cancel as the invitee (default) or, with ``{"by": "host"}``, as the host."""
    state = get_state(request)
    by = body.get("by", "invitee")
    if by not in ("invitee", "host"):
        raise invalid("by", "must be invitee or host")
    with state.lock:
        inv = find_invitee(state, invitee_uuid)
        if by == "host":
            ev = state.data.events[inv.event_uuid]
            cancellation, notes = cancel_event(state, ev, reason=body.get("reason"),
                                               canceled_by=state.data.users[ev.user_uuid].name,
                                               canceler_type="host")
        else:
            cancellation, notes = cancel_invitee(state, inv.uuid, body.get("reason"))
    get_dispatcher(request).dispatch(notes)
    with state.lock:
        return {"cancellation": cancellation, "invitee": state.invitee_uri(inv)}


@router.post("/invitees/{invitee_uuid}/reschedule", status_code=201)
def invitee_reschedule(invitee_uuid: str, request: Request, body: dict = Depends(json_body)):
    state = get_state(request)
    result = reschedule(state, invitee_uuid, body.get("start_time"))
    get_dispatcher(request).dispatch(result.notifications)
    with state.lock:
        out = _booking_json(state, result)
        out["old_invitee"] = result.invitee.old_invitee
        return out


@router.post("/invitees/{invitee_uuid}/no_show", status_code=201)
def invitee_no_show(invitee_uuid: str, request: Request):
    state = get_state(request)
    inv, notes = mark_no_show(state, invitee_uuid)
    get_dispatcher(request).dispatch(notes)
    with state.lock:
        return {"no_show": dict(inv.no_show), "invitee": state.invitee_uri(inv)}

