"""The live system with a builder connected through OAuth only, against the sandbox Calendly's real
OAuth pages and endpoints: the authorize page approved over HTTP, our callback, then a booking
made, paid and refunded while Calendly expires the access token mid-flow (one refresh, the
booking completes), and a refresh token spent elsewhere (disconnected, nothing crashes).
"""
from __future__ import annotations

import logging
import re
from html import unescape
from urllib.parse import urljoin

import pytest
import requests
from sqlalchemy import select

from core.config import get_settings
from core.db import session_scope
from core.models import Builder
from core.security import decrypt_secret
from core.services import scheduling
from core.services.calendly_connection import CALLBACK_PATH, start_connect
from tests.live_system import BUILDER_TOKEN
from tests.webhook_helpers import future_slot, settle


def connect_through_oauth(live, *, account: str = BUILDER_TOKEN) -> requests.Response:
    """The live builder connects through Calendly's authorize page (Allow) and our callback;
    returns our callback's answer (a redirect to the dashboard)."""
    with session_scope(live.engine) as session:
        url = start_connect(session, live.builder_id, started_by="cli:test", dashboard_session_id=None)
    browser = requests.Session()
    page = browser.get(url, timeout=30)
    assert page.status_code == 200, page.text
    form = re.search(r'<form[^>]*action="([^"]*)"', page.text)
    ticket = re.search(r'name="ticket" value="([^"]+)"', page.text).group(1)
    allowed = browser.post(urljoin(page.url, unescape(form.group(1)) if form else "/oauth/authorize"),
                           data={"ticket": ticket, "decision": "allow", "account": account},
                           allow_redirects=False, timeout=30)
    assert allowed.status_code == 303, allowed.text
    back = allowed.headers["location"]
    assert back.startswith(live.web + CALLBACK_PATH)
    return browser.get(back, allow_redirects=False, timeout=30)


def stored(live) -> tuple[str, str, str | None]:
    key = get_settings().app_secret_key
    with session_scope(live.engine, read_only=True) as session:
        builder = session.get(Builder, live.builder_id)
        return (builder.calendly_status, decrypt_secret(builder.calendly_token_encrypted, key)
                if builder.calendly_token_encrypted else "", builder.calendly_auth)


def refreshes(caplog) -> int:
    return sum(1 for record in caplog.records if "refreshed (expires" in record.getMessage())


def test_booked_paid_and_refunded_with_oauth_tokens_across_an_expiry(live, caplog):
    caplog.set_level(logging.INFO, logger="core.services.calendly_connection")
    answer = connect_through_oauth(live)
    assert answer.status_code == 303 and answer.headers["location"].startswith(get_settings().dashboard_url)
    status, token, auth = stored(live)
    assert (status, auth) == ("connected", "oauth") and token != BUILDER_TOKEN and token.startswith("sbx_oat_")

    # Calendly expires every access token while the client is on their way to book.
    scheduling.EVENT_TYPES.clear()
    assert live.calendly_sandbox("POST", "/oauth/expire_access_tokens").status_code == 200
    booking_id, url = live.start_booking(live.signed_in_client())  # 401 → one refresh → retried
    assert refreshes(caplog) == 1
    live.pick_slot(url, future_slot(days=3, hour=10))
    settle(live)
    live.pay(booking_id)
    settle(live)
    assert live.status(booking_id) == "CONFIRMED"

    # Expired again, then an admin refunds it (Stripe; Calendly is asked at most once more).
    assert live.calendly_sandbox("POST", "/oauth/expire_access_tokens").status_code == 200
    refund = live.admin("POST", f"/api/bookings/{booking_id}/refund", json={})
    assert refund.status_code in (200, 201, 202), refund.text
    settle(live)
    assert live.booking(booking_id)["payment_status"] in ("refunded", "partially_refunded")
    assert stored(live)[0] == "connected"
    assert 1 <= refreshes(caplog) <= 2


def test_a_refresh_token_spent_elsewhere_disconnects_without_a_crash(live):
    assert connect_through_oauth(live).status_code == 303
    key = get_settings().app_secret_key
    with session_scope(live.engine, read_only=True) as session:
        refresh = decrypt_secret(session.get(Builder, live.builder_id).calendly_refresh_token_encrypted, key)
    spent = requests.post(f"{live.calendly}/oauth/token", timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": refresh, "client_id": get_settings().calendly_client_id,
        "client_secret": get_settings().calendly_client_secret})
    assert spent.status_code == 200  # a copy of our database refreshed it: ours is now spent
    assert live.calendly_sandbox("POST", "/oauth/expire_access_tokens").status_code == 200
    scheduling.EVENT_TYPES.clear()

    profile = requests.get(f"{live.web}/profile/{live.builder_id}", headers={"Accept": "text/html"}, timeout=30)

    assert profile.status_code == 503 and "cannot be booked at the moment" in profile.text
    assert "Traceback" not in profile.text
    with session_scope(live.engine, read_only=True) as session:
        builder = session.execute(select(Builder).where(Builder.id == live.builder_id)).scalar_one()
        assert builder.calendly_status == "disconnected" and builder.calendly_refresh_token_encrypted is None
    home = requests.get(f"{live.web}/", timeout=30)
    assert home.status_code == 200 and "$49.00" not in home.text
