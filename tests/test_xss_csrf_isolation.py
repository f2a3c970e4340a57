"""Script in names, emails, answers and reasons, carried through a whole booking and shown back.

A client signs in with a name and an email that are XSS payloads, answers Calendly's question with
one, pays, and cancels in Calendly with one as the reason; the builder's name is one too. Every page
that shows them — ours (profile, sign-in, payment, success, cancel, status) and the stand-ins'
(Calendly's booking and cancel pages, Stripe's checkout) — must render them escaped: the literal
text is there, and no script, event handler or injected element is. The dashboard shows them as
text too: each markdown-rendering element's source, rendered by a CommonMark renderer with raw HTML
allowed (the worst case, as if `unsafe_allow_html` were on), holds the literal text and no tag.

Also the cross-site side of the session: the cookie is HttpOnly and SameSite, the `next` of the
sign-in form cannot carry script or leave the site, and links from Calendly are shown only as
http(s) links.
"""
from __future__ import annotations

import html
import json
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from markdown_it import MarkdownIt
from markupsafe import escape
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.models import Booking, Builder, WebhookEvent
from core.auth import Viewer
from tests.webhook_helpers import calendly_headers, future_slot, invitee_envelope, wait_for

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
TEMPLATE = "{{7*7}}"
NAME = f"{SCRIPT} {IMG} {TEMPLATE} Casey"
# Addresses are validated since issue 9 (a quoted or <>-carrying address is refused at the door), so the
# email is the most hostile one still accepted: quote, ampersand, braces and equals in the local part.
EMAIL = "o'brien+{{7*7}}&x=1@example.com"
ANSWER = f"answer {SCRIPT}{IMG}{TEMPLATE}"
REASON = f"reason {SCRIPT} {IMG} {TEMPLATE} [click](javascript:alert(1)) ![x](http://e.test/x.png)"
BUILDER = f"Ada {SCRIPT}{IMG}{TEMPLATE}"
APP = "../dashboard/streamlit_app.py"
CALENDLY_KEY = "sandbox-calendly-signing-key"


