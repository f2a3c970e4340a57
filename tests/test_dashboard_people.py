"""The dashboard's app shell through Streamlit's AppTest, on the test database: signing in opens a
server-side session and signing out ends it; admins add builders, users and prices (a builder's
Calendly event types from the sandbox stand-in); a person chooses their time zone."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.auth import authenticate
from core.config import SANDBOX_SECRETS
from core.db import session_scope
from core.models import Builder, DashboardSession, DashboardUser, SessionType
from core.services import people
from devtools.processes import free_port
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, BUILDER_PASSWORD, make_admin_and_builders
from tests.servers import serve

APP = "../dashboard/streamlit_app.py"


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches(streamlit_caches_cleared):
    """Streamlit's caches leak between AppTest runs in one process (conftest clears them)."""


@pytest.fixture
def people_db(engine):
    with session_scope(engine) as s:
        ada, _bo = make_admin_and_builders(s, ada_timezone="Europe/London")
        return {"ada": ada.id}


def signed_in(engine, email: str, password: str, page: str | None = None) -> AppTest:
    with session_scope(engine, read_only=True) as s:
        viewer = authenticate(s, email, password)
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["viewer"] = viewer
    at.run()
    if page:
        at.switch_page(page).run()
    return no_exception(at)


def no_exception(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def field(widgets, name: str):
    """A form field by its key's name: the key ends in the form's round (`name_0`, then `name_1`...)."""
    return next(w for w in widgets if w.key and w.key.rsplit("_", 1)[0] == name)


def texts(elements) -> str:
    return " | ".join(e.value for e in elements)


# ---------------------------------------------------------------- sign-in opens a session
def test_signing_in_opens_a_server_side_session_and_signing_out_revokes_it(engine, people_db):
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert "bookings dashboard of the marketplace" in texts(at.markdown)
    at.text_input(key="sign_in_email").input("ada@test")
    at.text_input(key="sign_in_password").input(BUILDER_PASSWORD)
    no_exception(at.button[0].click().run())
    assert at.session_state["viewer"].email == "ada@test"
    session_id = at.session_state["dashboard_session_id"]
    with session_scope(engine, read_only=True) as s:
        row = s.execute(select(DashboardSession)).scalar_one()
        assert row.user_id == s.execute(select(DashboardUser.id).where(DashboardUser.email == "ada@test")).scalar_one()
        assert row.revoked_at is None and session_id not in row.session_hash

    at.button(key="sign_out").click().run()
    no_exception(at)
    assert "viewer" not in at.session_state
    assert at.title[0].value == "Sign in"
    with session_scope(engine, read_only=True) as s:
        assert s.execute(select(DashboardSession.revoked_at)).scalar_one() is not None


def test_a_wrong_password_opens_no_session(engine, people_db):
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="sign_in_email").input("ada@test")
    at.text_input(key="sign_in_password").input("wrong-password")
    at.button[0].click().run()
    assert "Wrong email or password." in texts(at.error)
    with session_scope(engine, read_only=True) as s:
        assert s.execute(select(DashboardSession)).first() is None


# ---------------------------------------------------------------- admins add builders and users
def test_admin_adds_a_builder_and_the_form_empties(engine, people_db):
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD, "app_pages/admin_people.py")
    field(at.text_input, "new_builder_name").input("Grace Hopper")
    field(at.text_input, "new_builder_email").input("Grace@Example.test")
    field(at.selectbox, "new_builder_timezone").select("America/New_York")
    field(at.text_area, "new_builder_bio").input("Compilers, COBOL and debugging.")
    no_exception(at.button(key="FormSubmitter:add_builder_form-Add builder").click().run())

    assert "Builder **Grace Hopper** (grace@example.test, America/New_York) added." in texts(at.success)
    assert field(at.text_input, "new_builder_name").value == ""
    assert field(at.text_input, "new_builder_email").value == ""
    with session_scope(engine, read_only=True) as s:
        grace = s.execute(select(Builder).where(Builder.email == "grace@example.test")).scalar_one()
        assert (grace.name, grace.timezone, grace.bio) == ("Grace Hopper", "America/New_York",
                                                           "Compilers, COBOL and debugging.")
    assert any("Grace Hopper" in option for option in field(at.selectbox, "new_user_builder").options)


@pytest.mark.parametrize("email, message", [
    ("ada@test", "a builder with email ada@test already exists"),
    ("not an email", "not a valid email address"),
])
def test_a_refused_builder_says_why_and_keeps_what_was_typed(engine, people_db, email, message):
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD, "app_pages/admin_people.py")
    field(at.text_input, "new_builder_name").input("Ada Again")
    field(at.text_input, "new_builder_email").input(email)
    no_exception(at.button(key="FormSubmitter:add_builder_form-Add builder").click().run())
    assert message in texts(at.error) and texts(at.error).startswith("Not added:")
    assert field(at.text_input, "new_builder_name").value == "Ada Again"
    with session_scope(engine, read_only=True) as s:
        assert len(s.execute(select(Builder)).all()) == 2


