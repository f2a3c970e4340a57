"""The home page and builder profiles: avatar, name, bio, time zone and price range for every builder,
escaped, in one query however many builders there are; every demo builder's profile books through
the sandbox Calendly."""
from __future__ import annotations

import re
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import event, select

from core.avatars import AVATAR_COLOURS, avatar_for
from core.db import session_scope
from core.demo_builders import DEMO_BUILDERS
from core.demo_data import generate
from core.models import Builder, SessionType
from core.money import format_amount
from core.services import scheduling
from tests.live_system import LiveSystem
from tests.servers import free_port, serve

def _text(value: str) -> str:
    """`value` as the page's autoescaping writes it."""
    return str(escape(value))


HOSTILE_BIO = '<script>alert("bio")</script> & <b>bold</b>'


@pytest.fixture
def web(engine):
    from webhook_service.app import create_app

    return TestClient(create_app())


def _add_builder(engine, name: str, *, bio: str | None = None, zone: str = "UTC",
                 prices: tuple[tuple[int, str], ...] = ()) -> int:
    with session_scope(engine) as s:
        builder = Builder(name=name, email=f"{re.sub(r'[^a-z0-9]', '', name.lower()) or 'x'}@example.com",
                          timezone=zone, bio=bio)
        s.add(builder)
        s.flush()
        for n, (amount, currency) in enumerate(prices):
            s.add(SessionType(builder_id=builder.id, calendly_event_type_uri=f"https://cal.test/event_types/{name}-{n}",
                              name=f"Session {n}", duration_minutes=30, price_cents=amount, currency=currency))
        return builder.id


def _card(page_html: str, builder_id: int) -> str:
    """The home page's card of one builder (from its avatar to the end of its list item)."""
    link = page_html.index(f'href="/profile/{builder_id}"')
    return page_html[page_html.rindex("<li", 0, link):page_html.index("</li>", link)]


def test_home_shows_each_demo_builder_with_avatar_bio_zone_and_price_range(engine, web):
    generate(engine, bookings=40)
    answer = web.get("/")
    assert answer.status_code == 200
    with session_scope(engine, read_only=True) as s:
        builders = {b.email: b.id for b in s.execute(select(Builder)).scalars()}
    for demo in DEMO_BUILDERS:
        card = _card(answer.text, builders[demo.email])
        prices = sorted(demo.prices.values())
        avatar = avatar_for(demo.name)
        assert _text(demo.name) in card and _text(demo.bio) in card, demo.name
        assert f"Time zone: {demo.timezone}" in card
        assert f'class="avatar c{avatar.colour}"' in card and f">{avatar.initials}</span>" in card
        expected = (f"from {format_amount(prices[0], demo.currency)} to {format_amount(prices[-1], demo.currency)}")
        assert _text(expected) in card, (demo.name, card)
    assert "from $49.00 to $249.00" in answer.text          # Ada
    assert "from ¥5,000 to ¥25,000" in answer.text          # Yuki: yen have no decimals
    assert "from £60.00 to £95.00" in answer.text and "from €25.00 to €210.00" in answer.text
    names = re.findall(r'<h2><a href="/profile/\d+">([^<]+)</a></h2>', answer.text)
    assert names == sorted(names) and len(names) == len(DEMO_BUILDERS)


def test_one_price_shows_alone_and_two_currencies_both_inactive_types_none(engine, web):
    single = _add_builder(engine, "Solo Yen", bio="One price.", zone="Asia/Tokyo", prices=((5000, "JPY"),))
    both = _add_builder(engine, "Two Money", prices=((4900, "USD"), (24900, "USD"), (4500, "EUR")))
    empty = _add_builder(engine, "No Sessions")
    with session_scope(engine) as s:
        s.add(SessionType(builder_id=both, calendly_event_type_uri="https://cal.test/event_types/off",
                          name="Retired", duration_minutes=30, price_cents=99900, currency="USD", active=False))
    page = web.get("/").text
    assert "¥5,000" in _card(page, single) and "from" not in _card(page, single).split("builder-price")[1]
    assert "€45.00 · from $49.00 to $249.00" in _card(page, both)  # the retired $999 type does not count
    assert "No sessions yet" in _card(page, empty)
    assert "Time zone: Asia/Tokyo" in _card(page, single) and "Time zone: UTC" in _card(page, empty)


def test_a_hostile_bio_and_name_show_as_text(engine, web):
    builder_id = _add_builder(engine, "<img src=x onerror=alert(1)>", bio=HOSTILE_BIO, prices=((4900, "USD"),))
    page = web.get("/").text
    assert _text(HOSTILE_BIO) in page and "<script>alert" not in page and "<b>bold" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page
    assert 'class="avatar c' in _card(page, builder_id) and ">IO</span>" in _card(page, builder_id)


