"""The dashboard's admin pages guard themselves, not only the navigation.

`streamlit_app.py` leaves admin pages out of a builder's navigation; each admin page also calls
`layout.page(..., admin_only=True)`, which stops a builder with "This page is for admins." before
anything is read or drawn. Both layers are checked here through Streamlit's AppTest: a builder
cannot switch to an admin page; an admin page run directly for a builder (or for nobody) shows
nothing of the marketplace; a session that stops being an admin loses the admin page it was on.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.models import utcnow
from core.auth import authenticate
from core.states import BookingStatus as S
from tests.dashboard_helpers import (
    ADMIN_EMAIL, ADMIN_PASSWORD, BUILDER_PASSWORD, make_admin_and_builders, make_booking, make_client,
    make_failed_webhook, make_outbox, make_session_type,
)

APP = "../dashboard/streamlit_app.py"
ADMIN_PAGES = {"admin_overview.py": "Overview", "admin_pending.py": "Pending payments",
               "admin_bookings.py": "Bookings", "admin_refunds.py": "Refunds", "admin_operations.py": "Failures"}


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches(streamlit_caches_cleared):
    """Streamlit's caches leak between AppTest runs in one process (conftest clears them)."""


@pytest.fixture
def shop(engine):
    """An admin, builders Ada and Bo, Bo's client with a paid and a pending booking, a failure."""
    with session_scope(engine) as s:
        _ada, bo = make_admin_and_builders(s)
        review = make_session_type(s, bo, name="Secret review", price_cents=8000, currency="EUR")
        zed = make_client(s, name="Zed Secretclient", email="zed@example.com")
        now = utcnow()
        paid = make_booking(s, review, zed, S.CONFIRMED, created_at=now - timedelta(days=1),
                            start_time=now + timedelta(days=4), paid_at=now - timedelta(days=1))
        make_booking(s, review, zed, S.PENDING_PAYMENT, created_at=now - timedelta(minutes=5),
                     start_time=now + timedelta(days=2))
        make_outbox(s, paid, kind="stripe_refund", status="failed", error="card_declined")
        make_failed_webhook(s)
    return {"paid": paid.id}


def _viewer(engine, email, password):
    with session_scope(engine, read_only=True) as s:
        return authenticate(s, email, password)


def _everything_shown(at: AppTest) -> str:
    parts = [t.value for t in at.title] + [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [str(m.value) for m in at.metric] + [str(d.value) for d in at.dataframe]
    return "\n".join(parts)


def _nothing_of_the_marketplace(at: AppTest, shop) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.dataframe and not at.metric and not at.button and not at.selectbox
    shown = _everything_shown(at)
    assert "Zed" not in shown and "Secret review" not in shown and shop["paid"] not in shown


@pytest.mark.parametrize("page", sorted(ADMIN_PAGES))
def test_an_admin_page_run_for_a_builder_stops_at_its_guard(engine, shop, page):
    at = AppTest.from_file(f"../dashboard/app_pages/{page}", default_timeout=30)
    at.session_state["viewer"] = _viewer(engine, "ada@test", BUILDER_PASSWORD)
    at.run()
    assert [e.value for e in at.error] == ["This page is for admins."]
    assert ADMIN_PAGES[page] not in [t.value for t in at.title]
    _nothing_of_the_marketplace(at, shop)


@pytest.mark.parametrize("page", sorted(ADMIN_PAGES))
def test_an_admin_page_run_for_nobody_shows_nothing(engine, shop, page):
    at = AppTest.from_file(f"../dashboard/app_pages/{page}", default_timeout=30).run()
    assert not at.title and not at.error
    _nothing_of_the_marketplace(at, shop)


@pytest.mark.parametrize("page", sorted(ADMIN_PAGES))
def test_the_same_page_opens_for_an_admin(engine, shop, page):
    """The guard is what stops the builder: the page itself works for an admin."""
    at = AppTest.from_file(f"../dashboard/app_pages/{page}", default_timeout=30)
    at.session_state["viewer"] = _viewer(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert [t.value for t in at.title][:1] == [ADMIN_PAGES[page]]


def test_a_builder_cannot_switch_to_an_admin_page(engine, shop):
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["viewer"] = _viewer(engine, "ada@test", BUILDER_PASSWORD)
    at.run()
    assert at.title[0].value == "Upcoming sessions"
    for page in ADMIN_PAGES:
        with pytest.raises(ValueError):
            at.switch_page(f"app_pages/{page}")
    assert at.title[0].value == "Upcoming sessions"


def test_a_session_that_stops_being_admin_loses_the_admin_page(engine, shop):
    """An admin on the Failures page; the same session becomes a builder's: the next run does not
    draw the admin page (neither its title nor its data)."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["viewer"] = _viewer(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    at.run()
    at.switch_page("app_pages/admin_operations.py").run()
    assert at.title[0].value == "Failures" and "card_declined" in _everything_shown(at)

    at.session_state["viewer"] = _viewer(engine, "ada@test", BUILDER_PASSWORD)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [t.value for t in at.title]
    assert not set(titles) & set(ADMIN_PAGES.values()) - {"Bookings"}, titles
    shown = _everything_shown(at)
    assert "card_declined" not in shown and "Zed" not in shown
