"""Magic sign-in links: single use, a 20-minute lifetime, and shown on the page in sandbox mode only.

Through the real pages (TestClient on the app, real database): the link a client is sent signs
them in once; the same link a second time, or after its lifetime, is refused with our page and
signs nobody in. In production mode the page never carries the link: it goes by email only.
"""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.db import session_scope
from core.models import LoginToken, Notification, utcnow
from core.services import client_login

HTML = {"accept": "text/html"}


def _client(base_url: str = "http://testserver"):
    from webhook_service.app import create_app
    return TestClient(create_app(), base_url=base_url, follow_redirects=False)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _ask_for_link(browser: TestClient, email: str = "casey@example.com"):
    form = browser.get("/login?next=/profile/1", headers=HTML)
    return browser.post("/login", headers=HTML, data={"email": email, "name": "Casey", "next": "/profile/1",
                                                      "csrf_token": _csrf(form.text)})


def _link_from_email(engine, email: str) -> str:
    with session_scope(engine, read_only=True) as session:
        body = session.execute(select(Notification.body).where(Notification.to_email == email,
                                                                Notification.kind == "magic_link")
                               .order_by(Notification.id.desc())).scalars().first()
    return re.search(r"(https?://\S+/login/verify\?token=\S+)", body).group(1)


def _path(link: str) -> str:
    parsed = urlparse(link)
    return f"{parsed.path}?{parsed.query}"


def _signed_in(browser: TestClient) -> bool:
    """A signed-in visitor sees their email on the sign-in form's page header."""
    return "casey@example.com" in browser.get("/login", headers=HTML).text


def test_a_magic_link_signs_in_once(engine):
    with _client() as browser:
        assert _ask_for_link(browser).status_code == 200
        link = _path(_link_from_email(engine, "casey@example.com"))
        first = browser.get(link, headers=HTML)
        assert first.status_code == 303 and first.headers["location"] == "/profile/1"
        assert _signed_in(browser)
    with _client() as thief:  # the same link again, from another browser
        again = thief.get(link, headers=HTML)
        assert again.status_code == 400
        assert "Sign-in link not valid" in again.text
        assert not _signed_in(thief)
    with session_scope(engine, read_only=True) as session:
        token = session.execute(select(LoginToken)).scalar_one()
        assert token.used_at is not None


def test_a_magic_link_expires_after_twenty_minutes(engine, monkeypatch):
    with _client() as browser:
        _ask_for_link(browser)
        link = _path(_link_from_email(engine, "casey@example.com"))
        later = utcnow() + client_login.LINK_LIFETIME + timedelta(seconds=5)
        monkeypatch.setattr(client_login, "utcnow", lambda: later)
        expired = browser.get(link, headers=HTML)
        assert expired.status_code == 400 and "Sign-in link not valid" in expired.text
        assert not _signed_in(browser)


def test_a_magic_link_still_works_just_before_it_expires(engine, monkeypatch):
    with _client() as browser:
        _ask_for_link(browser)
        link = _path(_link_from_email(engine, "casey@example.com"))
        nearly = utcnow() + client_login.LINK_LIFETIME - timedelta(seconds=30)
        monkeypatch.setattr(client_login, "utcnow", lambda: nearly)
        assert browser.get(link, headers=HTML).status_code == 303


def test_the_service_refuses_a_second_redemption(session):
    link = client_login.send_magic_link(session, "pat@example.com", "/")
    token = parse_qs(urlparse(link).query)["token"][0]
    assert client_login.redeem_magic_link(session, token)[0] == "pat@example.com"
    with pytest.raises(Exception, match="already used or expired"):
        client_login.redeem_magic_link(session, token)
    with pytest.raises(Exception, match="invalid"):
        client_login.redeem_magic_link(session, token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_sandbox_mode_shows_the_link_on_the_page(engine):
    with _client() as browser:
        sent = _ask_for_link(browser)
        assert sent.status_code == 200
        assert 'id="magic-link"' in sent.text and "/login/verify?token=" in sent.text


PRODUCTION = dict(sandbox="false", calendly_webhook_signing_key="prod-calendly-signing-key",
                  stripe_secret_key="sk_live_not_used_in_this_test", stripe_webhook_secret="whsec_prod",
                  admin_api_token="prod-admin-token-0123456789",
                  app_secret_key="a-production-secret-key-of-forty-characters!",
                  public_base_url="https://bookings.example.com")


def test_production_mode_sends_the_link_by_email_only(engine, settings_env):
    settings = settings_env(**PRODUCTION)
    assert settings.sandbox is False
    with _client("https://testserver") as browser:  # production cookies are Secure
        sent = _ask_for_link(browser)
        assert sent.status_code == 200
        assert "casey@example.com" in sent.text  # "we sent a link to …"
        assert 'id="magic-link"' not in sent.text and "/login/verify" not in sent.text
        assert "token=" not in sent.text
    # The link exists, in the email only.
    assert _link_from_email(engine, "casey@example.com").startswith("https://bookings.example.com/login/verify?token=")
