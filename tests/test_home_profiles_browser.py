"""The home page and a profile in a real browser (system Chromium), at desktop and phone size, with
the demo builders: avatars drawn, bios and price ranges shown, nothing wider than the screen.
Screenshots go to test-artifacts/browser/ (h6-*.png)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.demo_builders import DEMO_BUILDERS
from core.models import Builder
from tests.browser_support import ARTIFACTS, chromium  # noqa: F401  (chromium: the fixture)
from tests.test_browser_flow import DESKTOP, PHONE
from tests.test_home_profiles import demo_live  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_home_and_profile_show_each_builder_and_fit_the_screen(chromium, demo_live, size):
    viewport = DESKTOP if size == "desktop" else PHONE
    context = chromium.new_context(viewport=viewport, device_scale_factor=1, is_mobile=size == "phone",
                                   has_touch=size == "phone")
    context.set_default_timeout(10_000)
    page = context.new_page()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.goto(demo_live.web + "/")
        cards = page.locator("li.builder-card")
        assert cards.count() == len(DEMO_BUILDERS)
        for index in range(cards.count()):
            card = cards.nth(index)
            avatar = card.locator(".avatar").bounding_box()
            assert avatar and avatar["width"] >= 40 and abs(avatar["width"] - avatar["height"]) < 1
            assert re.search(r"(from .+ to .+|^\D?[\d,.]+$)", card.locator(".builder-price").inner_text())
            assert card.locator(".builder-bio").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        text = page.inner_text("body")
        for demo in DEMO_BUILDERS:
            assert demo.name in text and demo.bio in text and f"Time zone: {demo.timezone}" in text
        page.screenshot(path=str(ARTIFACTS / f"h6-home-{size}.png"), full_page=True)

        yuki = next(demo for demo in DEMO_BUILDERS if demo.currency == "JPY")
        page.get_by_role("link", name=f"See sessions with {yuki.name}").click()
        page.wait_for_load_state("load")
        with session_scope(demo_live.engine, read_only=True) as s:
            yuki_id = s.execute(select(Builder.id).where(Builder.email == yuki.email)).scalar_one()
        assert page.url == f"{demo_live.web}/profile/{yuki_id}"
        text = page.inner_text("body")
        assert yuki.bio in text and "¥5,000" in text and "¥25,000" in text
        head = page.locator(".profile-head .avatar").bounding_box()
        first_session = page.locator(".card").first.bounding_box()
        assert head and first_session and head["y"] < first_session["y"]  # avatar and bio above the sessions
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.screenshot(path=str(ARTIFACTS / f"h6-profile-{size}.png"), full_page=True)
    finally:
        context.close()
