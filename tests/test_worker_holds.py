"""The worker's safety nets: unpaid holds end on time (asking Stripe first), reminders go out once,
finished sessions complete."""
from datetime import timedelta

from sqlalchemy import select, update

from core.db import session_scope
from core.models import Booking, Notification, OutboxEntry, utcnow
from core.stripe import stripe_gateway
from core.services import booking_service, holds


def _set_hold(live, booking_id, expires_at):
    with session_scope(live.engine) as db:
        db.execute(update(Booking).where(Booking.id == booking_id).values(hold_expires_at=expires_at))


def _calendly_event_status(live, booking_id):
    event_uri = live.booking(booking_id)["calendly_event_uri"]
    return [e for e in live.calendly_state()["events"] if e["uri"] == event_uri][0]["status"]


def test_overdue_unpaid_hold_expires_everywhere(live):
    booking_id = live.book()
    checkout_id = live.checkout(booking_id)
    live.stripe_sandbox("POST", "/config", {"webhook_delivery": "off"})  # Stripe's own expiry event is lost
    _set_hold(live, booking_id, utcnow() - timedelta(minutes=5))

    assert holds.expire_overdue_holds(live.engine, stripe_gateway()) == 1
    assert live.status(booking_id) == "EXPIRED"
    session = [s for s in live.stripe_state()["sessions"] if s["id"] == checkout_id][0]
    assert session["status"] == "expired"
    live.drain()
    assert _calendly_event_status(live, booking_id) == "canceled"
    assert holds.expire_overdue_holds(live.engine, stripe_gateway()) == 0  # nothing left to do


def test_overdue_hold_that_was_paid_is_confirmed_not_expired(live):
    booking_id = live.book()
    live.stripe_sandbox("POST", "/config", {"webhook_delivery": "off"})  # the payment webhook is lost
    live.pay(booking_id)
    assert live.status(booking_id) == "PENDING_PAYMENT"
    _set_hold(live, booking_id, utcnow() - timedelta(minutes=5))

    holds.expire_overdue_holds(live.engine, stripe_gateway())
    data = live.booking(booking_id)
    assert data["status"] == "CONFIRMED" and data["payment_status"] == "paid"


def test_payment_reminder_is_sent_once_before_the_hold_ends(live):
    booking_id = live.book()
    live.checkout(booking_id)
    _set_hold(live, booking_id, utcnow() + timedelta(minutes=5))
    assert holds.send_payment_reminders(live.engine) == 1
    assert holds.send_payment_reminders(live.engine) == 0
    with session_scope(live.engine, read_only=True) as db:
        reminders = db.execute(select(Notification).where(Notification.booking_id == booking_id,
                                                          Notification.kind == "payment_reminder")).scalars().all()
    assert len(reminders) == 1 and f"/payment/{booking_id}" in reminders[0].body


def test_paid_booking_gets_no_reminder(live):
    booking_id = live.book()
    live.pay(booking_id)
    _set_hold(live, booking_id, utcnow() + timedelta(minutes=5))  # even with a stale hold value
    assert holds.send_payment_reminders(live.engine) == 0


def test_confirmed_sessions_that_ended_become_completed(live):
    booking_id = live.book()
    live.pay(booking_id)
    with session_scope(live.engine) as db:
        assert booking_service.complete_past_sessions(db, now=utcnow()) == 0
        assert booking_service.complete_past_sessions(db, now=utcnow() + timedelta(days=30)) == 1
    assert live.status(booking_id) == "COMPLETED"


def test_abandoned_scheduling_expires_after_a_day(live):
    browser = live.signed_in_client()
    booking_id, _url = live.start_booking(browser)
    with session_scope(live.engine) as db:
        db.execute(update(Booking).where(Booking.id == booking_id).values(created_at=utcnow() - timedelta(days=2)))
    holds.expire_overdue_holds(live.engine, stripe_gateway())
    assert live.status(booking_id) == "EXPIRED"
    with session_scope(live.engine, read_only=True) as db:
        assert db.execute(select(OutboxEntry).where(OutboxEntry.booking_id == booking_id,
                                                    OutboxEntry.kind == "calendly_cancel")).first() is None


def test_one_unreadable_checkout_does_not_hold_up_other_expiries(live):
    broken, healthy = live.book(), live.book()
    live.checkout(broken)
    live.checkout(healthy)
    with session_scope(live.engine) as db:
        db.execute(update(Booking).where(Booking.id == broken).values(stripe_checkout_session_id="cs_unknown_to_stripe"))
    for booking_id in (broken, healthy):
        _set_hold(live, booking_id, utcnow() - timedelta(minutes=5))

    holds.expire_overdue_holds(live.engine, stripe_gateway())  # (Stripe's expiry webhook may do the move)
    assert live.status(healthy) == "EXPIRED"
    assert live.status(broken) == "PENDING_PAYMENT"  # left for the next tick, with a warning


def test_a_young_abandoned_booking_survives_and_an_old_one_expires(engine):
    """A booking still waiting for its Calendly slot is kept for 24 h; only then the worker ends it."""
    from tests.factories import make_booking

    now = utcnow()
    with session_scope(engine) as db:
        young = make_booking(db, "PENDING_SCHEDULING", created_at=now - timedelta(hours=23, minutes=50)).id
        old = make_booking(db, "PENDING_SCHEDULING", created_at=now - timedelta(hours=24, minutes=10)).id
    assert holds.expire_overdue_holds(engine, gateway=None, now=now) == 1
    with session_scope(engine, read_only=True) as db:
        assert db.get(Booking, young).status == "PENDING_SCHEDULING"
        assert db.get(Booking, old).status == "EXPIRED"
    # An hour later the young one has passed 24 h too.
    assert holds.expire_overdue_holds(engine, gateway=None, now=now + timedelta(hours=1)) == 1
    with session_scope(engine, read_only=True) as db:
        assert db.get(Booking, young).status == "EXPIRED"
