"""The right message at the right time: "complete your payment" waits until the client has had
time to pay (they are on Stripe's page right after picking a slot), goes out if they still have
not, and is dropped if they paid or a payment is on its way; no reminder to pay while a payment
is processing; nothing is sent twice."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.db import session_scope
from core.models import Booking, Notification, OutboxEntry, utcnow
from core.services import holds, notifications, outbox, payment_events
from core.services.notifications import notify
from core.states import BookingStatus as S
from tests.factories import make_booking, make_client, paid_checkout
from tests.mail_helpers import catcher, send_mail  # noqa: F401  (catcher: a fixture)


def _picked_a_slot(engine) -> str:
    """A booking just scheduled in Calendly, as booking_service leaves it: held, nudge queued."""
    with session_scope(engine) as session:
        booking = make_booking(session, S.PENDING_PAYMENT, client=make_client(session, email="casey@example.com"))
        notify(session, booking, "awaiting_payment")
        return booking.id


def _later(monkeypatch, minutes: float) -> None:
    """The outbox's clock, `minutes` from now."""
    moved = utcnow() + timedelta(minutes=minutes)
    monkeypatch.setattr(outbox, "utcnow", lambda: moved)


def _nudge(engine) -> tuple[OutboxEntry, Notification]:
    with session_scope(engine, read_only=True) as session:
        notification = session.execute(select(Notification).where(Notification.kind == "awaiting_payment")).scalar_one()
        entry = session.execute(select(OutboxEntry).where(
            OutboxEntry.idempotency_key == notification.dedupe_key)).scalar_one()
        return entry, notification


def test_the_nudge_waits_while_the_client_is_on_their_way_to_stripe(engine, catcher):
    before = utcnow()
    _picked_a_slot(engine)
    entry, _ = _nudge(engine)
    assert before + timedelta(minutes=9) < entry.next_attempt_at <= utcnow() + timedelta(minutes=10)
    assert send_mail(engine).total == 0 and catcher.newest_first() == []


def test_after_the_delay_a_client_who_has_not_paid_gets_it_once(engine, catcher, monkeypatch):
    _picked_a_slot(engine)
    _later(monkeypatch, 11)
    assert send_mail(engine).done == 1
    assert send_mail(engine).total == 0
    [message] = catcher.newest_first()
    assert message.subject.startswith("Complete your payment") and message.rcpt_to == ["casey@example.com"]
    entry, notification = _nudge(engine)
    assert entry.status == "done" and "skipped" not in entry.payload and notification.sent_at is not None


def _paid(session, booking):
    payment_events.confirm_payment(session, paid_checkout(booking))


def _processing(session, booking):
    booking.payment_processing_since = utcnow()


def _canceled(session, booking):
    from core.services.booking_service import cancel_booking_locked

    cancel_booking_locked(session, booking, actor="calendly:invitee", reason="changed mind")


@pytest.mark.parametrize("what_happened, why", [
    (_paid, "the booking is confirmed"), (_processing, "a payment is on its way"),
    (_canceled, "the booking is canceled"),
])
def test_the_nudge_is_dropped_when_the_client_paid_or_a_payment_is_on_its_way(engine, catcher, monkeypatch,
                                                                               what_happened, why):
    booking_id = _picked_a_slot(engine)
    with session_scope(engine) as session:
        what_happened(session, session.get(Booking, booking_id))
    _later(monkeypatch, 11)
    send_mail(engine)
    assert not [m for m in catcher.newest_first() if m.subject.startswith("Complete your payment")]
    entry, notification = _nudge(engine)
    assert entry.status == "done" and why in entry.payload["skipped"]
    assert notification.sent_at is None  # it was never sent


def test_nudge_now_sends_it_at_once_for_a_client_back_from_stripe_without_paying(engine, catcher):
    booking_id = _picked_a_slot(engine)
    with session_scope(engine) as session:
        assert notifications.nudge_now(session, booking_id) is True
    assert send_mail(engine).done == 1
    with session_scope(engine) as session:
        assert notifications.nudge_now(session, booking_id) is False  # already sent: not again
        assert notifications.nudge_now(session, "bk_unknown") is False
    assert send_mail(engine).total == 0 and len(catcher.newest_first()) == 1


