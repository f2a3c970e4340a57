"""Hostile input, case by case: forged, stale, replayed and malformed webhooks for every event we
act on; oversized bodies (declared and streamed); the admin API's token on every admin route; the
client forms' CSRF tokens; and builders confined to their own bookings below the dashboard.

`tests/test_webhook_security.py` covers the signature cases on one event per provider and the
handler-failure paths; this file covers every handled event, replays of the exact captured
request, the malformed-but-signed inputs that used to answer 500, and the other doors.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import re
import secrets
import time
import uuid
from datetime import timedelta

import pytest
import requests
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import select

from core import reporting
from core.calendly import sign_calendly_payload
from core.config import get_settings
from core.db import session_scope
from core.errors import Forbidden
from core.models import (
    Booking, BookingHistory, LoginToken, Notification, OutboxEntry, Payment, Refund, WebhookEvent, utcnow,
)
from core.auth import Viewer
from core.reporting import BookingFilters
from core.services import admin_actions
from core.states import BookingStatus as S
from tests import factories
from tests.servers import serve
from tests.webhook_helpers import (
    calendly_headers, cancellation, invitee_envelope, slot_of, stripe_event, stripe_headers, webhook_events,
)

CALENDLY_KEY = "sandbox-calendly-signing-key"
STRIPE_SECRET = "whsec_sandbox"
PATHS = {"calendly": "/api/webhooks/calendly", "stripe": "/api/webhooks/stripe"}


class LiveClient:
    """The TestClient calls these tests make, sent over real HTTP to a uvicorn server."""

    def __init__(self, base: str, app) -> None:
        self.base, self.app = base, app
        self.session = requests.Session()
        self.cookies = self.session.cookies

    def request(self, method: str, url: str, *, content: bytes | None = None, json=None, headers=None,
                params=None, **_ignored) -> requests.Response:
        headers = dict(headers or {})
        return self.session.request(method, f"{self.base}{url}", data=content, json=json, headers=headers,
                                    params=params, allow_redirects=False, timeout=60)

    def post(self, url: str, **kwargs) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.request("GET", url, **kwargs)


@pytest.fixture
def client(settings_env, request):
    """In-process (TestClient) by default; `@BOTH` runs a test behind a live uvicorn server too."""
    settings_env(run_outbox_after_request="false")  # this file looks at what is stored, not sent
    request.getfixturevalue("engine")
    from webhook_service.app import create_app
    app = create_app()
    if getattr(request, "param", "in-process") == "live":
        with serve(app) as base:
            yield LiveClient(base, app)
        return
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# The representative part that also runs behind a real server (uvicorn on a free port).
BOTH = pytest.mark.parametrize("client", ["in-process", "live"], indirect=True)


@pytest.fixture
def db(client, request):
    return request.getfixturevalue("engine")


def post(client, provider: str, raw: bytes, headers: dict):
    answer = client.post(PATHS[provider], content=raw, headers=headers)
    assert answer.status_code != 410, "a 410 would delete Calendly's webhook subscription"
    assert answer.status_code < 500, answer.text
    return answer


def signed(provider: str, raw: bytes, *, key: str | None = None, timestamp: int | None = None) -> dict:
    if provider == "calendly":
        return calendly_headers(raw, key or CALENDLY_KEY, timestamp)
    return stripe_headers(raw, key or STRIPE_SECRET, timestamp)


def snapshot(engine) -> dict:
    """Everything a delivery could change."""
    with session_scope(engine, read_only=True) as session:
        return {
            "bookings": sorted((b.id, b.status, b.calendly_invitee_uri, b.no_show_at is not None, b.cancel_reason)
                               for b in session.execute(select(Booking)).scalars()),
            "history": factories.count(session, BookingHistory),
            "outbox": sorted(session.execute(select(OutboxEntry.idempotency_key)).scalars()),
            "payments": sorted((p.stripe_payment_intent_id, p.dispute_status)
                               for p in session.execute(select(Payment)).scalars()),
            "refunds": sorted((r.id, r.status, r.stripe_refund_id) for r in session.execute(select(Refund)).scalars()),
            "notifications": factories.count(session, Notification),
        }


# ---------------------------------------------------------------- every event we act on
def _invitee_created(session):
    booking = factories.make_booking(session, S.PENDING_SCHEDULING)
    event_uri = f"https://api.calendly.com/scheduled_events/{uuid.uuid4()}"
    return booking.id, "calendly", invitee_envelope(
        "invitee.created", invitee_uri=f"{event_uri}/invitees/{uuid.uuid4()}", event_uri=event_uri,
        booking_ref=booking.id, **slot_of(booking)), S.PENDING_PAYMENT


def _invitee_canceled(session):
    booking = factories.make_booking(session, S.PENDING_PAYMENT)
    return booking.id, "calendly", invitee_envelope(
        "invitee.canceled", invitee_uri=booking.calendly_invitee_uri, event_uri=booking.calendly_event_uri,
        booking_ref=booking.id, status="canceled", cancellation=cancellation()), S.CANCELED


def _no_show(session):
    booking = factories.make_booking(session, S.CONFIRMED)
    return booking.id, "calendly", invitee_envelope(
        "invitee_no_show.created", invitee_uri=booking.calendly_invitee_uri, event_uri=booking.calendly_event_uri,
        booking_ref=booking.id, no_show={"uri": f"https://api.calendly.com/invitee_no_shows/{uuid.uuid4()}",
                                         "created_at": "2030-01-01T10:00:00Z"}), S.CONFIRMED


def _checkout_completed(session):
    booking = factories.make_booking(session, S.PENDING_PAYMENT)
    return booking.id, "stripe", stripe_event("checkout.session.completed", factories.paid_checkout(booking)), \
        S.CONFIRMED


def _checkout_expired(session):
    booking = factories.make_booking(session, S.PENDING_PAYMENT)
    checkout = {**factories.paid_checkout(booking), "status": "expired", "payment_status": "unpaid"}
    return booking.id, "stripe", stripe_event("checkout.session.expired", checkout), S.EXPIRED


def _paid(session):
    booking = factories.make_booking(session, S.CONFIRMED)
    return booking, factories.make_payment(session, booking)


def _charge_refunded(session):
    booking, payment = _paid(session)
    charge = {"id": f"ch_{secrets.token_hex(6)}", "object": "charge", "payment_intent": payment.stripe_payment_intent_id,
              "amount_refunded": 1000, "refunded": False}
    return booking.id, "stripe", stripe_event("charge.refunded", charge), S.CONFIRMED


def _refund_updated(session):
    booking, payment = _paid(session)
    refund = factories.make_refund(session, payment, 1000, status="requested")
    obj = {"id": f"re_{secrets.token_hex(6)}", "object": "refund", "amount": 1000, "currency": "usd",
           "status": "succeeded", "payment_intent": payment.stripe_payment_intent_id,
           "metadata": {"refund_id": str(refund.id)}}
    return booking.id, "stripe", stripe_event("refund.updated", obj), S.CONFIRMED


def _dispute(session):
    booking, payment = _paid(session)
    obj = {"id": f"dp_{secrets.token_hex(6)}", "object": "dispute", "payment_intent": payment.stripe_payment_intent_id,
           "status": "needs_response", "reason": "fraudulent", "amount": payment.amount_cents}
    return booking.id, "stripe", stripe_event("charge.dispute.created", obj), S.CONFIRMED


EVENTS = {"invitee.created": _invitee_created, "invitee.canceled": _invitee_canceled,
          "invitee_no_show.created": _no_show, "checkout.session.completed": _checkout_completed,
          "checkout.session.expired": _checkout_expired, "charge.refunded": _charge_refunded,
          "refund.updated": _refund_updated, "charge.dispute.created": _dispute}


@pytest.fixture(params=list(EVENTS))
def delivery(request, db):
    with session_scope(db) as session:
        booking_id, provider, body, after = EVENTS[request.param](session)
    return booking_id, provider, json.dumps(body).encode(), after


@BOTH
def test_a_forged_delivery_of_any_event_changes_nothing_and_leaves_the_genuine_one_free(client, db, delivery):
    booking_id, provider, raw, after = delivery
    before = snapshot(db)

    for forged in (signed(provider, raw, key="whsec_or_key_of_somebody_else"),
                   signed(provider, raw.replace(b'"', b' "', 1))):  # right key, other bytes
        answer = post(client, provider, raw, forged)
        assert (answer.status_code, answer.json()["outcome"]) == (400, "rejected")
    assert snapshot(db) == before
    assert [(e.outcome, e.dedupe_key, e.signature_valid) for e in webhook_events(db)] == [("rejected", None, False)] * 2

    genuine = post(client, provider, raw, signed(provider, raw))
    assert (genuine.status_code, genuine.json()["outcome"]) == (200, "processed")
    with session_scope(db, read_only=True) as session:
        assert session.get(Booking, booking_id).status == after


@BOTH
def test_a_captured_request_replayed_is_a_duplicate_with_one_effect(client, db, delivery):
    """The exact bytes and signature header sent again (within the tolerance): answered 2xx, no effect."""
    _booking_id, provider, raw, _after = delivery
    headers = signed(provider, raw)
    assert post(client, provider, raw, headers).json()["outcome"] == "processed"
    after_first = snapshot(db)

    for _ in range(3):
        replay = post(client, provider, raw, headers)
        assert (replay.status_code, replay.json()["outcome"]) == (200, "duplicate")
    assert snapshot(db) == after_first
    assert [e.outcome for e in webhook_events(db)] == ["processed"]


@BOTH
def test_a_captured_request_replayed_after_the_tolerance_is_stale(client, db, delivery):
    _booking_id, provider, raw, _after = delivery
    tolerance = 180 if provider == "calendly" else 300
    old = signed(provider, raw, timestamp=int(time.time()) - tolerance - 20)
    before = snapshot(db)

    answer = post(client, provider, raw, old)

    assert (answer.status_code, answer.json()["outcome"]) == (400, "rejected")
    assert snapshot(db) == before
    [row] = webhook_events(db)
    assert (row.outcome, row.error, row.dedupe_key) == ("rejected", "signature stale", None)


# ---------------------------------------------------------------- malformed, signed or not (each once a 500)
@BOTH
@pytest.mark.parametrize("provider", ["calendly", "stripe"])
def test_absurdly_nested_signed_json_is_422_not_500(client, db, provider):
    depth = 50_000
    raw = (b'{"event": "x", "id": "evt_1", "type": "x", "payload": ' if provider == "calendly" else
           b'{"id": "evt_1", "type": "x", "data": ') + b"[" * depth + b"]" * depth + b"}"

    answer = post(client, provider, raw, signed(provider, raw))

    assert (answer.status_code, answer.json()["outcome"]) == (422, "invalid")


@BOTH
@pytest.mark.parametrize("provider", ["calendly", "stripe"])
def test_unsigned_bodies_with_nul_bytes_are_rejected_and_kept(client, db, provider):
    """PostgreSQL text cannot hold NUL: the rejected body is still stored for the investigation."""
    raw = b'{"event": "invitee.created", "payload": {"uri": "a\x00b"}}\x00\xff\xfe'

    answer = post(client, provider, raw, {"Content-Type": "application/json"})

    assert (answer.status_code, answer.json()["outcome"]) == (400, "rejected")
    [row] = webhook_events(db)
    assert row.outcome == "rejected" and "\x00" not in row.raw_body and row.raw_body.startswith('{"event"')


@pytest.mark.parametrize("header", [b"t=1700000000,v1=\xe9\xe9", b"t=1700000000,v1=\xc3\xa9" + b"0" * 62,
                                    "t=1,v1=çava".encode()])
def test_a_stripe_signature_with_non_ascii_characters_is_rejected_not_500(client, db, header):
    raw = b'{"id": "evt_1", "type": "x", "data": {"object": {}}}'

    answer = client.post(PATHS["stripe"], content=raw, headers=[(b"content-type", b"application/json"),
                                                                   (b"stripe-signature", header)])

    assert (answer.status_code, answer.json()["outcome"]) == (400, "rejected")


def test_a_calendly_signature_with_an_absurd_timestamp_is_stale_not_500(client, db):
    raw = b'{"event": "invitee.created", "payload": {}}'

    answer = post(client, "calendly", raw, calendly_headers(raw, CALENDLY_KEY, 10 ** 400))

    assert (answer.status_code, answer.json()["outcome"]) == (400, "rejected")
    assert webhook_events(db)[0].error == "signature stale"


def _checkout_with(booking, **changes) -> dict:
    obj = factories.paid_checkout(booking)
    for key, value in changes.items():
        if value is KeyError:
            obj.pop(key)
        else:
            obj[key] = value
    return obj


BROKEN_CHECKOUTS = {
    "amount as a string": {"amount_total": "4900"},
    "amount as a float": {"amount_total": 49.0},
    "amount missing": {"amount_total": KeyError},
    "amount negative": {"amount_total": -4900},
    "amount beyond bigint": {"amount_total": 2 ** 70},
    "currency too long": {"currency": "usdx"},
    "currency missing": {"currency": None},
    "no payment intent": {"payment_intent": None},
    "payment intent a number": {"payment_intent": 42},
    "metadata a list": {"metadata": ["booking_id"]},
    "booking id a number": {"metadata": {"booking_id": 7}},
    "booking id with NUL": {"metadata": {"booking_id": "bk_\x00"}, "client_reference_id": None},
    "session id an object": {"id": {"id": "cs_1"}},
    "payment status a list": {"payment_status": ["paid"]},
}


@pytest.mark.parametrize("case", list(BROKEN_CHECKOUTS))
def test_a_signed_paid_checkout_with_a_broken_field_is_422_and_changes_nothing(client, db, case):
    with session_scope(db) as session:
        booking = factories.make_booking(session, S.PENDING_PAYMENT)
        body = stripe_event("checkout.session.completed", _checkout_with(booking, **BROKEN_CHECKOUTS[case]))
    before = snapshot(db)
    raw = json.dumps(body).encode()

    answer = post(client, "stripe", raw, signed("stripe", raw))

    assert (answer.status_code, answer.json()["outcome"]) == (422, "invalid"), answer.text
    assert answer.json()["detail"]
    assert snapshot(db) == before
    [row] = webhook_events(db)
    assert (row.outcome, row.dedupe_key, row.signature_valid) == ("invalid", None, True)


BROKEN_STRIPE_OBJECTS = {
    "refund without status": ("refund.updated", {"id": "re_1", "amount": 100, "currency": "usd"}),
    "refund id a number": ("refund.failed", {"id": 5, "status": "failed", "amount": 100, "currency": "usd"}),
    "refund amount a string": ("refund.updated", {"id": "re_1", "status": "succeeded", "amount": "100",
                                                  "currency": "usd"}),
    "refund status too long": ("refund.updated", {"id": "re_1", "status": "s" * 40, "amount": 100,
                                                  "currency": "usd"}),
    "refund metadata id beyond any integer": ("refund.updated", {"id": "re_1", "status": "succeeded", "amount": 100,
                                                                 "currency": "usd", "metadata": {"refund_id": "9" * 30}}),
    "refund metadata id a huge number": ("refund.updated", {"id": "re_1", "status": "succeeded", "amount": 100,
                                                            "currency": "usd", "metadata": {"refund_id": 10 ** 30}}),
    "charge payment intent a list": ("charge.refunded", {"id": "ch_1", "payment_intent": ["pi_1"]}),
    "dispute status too long": ("charge.dispute.created", {"id": "dp_1", "payment_intent": "pi_1",
                                                           "status": "x" * 100}),
    "event id with NUL": ("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1"}),
    "event id too long": ("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1"}),
}


@pytest.mark.parametrize("case", list(BROKEN_STRIPE_OBJECTS))
def test_other_signed_stripe_events_with_a_broken_field_are_422(client, db, case):
    kind, obj = BROKEN_STRIPE_OBJECTS[case]
    event = stripe_event(kind, obj)
    if case == "event id with NUL":
        event["id"] = "evt_\x00"
    if case == "event id too long":
        event["id"] = "evt_" + "9" * 300
    raw = json.dumps(event).encode()

    answer = post(client, "stripe", raw, signed("stripe", raw))

    assert (answer.status_code, answer.json()["outcome"]) == (422, "invalid"), answer.text


def _calendly_for(booking_id: str, **payload_changes) -> dict:
    event_uri = f"https://api.calendly.com/scheduled_events/{uuid.uuid4()}"
    body = invitee_envelope("invitee.created", invitee_uri=f"{event_uri}/invitees/{uuid.uuid4()}",
                            event_uri=event_uri, booking_ref=booking_id)
    for key, value in payload_changes.items():
        if key == "event":
            body["event"] = value
        else:
            body["payload"][key] = value
    return body


BROKEN_CALENDLY = {
    "invitee uri too long": {"uri": "https://api.calendly.com/scheduled_events/e/invitees/" + "i" * 600},
    "invitee uri with NUL": {"uri": "https://api.calendly.com/scheduled_events/e/invitees/\x00"},
    "event uri too long": {"event": "https://api.calendly.com/scheduled_events/" + "e" * 600},
    "timezone too long": {"timezone": "Europe/" + "x" * 100},
    "cancel url too long": {"cancel_url": "https://calendly.com/cancellations/" + "c" * 600},
    "answer with NUL": {"questions_and_answers": [{"question": "Why?", "answer": "\x00", "position": 0}]},
    "booking reference with NUL": {"tracking": {"utm_content": "bk_\x00"}},
}


@pytest.mark.parametrize("case", list(BROKEN_CALENDLY))
def test_signed_calendly_values_no_real_delivery_has_are_422(client, db, case):
    with session_scope(db) as session:
        booking_id = factories.make_booking(session, S.PENDING_SCHEDULING).id
    body = _calendly_for(booking_id)
    if case == "event uri too long":
        body["payload"]["event"] = BROKEN_CALENDLY[case]["event"]
    else:
        body["payload"].update(BROKEN_CALENDLY[case])
    before = snapshot(db)
    raw = json.dumps(body).encode()

    answer = post(client, "calendly", raw, signed("calendly", raw))

    assert (answer.status_code, answer.json()["outcome"]) == (422, "invalid"), answer.text
    assert snapshot(db) == before


def test_an_unhandled_calendly_event_name_with_nul_is_422(client, db):
    raw = json.dumps({"event": "routing_form\x00.created", "payload": {"uri": "x"}}).encode()

    answer = post(client, "calendly", raw, signed("calendly", raw))

    assert (answer.status_code, answer.json()["outcome"]) == (422, "invalid")


# ---------------------------------------------------------------- long but legitimate values
def test_a_client_with_a_very_long_email_can_pay(client, db):
    """The confirmation's notification and outbox keys hold the email: they must still fit (255)."""
    with session_scope(db) as session:
        long_email = "a" * 280 + "@example.com"
        booking = factories.make_booking(session, S.PENDING_PAYMENT, client=factories.make_client(session, email=long_email))
        booking_id, raw = booking.id, json.dumps(stripe_event("checkout.session.completed",
                                                               factories.paid_checkout(booking))).encode()

    answer = post(client, "stripe", raw, signed("stripe", raw))

    assert (answer.status_code, answer.json()["outcome"]) == (200, "processed"), answer.text
    with session_scope(db, read_only=True) as session:
        assert session.get(Booking, booking_id).status == S.CONFIRMED
        keys = list(session.execute(select(OutboxEntry.idempotency_key)).scalars())
        notified = list(session.execute(select(Notification.to_email)).scalars())
    assert long_email in notified and keys and all(len(key) <= 255 for key in keys)
    assert len(set(keys)) == len(keys)
    assert post(client, "stripe", raw, signed("stripe", raw)).json()["outcome"] == "duplicate"


