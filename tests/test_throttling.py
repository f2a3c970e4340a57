"""Throttling (issue 9, section 2): magic links per email and per address, booking creation per
client and per address (each one asks the builder's Calendly for a link), the seed's
scheduling-link API, and dashboard sign-in lockout — each answered with a readable 429 and
Retry-After, counted in the database so several web processes share the count.

Time moves through `throttle._clock`, never by sleeping.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.models import Booking, LoginToken, ThrottleCounter, utcnow
from core.services import throttle
from core.worker import tick
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, BUILDER_PASSWORD, make_builder, make_user
from tests.reliability_helpers import start_web, wait_healthy

REPO = Path(__file__).resolve().parent.parent
BROWSER = {"Accept": "text/html,application/xhtml+xml"}
JSON = {"Accept": "application/json"}


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _later(monkeypatch, **delta) -> None:
    """Move the throttles' clock forward."""
    moved = utcnow() + timedelta(**delta)
    monkeypatch.setattr(throttle, "_clock", lambda: moved)


def _login_tokens(engine) -> int:
    with session_scope(engine, read_only=True) as session:
        return session.execute(select(func.count()).select_from(LoginToken)).scalar_one()


def _bookings(engine) -> int:
    with session_scope(engine, read_only=True) as session:
        return session.execute(select(func.count()).select_from(Booking)).scalar_one()


def _assert_429(answer, *, max_wait: int, text: str) -> int:
    assert answer.status_code == 429, answer.text
    retry_after = int(answer.headers["Retry-After"])
    assert 1 <= retry_after <= max_wait
    assert text in answer.text and "try again in" in answer.text
    return retry_after


# ---------------------------------------------------------------- magic links (in-process HTTP)
@pytest.fixture
def web(settings_env, request):
    """A factory of TestClients of one web app, each from its own client address."""
    settings_env(throttle_magic_link_per_email="3/15m", throttle_magic_link_per_address="5/15m",
                 run_outbox_after_request="false")
    request.getfixturevalue("engine")
    from webhook_service.app import create_app
    app = create_app()
    clients = []

    def client(address: str = "198.51.100.1") -> TestClient:
        test_client = TestClient(app, client=(address, 40000), raise_server_exceptions=False)
        clients.append(test_client.__enter__())
        return test_client

    yield client
    for test_client in clients:
        test_client.__exit__(None, None, None)


def ask_link(client: TestClient, email: str, headers: dict | None = None):
    csrf = _csrf(client.get("/login").text)
    return client.post("/login", data={"email": email, "csrf_token": csrf, "next": "/"}, headers=headers or BROWSER)


def test_magic_links_per_email_answer_429_with_retry_after_and_a_page_past_the_limit(web, engine):
    browser = web()
    for _ in range(3):
        assert ask_link(browser, "victim@example.com").status_code == 200

    refused = ask_link(browser, "Victim@Example.com ")  # the same mailbox, however it is typed
    _assert_429(refused, max_wait=15 * 60, text="Too many sign-in links were asked for")
    assert refused.headers["content-type"].startswith("text/html") and "<html" in refused.text.lower()
    as_json = ask_link(web("198.51.100.2"), "victim@example.com", headers=JSON)  # another address, same email
    _assert_429(as_json, max_wait=15 * 60, text="Too many sign-in links")
    assert set(as_json.json()) == {"detail"}
    assert _login_tokens(engine) == 3  # nothing sent past the limit

    assert ask_link(browser, "someone-else@example.com").status_code == 200  # another email is not affected


def test_magic_links_per_address_and_another_address_is_not_affected(web, engine):
    first, second = web("203.0.113.10"), web("203.0.113.11")
    for n in range(5):
        assert ask_link(first, f"person{n}@example.com").status_code == 200

    _assert_429(ask_link(first, "person9@example.com"), max_wait=15 * 60, text="Too many sign-in links")
    assert ask_link(second, "person9@example.com").status_code == 200
    assert _login_tokens(engine) == 6


def test_a_new_window_lets_magic_links_through_again(web, engine, monkeypatch):
    browser = web()
    for _ in range(3):
        assert ask_link(browser, "again@example.com").status_code == 200
    retry_after = _assert_429(ask_link(browser, "again@example.com"), max_wait=15 * 60, text="sign-in links")

    _later(monkeypatch, seconds=retry_after)
    assert ask_link(browser, "again@example.com").status_code == 200
    assert _login_tokens(engine) == 4