def test_admin_adds_a_builder_account_with_a_password_shown_once(engine, people_db):
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD, "app_pages/admin_people.py")
    field(at.text_input, "new_user_email").input("ada.second@test")
    field(at.selectbox, "new_user_role").select("builder")
    field(at.selectbox, "new_user_builder").select(people_db["ada"])
    no_exception(at.button(key="FormSubmitter:add_user_form-Add user").click().run())

    message = texts(at.success)
    assert "Dashboard user **ada.second@test** (builder) added." in message and "shown only now" in message
    password = message.split("`")[-2]
    with session_scope(engine, read_only=True) as s:
        viewer = authenticate(s, "ada.second@test", password)
    assert (viewer.role, viewer.builder_id) == ("builder", people_db["ada"])
    assert field(at.text_input, "new_user_email").value == ""
    at.run()  # the password is not shown again
    assert password not in texts(at.success)


def test_a_builder_account_without_its_builder_is_refused_with_the_fix(engine, people_db):
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD, "app_pages/admin_people.py")
    field(at.text_input, "new_user_email").input("someone@test")
    field(at.selectbox, "new_user_role").select("builder")
    field(at.text_input, "new_user_password").input("long-enough-pass")
    no_exception(at.button(key="FormSubmitter:add_user_form-Add user").click().run())
    assert "a builder account needs the builder it belongs to" in texts(at.error)
    assert "Choose their builder in the list." in texts(at.error)

    field(at.selectbox, "new_user_role").select("admin")
    field(at.text_input, "new_user_password").input("short")
    at.button(key="FormSubmitter:add_user_form-Add user").click().run()
    assert "at least 8 characters" in texts(at.error)


def test_builders_cannot_reach_the_people_page(engine, people_db):
    at = signed_in(engine, "ada@test", BUILDER_PASSWORD)
    with pytest.raises(ValueError):  # not in a builder's navigation
        at.switch_page("app_pages/admin_people.py")


# ---------------------------------------------------------------- a person's time zone
def test_a_builder_chooses_their_time_zone(engine, people_db):
    at = signed_in(engine, "ada@test", BUILDER_PASSWORD, "app_pages/my_settings.py")
    assert at.selectbox(key="settings_timezone").value == "Europe/London"
    at.selectbox(key="settings_timezone").select("Asia/Tokyo")
    no_exception(at.button(key="FormSubmitter:settings_form-Save").click().run())
    assert "Times are now shown in **Asia/Tokyo**" in texts(at.success)
    assert at.session_state["viewer"].timezone == "Asia/Tokyo"
    with session_scope(engine, read_only=True) as s:
        assert s.execute(select(DashboardUser.timezone).where(DashboardUser.email == "ada@test")).scalar_one() == "Asia/Tokyo"
        assert authenticate(s, "ada@test", BUILDER_PASSWORD).timezone == "Asia/Tokyo"


def test_an_admins_chosen_zone_is_where_their_times_start(engine, people_db):
    with session_scope(engine) as s:
        admin = s.execute(select(DashboardUser).where(DashboardUser.email == ADMIN_EMAIL)).scalar_one()
        people.set_timezone(s, admin.id, "Australia/Perth")
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert at.sidebar.selectbox(key="admin_timezone").value == "Australia/Perth"


# ---------------------------------------------------------------- prices, builder chosen by name
@pytest.fixture
def calendly_standin():
    from sandbox.calendly.standin import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(public_url=base, webhook_url=None, signing_key=SANDBOX_SECRETS["calendly_webhook_signing_key"],
                     redirect_url=None)
    with serve(app, port):
        yield base


def test_admin_prices_a_calendly_event_type_of_a_builder_chosen_by_name(engine, people_db, settings_env,
                                                                        calendly_standin):
    settings_env(CALENDLY_API_BASE=calendly_standin)
    calendly_user = people.calendly_user_for_token("sandbox-linus")
    with session_scope(engine) as s:
        linus = people.add_builder(s, name="Linus", email="linus@example.test", calendly_token="sandbox-linus",
                                   calendly_user=calendly_user)
        linus_id = linus.id
    at = signed_in(engine, ADMIN_EMAIL, ADMIN_PASSWORD, "app_pages/prices.py")
    chooser = at.selectbox(key="prices_builder")
    assert chooser.options == ["Ada (ada@test)", "Bo (bo@test)", "Linus (linus@example.test)"]  # names, not ids
    chooser.select(linus_id).run()
    no_exception(at)
    event_types = field(at.selectbox, "new_price_event_type")
    assert event_types.options, "the stand-in's event types are listed"
    field(at.text_input, "new_price_amount").input("49.50")
    field(at.text_input, "new_price_currency").input("eur")
    no_exception(at.button(key="FormSubmitter:new_price_form-Add price").click().run())

    assert "now costs €49.50. Clients can book it now." in texts(at.success)
    with session_scope(engine, read_only=True) as s:
        priced = s.execute(select(SessionType).where(SessionType.builder_id == linus_id)).scalar_one()
        assert (priced.price_cents, priced.currency) == (4950, "EUR")

    field(at.text_input, "new_price_amount").input("-3")
    at.button(key="FormSubmitter:new_price_form-Add price").click().run()
    assert "Not priced: the price must be more than zero" in texts(at.error)


def test_a_builder_without_calendly_is_told_what_to_do_on_the_prices_page(engine, people_db):
    with session_scope(engine) as s:
        s.get(Builder, people_db["ada"]).calendly_token_encrypted = None
    at = signed_in(engine, "ada@test", BUILDER_PASSWORD, "app_pages/prices.py")
    assert "has no Calendly account connected yet" in texts(at.info)