def test_a_very_long_canceller_name_and_event_id_are_kept_within_their_columns(client, db):
    with session_scope(db) as session:
        booking = factories.make_booking(session, S.PENDING_PAYMENT)
        body = invitee_envelope("invitee.canceled", invitee_uri=booking.calendly_invitee_uri,
                                event_uri=booking.calendly_event_uri, booking_ref=booking.id, status="canceled",
                                cancellation={**cancellation(), "canceled_by": "Z" * 400})
        booking_id = booking.id
        paid_booking, payment = _paid(session)
        charge = stripe_event("charge.refunded", {"id": "ch_1", "payment_intent": payment.stripe_payment_intent_id},
                              event_id="evt_" + "7" * 250)  # the outbox key adds a prefix to it
    raw = json.dumps(body).encode()
    assert post(client, "calendly", raw, signed("calendly", raw)).json()["outcome"] == "processed"
    raw = json.dumps(charge).encode()
    assert post(client, "stripe", raw, signed("stripe", raw)).json()["outcome"] == "processed"

    with session_scope(db, read_only=True) as session:
        canceled = session.get(Booking, booking_id)
        sync = session.execute(select(OutboxEntry).where(OutboxEntry.kind == "stripe_sync_refunds")).scalar_one()
    assert canceled.status == S.CANCELED and canceled.canceled_by == "Z" * 200
    assert len(sync.idempotency_key) <= 255 and sync.booking_id == paid_booking.id


