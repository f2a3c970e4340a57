"""Retake the README's screenshots from a running `make run` (demo data, sandbox, mail catcher).

    make run                                   # in one terminal
    .venv/bin/python -m devtools.readme_screenshots [--out docs/screenshots]

Walks what a newcomer would: a client in New York books, leaves Stripe's page and comes back,
pays, reads their mail, opens My bookings and cancels with the refund shown first; an admin and a
builder use the dashboard (reload stays signed in, a click on a row opens a booking). Each step
prints a line; a step that fails says which and exits 2, leaving the screenshots taken so far.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from pathlib import Path

WEB, DASHBOARD, MAIL = "http://127.0.0.1:8000", "http://127.0.0.1:8501", "http://127.0.0.1:8003"
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}
ZONE = "America/New_York"
CHROMIUM = "/usr/bin/chromium"


class Shooter:
    def __init__(self, out: Path):
        self.out, self.count = out, 0
        out.mkdir(parents=True, exist_ok=True)

    def __call__(self, page, name: str, *, full_page: bool = True) -> None:
        page.wait_for_load_state("load")
        page.wait_for_timeout(400)  # fonts and the time-zone script settle
        page.screenshot(path=str(self.out / f"{name}.png"), full_page=full_page)
        self.count += 1
        print(f"  [{self.count:2d}] {name}.png", flush=True)


def client_pages(browser, shot: Shooter) -> None:
    """Book, back from Stripe, pay, mail, My bookings, cancel with the refund shown first; release a hold."""
    for size_name, size in (("", DESKTOP), ("-phone", PHONE)):
        context = browser.new_context(viewport=size, timezone_id=ZONE, is_mobile=size is PHONE,
                                      has_touch=size is PHONE, device_scale_factor=1)
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.goto(f"{WEB}/")
        shot(page, f"home{size_name}")
        page.goto(f"{WEB}/profile/2")
        if not size_name:
            shot(page, "profile")
        page.get_by_role("button", name="Sign in to book").first.click()
        page.fill("#name", "Casey Client")
        page.fill("#email", f"casey.{uuid.uuid4().hex[:6]}@example.com")
        page.get_by_role("button", name=re.compile("Email me a sign-in link")).click()
        page.click("#magic-link")
        page.wait_for_url(re.compile(r"/book/"))
        page.get_by_role("button", name="Book now").click()
        page.wait_for_url(re.compile(r":8001/book/"))
        if size_name:
            shot(page, "sandbox-calendly-phone")
        page.locator(".slot span").last.click()
        page.get_by_role("button", name="Schedule event").click()
        page.wait_for_url(re.compile(r":8002/pay/cs_"))
        if not size_name:
            shot(page, "sandbox-stripe-checkout")
        page.get_by_role("button", name="Cancel and go back").click()
        page.get_by_text("You left the payment page").wait_for()
        shot(page, f"back-from-stripe{size_name}")
        page.get_by_role("link", name=re.compile(r"^Pay .* now$")).click()
        page.wait_for_url(re.compile(r":8002/pay/cs_"))
        page.get_by_role("button", name=re.compile(r"^Pay ")).first.click()
        page.get_by_text("You're booked").wait_for(timeout=30_000)
        shot(page, f"success{size_name}")
        page.get_by_role("link", name="My bookings").first.click()
        page.wait_for_url(re.compile(r"/my-bookings"))
        shot(page, f"my-bookings{size_name}")
        page.get_by_role("link", name="Cancel…").first.click()
        shot(page, f"cancel-preview{size_name}")
        page.get_by_role("button", name=re.compile(r"^Cancel and refund")).click()
        page.wait_for_url(re.compile(r"/canceled"))
        shot(page, f"canceled-refund{size_name}")
        if not size_name:  # a second booking, left at Stripe's page and released
            page.goto(f"{WEB}/profile/3")
            page.get_by_role("button", name="Book now").first.click()
            page.wait_for_url(re.compile(r":8001/book/"))
            page.locator(".slot span").first.click()
            page.get_by_role("button", name="Schedule event").click()
            page.wait_for_url(re.compile(r":8002/pay/cs_"))
            page.get_by_role("button", name="Cancel and go back").click()
            page.get_by_role("button", name="Release my time now").click()
            page.get_by_text("This booking was canceled").wait_for()
            shot(page, "released")
            page.goto(f"{WEB}/no-such-page")
            shot(page, "not-found")
        context.close()


def mail_pages(browser, shot: Shooter) -> None:
    context = browser.new_context(viewport=DESKTOP, timezone_id=ZONE)
    page = context.new_page()
    time.sleep(4)  # the worker sends within a couple of ticks
    page.goto(f"{MAIL}/")
    shot(page, "mail-catcher")
    page.get_by_role("link", name=re.compile(r"^Confirmed:")).first.click()
    shot(page, "mail-confirmation")
    context.close()


def _sign_in_dashboard(page, email: str, password: str) -> None:
    page.goto(DASHBOARD, wait_until="domcontentloaded")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    _signed_in(page)


def _signed_in(page) -> None:
    """The app's frame is up: the sidebar's links (hidden on a phone until opened, but there)."""
    page.locator('[data-testid="stSidebarNav"]').wait_for(state="attached", timeout=30_000)
    page.wait_for_timeout(2500)


def _go_to(page, link: str) -> None:
    opener = page.locator('[data-testid="stExpandSidebarButton"]')
    if opener.is_visible():
        opener.click()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=link, exact=True).click()
    page.wait_for_timeout(2500)
    close = page.locator('[data-testid="stSidebarCollapseButton"]')
    if page.viewport_size["width"] < 600 and close.is_visible():
        close.click()


def _click_first_row(page, table: int = 0) -> None:
    grid = page.locator('[data-testid="stDataFrame"]').nth(table)
    grid.scroll_into_view_if_needed()
    grid.wait_for(timeout=20_000)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 16, box["y"] + 35 + 17)  # the first row's selection marker
    page.wait_for_timeout(2500)
    opened = page.locator('[data-testid="stMain"] h3').last  # the booking, opened below the table
    if opened.count():
        opened.scroll_into_view_if_needed(timeout=5_000)
    page.wait_for_timeout(500)


def dashboard_pages(browser, shot: Shooter) -> None:
    for size_name, size in (("", DESKTOP), ("-phone", PHONE)):
        context = browser.new_context(viewport=size, timezone_id=ZONE, device_scale_factor=1)
        context.set_default_timeout(30_000)
        page = context.new_page()
        _sign_in_dashboard(page, "admin@demo.test", "demo-admin-pass")
        page.reload()  # stays signed in
        _signed_in(page)
        shot(page, f"dashboard-overview{size_name}", full_page=False)
        _go_to(page, "Bookings")
        _click_first_row(page)
        shot(page, f"dashboard-booking-opened{size_name}", full_page=False)
        if not size_name:
            _go_to(page, "Refunds")
            shot(page, "dashboard-refunds", full_page=False)
            _go_to(page, "Builders and users")
            shot(page, "dashboard-people", full_page=False)
        context.close()

        context = browser.new_context(viewport=size, timezone_id=ZONE, device_scale_factor=1)
        context.set_default_timeout(30_000)
        page = context.new_page()
        _sign_in_dashboard(page, "ada@demo.test", "demo-builder-pass")
        page.wait_for_timeout(2500)
        shot(page, f"builder-week{size_name}", full_page=False)
        _go_to(page, "Bookings")
        _click_first_row(page)
        shot(page, f"builder-booking-opened{size_name}", full_page=False)
        if not size_name:
            _go_to(page, "Earnings")
            shot(page, "builder-earnings", full_page=False)
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--only", choices=["client", "mail", "dashboard"], help="one walk instead of all three")
    args = parser.parse_args(argv)
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shot = Shooter(args.out)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        walks = (("client", client_pages), ("mail", mail_pages), ("dashboard", dashboard_pages))
        for name, step in (w for w in walks if args.only in (None, w[0])):
            print(f"{name}:", flush=True)
            try:
                step(browser, shot)
            except PlaywrightError as error:
                print(f"error: the {name} walk stopped: {str(error).splitlines()[0]} (is `make run` up?)",
                      file=sys.stderr)
                return 2
        browser.close()
    print(f"done: {shot.count} screenshots in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