def test_forwarded_for_is_ignored_unless_a_trusted_proxy_is_configured(web, settings_env, engine):
    browser = web()
    for n in range(5):  # a client rotating X-Forwarded-For is still one address
        headers = {**BROWSER, "X-Forwarded-For": f"192.0.2.{n}"}
        assert ask_link(browser, f"rotate{n}@example.com", headers).status_code == 200
    refused = ask_link(browser, "rotate9@example.com", {**BROWSER, "X-Forwarded-For": "192.0.2.99"})
    assert refused.status_code == 429

    settings_env(trusted_proxy_hops=1)  # behind one proxy: the entry it appended is the client
    proxied = ask_link(browser, "rotate9@example.com", {**BROWSER, "X-Forwarded-For": "6.6.6.6, 192.0.2.99"})
    assert proxied.status_code == 200
    for n in range(5):  # the client wrote the left entry; the proxy's (right) one is what counts
        headers = {**BROWSER, "X-Forwarded-For": f"10.0.0.{n}, 192.0.2.77"}
        assert ask_link(browser, f"p{n}@example.com", headers).status_code == 200
    assert ask_link(browser, "p9@example.com", {**BROWSER, "X-Forwarded-For": "10.9.9.9, 192.0.2.77"}).status_code == 429


def test_counters_hold_hashes_of_bounded_size_not_emails(web, engine):
    huge = "x" * 5000 + "@example.com"
    ask_link(web(), huge)
    ask_link(web(), "private@example.com")
    with session_scope(engine, read_only=True) as session:
        rows = session.execute(select(ThrottleCounter)).scalars().all()
    assert rows and all(len(row.key_hash) == 64 and "@" not in row.key_hash for row in rows)
    assert {row.scope for row in rows} == {"magic_link:address", "magic_link:email"}


# ---------------------------------------------------------------- the counter itself
def test_concurrent_hits_are_all_counted_and_exactly_the_limit_passes(settings_env, engine):
    settings_env(throttle_booking_per_client="10/1h")
    now = utcnow()

    def attempt(_):
        try:
            throttle.hit(engine, throttle.BOOKING, client="crowd@example.com", now=now)
            return "passed"
        except throttle.Throttled:
            return "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(24)))

    assert outcomes.count("passed") == 10 and outcomes.count("refused") == 14
    with session_scope(engine, read_only=True) as session:
        assert session.execute(select(ThrottleCounter.hits)).scalars().all() == [24]


def test_ended_windows_are_deleted_by_the_worker(settings_env, engine, monkeypatch):
    settings_env(throttle_magic_link_per_email="5/15m")
    start = datetime(2030, 1, 1, 10, 0, tzinfo=timezone.utc)
    for n in range(30):
        throttle.hit(engine, throttle.MAGIC_LINK, email=f"old{n}@example.com", now=start)
    throttle.hit(engine, throttle.MAGIC_LINK, email="current@example.com", now=start + timedelta(minutes=20))

    monkeypatch.setattr(throttle, "_clock", lambda: start + timedelta(minutes=21))
    assert tick(engine)["throttles"] == 30

    with session_scope(engine, read_only=True) as session:
        left = session.execute(select(ThrottleCounter.window_start)).scalars().all()
    assert left == [start + timedelta(minutes=15)]


def test_counting_also_deletes_ended_windows_now_and_then(settings_env, engine, monkeypatch):
    """Without a worker running, the web processes keep the table small themselves."""
    settings_env(throttle_magic_link_per_email="5/15m")
    start = datetime(2030, 1, 1, 10, 0, tzinfo=timezone.utc)
    for n in range(10):
        throttle.hit(engine, throttle.MAGIC_LINK, email=f"old{n}@example.com", now=start)
    monkeypatch.setattr(throttle, "_last_prune", float("-inf"))  # a minute has passed since the last pruning

    throttle.hit(engine, throttle.MAGIC_LINK, email="new@example.com", now=start + timedelta(hours=1))

    with session_scope(engine, read_only=True) as session:
        assert session.execute(select(func.count()).select_from(ThrottleCounter)).scalar_one() == 1


