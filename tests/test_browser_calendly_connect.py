"""A builder connects their own Calendly in a real browser (system Chromium), at desktop and phone
size, against the whole system live: the web service, the sandbox Calendly (its OAuth pages and
endpoints) and Stripe stand-ins, and `streamlit run` of the dashboard.

The builder, waiting to connect and with no token of any kind, signs in to the dashboard → Calendly
→ Connect Calendly → allows on the sandbox's authorization page → lands back on the dashboard,
connected, their event types listed. Another builder denies → a clear message, nothing changed.
Then the connected builder is booked, paid and refunded with OAuth tokens only (the client over
HTTP as in tests/live_system.py; the webhooks come through the subscription we created with their
token), and their access token expires at Calendly mid-flow → one refresh, the flow completes.
Screenshots of the connect flow and the admin's Integrations page go to
test-artifacts/browser/calendly-connect/."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from core.db import session_scope
from core.models import Builder
from core.security import decrypt_secret
from core.services import catalog, scheduling
from core.services.calendly_connection import CALLBACK_PATH
from devtools.processes import free_port
from tests.browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, BUILDER_PASSWORD, make_user
from tests.live_system import PRICES, LiveSystem, _csrf
from tests.servers import serve

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402  (pinned in requirements.txt)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SHOTS = ARTIFACTS / "calendly-connect"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
ADA_ACCOUNT = "sandbox-ada"  # the sandbox Calendly account Ada approves with


@pytest.fixture(autouse=True)
def _chromium_required():
    require_chromium()


class ConnectSystem(LiveSystem):
    dashboard: str = ""
    calendly_app: object = None

    def oauth_grants(self, account: str) -> int:
        """How many token grants the sandbox issued for `account` (the code's, then one per refresh)."""
        store = self.calendly_app.state.calendly_oauth
        return sum(1 for grant in store.grants.values() if grant.identity == account)


def _start_dashboard(env: dict, port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "streamlit_app.py"),
         "--server.port", str(port), "--server.fileWatcherType", "none"],
        cwd=log_path.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start:\n{log_path.read_text()}")
        time.sleep(0.2)


@pytest.fixture
def system(engine, settings_env, db_url, tmp_path):
    """Web, sandbox Calendly (no pre-registered webhook: only the subscription we create on connect
    delivers) and Stripe in threads; the dashboard as `streamlit run`; admin, Ada and Bo waiting."""
    from webhook_service.app import create_app
    from sandbox.calendly import standin as calendly_standin
    from sandbox.stripe import standin as stripe_standin

    ports = {name: free_port() for name in ("web", "calendly", "stripe", "dashboard")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    wiring = {"public_base_url": urls["web"], "calendly_api_base": urls["calendly"], "stripe_api_base": urls["stripe"],
              "dashboard_url": urls["dashboard"]}
    settings = settings_env(**wiring, run_outbox_after_request="true", payment_nudge_after_minutes="0")
    assert settings.calendly_auth_base == urls["calendly"]  # sandbox mode: the stand-in is the auth server too
    scheduling.EVENT_TYPES.clear()
    calendly_app = calendly_standin.create_app(
        public_url=urls["calendly"], webhook_url=None, signing_key=settings.calendly_webhook_signing_key,
        redirect_url=f"{urls['web']}/payment/calendly-return",
        oauth_redirect_uris=(f"{urls['web']}{CALLBACK_PATH}",))  # registered exactly, as at Calendly
    stripe_app = stripe_standin.create_app(
        secret_key=settings.stripe_secret_key, webhook_url=f"{urls['web']}/api/webhooks/stripe",
        webhook_secret=settings.stripe_webhook_secret, public_url=urls["stripe"])
    with session_scope(engine) as s:
        make_user(s, ADMIN_EMAIL, ADMIN_PASSWORD, "admin")
        for name, email in (("Ada Lovelace", "ada@example.com"), ("Bo Builder", "bo@example.com")):
            builder = Builder(name=name, email=email, timezone="Europe/London")  # waiting, no token
            s.add(builder)
            s.flush()
            make_user(s, email, BUILDER_PASSWORD, "builder", builder)
    env = {**os.environ, "DATABASE_URL": db_url, "SANDBOX": "true", "PYTHONUNBUFFERED": "1",
           **{name.upper(): value for name, value in wiring.items()}}
    with ExitStack() as stack:
        stack.enter_context(serve(calendly_app, ports["calendly"]))
        stack.enter_context(serve(stripe_app, ports["stripe"]))
        stack.enter_context(serve(create_app(), ports["web"]))
        dashboard = _start_dashboard(env, ports["dashboard"], tmp_path / "streamlit.log")
        stack.callback(_stop, dashboard)
        system = ConnectSystem(urls["web"], urls["calendly"], urls["stripe"], engine, settings)
        system.dashboard, system.calendly_app = urls["dashboard"], calendly_app
        yield system
    scheduling.EVENT_TYPES.clear()


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


# ---------------------------------------------------------------- in the browser
def shot(page: Page, name: str, size: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)


def settled(page: Page) -> None:
    """Streamlit has finished the run: no 'Running…' status widget."""
    page.wait_for_timeout(300)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=30_000)