def test_the_same_nudge_queued_twice_is_one_message(engine, catcher, monkeypatch):
    booking_id = _picked_a_slot(engine)
    with session_scope(engine) as session:
        notify(session, session.get(Booking, booking_id), "awaiting_payment")  # a redelivered webhook
        assert session.execute(select(func.count()).select_from(OutboxEntry)).scalar_one() == 1
    _later(monkeypatch, 11)
    send_mail(engine)
    assert len(catcher.newest_first()) == 1


def test_an_admins_resend_goes_at_once(engine, catcher):
    booking_id = _picked_a_slot(engine)
    with session_scope(engine) as session:
        notifications.resend_payment_link(session, booking_id, actor="admin:a")
    assert send_mail(engine).done == 1  # the resend; the first nudge still waits
    assert [m.subject.startswith("Complete your payment") for m in catcher.newest_first()] == [True]


def test_no_reminder_to_pay_while_a_payment_is_processing(engine, catcher):
    with session_scope(engine) as session:
        booking = make_booking(session, S.PENDING_PAYMENT)
        booking.hold_expires_at = utcnow() + timedelta(minutes=5)
        booking.payment_processing_since = utcnow()
    assert holds.send_payment_reminders(engine) == 0
    with session_scope(engine, read_only=True) as session:
        assert session.execute(select(func.count()).select_from(Notification)).scalar_one() == 0


def test_a_reminder_queued_before_a_payment_started_processing_is_not_sent(engine, catcher):
    with session_scope(engine) as session:
        booking = make_booking(session, S.PENDING_PAYMENT)
        booking.hold_expires_at = utcnow() + timedelta(minutes=5)
        booking_id = booking.id
    assert holds.send_payment_reminders(engine) == 1
    with session_scope(engine) as session:
        session.get(Booking, booking_id).payment_processing_since = utcnow()  # the bank payment began
    send_mail(engine)
    assert catcher.newest_first() == []
    with session_scope(engine, read_only=True) as session:
        entry = session.execute(select(OutboxEntry)).scalar_one()
    assert entry.status == "done" and "processing" in entry.payload["skipped"]


def test_the_nudge_is_dropped_when_the_reminder_already_went(engine, catcher, monkeypatch, settings_env):
    booking_id = _picked_a_slot(engine)
    with session_scope(engine) as session:
        session.get(Booking, booking_id).hold_expires_at = utcnow() + timedelta(minutes=5)
    assert holds.send_payment_reminders(engine) == 1
    _later(monkeypatch, 11)
    send_mail(engine)
    assert [m.subject for m in catcher.newest_first()][0].startswith("Your slot")
    assert len(catcher.newest_first()) == 1
    entry, _ = _nudge(engine)
    assert "reminder" in entry.payload["skipped"]


def test_in_the_real_flow_the_nudge_waits_and_is_dropped_once_the_client_paid(live, settings_env, monkeypatch):
    from tests.webhook_helpers import settle

    settings_env(payment_nudge_after_minutes="10")  # the default; the live fixture sends it at once
    booking_id = live.book()  # signed in, picked a slot on Calendly: the webhook queued the nudge
    settle(live)
    entry, notification = _nudge(live.engine)
    assert entry.booking_id == booking_id and entry.status == "pending" and notification.sent_at is None
    assert entry.next_attempt_at > utcnow() + timedelta(minutes=9)

    live.pay(booking_id)  # on Stripe's page, paid
    settle(live)
    assert live.status(booking_id) == "CONFIRMED"
    _later(monkeypatch, 11)
    assert live.drain().done == 1
    entry, notification = _nudge(live.engine)
    assert entry.status == "done" and "confirmed" in entry.payload["skipped"] and notification.sent_at is None