# ---------------------------------------------------------------- oversized bodies
def _asgi_post(app, path: str, headers: list[tuple[bytes, bytes]], chunks, *, on_read=None) -> tuple[int, dict]:
    """One raw ASGI request; `chunks` are fed to the app as it asks for them."""
    sent = iter(chunks)
    answer: dict = {"status": None, "body": b""}

    async def receive():
        if on_read:
            on_read()
        chunk = next(sent, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    return answer["status"], json.loads(answer["body"] or b"{}")


@pytest.mark.parametrize("provider", ["calendly", "stripe"])
def test_a_declared_length_over_the_limit_is_413_before_any_byte_is_read(client, db, provider):
    def never():
        raise AssertionError("the body was read")

    status, body = _asgi_post(client.app, PATHS[provider], [(b"content-length", str(10 ** 12).encode()),
                                                            (b"content-type", b"application/json")],
                              [], on_read=never)

    assert (status, body["outcome"]) == (413, "rejected")
    assert webhook_events(db) == []


@pytest.mark.parametrize("provider", ["calendly", "stripe"])
def test_a_streamed_body_stops_being_read_just_past_the_limit(client, db, provider):
    """100 MB offered in 64 KiB chunks without Content-Length, validly signed: 413 after ~limit."""
    limit = get_settings().webhook_max_body_bytes
    chunk = b"x" * 65536
    reads = []
    header = (sign_calendly_payload(b"x", CALENDLY_KEY) if provider == "calendly"
              else stripe.WebhookSignature.generate_signature_header("x", STRIPE_SECRET))
    name = b"calendly-webhook-signature" if provider == "calendly" else b"stripe-signature"

    status, body = _asgi_post(client.app, PATHS[provider], [(b"transfer-encoding", b"chunked"), (name, header.encode())],
                              (chunk for _ in range(1600)), on_read=lambda: reads.append(1))

    assert (status, body["outcome"]) == (413, "rejected")
    assert len(reads) <= limit // len(chunk) + 2
    assert webhook_events(db) == []


@pytest.mark.parametrize("declared", [b"abc", b"-1", b"1e9", b""])
def test_a_nonsense_content_length_is_not_trusted(client, db, declared):
    status, body = _asgi_post(client.app, PATHS["stripe"], [(b"content-length", declared)], [b'{"id": 1}'])

    assert (status, body["outcome"]) == (400, "rejected")


def _raw_exchange(base: str, head: bytes, chunks=()) -> tuple[bytes, int]:
    """Send a request head, then `chunks` until the server answers; (response bytes, body bytes sent)."""
    import socket
    host, port = base.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for chunk in chunks:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.setblocking(True)
        sock.settimeout(20)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer, sent


@pytest.mark.parametrize("client", ["live"], indirect=True)
@pytest.mark.parametrize("provider", ["calendly", "stripe"])
def test_over_a_real_socket_a_declared_length_over_the_limit_is_413_without_the_body(client, db, provider):
    head = (f"POST {PATHS[provider]} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 ** 12}\r\n\r\n").encode()
    answer, _sent = _raw_exchange(client.base, head)  # no body byte is ever sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert webhook_events(db) == []


@pytest.mark.parametrize("client", ["live"], indirect=True)
@pytest.mark.parametrize("provider", ["calendly", "stripe"])
def test_over_a_real_socket_a_streamed_body_is_refused_near_the_limit(client, db, provider):
    """A chunked body that would go on for 100 MB: the server answers 413 once past the limit."""
    limit = get_settings().webhook_max_body_bytes
    name = "Calendly-Webhook-Signature" if provider == "calendly" else "Stripe-Signature"
    header = (sign_calendly_payload(b"x", CALENDLY_KEY) if provider == "calendly"
              else stripe.WebhookSignature.generate_signature_header("x", STRIPE_SECRET))
    head = (f"POST {PATHS[provider]} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"{name}: {header}\r\n\r\n").encode()
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer, sent = _raw_exchange(client.base, head, (chunk for _ in range(1600)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Socket buffers hold some bytes the server never read; 100 MB were never needed.
    assert sent < limit + 16 * 1024 * 1024, sent
    assert webhook_events(db) == []


# ---------------------------------------------------------------- the admin API, route by route
def _depends_on_admin_token(dependant) -> bool:
    from webhook_service.deps import require_admin_token
    return any(d.call is require_admin_token or _depends_on_admin_token(d) for d in dependant.dependencies)


# Routes that check the token in their body (a server-to-server caller), not as a dependency.
TOKEN_IN_BODY = {("POST", "/api/scheduling/calendly/scheduling-link")}
ADMIN_ROUTES = {("GET", "/api/bookings/{booking_id}"), ("POST", "/api/bookings/{booking_id}/refund")}


def _api_routes(routes):
    from fastapi.routing import APIRoute
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI ≥ 0.16x keeps included routers as branches
            yield from _api_routes(route.original_router.routes)


def test_the_admin_routes_are_exactly_the_ones_this_file_checks(client):
    routes = list(_api_routes(client.app.routes))
    guarded = {(method, route.path) for route in routes if _depends_on_admin_token(route.dependant)
               for method in route.methods}
    assert len(routes) > 10 and guarded == ADMIN_ROUTES


def _bad_authorizations(token: str):
    yield None, 401
    yield b"", 401
    yield b"Bearer", 401
    yield b"Bearer ", 401
    yield b"Basic " + __import__("base64").b64encode(f"admin:{token}".encode()), 401
    yield f"Token {token}".encode(), 401
    yield token.encode(), 401  # the token without a scheme
    yield b"Bearer wrong", 403
    yield f"Bearer {token}x".encode(), 403
    yield f"Bearer {token[:-1]}".encode(), 403
    yield f"Bearer {token.upper()}".encode(), 403
    yield f"Bearer  {token}".encode(), 403  # two spaces: the token would start with one
    yield b"Bearer \xe9\xe9\xe9", 403  # non-ASCII must be a refusal, not a 500
    yield b"Bearer " + b"A" * 10_000, 403


@BOTH
@pytest.mark.parametrize("method,path", sorted(ADMIN_ROUTES | TOKEN_IN_BODY))
def test_every_admin_route_refuses_a_missing_or_wrong_token(client, db, method, path):
    token = get_settings().admin_api_token
    with session_scope(db) as session:
        booking, _payment = _paid(session)
        booking_id = booking.id
    url = path.replace("{booking_id}", booking_id)
    body = ({"eventTypeId": "x", "inviteeEmail": "x@example.com", "inviteeName": "X"} if "scheduling" in path
            else {"amount_cents": 100} if "refund" in path else None)
    before = snapshot(db)

    client.cookies.set("admin_api_token", token)  # nor does the token count anywhere but the header
    for authorization, expected in _bad_authorizations(token):
        headers = [(b"authorization", authorization)] if authorization is not None else []
        answer = client.request(method, url, json=body, headers=headers,
                                params={"access_token": token, "token": token})
        assert answer.status_code == expected, (authorization, answer.status_code, answer.text)
        assert answer.json()["detail"]
        if expected == 401 and (method, path) not in TOKEN_IN_BODY:
            assert answer.headers["www-authenticate"] == "Bearer"
    client.cookies.clear()
    assert snapshot(db) == before

    good = client.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
    assert good.status_code not in (401, 403), good.text


def test_a_signed_in_clients_cookie_does_not_open_the_admin_api(live):
    booking_id, _ = live.start_booking(live.signed_in_client())
    browser = live.signed_in_client()

    assert browser.get(f"{live.web}/api/bookings/{booking_id}", timeout=10).status_code == 401
    assert browser.post(f"{live.web}/api/bookings/{booking_id}/refund", json={}, timeout=10).status_code == 401


# ---------------------------------------------------------------- CSRF on the client forms
def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _counts(live) -> tuple[int, int, int]:
    with session_scope(live.engine, read_only=True) as session:
        return (factories.count(session, Booking), factories.count(session, LoginToken),
                factories.count(session, Notification))


def _wrong_tokens(real: str, other_session: str):
    yield {}  # no token at all
    yield {"csrf_token": ""}
    yield {"csrf_token": "0" * 64}
    yield {"csrf_token": real[:-1]}
    yield {"csrf_token": real.upper() if real != real.upper() else real.lower()}
    yield {"csrf_token": other_session}  # a valid token, of another visitor's session
    yield {"csrf_token": "é" * 64}  # non-ASCII: a refusal, not a 500


def test_starting_a_booking_needs_this_sessions_csrf_token(live):
    browser = live.signed_in_client()
    real = _csrf(browser.get(f"{live.web}/profile/{live.builder_id}", timeout=10).text)
    other = _csrf(live.signed_in_client("mallory@example.com").get(f"{live.web}/profile/{live.builder_id}").text)
    before = _counts(live)
    form = {"event_type_id": live.event_type_ids[0], "builder_id": str(live.builder_id)}

    for token in _wrong_tokens(real, other):
        answer = browser.post(f"{live.web}/bookings", data={**form, **token}, allow_redirects=False, timeout=10)
        assert answer.status_code == 403, (token, answer.status_code)
    assert _counts(live) == before

    answer = browser.post(f"{live.web}/bookings", data={**form, "csrf_token": real}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and _counts(live)[0] == before[0] + 1


def test_asking_for_a_sign_in_link_needs_the_forms_csrf_token(live):
    visitor = requests.Session()
    real = _csrf(visitor.get(f"{live.web}/login", timeout=10).text)
    other = _csrf(requests.get(f"{live.web}/login", timeout=10).text)
    before = _counts(live)
    form = {"email": "victim@example.com", "name": "Victim", "next": "/"}

    for token in _wrong_tokens(real, other):
        answer = visitor.post(f"{live.web}/login", data={**form, **token}, timeout=10)
        assert answer.status_code == 403, (token, answer.status_code)
    assert _counts(live) == before  # no sign-in token, no email

    assert visitor.post(f"{live.web}/login", data={**form, "csrf_token": real}, timeout=10).status_code == 200
    assert _counts(live)[1] == before[1] + 1


def test_signing_out_needs_the_csrf_token(live):
    browser = live.signed_in_client("stays@example.com")
    page = browser.get(f"{live.web}/profile/{live.builder_id}", timeout=10)
    real = _csrf(page.text)
    other = _csrf(live.signed_in_client("mallory@example.com").get(f"{live.web}/profile/{live.builder_id}").text)

    for token in _wrong_tokens(real, other):
        answer = browser.post(f"{live.web}/logout", data=token, allow_redirects=False, timeout=10)
        assert answer.status_code == 403, (token, answer.status_code)
        assert "stays@example.com" in browser.get(f"{live.web}/", timeout=10).text  # still signed in

    assert browser.post(f"{live.web}/logout", data={"csrf_token": real}, allow_redirects=False,
                        timeout=10).status_code == 303
    assert "stays@example.com" not in browser.get(f"{live.web}/", timeout=10).text


def test_a_token_from_before_signing_in_is_void_after_it(live):
    """Signing in starts a new session id, so a token planted before it (session fixation) is refused."""
    browser = requests.Session()
    planted = _csrf(browser.get(f"{live.web}/profile/{live.builder_id}", timeout=10).text)
    sent = browser.post(f"{live.web}/login", timeout=10, data={"email": "fix@example.com", "csrf_token": planted,
                                                                "next": "/"})
    link = re.search(r'id="magic-link" class="btn" href="([^"]+)"', sent.text).group(1).replace("&amp;", "&")
    browser.get(link, timeout=10)
    before = _counts(live)

    answer = browser.post(f"{live.web}/bookings", allow_redirects=False, timeout=10, data={
        "event_type_id": live.event_type_ids[0], "builder_id": str(live.builder_id), "csrf_token": planted})

    assert answer.status_code == 403 and _counts(live) == before


# ---------------------------------------------------------------- builders confined to their own bookings
@pytest.fixture
def two_builders(session):
    """Ada and Bo; Bo has a paid booking (with an outbox entry and a webhook event), one awaiting payment."""
    ada, bo = factories.make_builder(session, name="Ada"), factories.make_builder(session, name="Bo")
    ada_type, bo_type = factories.make_session_type(session, ada), factories.make_session_type(session, bo)
    mine = factories.make_booking(session, S.CONFIRMED, session_type=ada_type)
    factories.make_payment(session, mine)
    paid = factories.make_booking(session, S.CONFIRMED, session_type=bo_type)
    factories.make_payment(session, paid)
    awaiting = factories.make_booking(session, S.PENDING_PAYMENT, session_type=bo_type)
    entry = OutboxEntry(kind="notify", booking_id=paid.id, payload={}, idempotency_key="test:bo", status="failed",
                        attempts=3, last_error="boom")
    event = WebhookEvent(provider="stripe", dedupe_key="stripe:evt_bo", event_type="checkout.session.completed",
                         raw_body="{}", headers={}, signature_valid=True, outcome="failed", error="boom",
                         booking_id=paid.id, attempts=1)
    session.add_all([entry, event])
    session.commit()
    viewer = Viewer(user_id=1, email="ada@test", role="builder", builder_id=ada.id)
    return {"viewer": viewer, "ada": ada.id, "bo": bo.id, "mine": mine.id, "bo_paid": paid.id,
            "bo_awaiting": awaiting.id, "entry": entry.id, "event": event.id, "bo_type": bo_type.id}


def _ledger(session) -> tuple:
    return (sorted((b.id, b.status) for b in session.execute(select(Booking)).scalars()),
            factories.count(session, Refund), factories.count(session, BookingHistory),
            sorted((e.id, e.status, e.attempts) for e in session.execute(select(OutboxEntry)).scalars()),
            sorted((w.id, w.outcome) for w in session.execute(select(WebhookEvent)).scalars()),
            factories.count(session, Notification))


# Every reporting function or dashboard action that takes a booking id, and how to call it.
BY_BOOKING_ID = {
    "booking_detail": lambda s, v, b: reporting.booking_detail(s, v, b),
    "refund": lambda s, v, b: admin_actions.refund(s, v, b, 100, reason="mine now"),
    "refund_all": lambda s, v, b: admin_actions.refund(s, v, b, None),
    "cancel": lambda s, v, b: admin_actions.cancel(s, v, b, reason="mine now"),
    "resend_payment_link": lambda s, v, b: admin_actions.resend_payment_link(s, v, b),
}


def test_every_function_taking_a_booking_id_is_checked_here():
    found = set()
    for module in (reporting, admin_actions):
        for name in module.__all__:
            function = getattr(module, name)
            if inspect.isfunction(function) and "booking_id" in inspect.signature(function).parameters:
                found.add(name)
    assert found == {"booking_detail", "refund", "cancel", "resend_payment_link"}
    assert found <= set(BY_BOOKING_ID)


@pytest.mark.parametrize("name", list(BY_BOOKING_ID))
@pytest.mark.parametrize("target", ["bo_paid", "bo_awaiting"])
def test_a_builder_cannot_read_or_act_on_another_builders_booking(session, two_builders, name, target):
    before = _ledger(session)

    with pytest.raises(Forbidden):
        BY_BOOKING_ID[name](session, two_builders["viewer"], two_builders[target])

    session.rollback()
    assert _ledger(session) == before


def test_a_builder_cannot_reach_another_builders_rows_through_ids_of_other_things(session, engine, two_builders):
    viewer, before = two_builders["viewer"], _ledger(session)
    calls = [
        lambda: reporting.webhook_payload(session, viewer, two_builders["event"]),
        lambda: admin_actions.retry_outbox(session, viewer, two_builders["entry"]),
        lambda: admin_actions.reprocess_webhook(engine, viewer, two_builders["event"]),
        lambda: admin_actions.update_price(session, viewer, two_builders["bo_type"], 1, "USD"),
        lambda: reporting.failed_outbox(session, viewer),
        lambda: reporting.failed_webhooks(session, viewer),
    ]
    for call in calls:
        with pytest.raises(Forbidden):
            call()
        session.rollback()
    assert _ledger(session) == before


def test_a_builder_cannot_ask_for_another_builders_figures(session, two_builders):
    viewer, bo = two_builders["viewer"], two_builders["bo"]
    since = utcnow() - timedelta(days=365)
    calls = {
        "list_bookings": lambda: reporting.list_bookings(session, viewer, BookingFilters(builder_id=bo)),
        "count_bookings": lambda: reporting.count_bookings(session, viewer, BookingFilters(builder_id=bo)),
        "bookings_csv": lambda: reporting.bookings_csv(session, viewer, BookingFilters(builder_id=bo)),
        "pending_payments": lambda: reporting.pending_payments(session, viewer, builder_id=bo),
        "upcoming_sessions": lambda: reporting.upcoming_sessions(session, viewer, builder_id=bo),
        "sessions_between": lambda: reporting.sessions_between(session, viewer, since, utcnow(), builder_id=bo),
        "refunds_csv": lambda: reporting.refunds_csv(session, viewer, reporting.RefundFilters(builder_id=bo)),
        "earnings_by_month": lambda: reporting.earnings_by_month(session, viewer, builder_id=bo),
        "builders_and_prices": lambda: reporting.builders_and_prices(session, viewer, builder_id=bo),
        "session_type_options": lambda: reporting.session_type_options(session, viewer, builder_id=bo),
        "refund_ledger": lambda: reporting.refund_ledger(session, viewer, builder_id=bo),
        "overview_kpis": lambda: reporting.overview_kpis(session, viewer, since, builder_id=bo),
        "refunds_by_reason": lambda: reporting.refunds_by_reason(session, viewer, since, builder_id=bo),
        "status_funnel": lambda: reporting.status_funnel(session, viewer, since, builder_id=bo),
        "weekly_series": lambda: reporting.weekly_series(session, viewer, since, builder_id=bo),
    }
    with_builder_id = {name for name in reporting.__all__ if inspect.isfunction(getattr(reporting, name))
                       and "builder_id" in inspect.signature(getattr(reporting, name)).parameters}
    assert with_builder_id <= set(calls), with_builder_id - set(calls)
    for name, call in calls.items():
        with pytest.raises(Forbidden):
            call()


def test_a_builders_own_lists_never_hold_another_builders_booking(session, two_builders):
    viewer = two_builders["viewer"]
    others = {two_builders["bo_paid"], two_builders["bo_awaiting"]}
    listed = {row.id for row in reporting.list_bookings(session, viewer, BookingFilters(), 1, 500).rows}
    listed |= {row.id for row in reporting.upcoming_sessions(session, viewer)}
    listed |= {row.id for row in reporting.pending_payments(session, viewer)}
    csv_text = reporting.bookings_csv(session, viewer, BookingFilters())

    assert two_builders["mine"] in listed and not listed & others
    assert not any(other in csv_text for other in others)
    for search in (two_builders["bo_paid"], "Bo", "@example.test"):
        rows = reporting.list_bookings(session, viewer, BookingFilters(search=search), 1, 500).rows
        assert not {row.id for row in rows} & others


# ---------------------------------------------------------------- bad characters and numbers in any input
NUL_REQUESTS = [
    ("GET", "/payment/success?session_id=cs_%00", {}),
    ("GET", "/payment/cancel?booking=bk_%00", {}),
    ("GET", "/payment/calendly-return?utm_content=bk_%00", {}),
    ("GET", "/payment/bk_%00", {}),
    ("GET", "/api/bookings/bk_%00", {"admin": True}),
    ("POST", "/api/bookings/bk_%00/refund", {"admin": True, "json": {}}),
    ("POST", "/api/bookings/bk_x/refund", {"admin": True, "json": {"reason": "a\x00b"}}),
    ("POST", "/api/scheduling/calendly/scheduling-link",
     {"admin": True, "json": {"eventTypeId": "a\x00", "inviteeEmail": "a@b.c"}}),
    ("POST", "/login", {"csrf": True, "data": {"email": "a\x00@example.com"}}),
    ("POST", "/login", {"csrf": True, "data": {"email": "a@example.com", "next": "/\x00"}}),
    ("POST", "/bookings", {"csrf": True, "data": {"event_type_id": "\x00"}}),
    ("GET", "/login/verify?token=%00", {}),
    ("GET", "/login?next=/%00", {}),
    ("GET", "/profile/1%00", {}),
]


@pytest.mark.parametrize("method,url,how", NUL_REQUESTS, ids=[f"{m} {u}" for m, u, _ in NUL_REQUESTS])
def test_a_nul_character_in_any_input_is_a_422_not_a_500(client, db, method, url, how):
    """PostgreSQL text cannot hold NUL: before it was refused up front, each of these was a 500."""
    headers = {"Authorization": f"Bearer {get_settings().admin_api_token}"} if how.get("admin") else {}
    data = how.get("data")
    if how.get("csrf"):
        data = {**data, "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"',
                                                 client.get("/login").text).group(1)}
    before = snapshot(db)

    answer = client.request(method, url, headers=headers, json=how.get("json"), data=data)

    assert answer.status_code == 422, (answer.status_code, answer.text[:300])
    assert "NUL" in answer.text
    assert snapshot(db) == before


def test_a_nul_refusal_is_a_page_for_a_browser(client):
    answer = client.get("/payment/success?session_id=cs_%00", headers={"Accept": "text/html"})

    assert answer.status_code == 422 and "<!doctype html>" in answer.text.lower() and "NUL" in answer.text


@pytest.mark.parametrize("builder_id", ["9223372036854775808", "9" * 20, "²", "١٢", "0", "-1", "1.0"])
def test_builder_ids_that_are_not_database_integers_are_not_found(client, db, builder_id):
    """"²" is a digit to isdigit() but not to int(); SQLite refuses integers past 2**63 (both were 500s)."""
    page = client.get(f"/profile/{builder_id}")
    api = client.get("/api/scheduling/calendly/event-types", params={"builderId": builder_id})

    assert page.status_code == 404, page.text[:200]
    assert api.status_code in (404, 422), api.text[:200]