def test_limits_are_checked_at_start_up():
    from core.config import ConfigError, load_settings
    with pytest.raises(ConfigError, match="THROTTLE_BOOKING_PER_CLIENT"):
        load_settings(throttle_booking_per_client="lots")
    assert load_settings(throttle_booking_per_client="off").throttle_booking_per_client == "off"


# ---------------------------------------------------------------- bookings and the scheduling-link API (live)
@pytest.fixture
def booking_limits(settings_env):
    settings_env(throttle_booking_per_client="2/1h", throttle_booking_per_address="4/1h")


def test_booking_creation_per_client_is_throttled_before_calendly_is_asked(booking_limits, live):
    browser = live.signed_in_client("eager@example.com")
    live.start_booking(browser)
    live.start_booking(browser)
    links = len(live.calendly_state()["links"])

    profile = browser.get(f"{live.web}/profile/{live.builder_id}", timeout=30)
    refused = browser.post(f"{live.web}/bookings", headers=BROWSER, allow_redirects=False, timeout=30, data={
        "event_type_id": live.event_type_ids[0], "builder_id": str(live.builder_id), "csrf_token": _csrf(profile.text)})

    _assert_429(refused, max_wait=3600, text="Too many bookings were started")
    assert _bookings(live.engine) == 2
    assert len(live.calendly_state()["links"]) == links  # the builder's Calendly was not called
    live.start_booking(live.signed_in_client("calm@example.com"))  # another client books as usual
    assert _bookings(live.engine) == 3


def test_booking_creation_per_address(booking_limits, live):
    for n in range(2):
        browser = live.signed_in_client(f"one{n}@example.com")
        live.start_booking(browser)
        live.start_booking(browser)
    browser = live.signed_in_client("fifth@example.com")
    profile = browser.get(f"{live.web}/profile/{live.builder_id}", timeout=30)
    refused = browser.post(f"{live.web}/bookings", allow_redirects=False, timeout=30, data={
        "event_type_id": live.event_type_ids[0], "builder_id": str(live.builder_id), "csrf_token": _csrf(profile.text)})
    _assert_429(refused, max_wait=3600, text="Too many bookings")
    assert refused.json()["detail"].startswith("Too many bookings were started")  # no text/html asked: JSON
    assert _bookings(live.engine) == 4


def test_the_scheduling_link_api_is_throttled_with_a_json_429(booking_limits, live, monkeypatch):
    url = f"{live.web}/api/scheduling/calendly/scheduling-link"
    browser = live.signed_in_client("api@example.com")
    body = {"eventTypeId": live.event_type_ids[0], "inviteeName": "Api"}
    assert [browser.post(url, json=body, timeout=30).status_code for _ in range(2)] == [200, 200]
    refused = browser.post(url, json=body, timeout=30, headers=BROWSER)  # /api/ answers JSON whatever is asked
    _assert_429(refused, max_wait=3600, text="Too many bookings")
    assert refused.json() == {"detail": refused.json()["detail"]}

    server = {"eventTypeId": live.event_type_ids[0], "inviteeEmail": "served@example.com", "inviteeName": "S"}
    assert [live.admin("POST", "/api/scheduling/calendly/scheduling-link", json=server).status_code
            for _ in range(3)] == [200, 200, 429]  # the marketplace's calls: per invitee
    other = {**server, "inviteeEmail": "other@example.com"}
    assert live.admin("POST", "/api/scheduling/calendly/scheduling-link", json=other).status_code == 200
    assert _bookings(live.engine) == 5

    _later(monkeypatch, hours=1)
    assert browser.post(url, json=body, timeout=30).status_code == 200


def test_two_web_processes_share_one_count(settings_env, live, tmp_path):
    limits = {"THROTTLE_MAGIC_LINK_PER_EMAIL": "3/15m"}
    settings_env(**limits)
    other_url, process = start_web(live, tmp_path, 1, **limits)
    try:
        wait_healthy(other_url, process)

        def ask(base: str):
            browser = requests.Session()
            csrf = _csrf(browser.get(f"{base}/login", timeout=30).text)
            return browser.post(f"{base}/login", data={"email": "shared@example.com", "csrf_token": csrf},
                                headers=BROWSER, timeout=30)

        assert [ask(base).status_code for base in (live.web, other_url, live.web)] == [200, 200, 200]
        _assert_429(ask(other_url), max_wait=15 * 60, text="sign-in links")
        _assert_429(ask(live.web), max_wait=15 * 60, text="sign-in links")
    finally:
        process.stop()


