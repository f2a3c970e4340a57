"""No secret ever leaves through a log line, an error page, an answer or a database row.

The live system runs with random secrets (so any match is a real leak, never a coincidence): the
Stripe secret key, both webhook secrets, the admin token, the app secret key and a builder's
Calendly token. A whole flow — book, pay, cancel and refund, a Stripe outage on a refund and on a
checkout, a Calendly outage, forged webhooks of both providers, handlers that crash — runs with
every logger at DEBUG; then the log records (with their tracebacks), stdout/stderr, every answer
we got and every text value in the database are searched for each secret.
"""
from __future__ import annotations

import json
import logging
import secrets
import time

import pytest
import requests
from sqlalchemy import select, text

from core.calendly import CalendlyClient
from core.db import session_scope
from core.models import Base, Builder
from core.security import DecryptionError, decrypt_secret
from core.services import catalog, checkout_service, payment_events, scheduling
from tests.reliability_helpers import signed
from tests.webhook_helpers import future_slot, settle, stripe_event

MARKER = "internal-detail-7f3a"  # what a crashing handler says: it must not reach a page either


class Everything(logging.Handler):
    """Every record of every logger, formatted with its traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as error:  # noqa: BLE001 — a record that cannot be formatted is still searched
            self.lines.append(f"{record.name} {record.msg!r} {record.args!r} ({error})")


@pytest.fixture
def all_logs():
    handler = Everything()
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if logger is loggers[0] or not logger.propagate:
            logger.addHandler(handler)
    yield handler
    for logger, level, disabled in saved:
        logger.setLevel(level)
        logger.disabled = disabled
        logger.removeHandler(handler)


@pytest.fixture
def secret_live(request, settings_env):
    """The live system with random secrets, and a builder of its own with a random Calendly token."""
    values = {
        "stripe_secret_key": f"sk_test_{secrets.token_hex(16)}",
        "stripe_webhook_secret": f"whsec_{secrets.token_hex(16)}",
        "calendly_webhook_signing_key": f"calsign-{secrets.token_hex(16)}",
        "admin_api_token": f"admin-{secrets.token_hex(16)}",
        "app_secret_key": f"app-{secrets.token_hex(24)}",
    }
    settings_env(**values)
    live = request.getfixturevalue("live")
    assert all(getattr(live.settings, name) == value for name, value in values.items())
    token = f"pat_{secrets.token_hex(20)}"
    client = CalendlyClient(token, live.calendly)
    user = client.get_current_user()
    event_types = [et for et in client.list_event_types(user["uri"], active=None) if et["active"]]
    with session_scope(live.engine) as session:
        builder = catalog.add_builder(session, name="Grace Hopper", email="grace@example.com",
                                      calendly_token=token, calendly_user=user)
        live.builder_id = builder.id
        live.session_type_ids = [catalog.set_price(session, builder_id=builder.id, event_type=event_types[0],
                                                   amount_cents=4900, currency="USD").id]
    live.event_type_ids = [scheduling.event_type_uuid(event_types[0]["uri"])]
    scheduling.EVENT_TYPES.clear()
    return live, {**values, "calendly_token": token, "calendly_token_of_the_demo_builder": "sandbox-ada"}


def _leaks(haystack: str, found: dict[str, str]) -> list[str]:
    return [name for name, value in found.items() if value in haystack]


def _database_text(engine) -> str:
    parts = []
    with session_scope(engine, read_only=True) as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                parts.append(json.dumps([str(value) for value in row]))
    return "\n".join(parts)


def _no_traceback(body: str) -> None:
    assert "Traceback" not in body and 'File "' not in body and MARKER not in body, body[:2000]


def test_a_whole_flow_with_failures_leaks_no_secret(secret_live, all_logs, capfd, monkeypatch):
    live, found = secret_live
    answers: list[str] = []

    def keep(response: requests.Response) -> requests.Response:
        answers.append(f"{response.status_code} {response.headers} {response.text}")
        return response

    # Book, pay, cancel in Calendly: refunded by the outbox.
    booking_id, url = live.start_booking(live.signed_in_client())
    answer = live.pick_slot(url, future_slot(days=3, hour=10))
    keep(requests.get(live.payment_url(booking_id), allow_redirects=False, timeout=30))
    live.pay(booking_id)
    keep(requests.get(live.payment_url(booking_id), timeout=30, headers={"Accept": "text/html"}))
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})
    settle(live)
    assert live.booking(booking_id)["payment_status"] == "refunded"

    # Stripe down while refunding (the outbox retries) and while opening a checkout (503 page).
    second = live.book()
    live.pay(second)
    live.stripe_sandbox("POST", "/faults", {"mode": "500", "path_prefix": "/v1/refunds", "count": 3,
                                            "method": "POST"})
    keep(live.admin("POST", f"/api/bookings/{second}/refund", json={"amount_cents": 1000}))
    live.drain()
    third = live.book()
    live.stripe_sandbox("POST", "/faults", {"mode": "500", "path_prefix": "/v1/checkout/sessions", "count": 3,
                                            "method": "POST"})
    page = keep(requests.get(live.payment_url(third), allow_redirects=False, timeout=30,
                             headers={"Accept": "text/html"}))
    assert page.status_code == 503
    # Calendly down on the profile page.
    live.calendly_sandbox("POST", "/faults", {"mode": "500", "path_prefix": "/event_types", "count": 4,
                                              "method": "GET", "delay_seconds": 0})
    scheduling.EVENT_TYPES.clear()
    keep(requests.get(f"{live.web}/profile/{live.builder_id}", timeout=60))

    # Forged webhooks, and a wrong admin token.
    forged = json.dumps(stripe_event("checkout.session.completed", {"id": "cs_forged"})).encode()
    keep(requests.post(f"{live.web}/api/webhooks/stripe", data=forged, timeout=30,
                       headers={"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}))
    keep(requests.post(f"{live.web}/api/webhooks/calendly", data=b'{"event": "invitee.created", "payload": {}}',
                       headers={"Calendly-Webhook-Signature": f"t={int(time.time())},v1={'0' * 64}"}, timeout=30))
    keep(requests.get(f"{live.web}/api/bookings/{booking_id}", timeout=30,
                      headers={"Authorization": "Bearer wrong-token"}))

    # A handler that crashes (500, retried by the provider) and a page that crashes.
    def crash(*args, **kwargs):
        raise RuntimeError(MARKER)

    monkeypatch.setattr(payment_events, "apply_dispute", crash)
    raw, headers = signed("stripe", stripe_event("charge.dispute.created", {
        "id": "dp_test", "object": "dispute", "payment_intent": live.booking(second)["stripe_payment_intent_id"],
        "status": "needs_response", "reason": "fraudulent"}), live)
    assert keep(requests.post(f"{live.web}/api/webhooks/stripe", data=raw, headers=headers, timeout=30)).status_code == 500
    monkeypatch.setattr(checkout_service, "open_checkout", crash)
    assert keep(requests.get(live.payment_url(third), timeout=30,
                             headers={"Accept": "text/html"})).status_code == 500
    settle(live)

    logs = "\n".join(all_logs.lines)
    assert "Stripe error 500" in logs and "Calendly GET" in logs and MARKER in logs  # we did capture them
    assert "Request to Stripe api" in logs  # the SDK's DEBUG records too
    out, err = capfd.readouterr()
    assert _leaks(logs, found) == [], [line for line in all_logs.lines if _leaks(line, found)][:5]
    assert _leaks(out + err, found) == []
    assert _leaks("\n".join(answers), found) == []
    database = _database_text(live.engine)
    assert _leaks(database, found) == []


def test_error_pages_show_no_traceback_and_no_secret(secret_live, monkeypatch):
    live, found = secret_live
    booking_id = live.book()
    for missing in (f"{live.web}/payment/bk_00000000000000000000", f"{live.web}/nowhere",
                    f"{live.web}/api/bookings/bk_00000000000000000000"):
        response = requests.get(missing, timeout=30, headers={"Accept": "text/html",
                                                              "Authorization": f"Bearer {live.settings.admin_api_token}"})
        assert response.status_code == 404
        _no_traceback(response.text)
        assert _leaks(response.text, found) == []

    def crash(*args, **kwargs):
        raise RuntimeError(f"{MARKER} {found['stripe_secret_key']}")  # even a careless message stays inside

    import webhook_service.routes.api as api_routes
    monkeypatch.setattr(checkout_service, "open_checkout", crash)
    monkeypatch.setattr(api_routes, "booking_json", crash)

    html = requests.get(live.payment_url(booking_id), timeout=30, headers={"Accept": "text/html"})
    api = live.admin("GET", f"/api/bookings/{booking_id}")
    plain = requests.get(live.payment_url(booking_id), timeout=30)

    assert html.status_code == 500 and "Something went wrong on our side" in html.text
    assert api.status_code == 500 and api.json() == {"detail": "internal error; it has been logged"}
    assert plain.status_code == 500
    for response in (html, api, plain):
        _no_traceback(response.text)
        assert _leaks(response.text + str(response.headers), found) == []


def test_the_calendly_token_is_stored_encrypted(secret_live):
    live, found = secret_live
    with session_scope(live.engine, read_only=True) as session:
        builder = session.get(Builder, live.builder_id)
        stored = session.execute(text("SELECT calendly_token_encrypted FROM builders WHERE id = :id"),
                                 {"id": builder.id}).scalar_one()
    assert stored and stored != found["calendly_token"] and found["calendly_token"] not in stored
    assert decrypt_secret(stored, live.settings.app_secret_key) == found["calendly_token"]
    with pytest.raises(DecryptionError):
        decrypt_secret(stored, "another-app-secret-key-of-32-characters")
    # and it is the one the system uses to talk to Calendly
    booking_id, url = live.start_booking(live.signed_in_client())
    assert live.pick_slot(url)["event"]
    assert live.status(booking_id) == "PENDING_PAYMENT"


def test_calendly_oauth_codes_states_and_tokens_never_reach_a_log_a_page_or_the_database(live, all_logs, capfd):
    """Connect through the sandbox Calendly's OAuth, refresh on an expiry mid-booking, then lose the
    connection (the refresh token spent elsewhere): no code, state, verifier, token or client secret
    in any log record, printed line, page or database row (tokens only encrypted)."""
    from urllib.parse import parse_qs, urlsplit

    from core.models import CalendlyOAuthState
    from tests.test_calendly_oauth_live import connect_through_oauth

    key = live.settings.app_secret_key
    found = {"client_secret": live.settings.calendly_client_secret}

    def remember_tokens(step: str) -> None:
        with session_scope(live.engine, read_only=True) as session:
            builder = session.get(Builder, live.builder_id)
            for name in ("calendly_token_encrypted", "calendly_refresh_token_encrypted"):
                if getattr(builder, name):
                    found[f"{step}:{name}"] = decrypt_secret(getattr(builder, name), key)

    callback = connect_through_oauth(live)
    assert callback.status_code == 303
    query = parse_qs(urlsplit(callback.request.url).query)
    found["code"], found["state"] = query["code"][0], query["state"][0]
    with session_scope(live.engine, read_only=True) as session:
        stored_verifier = session.execute(select(CalendlyOAuthState.code_verifier_encrypted)).scalar_one()
    found["code_verifier"] = decrypt_secret(stored_verifier, key)
    remember_tokens("connected")
    assert live.calendly_sandbox("POST", "/oauth/expire_access_tokens").status_code == 200
    scheduling.EVENT_TYPES.clear()
    live.book()  # refreshed on the way
    remember_tokens("refreshed")
    assert found["refreshed:calendly_token_encrypted"] != found["connected:calendly_token_encrypted"]
    elsewhere = requests.post(f"{live.calendly}/oauth/token", timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": found["refreshed:calendly_refresh_token_encrypted"],
        "client_id": live.settings.calendly_client_id, "client_secret": live.settings.calendly_client_secret})
    assert elsewhere.status_code == 200
    assert live.calendly_sandbox("POST", "/oauth/expire_access_tokens").status_code == 200
    scheduling.EVENT_TYPES.clear()
    page = requests.get(f"{live.web}/profile/{live.builder_id}", timeout=30, headers={"Accept": "text/html"})
    assert page.status_code == 503
    replayed = requests.get(callback.request.url, timeout=30, headers={"Accept": "text/html"})
    assert replayed.status_code == 400

    # The stand-in Calendly runs in this process and logs its own requests (its authorize page is
    # where the state goes out), and so does this test's browser (following the callback): those
    # lines are Calendly's and the person's, not our system's.
    from core.services.calendly_connection import CALLBACK_PATH
    theirs = ('"GET /oauth/authorize?', '"POST /oauth/')
    ours = [line for line in all_logs.lines
            if not (line.startswith(("uvicorn.access", "urllib3")) and any(mark in line for mark in theirs))
            and not (line.startswith("urllib3") and CALLBACK_PATH + "?code=" in line)]
    logs = "\n".join(ours)
    assert "disconnected from Calendly" in logs and "refreshed" in logs and f"{CALLBACK_PATH}?[hidden]" in logs
    assert _leaks(logs, found) == [], [line for line in ours if _leaks(line, found)][:5]
    out, err = capfd.readouterr()
    assert _leaks(out + err, found) == []
    assert _leaks(page.text + replayed.text + str(callback.headers), found) == []
    assert _leaks(_database_text(live.engine), found) == []
