"""The dashboard's app shell in a real browser (system Chromium), at desktop and phone size: a reload
keeps you signed in, sign-out and an expired session do not; an admin adds a builder and a user;
no "Deploy" button. Streamlit runs as `streamlit run` with no toolbar or address flags, so what is
checked is what the project's config file gives. Screenshots go to test-artifacts/shell/."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from core.auth import authenticate
from core.db import session_scope
from core.models import Builder, DashboardSession, utcnow
from devtools.processes import free_port
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS as BROWSER_ARGS, require_chromium
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, make_admin_and_builders

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402  (pinned in requirements.txt)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("SHELL_SHOTS_DIR", REPO / "test-artifacts" / "shell"))
CONFIG = REPO / "dashboard" / ".streamlit" / "config.toml"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(autouse=True)
def _chromium_required():
    require_chromium()


def test_the_config_file_binds_to_this_machine_and_hides_the_deploy_button():
    config = tomllib.loads(CONFIG.read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["client"]["toolbarMode"] in ("minimal", "viewer")
    assert config["browser"]["gatherUsageStats"] is False


@pytest.fixture
def dashboard(engine, db_url, tmp_path):
    """`streamlit run` as the Procfile starts it (no toolbar/address flags), from another directory."""
    with session_scope(engine) as s:
        make_admin_and_builders(s, ada_timezone="Europe/London")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "SANDBOX": "true", "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "streamlit_app.py"),
             "--server.port", str(port), "--server.fileWatcherType", "none"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def shot(page: Page, name: str, size: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)


def settled(page: Page) -> None:
    """Streamlit has finished the run: no 'Running…' status widget."""
    page.wait_for_timeout(300)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=30_000)


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page: Page) -> None:
    opener = page.locator('[data-testid="stExpandSidebarButton"]')
    if opener.is_visible():  # on a phone the sidebar starts closed
        opener.click()
        page.wait_for_timeout(600)  # it slides in
    page.get_by_role("button", name="Sign out").click()


def no_deploy_button(page: Page) -> None:
    assert page.get_by_text("Deploy", exact=True).count() == 0
    assert page.locator('[data-testid="stAppDeployButton"]').count() == 0


def choose(page: Page, form, label: str, option: str) -> None:
    form.get_by_role("combobox", name=label).click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()


@pytest.mark.parametrize("size", list(SIZES))
def test_a_reload_keeps_you_signed_in_and_sign_out_does_not(engine, dashboard, size):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport=SIZES[size])
            page.goto(dashboard, wait_until="domcontentloaded")
            expect(page.get_by_text("The bookings dashboard of the marketplace")).to_be_visible(timeout=30_000)
            settled(page)
            no_deploy_button(page)
            shot(page, "sign-in", size)

            sign_in(page, dashboard, "ada@test", "builder-password-1")
            expect(page.get_by_role("heading", name="Upcoming sessions")).to_be_visible(timeout=30_000)
            settled(page)
            cookie = next(c for c in page.context.cookies() if c["name"] == "dashboard_session")
            assert cookie["sameSite"] == "Strict" and cookie["path"] == "/" and cookie["expires"] > time.time()

            page.reload(wait_until="domcontentloaded")
            expect(page.get_by_role("heading", name="Upcoming sessions")).to_be_visible(timeout=30_000)
            settled(page)
            no_deploy_button(page)
            assert page.get_by_role("button", name="Sign in", exact=True).count() == 0
            shot(page, "builder-after-reload", size)

            sign_out(page)
            expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible(timeout=30_000)
            settled(page)
            page.wait_for_function("() => !document.cookie.includes('dashboard_session=')", timeout=10_000)
            page.reload(wait_until="domcontentloaded")
            expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible(timeout=30_000)
            assert page.get_by_text("Your sign-in has ended").count() == 0  # a chosen sign-out is no surprise
            with session_scope(engine, read_only=True) as s:
                assert all(row.revoked_at is not None for row in s.execute(select(DashboardSession)).scalars())
        finally:
            browser.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_an_expired_session_leads_to_the_sign_in_page(engine, dashboard, size):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport=SIZES[size])
            sign_in(page, dashboard, ADMIN_EMAIL, ADMIN_PASSWORD)
            expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
            settled(page)
            with session_scope(engine) as s:  # twelve idle hours later
                s.execute(update(DashboardSession).values(expires_at=utcnow() - timedelta(minutes=1)))
            page.reload(wait_until="domcontentloaded")
            expect(page.get_by_text("Your sign-in has ended")).to_be_visible(timeout=30_000)
            expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
            settled(page)
            shot(page, "session-ended", size)
        finally:
            browser.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_an_admin_adds_a_builder_and_their_account(engine, dashboard, size):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport=SIZES[size])
            sign_in(page, dashboard, ADMIN_EMAIL, ADMIN_PASSWORD)
            expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=30_000)
            settled(page)
            page.goto(f"{dashboard}/admin_people", wait_until="domcontentloaded")  # a reload, too
            expect(page.get_by_role("heading", name="Builders and users")).to_be_visible(timeout=30_000)
            settled(page)
            no_deploy_button(page)
            shot(page, "people", size)

            builder_form = page.locator('[data-testid="stForm"]').nth(0)
            builder_form.get_by_label("Name").fill("Grace Hopper")
            builder_form.get_by_label("Email").fill("grace@example.test")
            choose(page, builder_form, "Time zone", "America/New_York")
            builder_form.get_by_label("Bio (shown on their profile)").fill("Compilers, COBOL and debugging.")
            builder_form.get_by_role("button", name="Add builder").click()
            expect(page.get_by_text("Builder Grace Hopper (grace@example.test, America/New_York) added.")
                   ).to_be_visible(timeout=30_000)
            settled(page)
            expect(builder_form.get_by_label("Name")).to_have_value("")
            shot(page, "builder-added", size)

            user_form = page.locator('[data-testid="stForm"]').nth(1)
            user_form.get_by_label("Email").fill("grace@example.test")
            choose(page, user_form, "Builder (for a builder account)", "Grace Hopper (grace@example.test)")
            user_form.get_by_role("button", name="Add user").click()
            done = page.get_by_text("Dashboard user grace@example.test (builder) added.")
            expect(done).to_be_visible(timeout=30_000)
            settled(page)
            shot(page, "user-added", size)
            password = page.locator('[data-testid="stAlertContentSuccess"] code').inner_text()

            user_form.get_by_label("Email").fill("grace@example.test")  # the same address again
            choose(page, user_form, "Role", "Admin (sees and does everything)")
            user_form.get_by_role("button", name="Add user").click()
            expect(page.get_by_text("Not added: a dashboard user grace@example.test already exists.")
                   ).to_be_visible(timeout=30_000)
            settled(page)
            shot(page, "user-refused", size)

            page.goto(f"{dashboard}/my_settings", wait_until="domcontentloaded")
            expect(page.get_by_role("heading", name="My settings")).to_be_visible(timeout=30_000)
            settled(page)
            settings_form = page.locator('[data-testid="stForm"]').nth(0)
            choose(page, settings_form, "My time zone", "Asia/Tokyo")
            settings_form.get_by_role("button", name="Save").click()
            expect(page.get_by_text("Times are now shown in Asia/Tokyo on every page.")).to_be_visible(timeout=30_000)
            settled(page)
            shot(page, "settings", size)
        finally:
            browser.close()
    with session_scope(engine, read_only=True) as s:
        grace = s.execute(select(Builder).where(Builder.email == "grace@example.test")).scalar_one()
        assert (grace.timezone, grace.bio) == ("America/New_York", "Compilers, COBOL and debugging.")
        viewer = authenticate(s, "grace@example.test", password)
        assert (viewer.role, viewer.builder_id) == ("builder", grace.id)
        assert authenticate(s, ADMIN_EMAIL, ADMIN_PASSWORD).timezone == "Asia/Tokyo"
