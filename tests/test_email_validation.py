"""Email addresses are checked by one real validator wherever they enter (issue 9): the magic-link
form, the seed scheduling-link API, the operator's CLI, and the client identity itself.

`a@b.c,c@d.e`, `\\xff@x.test` and `@` were accepted, one of them stored as a client identity."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from core.db import session_scope
from core.emails import InvalidEmail, normalize_email
from core.models import Booking, Client, DashboardUser, LoginToken, Notification
from core.services import catalog
from core.services.booking_service import get_or_create_client
from tests.factories import count
from tests.live_system import _csrf
from tests.cli_runner import run_cli

REPO_ROOT = Path(__file__).resolve().parent.parent
BAD = ["a@b.c,c@d.e", "\xff@x.test", "@", "a@", "@example.com", "a b@example.com", "a@b@example.com",
       "<script>@example.com", '"quoted"@example.com', "casey@localhost", "a@example.com\r\nBcc: x@example.com",
       "casey@example..com", "x" * 300 + "@example.com"]


@pytest.mark.parametrize("address", BAD)
def test_the_one_check_refuses_what_is_not_one_mailbox(settings_env, address):
    settings_env()
    with pytest.raises(InvalidEmail, match="email address"):
        normalize_email(address)


def test_the_one_check_normalises_what_it_accepts(settings_env):
    settings_env()
    assert normalize_email("  Casey.O'Brien+tag@Example.COM ") == "casey.o'brien+tag@example.com"
    assert normalize_email("ada@demo.test") == "ada@demo.test"  # sandbox demo data uses .test
    assert normalize_email("user@bücher.example") == "user@xn--bcher-kva.example"  # domains as IDNA


def test_the_reserved_test_domain_is_refused_outside_the_sandbox(settings_env):
    settings_env(sandbox="false", calendly_webhook_signing_key="k" * 32, stripe_secret_key="sk_test_x",
                 stripe_webhook_secret="whsec_x", admin_api_token="t" * 32, app_secret_key="s" * 40)
    with pytest.raises(InvalidEmail):
        normalize_email("ada@demo.test")
    assert normalize_email("ada@example.com") == "ada@example.com"


def test_a_client_identity_is_never_stored_from_a_bad_address(engine):
    with session_scope(engine) as session:
        for address in ("a@b.c,c@d.e", "\xff@x.test", "@"):
            with pytest.raises(InvalidEmail):
                get_or_create_client(session, address, "Mallory")
        assert get_or_create_client(session, " Casey@Example.com", "Casey").email == "casey@example.com"
    with session_scope(engine, read_only=True) as session:
        assert session.execute(select(Client.email)).scalars().all() == ["casey@example.com"]


def _login_form(live) -> tuple[requests.Session, str]:
    browser = requests.Session()
    return browser, _csrf(browser.get(f"{live.web}/login", timeout=30).text)


@pytest.mark.parametrize("address", ["a@b.c,c@d.e", "\xff@x.test", "@", "casey@example.com>, <eve@example.com"])
def test_the_sign_in_form_shows_the_reason_and_sends_nothing(live, address):
    browser, csrf = _login_form(live)

    answer = browser.post(f"{live.web}/login", data={"email": address, "csrf_token": csrf, "next": "/"}, timeout=30)

    assert answer.status_code == 422
    assert "not a valid email address" in answer.text and 'action="/login"' in answer.text  # the form again
    with session_scope(live.engine, read_only=True) as session:
        assert count(session, LoginToken) == 0 and count(session, Notification) == 0


def test_a_latin1_byte_in_the_form_is_refused_not_a_crash(live):
    browser, csrf = _login_form(live)
    body = f"email=%FF%40x.test&csrf_token={csrf}&next=%2F".encode()

    answer = browser.post(f"{live.web}/login", data=body, timeout=30,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert answer.status_code == 422 and "not a valid email address" in answer.text
    with session_scope(live.engine, read_only=True) as session:
        assert count(session, LoginToken) == 0


def test_the_sign_in_form_accepts_a_real_address_as_typed(live):
    browser, csrf = _login_form(live)

    answer = browser.post(f"{live.web}/login", data={"email": " Casey@Example.COM ", "csrf_token": csrf},
                          timeout=30)

    assert answer.status_code == 200 and "casey@example.com" in answer.text
    with session_scope(live.engine, read_only=True) as session:
        assert session.execute(select(LoginToken.email)).scalars().all() == ["casey@example.com"]


@pytest.mark.parametrize("address", ["a@b.c,c@d.e", "\xff@x.test", "@", "nobody"])
def test_the_scheduling_link_api_answers_422_with_the_reason(live, address):
    answer = live.admin("POST", "/api/scheduling/calendly/scheduling-link",
                        json={"eventTypeId": live.event_type_ids[0], "inviteeEmail": address, "inviteeName": "M"})

    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("inviteeEmail: not a valid email address"), answer.json()
    with session_scope(live.engine, read_only=True) as session:
        assert count(session, Client) == 0 and count(session, Booking) == 0


def test_the_scheduling_link_api_stores_the_normalised_address(live):
    answer = live.admin("POST", "/api/scheduling/calendly/scheduling-link",
                        json={"eventTypeId": live.event_type_ids[0], "inviteeEmail": " Casey@Example.com ",
                              "inviteeName": "Casey"})

    assert answer.status_code == 200, answer.text
    with session_scope(live.engine, read_only=True) as session:
        assert session.execute(select(Client.email)).scalars().all() == ["casey@example.com"]


def test_the_cli_refuses_a_bad_dashboard_user_address_in_one_line(engine, db_url, tmp_path):
    done = run_cli(db_url, tmp_path, "add-user", "--email", "a@b.c,c@d.e", "--password", "long-enough-pass",
                "--role", "admin")

    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert re.fullmatch(r"not a valid email address: .+\n", done.stderr), done.stderr
    with session_scope(engine, read_only=True) as session:
        assert count(session, DashboardUser) == 0


def test_a_builder_is_not_added_with_a_bad_address(engine):
    user = {"uri": "https://api.calendly.com/users/U1", "name": "Ada", "current_organization": None}
    with session_scope(engine) as session:
        with pytest.raises(InvalidEmail):
            catalog.add_builder(session, name="Ada", email="ada@example.com,eve@example.com", calendly_token="t",
                                calendly_user=user)
        assert catalog.add_builder(session, name="Ada", email="Ada@Example.com", calendly_token="t",
                                   calendly_user=user).email == "ada@example.com"
