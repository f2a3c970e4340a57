"""A client's browser on the web service (TestClient, real database), signed in through the real
magic-link pages; and bookings with money, as My bookings lists them."""
from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from core.db import session_scope
from tests import factories as f

HTML = {"accept": "text/html"}
BASE = "http://testserver"


@pytest.fixture
def web(engine, settings_env):
    """The app with the outbox left to the test (no drain after requests: nothing calls out)."""
    settings_env(public_base_url=BASE, run_outbox_after_request="false")
    from webhook_service.app import create_app
    return create_app()


def browser(app, zone: str | None = None) -> TestClient:
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    if zone is not None:
        client.cookies.set("tz", zone, domain="testserver.local")
    return client


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client: TestClient, email: str, next_url: str = "/my-bookings") -> TestClient:
    form = client.get(f"/login?next={next_url}", headers=HTML)
    sent = client.post("/login", headers=HTML, data={"email": email, "name": "Casey", "next": next_url,
                                                     "csrf_token": csrf(form.text)})
    assert sent.status_code == 200, sent.text
    link = html.unescape(re.search(r'id="magic-link" class="btn" href="([^"]+)"', sent.text).group(1))
    assert client.get(link.removeprefix(BASE), headers=HTML).status_code == 303
    return client


def text_of(page: str) -> str:
    """The page's visible words, roughly: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def paid_booking(engine, email: str, *, status="CONFIRMED", refunds: tuple[int, ...] = (), **fields) -> str:
    """A scheduled booking of `email` with its payment (and refunds made by an admin); its id."""
    with session_scope(engine) as session:
        client = _client(session, email)
        session_type = f.make_session_type(session, price_cents=fields.pop("price_cents", 4900),
                                           name=fields.pop("session_name", "Discovery call"))
        booking = f.make_booking(session, status, client=client, session_type=session_type, **fields)
        payment = f.make_payment(session, booking)
        for amount in refunds:
            refund = f.make_refund(session, payment, amount)
            refund.reason = "Admin: the call dropped for ten minutes"
        return booking.id


def unpaid_booking(engine, email: str, *, status="PENDING_PAYMENT", **fields) -> str:
    with session_scope(engine) as session:
        booking = f.make_booking(session, status, client=_client(session, email), **fields)
        return booking.id


def _client(session, email: str):
    from sqlalchemy import select
    from core.models import Client
    return session.execute(select(Client).where(Client.email == email)).scalar_one_or_none() or \
        f.make_client(session, email=email)
