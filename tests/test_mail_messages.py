"""What our mail says and how it is built, as received over real SMTP by the mail catcher:
plain text + HTML, an .ics for a session in the calendar (same UID when it moves or is canceled),
times in the client's own zone with the zone named, the refund and the reason an admin gave, and
no refund talk when nothing was paid."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.mail import ics
from core.models import Booking, Notification
from core.services import booking_access, booking_service, payment_events, refunds
from core.services.notifications import notify
from core.services.transitions import record
from core.states import BookingStatus as S
from tests.factories import make_booking, make_builder, make_client, make_payment, make_session_type, paid_checkout
from tests.mail_helpers import catcher, parsed, read_ics, send_mail  # noqa: F401  (catcher: a fixture)

START = datetime(2031, 3, 4, 15, 0, tzinfo=timezone.utc)  # 10:00 in New York, 16:00 in Berlin


def _held(session, *, invitee_zone=None, client_zone=None, client_name="Casey Client", start=START):
    builder = make_builder(session, name="Ada Builder", timezone="Europe/Berlin")
    session_type = make_session_type(session, builder, name="Code review", duration_minutes=45)
    client = make_client(session, email="casey@example.com", name=client_name)
    client.timezone = client_zone
    return make_booking(session, S.PENDING_PAYMENT, session_type=session_type, client=client,
                        start_time=start, invitee_timezone=invitee_zone,
                        calendly_reschedule_url="https://calendly.test/reschedulings/inv-1",
                        calendly_cancel_url="https://calendly.test/cancellations/inv-1")


def _confirmed(engine, **kwargs) -> str:
    with session_scope(engine) as session:
        booking = _held(session, **kwargs)
        payment_events.confirm_payment(session, paid_checkout(booking))
        return booking.id


def _mail_to(store, address: str, subject_start: str):
    found = [m for m in store.newest_first()
             if any(address in to for to in m.rcpt_to) and m.subject.startswith(subject_start)]
    assert len(found) == 1, [m.subject for m in store.newest_first()]
    return parsed(found[0].raw)


def _calendar_part(message):
    parts = [part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    return parts[0]


def test_a_confirmation_is_text_html_and_an_ics_in_the_clients_zone(engine, catcher):
    booking_id = _confirmed(engine, invitee_zone="America/New_York")
    assert send_mail(engine).done == 2  # the client's confirmation and the builder's notice

    message = _mail_to(catcher, "casey@example.com", "Confirmed:")
    assert message.get_content_type() == "multipart/mixed"
    alternative = message.get_payload()[0]
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    when = "Tuesday 04 March 2031, 10:00 (America/New_York)"
    assert when in text and when in html and "UTC" not in text
    link = booking_access.payment_link(booking_id)
    assert link in text and f'href="{link.replace("&", "&amp;")}"' in html
    assert "$49.00" in text and "Code review with Ada Builder" in text
    assert "Reschedule: https://calendly.test/reschedulings/inv-1" in text  # Calendly's own pages
    assert 'href="https://calendly.test/cancellations/inv-1"' in html

    calendar = _calendar_part(message)
    assert calendar.get_filename() == "session.ics" and calendar.get_param("method") == "PUBLISH"
    fields = read_ics(calendar.get_content() if isinstance(calendar.get_content(), str)
                      else calendar.get_content().decode())
    assert fields["METHOD"] == "PUBLISH" and fields["UID"] == f"{booking_id}@127.0.0.1"
    assert (fields["DTSTART"], fields["DTEND"]) == ("20310304T150000Z", "20310304T154500Z")
    assert fields["SEQUENCE"] == "0" and fields["STATUS"] == "CONFIRMED"
    assert fields["SUMMARY"] == "Code review with Ada Builder" and link in fields["DESCRIPTION"]

    builder_mail = _mail_to(catcher, "@example.test", "New paid booking")
    assert "Tuesday 04 March 2031, 16:00 (Europe/Berlin)" in builder_mail.get_body(("plain",)).get_content()
    assert not list(builder_mail.iter_attachments())


def _ics_of(message) -> dict[str, str]:
    content = _calendar_part(message).get_content()
    return read_ics(content if isinstance(content, str) else content.decode())


def test_a_reschedule_moves_the_same_calendar_entry(engine, catcher):
    booking_id = _confirmed(engine)
    with session_scope(engine) as session:
        booking = session.get(Booking, booking_id)
        booking.start_time, booking.end_time = START + timedelta(days=1), START + timedelta(days=1, minutes=45)
        record(session, booking, cause="rescheduled", actor="calendly")
        notify(session, booking, "booking_rescheduled", dedupe="invitee-2")
    send_mail(engine)
    first = _ics_of(_mail_to(catcher, "casey@example.com", "Confirmed:"))
    moved = _ics_of(_mail_to(catcher, "casey@example.com", "Rescheduled:"))
    assert moved["UID"] == first["UID"] and int(moved["SEQUENCE"]) > int(first["SEQUENCE"])
    assert moved["DTSTART"] == "20310305T150000Z" and moved["METHOD"] == "PUBLISH"


def test_a_paid_cancellation_states_the_refund_and_removes_the_calendar_entry(engine, catcher):
    booking_id = _confirmed(engine, start=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=3))
    with session_scope(engine) as session:
        assert booking_service.cancel_booking(session, booking_id, actor="admin:a", reason="Client asked") == 4900
    send_mail(engine)
    message = _mail_to(catcher, "casey@example.com", "Canceled:")
    text = message.get_body(("plain",)).get_content()
    assert "$49.00 will be refunded" in text
    assert "Canceled at least 24 h before the start: full refund" in text
    fields = _ics_of(message)
    assert fields["METHOD"] == "CANCEL" and fields["STATUS"] == "CANCELLED"
    assert fields["UID"] == f"{booking_id}@127.0.0.1" and fields["SEQUENCE"] == "1"
    assert _calendar_part(message).get_param("method") == "CANCEL"
    refund = _mail_to(catcher, "casey@example.com", "Refund of $49.00")
    assert "Canceled at least 24 h before the start" in refund.get_body(("plain",)).get_content()


def test_an_unpaid_cancellation_and_an_expiry_do_not_talk_about_refunds(engine, catcher):
    with session_scope(engine) as session:
        canceled = _held(session)
        booking_service.cancel_booking_locked(session, canceled, actor="calendly:invitee", reason="changed mind")
        expired = make_booking(session, S.PENDING_PAYMENT, session_type=canceled.session_type,
                               client=canceled.client, start_time=START + timedelta(days=2))
        payment_events.expire_locked(session, expired, actor="system:worker", cause="hold_expired")
    send_mail(engine)
    for subject in ("Canceled:", "Hold released:"):
        message = _mail_to(catcher, "casey@example.com", subject)
        text = message.get_body(("plain",)).get_content().lower()
        assert "refund" not in text and "policy" not in text
        assert "not been charged" in text or "nothing was charged" in text
        assert not list(message.iter_attachments())


def test_a_refund_notice_carries_the_amount_and_the_admins_reason(engine, catcher):
    booking_id = _confirmed(engine, client_name="<script>alert(1)</script>")
    with session_scope(engine) as session:
        refunds.request_refund(session, booking_id, 1500, reason="Session ended <b>early</b> & late start",
                               actor="admin:a")
    send_mail(engine)
    message = _mail_to(catcher, "casey@example.com", "Refund of $15.00")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Reason: Session ended <b>early</b> & late start" in text and "$15.00" in text
    assert "Session ended &lt;b&gt;early&lt;/b&gt; &amp; late start" in html and "<b>early" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html


@pytest.mark.parametrize("invitee_zone, client_zone, named", [
    ("Asia/Tokyo", "Europe/Paris", "Wednesday 05 March 2031, 00:00 (Asia/Tokyo)"),
    (None, "America/Los_Angeles", "Tuesday 04 March 2031, 07:00 (America/Los_Angeles)"),
    ("Not/AZone", "Europe/Paris", "Tuesday 04 March 2031, 16:00 (Europe/Paris)"),
    (None, None, "Tuesday 04 March 2031, 15:00 (UTC)"),
])
def test_times_are_in_the_clients_zone_and_the_zone_is_named(engine, invitee_zone, client_zone, named):
    with session_scope(engine) as session:
        booking = _held(session, invitee_zone=invitee_zone, client_zone=client_zone)
        notify(session, booking, "payment_reminder")
    with session_scope(engine, read_only=True) as session:
        body = session.execute(select(Notification.body).where(Notification.kind == "payment_reminder")).scalar_one()
    assert named in body


def test_a_sign_in_link_is_text_and_html_with_the_link_as_a_button(engine, catcher):
    from core.services import client_login

    with session_scope(engine) as session:
        link = client_login.send_magic_link(session, "casey@example.com", "/")
    send_mail(engine)
    message = _mail_to(catcher, "casey@example.com", "Your sign-in link")
    assert link in message.get_body(("plain",)).get_content()
    assert f'href="{link}"' in message.get_body(("html",)).get_content()


def test_ics_escapes_and_folds_as_rfc_5545_says():
    summary = "Review, planning; and \\ more\nline two " + "é" * 60
    text = ics.calendar(method="PUBLISH", uid="bk_1@example.com", sequence=2, stamp=START, start=START,
                        end=START + timedelta(hours=1), summary=summary, description="a,b;c",
                        url="https://example.com/payment/bk_1?t=x")
    fields = read_ics(text)  # checks CRLF and the 75-octet lines
    assert fields["SUMMARY"] == summary and fields["DESCRIPTION"] == "a,b;c"
    assert "SUMMARY:Review\\, planning\\; and \\\\ more\\nline two" in text.replace("\r\n ", "")
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