def sign_in(page: Page, url: str, email: str, password: str, heading: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=30_000)
    settled(page)


def open_calendly_page(page: Page, system: ConnectSystem) -> None:
    page.goto(f"{system.dashboard}/calendly", wait_until="domcontentloaded")  # signed in by the cookie
    expect(page.get_by_role("heading", name="Calendly", exact=True)).to_be_visible(timeout=30_000)
    settled(page)


def press_connect(page: Page) -> Page:
    """Connect Calendly opens Calendly's authorization page in a new tab; that tab."""
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Connect Calendly").click()
    calendly = opened.value
    calendly.wait_for_load_state("domcontentloaded")
    expect(calendly.get_by_role("heading", name=re.compile("wants to connect to your Calendly account"))
           ).to_be_visible(timeout=30_000)
    return calendly


def builder_row(system: ConnectSystem, email: str) -> Builder:
    with session_scope(system.engine, read_only=True) as s:
        builder = s.execute(select(Builder).where(Builder.email == email)).scalar_one()
        s.expunge(builder)
        return builder


@pytest.mark.parametrize("size", list(SIZES))
def test_a_builder_connects_calendly_in_the_browser_and_another_denies(system, size):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # Ada: sign in, Calendly, Connect Calendly, allow.
            page = browser.new_context(viewport=SIZES[size]).new_page()
            sign_in(page, system.dashboard, "ada@example.com", BUILDER_PASSWORD, "Upcoming sessions")
            open_calendly_page(page, system)
            expect(page.get_by_text("Not connected yet")).to_be_visible()
            shot(page, "1-connect-button", size)

            calendly = press_connect(page)
            # Sandbox mode names her email as login_hint: the stand-in preselects her demo account.
            expect(calendly.get_by_text("ada@sandbox.calendly.test")).to_be_visible()
            assert calendly.locator("input[name=account]").get_attribute("value") == ADA_ACCOUNT
            shot(calendly, "2-sandbox-approve", size)
            calendly.get_by_role("button", name="Allow").click()
            # Back through our callback to the dashboard, which opens the builder's Calendly page.
            calendly.wait_for_url(f"{system.dashboard}/**", timeout=30_000)
            expect(calendly.get_by_text("Your Calendly account is connected.")).to_be_visible(timeout=30_000)
            expect(calendly.get_by_text("Discovery call", exact=False).first).to_be_visible(timeout=30_000)
            settled(calendly)
            body = calendly.locator("body").inner_text()
            assert "Calendly sign-in (OAuth)" in body and "Pair-programming session" in body
            assert "Legacy office hours" not in body  # inactive in Calendly: not offered
            shot(calendly, "3-connected", size)
            calendly.close()
            page.reload(wait_until="domcontentloaded")  # the first tab, once reloaded, agrees
            expect(page.get_by_text("Your Calendly account is connected.")).to_be_visible(timeout=30_000)
            settled(page)

            # Bo: the same, but denies.
            other = browser.new_context(viewport=SIZES[size]).new_page()
            sign_in(other, system.dashboard, "bo@example.com", BUILDER_PASSWORD, "Upcoming sessions")
            open_calendly_page(other, system)
            calendly = press_connect(other)
            expect(calendly.locator("select#account")).to_be_visible()  # no demo account of hers: a choice
            calendly.get_by_role("button", name="Deny").click()
            calendly.wait_for_url(f"{system.web}/calendly/oauth/callback**", timeout=30_000)
            expect(calendly.get_by_text("You did not connect Calendly; nothing changed.")).to_be_visible()
            shot(calendly, "4-denied", size)
            calendly.close()

            # The admin's view of both.
            admin = browser.new_context(viewport=SIZES[size]).new_page()
            sign_in(admin, system.dashboard, ADMIN_EMAIL, ADMIN_PASSWORD, "Overview")
            admin.goto(f"{system.dashboard}/admin_integrations", wait_until="domcontentloaded")
            expect(admin.get_by_role("heading", name="Integrations")).to_be_visible(timeout=30_000)
            settled(admin)
            expect(admin.get_by_text("1 of 2")).to_be_visible()
            shot(admin, "5-admin-integrations", size)
        finally:
            browser.close()

    ada, bo = builder_row(system, "ada@example.com"), builder_row(system, "bo@example.com")
    assert (ada.calendly_auth, ada.calendly_status) == ("oauth", "connected")
    assert ada.calendly_refresh_token_encrypted and ada.calendly_subscription_state == "active"
    assert decrypt_secret(ada.calendly_token_encrypted, system.settings.app_secret_key).startswith("sbx_oat_")
    assert (bo.calendly_auth, bo.calendly_status, bo.calendly_token_encrypted) == (None, "waiting", None)
    if size == "desktop":
        booked_paid_and_refunded_with_oauth_only(system, ada)