# ---------------------------------------------------------------- what "escaped" means in a page
class _Elements(HTMLParser):
    """The tags, attributes and script bodies a browser would see."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def assert_shown_escaped(page: str, *texts: str, where: str = "") -> None:
    """Each text is in the page as text (escaped), and nothing it carries became markup."""
    parser = _Elements()
    parser.feed(page)
    for text in texts:
        assert str(escape(text)) in page or text.replace("&", "&amp;") in html.unescape(page), \
            f"{where}: {text!r} is not shown"
        for raw in (SCRIPT, IMG, "<img/src=x", "<script>alert"):
            assert raw not in page, f"{where}: {raw!r} reached the page unescaped"
    assert not any("alert(1)" in body for body in parser.scripts), f"{where}: an injected script"
    for tag, attrs in parser.tags:
        assert not (tag == "img" and attrs.get("src") in ("x", None)), f"{where}: an injected image"
        assert not any(name.startswith("on") for name in attrs), f"{where}: an event handler attribute"
        for name in ("href", "src", "action", "formaction"):
            assert not (attrs.get(name) or "").strip().lower().startswith("javascript:"), f"{where}: {name}=javascript:"


def sign_in(live, name: str = NAME, email: str = EMAIL) -> tuple[requests.Session, str]:
    """Sign in through the forms; returns the browser and the 'check your email' page."""
    browser = requests.Session()
    form = browser.get(f"{live.web}/login?next=/profile/{live.builder_id}", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    sent = browser.post(f"{live.web}/login", timeout=30, data={
        "email": email, "name": name, "csrf_token": csrf, "next": f"/profile/{live.builder_id}"})
    assert sent.status_code == 200, sent.text
    link = html.unescape(re.search(r'id="magic-link" class="btn" href="([^"]+)"', sent.text).group(1))
    assert browser.get(link, timeout=30).status_code == 200
    return browser, sent.text


@pytest.fixture
def hostile_builder(live):
    with session_scope(live.engine) as session:
        session.get(Builder, live.builder_id).name = BUILDER
    return live


@pytest.fixture
def journey(hostile_builder):
    """The whole booking with hostile text, every page kept on the way: {page name: html}."""
    live = hostile_builder
    pages: dict[str, str] = {}
    browser, pages["sign-in link sent"] = sign_in(live)
    pages["profile"] = browser.get(f"{live.web}/profile/{live.builder_id}", timeout=30).text
    booking_id, calendly_url = live.start_booking(browser)
    with session_scope(live.engine, read_only=True) as session:
        assert session.get(Booking, booking_id).client.name == NAME  # stored as typed

    pages["payment (waiting for Calendly)"] = browser.get(f"{live.web}/payment/{booking_id}", timeout=30).text
    pages["Calendly booking page"] = requests.get(f"{calendly_url}&a1={requests.utils.quote(ANSWER)}",
                                                  timeout=30).text
    query = {k: v[0] for k, v in parse_qs(urlsplit(calendly_url).query).items()}
    link = urlsplit(calendly_url).path.rsplit("/", 1)[1]
    booked = live.calendly_sandbox("POST", f"/links/{link}/book", {
        "name": query["name"], "email": query["email"], "a1": ANSWER, "start_time": future_slot(days=4, hour=13),
        "utm_content": query["utm_content"], "utm_source": query.get("utm_source")})
    assert booked.status_code == 201, booked.text
    wait_for(lambda: live.status(booking_id) == "PENDING_PAYMENT")

    checkout = browser.get(f"{live.web}/payment/{booking_id}", allow_redirects=False, timeout=30)
    assert checkout.status_code == 303
    pages["Stripe checkout"] = requests.get(checkout.headers["location"], timeout=30).text
    checkout_id = checkout.headers["location"].rsplit("/", 1)[1]
    pages["payment canceled at Stripe"] = browser.get(f"{live.web}/payment/cancel?booking={booking_id}", timeout=30).text
    assert live.stripe_sandbox("POST", f"/checkout/{checkout_id}/pay").status_code == 200
    wait_for(lambda: live.status(booking_id) == "CONFIRMED")
    pages["payment success"] = browser.get(f"{live.web}/payment/success?session_id={checkout_id}", timeout=30).text
    pages["booking confirmed"] = browser.get(f"{live.web}/payment/{booking_id}", timeout=30).text

    with session_scope(live.engine, read_only=True) as session:
        cancel_url = session.get(Booking, booking_id).calendly_cancel_url
    pages["Calendly cancel page"] = requests.get(cancel_url, timeout=30).text
    canceled = requests.post(cancel_url, data={"reason": REASON}, timeout=30)
    assert canceled.status_code == 200, canceled.text
    wait_for(lambda: live.status(booking_id) == "CANCELED")
    pages["Calendly: already canceled"] = requests.get(cancel_url, timeout=30).text
    pages["booking canceled"] = browser.get(f"{live.web}/payment/{booking_id}", timeout=30).text
    with session_scope(live.engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        assert (booking.cancel_reason, booking.client.email) == (REASON, EMAIL)
    return live, booking_id, pages


# What each page shows of the hostile text.
SHOWN = {
    "sign-in link sent": (EMAIL,),
    "profile": (BUILDER, EMAIL),
    "payment (waiting for Calendly)": (BUILDER,),
    "Calendly booking page": (NAME, EMAIL, ANSWER),
    "Stripe checkout": (EMAIL, BUILDER),
    "payment canceled at Stripe": (BUILDER, EMAIL),
    "payment success": (NAME, EMAIL, BUILDER),
    "booking confirmed": (NAME, EMAIL, BUILDER),
    "Calendly cancel page": (NAME, EMAIL),
    "Calendly: already canceled": (REASON,),
    "booking canceled": (REASON, EMAIL, BUILDER),
}


def test_every_page_of_a_hostile_booking_shows_the_text_escaped(journey):
    _live, _booking_id, pages = journey
    assert set(pages) == set(SHOWN)
    for name, page in pages.items():
        assert_shown_escaped(page, *SHOWN[name], where=name)
    assert TEMPLATE in html.unescape(pages["booking confirmed"])  # shown as typed, never evaluated


def test_error_pages_do_not_echo_hostile_input_as_markup(hostile_builder):
    live = hostile_builder
    for url in (f"/payment/{SCRIPT}", f"/payment/cancel?booking={IMG}", f"/payment/success?session_id=cs_{IMG}",
                f"/payment/calendly-return?utm_content={IMG}", f"/profile/{IMG}", f"/login/verify?token={IMG}",
                f"/login?next={IMG}"):
        page = requests.get(f"{live.web}{url}", headers={"Accept": "text/html"}, timeout=30)
        assert page.status_code < 500, url
        assert_shown_escaped(page.text, where=url)


def test_the_sign_in_forms_next_cannot_carry_script_or_leave_the_site(live):
    for hostile in ('"><script>alert(1)</script>', "javascript:alert(1)", "//evil.example/x",
                    "https://evil.example/", "/\\evil.example"):
        page = requests.get(f"{live.web}/login", params={"next": hostile}, timeout=30).text
        value = re.search(r'name="next" value="([^"]*)"', page).group(1)
        assert html.unescape(value).startswith("/") and not html.unescape(value).startswith("//"), hostile
        assert_shown_escaped(page, where=hostile)


def test_the_session_cookie_is_http_only_and_same_site(live):
    answer = requests.get(f"{live.web}/login", timeout=30)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_a_calendly_link_that_is_not_http_is_not_rendered_as_a_link(live):
    """Calendly is trusted, but the cancel/reschedule links it sends end up in an href."""
    booking_id, _ = live.start_booking(live.signed_in_client())
    event_uri = f"{live.calendly}/scheduled_events/{uuid.uuid4()}"
    body = invitee_envelope("invitee.created", invitee_uri=f"{event_uri}/invitees/{uuid.uuid4()}",
                            event_uri=event_uri, booking_ref=booking_id, **live.slot())
    body["payload"]["cancel_url"] = "javascript:alert(1)"
    body["payload"]["reschedule_url"] = " JavaScript:alert(document.cookie)"
    raw = json.dumps(body).encode()
    answer = requests.post(f"{live.web}/api/webhooks/calendly", data=raw, headers=calendly_headers(raw, CALENDLY_KEY),
                           timeout=30)
    assert answer.json()["outcome"] == "processed", answer.text
    with session_scope(live.engine) as session:
        session.get(Booking, booking_id).status = "CONFIRMED"  # the page shows the links once confirmed

    page = requests.get(live.payment_url(booking_id), timeout=30).text

    assert "You're booked" in page or "booked" in page
    assert_shown_escaped(page, where="confirmed page with javascript: links")
    assert "javascript:" not in page.lower()


# ---------------------------------------------------------------- the dashboard
MARKDOWN = MarkdownIt("commonmark", {"html": True})  # raw HTML on: the worst case


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches(streamlit_caches_cleared):
    """Streamlit's caches leak between AppTest runs in one process (conftest clears them)."""