def test_home_reads_builders_in_one_query_and_pages_them(engine, web):
    ids = [_add_builder(engine, f"Builder {n:02d}", bio=f"Bio {n}", prices=((1000 + n, "USD"), (2000, "EUR")))
           for n in range(30)]
    statements = []

    def record(conn, cursor, statement, *args):
        if "builders" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        first = web.get("/")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert first.status_code == 200 and len(statements) == 1, statements
    assert first.text.count('class="card builder-card"') == 24
    assert 'href="/?page=2"' in first.text and "?page=0" not in first.text
    second = web.get("/?page=2").text
    assert second.count('class="card builder-card"') == 6 and 'href="/?page=1"' in second
    assert "Builder 29" in second and "Builder 29" not in first.text and 'href="/?page=3"' not in second
    assert f'href="/profile/{ids[0]}"' in first.text
    for odd in ("abc", "-1", "0", "1e9", "²", "99999999999999"):
        answer = web.get("/", params={"page": odd})
        assert answer.status_code == 200 and answer.text.count('class="card builder-card"') in (24, 0), odd
    beyond = web.get("/?page=50")
    assert beyond.status_code == 200 and "No builders on this page" in beyond.text and 'href="/"' in beyond.text


def test_avatar_rule_initials_and_stable_colour():
    assert avatar_for("Ada Lovelace").initials == "AL"
    assert avatar_for("Mateo Álvarez").initials == "MÁ"
    assert avatar_for("Cher").initials == "C"
    assert avatar_for("  grace   brewster murray hopper ").initials == "GH"
    assert avatar_for("<>  !!").initials == "?" and avatar_for("").initials == "?" and avatar_for(None).initials == "?"
    assert avatar_for("Ada Lovelace") == avatar_for("ada lovelace ")
    assert {avatar_for(name).colour for name in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")} <= set(
        range(AVATAR_COLOURS))
    assert len({avatar_for(demo.name).colour for demo in DEMO_BUILDERS}) >= 4


@pytest.fixture
def demo_live(engine, settings_env):
    """The web service and both sandbox stand-ins on free ports, with the demo builders (not the
    `live` fixture's own Ada)."""
    from sandbox.calendly import standin as calendly_standin
    from sandbox.stripe import standin as stripe_standin
    from webhook_service.app import create_app

    ports = {name: free_port() for name in ("web", "calendly", "stripe")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    settings = settings_env(public_base_url=urls["web"], calendly_api_base=urls["calendly"],
                            stripe_api_base=urls["stripe"], run_outbox_after_request="true")
    scheduling.EVENT_TYPES.clear()
    generate(engine, bookings=40)
    with ExitStack() as stack:
        stack.enter_context(serve(calendly_standin.create_app(
            public_url=urls["calendly"], webhook_url=f"{urls['web']}/api/webhooks/calendly",
            signing_key=settings.calendly_webhook_signing_key,
            redirect_url=f"{urls['web']}/payment/calendly-return"), ports["calendly"]))
        stack.enter_context(serve(stripe_standin.create_app(
            secret_key=settings.stripe_secret_key, webhook_url=f"{urls['web']}/api/webhooks/stripe",
            webhook_secret=settings.stripe_webhook_secret, public_url=urls["stripe"]), ports["stripe"]))
        stack.enter_context(serve(create_app(), ports["web"]))
        yield LiveSystem(urls["web"], urls["calendly"], urls["stripe"], engine, settings)
    scheduling.EVENT_TYPES.clear()


def test_every_demo_builders_profile_shows_bio_and_avatar_and_books_through_calendly(demo_live):
    with session_scope(demo_live.engine, read_only=True) as s:
        builders = {b.email: b.id for b in s.execute(select(Builder)).scalars()}
    demo_live.builder_id = builders[DEMO_BUILDERS[0].email]
    browser = demo_live.signed_in_client("eve@example.com", "Eve Example")
    for demo in DEMO_BUILDERS:
        demo_live.builder_id = builders[demo.email]
        profile = browser.get(f"{demo_live.web}/profile/{demo_live.builder_id}")
        assert profile.status_code == 200, demo.name
        text = profile.text
        assert _text(demo.bio) in text and f"Time zone: {demo.timezone}" in text
        avatar = avatar_for(demo.name)
        assert f'class="avatar c{avatar.colour} large"' in text and f">{avatar.initials}</span>" in text
        assert text.index(_text(demo.bio)) < text.index("Book now")  # above the session list
        bookable = re.findall(r'name="event_type_id" value="([^"]+)"', text)
        assert len(bookable) == len(demo.prices), demo.name
        for price in demo.prices.values():
            assert _text(format_amount(price, demo.currency)) in text
        demo_live.event_type_ids = bookable
        booking_id = demo_live.book(browser, type_index=len(bookable) - 1)
        assert demo_live.status(booking_id) == "PENDING_PAYMENT", demo.name