# ---------------------------------------------------------------- booked, paid, refunded
def booked_paid_and_refunded_with_oauth_only(system: ConnectSystem, ada: Builder) -> None:
    """Ada's Calendly is reached only with her OAuth tokens; her access token expires at Calendly
    mid-flow (while we still think it good): one 401, one refresh, and everything completes."""
    system.builder_id, system.host_uri = ada.id, ada.calendly_user_uri
    with session_scope(system.engine) as s:
        offered = [item for item in scheduling.offered_session_types(system.engine, ada.id)[1] if item.active]
        assert offered, "her event types, read with her OAuth token"
        for item, price in zip(offered, PRICES):
            event_type = {"uri": item.uri, "name": item.name, "duration": item.duration, "active": True}
            catalog.set_price(s, builder_id=ada.id, event_type=event_type, amount_cents=price, currency="USD")
            system.event_type_ids.append(scheduling.event_type_uuid(item.uri))
    grants_after_connect = system.oauth_grants(ADA_ACCOUNT)

    client = system.signed_in_client("casey@example.com", "Casey Client")
    booking_id, calendly_url = system.start_booking(client)  # a single-use link, made with her token
    system.pick_slot(calendly_url)
    wait_for(lambda: system.status(booking_id) == "PENDING_PAYMENT")  # through our subscription's webhook
    system.pay(booking_id)
    wait_for(lambda: system.status(booking_id) == "CONFIRMED")
    assert system.oauth_grants(ADA_ACCOUNT) == grants_after_connect  # no refresh needed so far

    expired = system.calendly_sandbox("POST", "/oauth/expire_access_tokens")
    assert expired.status_code == 200, expired.text
    token_before = builder_row(system, "ada@example.com").calendly_token_encrypted

    cancel_page = client.get(f"{system.web}/my-bookings/{booking_id}/cancel")
    assert cancel_page.status_code == 200, cancel_page.text
    expected = re.search(r'name="expected_refund_cents" value="(\d+)"', cancel_page.text).group(1)
    answer = client.post(f"{system.web}/my-bookings/{booking_id}/cancel", allow_redirects=False, data={
        "csrf_token": _csrf(cancel_page.text), "expected_refund_cents": expected, "reason": "Plans changed"})
    assert answer.status_code == 303, answer.text
    system.drain()
    wait_for(lambda: system.booking(booking_id)["refunds"]
             and system.booking(booking_id)["refunds"][-1]["status"] == "succeeded")

    data = system.booking(booking_id)
    assert data["status"] == "CANCELED" and data["refunded_cents"] == int(expected) > 0
    events = system.calendly_state()["events"]  # canceled at Calendly by us, with her refreshed token
    assert [e["status"] for e in events if e["uri"] == data["calendly_event_uri"]] == ["canceled"]
    assert system.oauth_grants(ADA_ACCOUNT) == grants_after_connect + 1  # exactly one refresh
    after = builder_row(system, "ada@example.com")
    assert after.calendly_token_encrypted != token_before and after.calendly_status == "connected"
    assert after.calendly_auth == "oauth"


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
