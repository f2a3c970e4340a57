"""What is sent: a Calendly `invitee.created` or a Stripe `checkout.session.completed` per seeded
booking, as the providers send them, signed at send time with the sandbox secrets; and where to
(the real endpoint, or the floor: the same server, signature check only)."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timedelta, timezone

from bench.seeding import (BENCH_BUILDER_EMAIL, BENCH_BUILDER_URI, BENCH_EVENT_TYPE_URI, CALENDLY_API,
                           SeededBooking)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def calendly_invitee_created(booking: SeededBooking, index: int) -> bytes:
    """A v2 `invitee.created` for this booking (utm_content = booking id), as Calendly sends it."""
    now = datetime.now(timezone.utc)
    event_uuid = secrets.token_hex(8) + booking.id[3:15]
    invitee_uuid = secrets.token_hex(8) + booking.id[15:]
    event_uri = f"{CALENDLY_API}/scheduled_events/{event_uuid}"
    invitee_uri = f"{event_uri}/invitees/{invitee_uuid}"
    start = (now + timedelta(days=2 + index % 20, hours=index % 9)).replace(minute=0, second=0, microsecond=0)
    body = {
        "created_at": _iso(now), "created_by": BENCH_BUILDER_URI, "event": "invitee.created",
        "payload": {
            "cancel_url": f"https://calendly.com/cancellations/{invitee_uuid}",
            "created_at": _iso(now), "email": booking.client_email, "event": event_uri,
            "first_name": None, "last_name": None, "name": "Bench Client", "new_invitee": None,
            "no_show": None, "old_invitee": None, "payment": None,
            "questions_and_answers": [{"question": "What would you like to work on?",
                                       "answer": "A booking-to-payment flow", "position": 0}],
            "reconfirmation": None, "reschedule_url": f"https://calendly.com/reschedulings/{invitee_uuid}",
            "rescheduled": False, "routing_form_submission": None,
            "scheduled_event": {
                "uri": event_uri, "name": "Pair-programming session", "status": "active",
                "start_time": _iso(start), "end_time": _iso(start + timedelta(minutes=60)),
                "event_type": BENCH_EVENT_TYPE_URI,
                "location": {"type": "google_conference", "status": "pushed",
                             "join_url": f"https://meet.google.com/{event_uuid[:3]}-{event_uuid[3:7]}"},
                "invitees_counter": {"total": 1, "active": 1, "limit": 1},
                "created_at": _iso(now), "updated_at": _iso(now),
                "event_memberships": [{"user": BENCH_BUILDER_URI,
                                       "user_email": BENCH_BUILDER_EMAIL, "user_name": "Bench Builder"}],
                "event_guests": [],
            },
            "status": "active", "text_reminder_number": None, "timezone": "Europe/London",
            "tracking": {"utm_campaign": None, "utm_source": "buildappswith", "utm_medium": None,
                         "utm_content": booking.id, "utm_term": None, "salesforce_uuid": None},
            "updated_at": _iso(now), "uri": invitee_uri,
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def stripe_checkout_completed(booking: SeededBooking, index: int) -> bytes:
    """A `checkout.session.completed` (paid) for this booking's Checkout Session; unique event id
    and payment intent."""
    now = int(time.time())
    intent = f"pi_{secrets.token_hex(12)}"
    session_object = {
        "id": booking.checkout_session_id, "object": "checkout.session", "after_expiration": None,
        "allow_promotion_codes": None, "amount_subtotal": booking.amount_cents,
        "amount_total": booking.amount_cents, "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None, "cancel_url": f"http://127.0.0.1:8000/payment/cancel?booking={booking.id}",
        "client_reference_id": booking.id, "consent": None, "created": now - 120,
        "currency": booking.currency.lower(), "customer": None, "customer_creation": "if_required",
        "customer_details": {"address": None, "email": booking.client_email, "name": "Bench Client",
                             "phone": None, "tax_exempt": "none", "tax_ids": []},
        "customer_email": booking.client_email, "expires_at": now + 1800, "invoice": None,
        "livemode": False, "locale": None,
        "metadata": {"booking_id": booking.id, "calendly_event_uri": f"{CALENDLY_API}/scheduled_events/ev{booking.id[3:]}"},
        "mode": "payment", "payment_intent": intent, "payment_link": None,
        "payment_method_collection": "if_required", "payment_method_types": ["card"],
        "payment_status": "paid", "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "setup_intent": None, "shipping_address_collection": None, "shipping_cost": None,
        "status": "complete", "submit_type": None, "subscription": None,
        "success_url": "http://127.0.0.1:8000/payment/success?session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted",
        "url": None,
    }
    event = {
        "id": f"evt_{secrets.token_hex(12)}", "object": "event", "api_version": "2025-09-30.clover",
        "created": now, "data": {"object": session_object}, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": "checkout.session.completed",
    }
    return json.dumps(event, separators=(",", ":")).encode()


PAYLOAD = {"calendly": calendly_invitee_created, "stripe": stripe_checkout_completed}


def sign(provider: str, body: bytes) -> dict[str, str]:
    """Headers of a freshly signed delivery (signed at send time: the timestamps stay in tolerance)."""
    from core.config import SANDBOX_SECRETS
    t = int(time.time())
    if provider == "calendly":
        key = SANDBOX_SECRETS["calendly_webhook_signing_key"].encode()
        digest = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return {"content-type": "application/json", "user-agent": "Calendly Webhooks",
                "calendly-webhook-signature": f"t={t},v1={digest}"}
    key = SANDBOX_SECRETS["stripe_webhook_secret"].encode()
    digest = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json; charset=utf-8",
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)", "stripe-signature": f"t={t},v1={digest}"}


def full_path(provider: str) -> str:
    return f"/api/webhooks/{provider}"


def floor_path(provider: str) -> str:
    return f"/api/webhooks/_floor/{provider}"