def markdown_sources(at: AppTest) -> list[str]:
    """The source of every element Streamlit renders as markdown (bodies, labels, messages)."""
    sources = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "error", "success", "info", "warning"):
        sources += [element.value for element in getattr(at, kind)]
    sources += [element.label for element in at.expander]
    sources += [element.label for element in at.metric]
    return [source for source in sources if isinstance(source, str)]


def rendered_text(source: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", MARKDOWN.render(source)))


def assert_dashboard_safe(at: AppTest, *texts: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    sources = markdown_sources(at)
    for source in sources:
        parser = _Elements()
        parser.feed(MARKDOWN.render(source))
        for tag, attrs in parser.tags:
            assert tag not in ("script", "img", "a", "iframe", "svg", "object", "embed", "style"), (source, tag)
            assert not any(name.startswith("on") for name in attrs), (source, attrs)
    shown = "\n".join(rendered_text(source) for source in sources)
    for text in texts:
        assert " ".join(text.split()) in shown, f"{text!r} is not shown as text"


def dashboard(engine, viewer: Viewer, page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["viewer"] = viewer
    at.run()
    return at.switch_page(page).run()


def test_the_dashboard_shows_the_hostile_booking_as_text(journey):
    live, booking_id, _pages = journey
    admin = Viewer(user_id=1, email="admin@example.com", role="admin")

    at = dashboard(live.engine, admin, "app_pages/admin_bookings.py")
    frame = at.dataframe[0].value
    assert NAME in set(frame["Client"])  # dataframes: literal cells
    assert BUILDER in set(frame["Builder"])
    at.session_state["open_booking"] = booking_id  # what a click on its row leaves
    at.run()

    assert_dashboard_safe(at, NAME, EMAIL, REASON, BUILDER)
    with session_scope(live.engine, read_only=True) as session:
        event_ids = list(session.execute(select(WebhookEvent.id).where(WebhookEvent.booking_id == booking_id)
                                         .order_by(WebhookEvent.id)).scalars())
    at.toggle(key=f"detail_raw_{event_ids[0]}").set_value(True).run()
    assert_dashboard_safe(at, NAME, EMAIL, REASON)
    payload = json.loads(at.json[0].value)  # st.json: shown as data, never as markup
    assert [qa["answer"] for qa in payload["payload"]["questions_and_answers"]] == [ANSWER]


def test_a_builder_sees_the_hostile_clients_as_text(hostile_builder):
    live = hostile_builder
    browser, _ = sign_in(live)
    booking_id, url = live.start_booking(browser)
    live.pick_slot(url, future_slot(days=5, hour=10))
    wait_for(lambda: live.status(booking_id) == "PENDING_PAYMENT")
    builder = Viewer(user_id=2, email="ada@example.com", role="builder", builder_id=live.builder_id, name=BUILDER)

    at = dashboard(live.engine, builder, "app_pages/upcoming.py")
    assert NAME in set(at.dataframe[0].value["Client"])
    assert_dashboard_safe(at)
    at = dashboard(live.engine, builder, "app_pages/my_bookings.py")
    assert NAME in set(at.dataframe[0].value["Client"])
    assert_dashboard_safe(at)
    at.session_state["my_open_booking"] = booking_id  # the builder opens it: the email is in its detail
    at.run()
    assert_dashboard_safe(at, NAME, EMAIL)

    admin = Viewer(user_id=1, email="admin@example.com", role="admin")
    at = dashboard(live.engine, admin, "app_pages/admin_pending.py")
    assert NAME in set(at.dataframe[0].value["Client"])
    at.button(key="pending_cancel").click().run()  # the confirmation quotes the client's email
    assert_dashboard_safe(at, EMAIL)
    at = dashboard(live.engine, admin, "app_pages/prices.py")
    assert f"{BUILDER} (ada@example.com)" in at.selectbox(key="prices_builder").options  # options: plain text
    assert_dashboard_safe(at)


COOKIE_WRITER = Path("lib/session_cookie.py")  # its one script carries a checked session id, nothing typed


def test_no_dashboard_code_renders_raw_html():
    root = Path(__file__).resolve().parent.parent / "dashboard"
    for path in root.rglob("*.py"):
        code = path.read_text()
        for forbidden in ("unsafe_allow_html", "st.html(", "components.html(", "components.v1"):
            allowed = int(path.relative_to(root) == COOKIE_WRITER and forbidden == "st.html(")
            assert code.count(forbidden) == allowed, f"{path.relative_to(root)} uses {forbidden}"


@pytest.mark.parametrize("value", ['x"; alert(1); "', "</script><script>alert(1)</script>", "a b", "é"])
def test_the_cookie_writer_refuses_anything_but_a_session_id(value):
    from dashboard.lib import session_cookie

    with pytest.raises(ValueError):
        session_cookie.write("dashboard_session", value, max_age=60)
