"""The hosted checkout page, `/pay/{cs_id}`: what a customer sees after following `session.url`.

One Jinja2 template (autoescaped: names and descriptions come from the merchant's customers).
Buttons are plain forms POSTing to `/pay/{id}/<action>`, each answered with a 303 redirect:
card → success_url; bank transfer → back to the page, which then offers the bank's answer;
decline → the page with a decline message; cancel → cancel_url; expire → cancel_url.
An action on a session that is no longer open just shows the page again (no second payment).
"""
from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader

from . import checkout
from .store import Store
from .wire import StripeError, format_amount

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=True)


def success_url(session: dict) -> str | None:
    url = session["success_url"]
    return url.replace("{CHECKOUT_SESSION_ID}", session["id"]) if url else None


def _view(store: Store, session_id: str, declined: bool) -> dict | None:
    session = store.sessions.get(session_id)
    if session is None:
        return None
    intent = store.payment_intents.get(session["payment_intent"] or "")
    if session["status"] == "open":
        state = "open"
    elif session["status"] == "expired":
        state = "expired"
    elif session["payment_status"] == "paid":
        state = "paid"
    else:
        state = "processing" if intent and intent["status"] == "processing" else "failed"
    currency = session["currency"]
    items = [{"name": p["name"], "description": p["description"], "quantity": p["quantity"],
              "amount": format_amount(p["amount"], currency)}
             for p in store.session_extra[session_id]["products"]]
    email = (session["customer_details"] or {}).get("email") or session["customer_email"]
    return {"state": state, "declined": declined and state == "open", "session_id": session_id,
            "items": items, "total": format_amount(session["amount_total"], currency),
            "email": email, "success_url": success_url(session),
            "cancel_url": session["cancel_url"],
            "expires": time.strftime("%d %b %Y at %H:%M UTC", time.gmtime(session["expires_at"])),
            "expires_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session["expires_at"]))}


def _page(view: dict | None) -> HTMLResponse:
    if view is None:
        return HTMLResponse(TEMPLATES.get_template("checkout.html").render(state="missing"),
                            status_code=404)
    return HTMLResponse(TEMPLATES.get_template("checkout.html").render(**view))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def register_pages(app: FastAPI) -> None:
    def act(request: Request, session_id: str, operation, *args, **kwargs):
        """Run a page action; None if the session no longer allows it; a 404 page if unknown."""
        store: Store = request.app.state.store
        try:
            return store.run(operation, store, session_id, *args, **kwargs)
        except StripeError as error:
            if error.code == "resource_missing":
                return _page(None)
            return None

    def back(session_id: str) -> RedirectResponse:
        return _redirect(f"/pay/{session_id}")

    @app.get("/pay/{session_id}", response_class=HTMLResponse, include_in_schema=False)
    def checkout_page(request: Request, session_id: str, declined: int = 0) -> HTMLResponse:
        store: Store = request.app.state.store
        return _page(store.run(_view, store, session_id, bool(declined)))

    @app.post("/pay/{session_id}/card", include_in_schema=False)
    def pay_by_card(request: Request, session_id: str, email: str = Form("")):
        session = act(request, session_id, checkout.pay_session, method="card",
                      email=email.strip() or None)
        if isinstance(session, dict):
            return _redirect(success_url(session) or f"/pay/{session_id}")
        return session or back(session_id)

    @app.post("/pay/{session_id}/bank_transfer", include_in_schema=False)
    def pay_by_bank(request: Request, session_id: str, email: str = Form("")):
        result = act(request, session_id, checkout.pay_session, method="bank_transfer",
                     email=email.strip() or None)
        return result if isinstance(result, HTMLResponse) else back(session_id)

    @app.post("/pay/{session_id}/bank_transfer/{outcome}", include_in_schema=False)
    def bank_answer(request: Request, session_id: str, outcome: str):
        if outcome not in ("succeeded", "failed"):
            return back(session_id)
        result = act(request, session_id, checkout.settle_bank_transfer,
                     succeeded=outcome == "succeeded")
        return result if isinstance(result, HTMLResponse) else back(session_id)

    @app.post("/pay/{session_id}/decline", include_in_schema=False)
    def decline(request: Request, session_id: str):
        store: Store = request.app.state.store
        view = store.run(_view, store, session_id, True)
        if view is None:
            return _page(None)
        return _redirect(f"/pay/{session_id}?declined=1" if view["state"] == "open"
                         else f"/pay/{session_id}")

    @app.post("/pay/{session_id}/cancel", include_in_schema=False)
    def cancel(request: Request, session_id: str):
        store: Store = request.app.state.store
        session = store.run(lambda: store.sessions.get(session_id))
        if session is None:
            return _page(None)
        return _redirect(session["cancel_url"] or f"/pay/{session_id}")

    @app.post("/pay/{session_id}/expire", include_in_schema=False)
    def let_expire(request: Request, session_id: str):
        result = act(request, session_id, checkout.expire_now)
        if isinstance(result, HTMLResponse):
            return result
        store: Store = request.app.state.store
        session = store.run(lambda: store.sessions.get(session_id))
        return _redirect(session["cancel_url"] or f"/pay/{session_id}")
