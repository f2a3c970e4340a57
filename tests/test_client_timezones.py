"""Times on the client pages are in the client's zone, named: the zone they gave Calendly, else
their browser's (the `tz` cookie /static/zone.js writes), else UTC. A cookie is a hint from
outside: only a real IANA zone of bounded length counts. TestClient on the app, real database."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from core.timezones import client_zone, known_zone
from tests.my_bookings_helpers import HTML, browser, paid_booking, sign_in, text_of, web  # noqa: F401
from webhook_service.rendering import local_time

EMAIL = "zoe@example.com"
START = datetime(2031, 7, 1, 15, 30, tzinfo=timezone.utc)  # 11:30 in New York (EDT), 00:30 next day in Tokyo


@pytest.mark.parametrize("name", ["America/New_York", "Europe/London", "Asia/Kolkata", "UTC",
                                  "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_real_zones_are_known(name):
    assert known_zone(name) == name


@pytest.mark.parametrize("name", [None, "", 5, "Mars/Olympus_Mons", "localtime", "posixrules", "../../etc/passwd",
                                  "/etc/localtime", "America/New_York\x00", "America/New_York; Path=/",
                                  "A" * 65, "America/" + "x" * 200, "america/new_york ", "<script>"])
def test_anything_else_is_not_a_zone(name):
    assert known_zone(name) is None


def test_the_invitee_zone_comes_first_then_the_browser_then_utc():
    assert client_zone("Asia/Tokyo", "America/New_York") == "Asia/Tokyo"
    assert client_zone(None, "America/New_York") == "America/New_York"
    assert client_zone("Not/A_Zone", "America/New_York") == "America/New_York"
    assert client_zone(None, "bogus") == "UTC"
    assert client_zone(None, None) == "UTC"


def test_my_bookings_shows_times_in_the_browser_zone_when_calendly_gave_none(engine, web):
    paid_booking(engine, EMAIL, start_time=START, invitee_timezone=None)
    client = sign_in(browser(web, "America/New_York"), EMAIL)

    page = text_of(client.get("/my-bookings", headers=HTML).text)

    assert "Tuesday 01 July 2031, 11:30 (America/New_York)" in page
    assert local_time(START, "America/New_York") in page


def test_the_zone_the_client_booked_in_wins_over_the_browser(engine, web):
    paid_booking(engine, EMAIL, start_time=START, invitee_timezone="Asia/Tokyo")
    client = sign_in(browser(web, "America/New_York"), EMAIL)

    page = text_of(client.get("/my-bookings", headers=HTML).text)

    assert "Wednesday 02 July 2031, 00:30 (Asia/Tokyo)" in page
    assert "(America/New_York)" not in page.split("Upcoming", 1)[1]


@pytest.mark.parametrize("cookie", [None, "Mars/Olympus_Mons", "localtime", "A" * 300, "America%2FNew_York"])
def test_without_a_usable_browser_zone_times_are_utc_and_say_so(engine, web, cookie):
    paid_booking(engine, EMAIL, start_time=START, invitee_timezone=None)
    client = sign_in(browser(web, cookie), EMAIL)

    answer = client.get("/my-bookings", headers=HTML)

    assert answer.status_code == 200
    assert "Tuesday 01 July 2031, 15:30 (UTC)" in text_of(answer.text)


def test_pages_we_do_not_own_get_the_browser_zone_too(engine, web):
    """The booking page (payment_pages) calls local_time_iso(value, invitee zone): the rendering layer
    fills in the browser's zone, no page decides it again."""
    booking_id = paid_booking(engine, EMAIL, start_time=START, invitee_timezone=None)
    client = sign_in(browser(web, "America/New_York"), EMAIL)

    page = text_of(client.get(f"/payment/{booking_id}", headers=HTML).text)

    assert "You're booked" in page
    assert "11:30 (America/New_York)" in page


def test_a_page_that_fell_back_tells_the_browser_script_which_zone_it_used(engine, web):
    paid_booking(engine, EMAIL, start_time=START, invitee_timezone=None)
    client = sign_in(browser(web), EMAIL)
    assert 'id="zone-fallback" hidden data-zone="UTC"' in client.get("/my-bookings", headers=HTML).text
    client.cookies.set("tz", "America/New_York", domain="testserver.local")
    assert 'data-zone="America/New_York"' in client.get("/my-bookings", headers=HTML).text


def test_every_page_loads_the_zone_script_from_our_own_files(engine, web):
    client = browser(web)
    page = client.get("/login", headers=HTML)
    assert '<script src="/static/zone.js" defer></script>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = client.get("/static/zone.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "resolvedOptions().timeZone" in script.text and "SameSite=Lax" in script.text
