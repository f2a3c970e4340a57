"""The local mail catcher (`python -m sandbox.mail`): it receives what our outbox sends over real
SMTP, lists it on a page (newest first) and opens each message (text, HTML in a sandbox, the .ics);
it is bounded (message size, count, recipients) and answers bad requests with a page that says so."""
from __future__ import annotations

import smtplib
from datetime import datetime, timezone
from email.message import EmailMessage

import pytest
import requests

from core.db import session_scope
from core.services import payment_events
from core.states import BookingStatus as S
from sandbox.mail.catcher import create_app
from sandbox.mail.store import MAX_RECIPIENTS, MailStore
from tests.factories import make_booking, make_client, paid_checkout
from tests.mail_helpers import catcher, running_catcher, send_mail  # noqa: F401  (catcher: a fixture)
from tests.servers import free_port, serve


@pytest.fixture
def pages(catcher):
    with serve(create_app(catcher, smtp_port=catcher.smtp_port)) as url:
        yield url


def _confirm(engine) -> str:
    with session_scope(engine) as session:
        booking = make_booking(session, S.PENDING_PAYMENT, client=make_client(session, email="casey@example.com"),
                               start_time=datetime(2031, 3, 4, 15, tzinfo=timezone.utc), invitee_timezone="Europe/Paris")
        payment_events.confirm_payment(session, paid_checkout(booking))
        return booking.id


def test_the_catcher_lists_what_the_system_sent_and_opens_it(engine, catcher, pages):
    booking_id = _confirm(engine)
    assert send_mail(engine).done == 2

    listing = requests.get(pages, timeout=10)
    assert listing.status_code == 200 and "Mail sent (2)" in listing.text
    confirmed = next(m for m in catcher.newest_first() if m.subject.startswith("Confirmed"))
    assert "casey@example.com" in listing.text and "session.ics" in listing.text
    assert listing.text.index("New paid booking") < listing.text.index("Confirmed:")  # newest first
    assert "default-src 'none'" in listing.headers["content-security-policy"]

    page = requests.get(f"{pages}/messages/{confirmed.id}", timeout=10)
    assert page.status_code == 200
    assert "Tuesday 04 March 2031, 16:00 (Europe/Paris)" in page.text  # the plain text
    assert f'src="/messages/{confirmed.id}/html"' in page.text and "sandbox" in page.text
    assert f"UID:{booking_id}@127.0.0.1" in page.text  # the .ics, readable on the page

    html = requests.get(f"{pages}/messages/{confirmed.id}/html", timeout=10)
    assert html.status_code == 200 and "Confirmed:" in html.text
    assert html.headers["content-security-policy"].startswith("sandbox")

    ics = requests.get(f"{pages}/messages/{confirmed.id}/attachments/0", timeout=10)
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    assert ics.headers["content-disposition"] == "attachment; filename*=UTF-8''session.ics"
    assert ics.text.startswith("BEGIN:VCALENDAR\r\n") and "METHOD:PUBLISH" in ics.text

    api = requests.get(f"{pages}/api/messages", timeout=10).json()
    assert [m["subject"][:9] for m in api] == ["New paid ", "Confirmed"]
    assert api[1]["attachments"][0]["filename"] == "session.ics"


@pytest.mark.parametrize("path, status, says", [
    ("/messages/999", 404, "There is no message"),
    ("/messages/abc", 404, "There is no message"),
    ("/messages/1/attachments/7", 404, "there is no attachment"),
    ("/messages/1/attachments/x", 404, "there is no attachment"),
    ("/nowhere", 404, "Nothing at /nowhere"),
])
def test_bad_addresses_get_a_page_that_says_why(engine, catcher, pages, path, status, says):
    _confirm(engine)
    send_mail(engine)
    answer = requests.get(pages + path, timeout=10)
    assert answer.status_code == status and says in answer.text
    assert answer.headers["content-type"].startswith("text/html") and "See all mail" in answer.text


def test_other_methods_and_the_api_answer_plainly(catcher, pages):
    assert requests.post(pages, timeout=10).status_code == 405
    missing = requests.get(f"{pages}/api/nothing", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    assert requests.delete(f"{pages}/api/messages", timeout=10).json() == {"cleared": 0}


def _message(subject: str, body: str = "hello") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", subject
    message.set_content(body)
    return message


def test_the_catcher_is_bounded_in_size_count_and_recipients():
    store = MailStore(max_messages=3, max_message_bytes=4096)
    port = free_port()
    with running_catcher(store, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPException) as refused:  # SMTPDataError or SMTPSenderRefused (SIZE)
            smtp.send_message(_message("too big", "x" * 10_000))
        assert "552" in str(refused.value) or getattr(refused.value, "smtp_code", 0) == 552
        smtp.rset()
        for n in range(5):
            smtp.send_message(_message(f"message {n}"))
        refused = smtp.sendmail("a@example.com", [f"r{n}@example.com" for n in range(MAX_RECIPIENTS + 1)],
                                b"Subject: many\r\n\r\nx")
        assert list(refused) == [f"r{MAX_RECIPIENTS}@example.com"] and refused[f"r{MAX_RECIPIENTS}@example.com"][0] == 452
    # the oldest go first: only the newest three are kept
    assert [m.subject for m in store.newest_first()] == ["many", "message 4", "message 3"]
    assert len(store.newest_first()[0].rcpt_to) == MAX_RECIPIENTS


def test_hostile_mail_is_shown_as_text_and_its_html_cannot_run(catcher, pages):
    message = _message("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
    message.add_alternative("<p>hi</p><script>alert(2)</script>", subtype="html")
    with smtplib.SMTP("127.0.0.1", catcher.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)
    [caught] = catcher.newest_first()
    listing = requests.get(pages, timeout=10).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing and "<script>" not in listing
    page = requests.get(f"{pages}/messages/{caught.id}", timeout=10).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page
    framed = requests.get(f"{pages}/messages/{caught.id}/html", timeout=10)
    assert "script-src" not in framed.headers["content-security-policy"]  # default-src 'none': no scripts
    assert framed.headers["content-security-policy"].startswith("sandbox;")


@pytest.mark.browser
@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])
def test_in_a_browser_the_list_opens_a_confirmation_and_its_calendar_file(engine, catcher, pages, width, height):
    from pathlib import Path

    from tests.browser_support import CHROMIUM, require_chromium

    require_chromium()
    from playwright.sync_api import sync_playwright

    booking_id = _confirm(engine)
    send_mail(engine)
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts" / "mail"
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(pages)
        page.get_by_text("Confirmed:").click()
        page.wait_for_url(f"{pages}/messages/*")
        assert page.get_by_role("heading", level=1).inner_text().startswith("Confirmed:")
        assert page.locator("iframe.html").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
        page.screenshot(path=str(artifacts / f"confirmation-{width}.png"), full_page=True)
        with page.expect_download() as download:
            page.get_by_role("link", name="Download session.ics").click()
        saved = Path(download.value.path()).read_text()
        assert f"UID:{booking_id}@127.0.0.1" in saved and download.value.suggested_filename == "session.ics"
        browser.close()