@pytest.mark.parametrize("procfile", ["Procfile", "Procfile.production"])
def test_the_procfile_web_server_does_not_let_a_client_choose_its_address(procfile, settings_env, live, tmp_path):
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: the `web` command turns that off,
    so only TRUSTED_PROXY_HOPS decides (a client next to the server could otherwise rotate it)."""
    import shlex
    import sys
    from tests.reliability_helpers import Process, system_env
    from tests.servers import free_port

    line = next(row for row in (REPO / procfile).read_text().splitlines() if row.startswith("web:"))
    port = free_port()
    args = shlex.split(line.removeprefix("web:").replace("${PORT:-8000}", str(port)).replace("8000", str(port)))
    assert args[0].endswith("uvicorn")
    limits = {"THROTTLE_MAGIC_LINK_PER_ADDRESS": "2/15m"}
    settings_env(**limits)
    process = Process([sys.executable, "-m", "uvicorn", *args[1:]], system_env(live, **limits), tmp_path / "web.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)

        def ask(n: int):
            browser = requests.Session()
            csrf = _csrf(browser.get(f"{url}/login", timeout=30).text)
            return browser.post(f"{url}/login", timeout=30, data={"email": f"spoof{n}@example.com", "csrf_token": csrf},
                                headers={**BROWSER, "X-Forwarded-For": f"192.0.2.{n}"})

        assert [ask(n).status_code for n in range(3)] == [200, 200, 429]
    finally:
        process.stop()


# ---------------------------------------------------------------- dashboard sign-in (AppTest)
APP = "../dashboard/streamlit_app.py"


@pytest.fixture
def accounts(settings_env, engine):
    settings_env(throttle_sign_in_failures_per_account="3/15m", throttle_sign_in_failures_per_address="5/15m")
    with session_scope(engine) as s:
        make_user(s, ADMIN_EMAIL, ADMIN_PASSWORD, "admin")
        for name in ("ada", "bo"):
            make_user(s, f"{name}@test", BUILDER_PASSWORD, "builder", make_builder(s, name=name, email=f"{name}@test"))


def sign_in(email: str, password: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="sign_in_email").input(email)
    at.text_input(key="sign_in_password").input(password)
    at.form_submit_button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def signed_in(at: AppTest) -> bool:
    return "viewer" in at.session_state and at.title[0].value != "Sign in"


def test_dashboard_locks_an_account_out_after_wrong_passwords_even_for_the_right_one(accounts, monkeypatch):
    assert [e.value for e in sign_in(ADMIN_EMAIL, "guess-1").error] == ["Wrong email or password."]
    assert [e.value for e in sign_in(ADMIN_EMAIL, "guess-2").error] == ["Wrong email or password."]
    third = sign_in(ADMIN_EMAIL, "guess-3")
    [message] = [e.value for e in third.error]
    assert re.fullmatch(r"Too many wrong passwords\. Please try again in (\d+ minutes?|\d+ seconds?) "
                        r"\(after \d\d:\d\d UTC\)\.", message), message

    right = sign_in(ADMIN_EMAIL.upper(), ADMIN_PASSWORD)  # the right password, during the lockout
    assert not signed_in(right)
    assert [e.value for e in right.error][0].startswith("Too many wrong passwords")

    other = sign_in("ada@test", BUILDER_PASSWORD)  # another account is not affected
    assert signed_in(other) and not other.error

    _later(monkeypatch, minutes=15)
    assert signed_in(sign_in(ADMIN_EMAIL, ADMIN_PASSWORD))


def test_dashboard_sign_in_failures_per_address(accounts, monkeypatch):
    from dashboard.lib import auth
    monkeypatch.setattr(auth, "client_address", lambda: "203.0.113.50")
    for email in ("a@x.test", "b@x.test", "c@x.test", "d@x.test"):
        assert [e.value for e in sign_in(email, "guess").error] == ["Wrong email or password."]
    [message] = [e.value for e in sign_in("e@x.test", "guess").error]
    assert message.startswith("Too many wrong passwords")
    assert not signed_in(sign_in("bo@test", BUILDER_PASSWORD))  # this address is locked out

    monkeypatch.setattr(auth, "client_address", lambda: "203.0.113.51")
    assert signed_in(sign_in("bo@test", BUILDER_PASSWORD))  # another address is not
