"""Client sessions live on the server (issue 9): signing out ends the session for every copy of the
cookie, an operator can revoke a client's sessions, and a session is short unless the client asked
to be remembered. Real HTTP against the live system; the CLI in a subprocess."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import requests
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from core.db import session_scope
from core.models import ClientSession, utcnow
from tests.live_system import _csrf
from tests.cli_runner import run_cli

REPO_ROOT = Path(__file__).resolve().parent.parent
COOKIE = "baw_session"


def sign_in(live, email: str = "client@example.com", *, remember: bool = False) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{live.web}/login?next=/", timeout=30)
    data = {"email": email, "name": "Casey", "csrf_token": _csrf(form.text), "next": "/"}
    if remember:
        assert 'type="checkbox" name="remember"' in form.text  # the form offers it
        data["remember"] = "1"
    sent = browser.post(f"{live.web}/login", data=data, timeout=30)
    assert sent.status_code == 200, sent.text
    link = re.search(r'id="magic-link" class="btn" href="([^"]+)"', sent.text).group(1).replace("&amp;", "&")
    verified = browser.get(link, allow_redirects=False, timeout=30)
    assert verified.status_code == 303, verified.text
    browser.verified = verified  # the answer that set the signed-in cookie
    return browser


def signed_in_as(live, browser: requests.Session) -> str | None:
    """Who the web service thinks this browser is, from a page and from the JSON API."""
    page = browser.get(f"{live.web}/", timeout=30).text
    shown = re.search(r'Signed in as<strong title="([^"]+)"', page)
    api = browser.post(f"{live.web}/api/scheduling/calendly/scheduling-link", json={"eventTypeId": "nope"}, timeout=30)
    assert (api.status_code == 401) == (shown is None), (api.status_code, api.text)  # the two agree
    return shown.group(1) if shown else None


def thief_with_copy_of(live, browser: requests.Session) -> requests.Session:
    thief = requests.Session()
    thief.cookies.set(COOKIE, browser.cookies.get(COOKIE), domain="127.0.0.1", path="/")
    return thief


def sign_out(live, browser: requests.Session) -> requests.Response:
    page = browser.get(f"{live.web}/login", timeout=30)  # any form carries the CSRF token
    return browser.post(f"{live.web}/logout", data={"csrf_token": _csrf(page.text)}, allow_redirects=False,
                        timeout=30)


def sessions_of(live, email: str) -> list[ClientSession]:
    with session_scope(live.engine, read_only=True) as session:
        rows = session.execute(select(ClientSession).where(ClientSession.email == email)
                               .order_by(ClientSession.id)).scalars().all()
        session.expunge_all()
        return rows


def test_sign_out_ends_the_session_for_a_stolen_copy_of_the_cookie(live):
    victim = sign_in(live)
    thief = thief_with_copy_of(live, victim)
    assert signed_in_as(live, thief) == "client@example.com"  # the copy works while the session lives
    assert 'action="/logout"' in victim.get(f"{live.web}/", timeout=30).text  # every page offers sign-out

    answer = sign_out(live, victim)

    assert answer.status_code == 303
    assert signed_in_as(live, victim) is None
    assert 'action="/logout"' not in victim.get(f"{live.web}/", timeout=30).text
    assert signed_in_as(live, thief) is None  # the server ended it: the old cookie is worth nothing
    [row] = sessions_of(live, "client@example.com")
    assert row.revoked_at is not None


def test_a_signed_cookie_without_a_live_server_session_signs_nobody_in(live):
    """Before: a cookie signed with the app key carrying an email was an identity by itself."""
    serializer = URLSafeTimedSerializer(live.settings.app_secret_key, salt="client-session")
    for forged in ({"sid": "x" * 22, "email": "victim@example.com", "name": "V"},
                   {"sid": "x" * 22, "email": "victim@example.com", "auth": True}):
        browser = requests.Session()
        browser.cookies.set(COOKIE, serializer.dumps(forged), domain="127.0.0.1", path="/")
        assert signed_in_as(live, browser) is None, forged


def test_revoke_sessions_signs_a_client_out_everywhere(live, db_url, tmp_path):
    phone, laptop = sign_in(live), sign_in(live, remember=True)
    someone_else = sign_in(live, "other@example.com")

    done = run_cli(db_url, tmp_path, "revoke-sessions", "--email", " Client@Example.com ")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "revoked 2 sessions of client@example.com"
    assert signed_in_as(live, phone) is None and signed_in_as(live, laptop) is None
    assert signed_in_as(live, someone_else) == "other@example.com"
    assert all(row.revoked_at is not None for row in sessions_of(live, "client@example.com"))
    again = sign_in(live)  # revocation is not a ban: the client signs in again by email
    assert signed_in_as(live, again) == "client@example.com"


def test_revoke_sessions_refuses_a_bad_address_in_one_line(live, db_url, tmp_path):
    done = run_cli(db_url, tmp_path, "revoke-sessions", "--email", "a@b.c,c@d.e")

    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "not a valid email address" in done.stderr
    assert "Traceback" not in done.stderr


def _cookie_max_age(response: requests.Response) -> int:
    return int(re.search(rf"{COOKIE}=[^;]+;.*?Max-Age=(\d+)", response.headers["set-cookie"], re.I).group(1))


def test_a_session_is_short_unless_the_client_asks_to_be_remembered(live):
    short, long = sign_in(live), sign_in(live, "stay@example.com", remember=True)

    [short_row], [long_row] = sessions_of(live, "client@example.com"), sessions_of(live, "stay@example.com")
    assert abs((short_row.expires_at - short_row.created_at) - timedelta(hours=12)) < timedelta(seconds=5)
    assert abs((long_row.expires_at - long_row.created_at) - timedelta(days=30)) < timedelta(seconds=5)
    assert short_row.session_hash != short.cookies.get(COOKIE)  # only a hash is stored

    # The cookie lives as long as its session: a browser keeps nothing longer.
    assert abs(_cookie_max_age(short.verified) - 12 * 3600) < 60
    assert abs(_cookie_max_age(long.verified) - 30 * 24 * 3600) < 60

    with session_scope(live.engine) as session:  # twelve hours later
        session.get(ClientSession, short_row.id).expires_at = utcnow() - timedelta(seconds=1)
    assert signed_in_as(live, short) is None
    assert signed_in_as(live, long) == "stay@example.com"


def test_signing_in_again_replaces_the_previous_session(live):
    browser = sign_in(live)
    old_cookie = browser.cookies.get(COOKIE)
    thief = thief_with_copy_of(live, browser)

    page = browser.get(f"{live.web}/login", timeout=30)
    sent = browser.post(f"{live.web}/login", data={"email": "client@example.com", "csrf_token": _csrf(page.text)},
                        timeout=30)
    link = re.search(r'id="magic-link" class="btn" href="([^"]+)"', sent.text).group(1).replace("&amp;", "&")
    browser.get(link, timeout=30)

    assert browser.cookies.get(COOKIE) != old_cookie
    assert signed_in_as(live, browser) == "client@example.com"
    assert signed_in_as(live, thief) is None
    assert [row.revoked_at is not None for row in sessions_of(live, "client@example.com")] == [True, False]
