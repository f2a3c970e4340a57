"""The offline Stripe stand-in, driven for real: uvicorn on a free port, the official `stripe` SDK
as the client, and a second small server that verifies every webhook with
`stripe.Webhook.construct_event`."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import requests
import stripe
import uvicorn
from fastapi import FastAPI, Request, Response

from tests.servers import serve
from sandbox.stripe import standin as stripe_standin
from sandbox.stripe.standin import create_app
from sandbox.stripe.wire import decode_form, format_amount

SECRET_KEY = "sk_test_standin_123"
WEBHOOK_SECRET = "whsec_test_standin"


class Receiver:
    """Webhook endpoint: verifies signatures, records events, can be told to fail."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.bad_signatures = 0
        self.fail_next = 0
        self.lock = threading.Lock()
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            raw = (await request.body()).decode()
            header = request.headers.get("stripe-signature", "")
            try:
                event = stripe.Webhook.construct_event(raw, header, WEBHOOK_SECRET)
            except (stripe.SignatureVerificationError, ValueError):
                with self.lock:
                    self.bad_signatures += 1
                return Response(status_code=400)
            with self.lock:
                if self.fail_next > 0:
                    self.fail_next -= 1
                    return Response(status_code=500)
                self.events.append({"event": event.to_dict(), "raw": raw, "header": header,
                                    "content_type": request.headers.get("content-type")})
            return Response('{"received": true}', media_type="application/json")

    def types(self) -> list[str]:
        with self.lock:
            return [e["event"]["type"] for e in self.events]

    def of_type(self, type_: str) -> list[dict]:
        with self.lock:
            return [e["event"] for e in self.events if e["event"]["type"] == type_]

    def wait_for(self, type_: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.of_type(type_)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {count}x {type_} webhook; got {self.types()}")


@pytest.fixture(scope="module")
def receiver_server():
    receiver = Receiver()
    with serve(receiver.app) as base:
        yield receiver, f"{base}/hook"


class Standin:
    def __init__(self, app: FastAPI, base: str, receiver: Receiver) -> None:
        self.app, self.base, self.receiver = app, base, receiver
        self.store = app.state.store
        self.client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": base})

    def session_params(self, **overrides) -> dict:
        params = {
            "mode": "payment",
            "line_items": [{"quantity": 1, "price_data": {
                "currency": "usd", "unit_amount": 5000,
                "product_data": {"name": "Intro call", "description": "30 minutes with Ada"}}}],
            "metadata": {"booking_id": "bk_1"},
            "client_reference_id": "bk_1",
            "customer_email": "client@example.com",
            "success_url": "https://shop.test/paid?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://shop.test/cancelled",
            "expires_at": int(time.time()) + 3600,
            "payment_intent_data": {"metadata": {"booking_id": "bk_1"}},
        }
        params.update(overrides)
        return params

    def create_session(self, key: str | None = None, **overrides):
        options = {"idempotency_key": key} if key else {}
        return self.client.v1.checkout.sessions.create(params=self.session_params(**overrides),
                                                       options=options)

    def sandbox(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, f"{self.base}/_sandbox{path}", json=body, timeout=10)

    def paid_session(self, **overrides):
        session = self.create_session(**overrides)
        answer = self.sandbox("POST", f"/checkout/{session.id}/pay")
        assert answer.status_code == 200, answer.text
        return self.client.v1.checkout.sessions.retrieve(session.id)

    def state(self) -> dict:
        return self.sandbox("GET", "/state").json()


@pytest.fixture
def standin(receiver_server):
    receiver, hook_url = receiver_server
    with receiver.lock:
        receiver.events.clear()
        receiver.fail_next = 0
        receiver.bad_signatures = 0
    app = create_app(secret_key=SECRET_KEY, webhook_url=hook_url, webhook_secret=WEBHOOK_SECRET,
                     public_url="http://stand.in")
    with serve(app) as base:
        yield Standin(app, base, receiver)
    assert receiver.bad_signatures == 0


# ---------------------------------------------------------------------------- wire format

def test_form_decoder_builds_nested_dicts_and_lists():
    raw = ("line_items[0][price_data][currency]=usd&line_items[0][quantity]=2"
           "&line_items[1][quantity]=1&metadata[booking_id]=b%201&metadata[empty]="
           "&expand[]=payment_intent&expand[]=line_items&types[0]=a&types[1]=b&created[gte]=5")
    assert decode_form(raw) == {
        "line_items": [{"price_data": {"currency": "usd"}, "quantity": "2"}, {"quantity": "1"}],
        "metadata": {"booking_id": "b 1", "empty": ""},
        "expand": ["payment_intent", "line_items"], "types": ["a", "b"], "created": {"gte": "5"},
    }


def test_amounts_use_the_currency_minor_unit():
    assert format_amount(5000, "usd") == "$50.00"
    assert format_amount(1999, "eur") == "€19.99"
    assert format_amount(250, "gbp") == "£2.50"
    assert format_amount(1500, "jpy") == "¥1,500"
    assert format_amount(12000, "krw") == "₩12,000"
    assert format_amount(1234, "sek") == "SEK 12.34"


# ---------------------------------------------------------------------------- sessions

def test_create_retrieve_and_list_sessions(standin):
    session = standin.create_session()
    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert session.url == f"http://stand.in/pay/{session.id}"
    assert (session.status, session.payment_status, session.payment_intent) == ("open", "unpaid", None)
    assert (session.amount_total, session.currency, session.mode) == (5000, "usd", "payment")
    assert session.metadata.to_dict() == {"booking_id": "bk_1"}
    assert session.client_reference_id == "bk_1" and session.customer_email == "client@example.com"
    assert session.livemode is False and isinstance(session.created, int)
    assert session.last_response.request_id.startswith("req_")

    fetched = standin.client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert fetched.id == session.id and fetched.expires_at == session.expires_at
    assert fetched.line_items.data[0].price.unit_amount == 5000

    other = standin.create_session(metadata={"booking_id": "bk_2"})
    page = standin.client.v1.checkout.sessions.list(params={"limit": 1})
    assert [s.id for s in page.data] == [other.id] and page.has_more is True
    assert page.object == "list" and page.url == "/v1/checkout/sessions"
    assert [s.id for s in standin.client.v1.checkout.sessions.list(params={"status": "open"}).auto_paging_iter()] \
        == [other.id, session.id]

    paid = standin.paid_session()
    found = standin.client.v1.checkout.sessions.list(params={"payment_intent": paid.payment_intent})
    assert [s.id for s in found.data] == [paid.id]


def test_session_validation_errors(standin):
    now = int(time.time())
    with pytest.raises(stripe.InvalidRequestError) as too_soon:
        standin.create_session(expires_at=now + 600)
    assert too_soon.value.param == "expires_at" and too_soon.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as too_late:
        standin.create_session(expires_at=now + 25 * 3600)
    assert too_late.value.param == "expires_at"
    params = standin.session_params()
    del params["expires_at"]
    default = standin.client.v1.checkout.sessions.create(params=params)
    assert abs(default.expires_at - (now + 24 * 3600)) <= 5

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        standin.create_session(lineitems="x")
    assert "unknown parameter" in unknown.value.user_message and unknown.value.param == "lineitems"
    with pytest.raises(stripe.InvalidRequestError) as bad_amount:
        standin.create_session(line_items=[{"quantity": 1, "price_data": {
            "currency": "usd", "unit_amount": "12.5", "product_data": {"name": "x"}}}])
    assert bad_amount.value.param == "line_items[0][price_data][unit_amount]"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        standin.client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    assert standin.state()["sessions"] == [default.to_dict()]


def test_api_key_is_checked(standin):
    wrong = stripe.StripeClient("sk_test_wrong_key_0000", base_addresses={"api": standin.base})
    with pytest.raises(stripe.AuthenticationError) as error:
        wrong.v1.events.list()
    assert error.value.http_status == 401 and "Invalid API Key provided" in error.value.user_message
    answer = requests.get(f"{standin.base}/v1/events", timeout=5)
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "invalid_request_error"
    answer = requests.get(f"{standin.base}/v1/nothing", auth=(SECRET_KEY, ""), timeout=5)
    assert answer.status_code == 404 and "Unrecognized request URL" in answer.json()["error"]["message"]


def test_expire_via_api_emits_expired_event(standin):
    session = standin.create_session()
    expired = standin.client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired" and expired.url is None
    [event] = standin.receiver.wait_for("checkout.session.expired")
    assert event["data"]["object"]["id"] == session.id and event["id"].startswith("evt_")
    assert event["request"]["id"] == expired.last_response.request_id
    with pytest.raises(stripe.InvalidRequestError):
        standin.client.v1.checkout.sessions.expire(session.id)


def test_sessions_past_expires_at_expire_lazily_and_in_the_background(standin, monkeypatch):
    # Two seconds over Stripe's 30-minute minimum: the stand-in's clock may tick on meanwhile.
    first = standin.create_session(expires_at=int(time.time()) + 1802)
    with standin.store.lock:
        standin.store.clock_offset = 1803
    assert standin.client.v1.checkout.sessions.retrieve(first.id).status == "expired"
    assert [e["data"]["object"]["id"] for e in standin.receiver.of_type("checkout.session.expired")] \
        == [first.id]

    moved = standin.sandbox("POST", "/clock", {"advance_seconds": 0}).json()
    assert moved["clock_offset"] == 1803
    second = standin.create_session(expires_at=standin.store.now() + 1802)
    answer = standin.sandbox("POST", "/clock", {"advance_seconds": 1802})
    assert answer.status_code == 200
    assert standin.receiver.wait_for("checkout.session.expired", 2)[1]["data"]["object"]["id"] == second.id

    monkeypatch.setattr(stripe_standin, "SWEEP_SECONDS", 0.05)
    app = create_app(secret_key=SECRET_KEY, webhook_url=None, webhook_secret=WEBHOOK_SECRET,
                     public_url="http://x")
    with serve(app) as base:
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": base})
        third = client.v1.checkout.sessions.create(params=standin.session_params())
        with app.state.store.lock:
            app.state.store.clock_offset = 3601
        deadline = time.time() + 3
        while time.time() < deadline and app.state.store.sessions[third.id]["status"] == "open":
            time.sleep(0.02)
        assert app.state.store.sessions[third.id]["status"] == "expired"  # no request needed
    assert app.state.stop.is_set()


# ---------------------------------------------------------------------------- paying

def test_pay_via_sandbox_endpoint(standin):
    session = standin.create_session()
    answer = standin.sandbox("POST", f"/checkout/{session.id}/pay")
    assert answer.status_code == 200 and answer.json()["status"] == "complete"
    done = standin.client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.payment_intent.startswith("pi_") and done.customer_details.email == "client@example.com"

    intent = standin.client.v1.payment_intents.retrieve(done.payment_intent)
    assert (intent.status, intent.amount, intent.amount_received, intent.currency) == ("succeeded", 5000, 5000, "usd")
    assert intent.metadata.to_dict() == {"booking_id": "bk_1"}
    charge = standin.client.v1.charges.retrieve(intent.latest_charge)
    assert charge.id.startswith("ch_") and charge.payment_intent == intent.id
    assert (charge.amount, charge.amount_refunded, charge.refunded, charge.disputed) == (5000, 0, False, False)

    [event] = standin.receiver.wait_for("checkout.session.completed")
    assert event["data"]["object"]["payment_status"] == "paid"
    assert event["data"]["object"]["payment_intent"] == intent.id
    assert event["api_version"] == "2025-01-27.acacia" and event["livemode"] is False
    received = standin.receiver.events[0]
    assert received["content_type"] == "application/json"
    assert received["header"].startswith("t=") and ",v1=" in received["header"]
    timestamp = int(received["header"].split(",")[0][2:])
    assert received["header"] == stripe.WebhookSignature.generate_signature_header(
        received["raw"], WEBHOOK_SECRET, timestamp=timestamp)
    [delivery] = standin.state()["deliveries"]
    assert (delivery["event_id"], delivery["status"], delivery["attempt"]) == (event["id"], 200, 1)
    assert standin.client.v1.events.retrieve(event["id"]).pending_webhooks == 0

    again = standin.sandbox("POST", f"/checkout/{session.id}/pay")
    assert again.status_code == 400 and len(standin.state()["payment_intents"]) == 1


def test_pay_via_hosted_page(standin):
    session = standin.create_session()
    page = requests.get(f"{standin.base}/pay/{session.id}", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for text in ("Intro call", "30 minutes with Ada", "$50.00", "client@example.com", "Pay by bank transfer",
                 "Card declined", "Cancel and go back", "Let the session expire", 'name="viewport"'):
        assert text in page.text

    paid = requests.post(f"{standin.base}/pay/{session.id}/card", allow_redirects=False, timeout=5)
    assert paid.status_code == 303
    assert paid.headers["location"] == f"https://shop.test/paid?session_id={session.id}"
    [event] = standin.receiver.wait_for("checkout.session.completed")
    assert event["data"]["object"]["id"] == session.id

    twice = requests.post(f"{standin.base}/pay/{session.id}/card", allow_redirects=False, timeout=5)
    assert twice.status_code == 303 and twice.headers["location"] == f"/pay/{session.id}"
    page = requests.get(f"{standin.base}/pay/{session.id}", timeout=5)
    assert "already paid" in page.text and "/card" not in page.text
    assert len(standin.state()["payment_intents"]) == 1
    assert len(standin.receiver.of_type("checkout.session.completed")) == 1
    assert requests.get(f"{standin.base}/pay/cs_test_missing", timeout=5).status_code == 404


def test_bank_transfer_settles_later(standin):
    session = standin.create_session()
    started = requests.post(f"{standin.base}/pay/{session.id}/bank_transfer", allow_redirects=False, timeout=5)
    assert started.status_code == 303 and started.headers["location"] == f"/pay/{session.id}"
    [completed] = standin.receiver.wait_for("checkout.session.completed")
    assert completed["data"]["object"]["payment_status"] == "unpaid"
    intent = standin.client.v1.payment_intents.retrieve(completed["data"]["object"]["payment_intent"])
    assert intent.status == "processing" and intent.amount_received == 0
    page = requests.get(f"{standin.base}/pay/{session.id}", timeout=5).text
    assert "Bank transfer succeeds" in page and "Bank transfer fails" in page

    requests.post(f"{standin.base}/pay/{session.id}/bank_transfer/succeeded", timeout=5)
    [succeeded] = standin.receiver.wait_for("checkout.session.async_payment_succeeded")
    assert succeeded["data"]["object"]["payment_status"] == "paid"
    assert standin.client.v1.payment_intents.retrieve(intent.id).status == "succeeded"

    other = standin.create_session()
    requests.post(f"{standin.base}/pay/{other.id}/bank_transfer", timeout=5)
    requests.post(f"{standin.base}/pay/{other.id}/bank_transfer/failed", timeout=5)
    [failed] = standin.receiver.wait_for("checkout.session.async_payment_failed")
    assert failed["data"]["object"]["id"] == other.id
    assert failed["data"]["object"]["payment_status"] == "unpaid"
    assert "bank transfer failed" in requests.get(f"{standin.base}/pay/{other.id}", timeout=5).text


def test_decline_cancel_and_expire_buttons(standin):
    session = standin.create_session()
    declined = requests.post(f"{standin.base}/pay/{session.id}/decline", timeout=5)
    assert declined.status_code == 200 and "Your card was declined" in declined.text
    cancelled = requests.post(f"{standin.base}/pay/{session.id}/cancel", allow_redirects=False, timeout=5)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "https://shop.test/cancelled"
    assert standin.client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert standin.receiver.types() == []

    expired = requests.post(f"{standin.base}/pay/{session.id}/expire", allow_redirects=False, timeout=5)
    assert expired.status_code == 303 and expired.headers["location"] == "https://shop.test/cancelled"
    assert standin.receiver.types() == ["checkout.session.expired"]
    assert "has expired" in requests.get(f"{standin.base}/pay/{session.id}", timeout=5).text
    requests.post(f"{standin.base}/pay/{session.id}/card", timeout=5)
    assert standin.state()["payment_intents"] == []

    other = standin.create_session()
    assert standin.sandbox("POST", f"/checkout/{other.id}/expire-now").json()["status"] == "expired"
    assert standin.receiver.types() == ["checkout.session.expired"] * 2


def test_hosted_page_formats_jpy_and_escapes_html(standin):
    yen = standin.create_session(line_items=[{"quantity": 1, "price_data": {
        "currency": "jpy", "unit_amount": 1500, "product_data": {"name": "Session"}}}])
    page = requests.get(yen.url.replace("http://stand.in", standin.base), timeout=5).text
    assert "¥1,500" in page and "¥15.00" not in page and "1,500.00" not in page

    evil = standin.create_session(line_items=[{"quantity": 1, "price_data": {
        "currency": "usd", "unit_amount": 900, "product_data": {
            "name": "<script>alert('x')</script>", "description": '"><img src=x onerror=alert(1)>'}}}])
    page = requests.get(f"{standin.base}/pay/{evil.id}", timeout=5).text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page and "&#34;&gt;&lt;img" in page


# ---------------------------------------------------------------------------- idempotency

def test_idempotent_replay_returns_the_first_answer(standin):
    first = standin.create_session(key="checkout:bk_1")
    second = standin.create_session(key="checkout:bk_1")
    assert second.id == first.id
    assert second.last_response.headers["idempotent-replayed"] == "true"
    state = standin.state()
    assert len(state["sessions"]) == 1 and state["idempotency_keys"]["checkout:bk_1"] == 2

    with pytest.raises(stripe.IdempotencyError):
        standin.create_session(key="checkout:bk_1", metadata={"booking_id": "other"})
    assert len(standin.state()["sessions"]) == 1

    paid = standin.paid_session()
    refund = dict(params={"payment_intent": paid.payment_intent, "amount": 1000},
                  options={"idempotency_key": "refund:bk_1:1"})
    one, two = standin.client.v1.refunds.create(**refund), standin.client.v1.refunds.create(**refund)
    assert one.id == two.id and len(standin.state()["refunds"]) == 1
    assert len(standin.receiver.of_type("charge.refunded")) == 1

    too_much = dict(params={"payment_intent": paid.payment_intent, "amount": 999999},
                    options={"idempotency_key": "refund:bk_1:2"})
    for _ in range(2):  # errors are stored and replayed too
        with pytest.raises(stripe.InvalidRequestError) as error:
            standin.client.v1.refunds.create(**too_much)
    assert error.value.headers["idempotent-replayed"] == "true"


# ---------------------------------------------------------------------------- refunds

def test_refund_errors_and_partial_refunds(standin):
    paid = standin.paid_session()
    refunds = standin.client.v1.refunds
    with pytest.raises(stripe.InvalidRequestError) as error:
        refunds.create(params={"payment_intent": paid.payment_intent, "amount": 6000})
    assert error.value.code == "amount_too_large" and error.value.param == "amount"
    assert error.value.user_message == ("Refund amount ($60.00) is greater than unrefunded amount "
                                        "on charge ($50.00)")

    first = refunds.create(params={"payment_intent": paid.payment_intent, "amount": 3000,
                                   "reason": "requested_by_customer", "metadata": {"ledger": "1"}})
    assert first.id.startswith("re_") and (first.status, first.amount) == ("succeeded", 3000)
    assert first.metadata.to_dict() == {"ledger": "1"}
    rest = refunds.create(params={"charge": first.charge})  # no amount: the remainder
    assert rest.amount == 2000 and rest.payment_intent == paid.payment_intent
    charge = standin.client.v1.charges.retrieve(first.charge)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    with pytest.raises(stripe.InvalidRequestError) as error:
        refunds.create(params={"payment_intent": paid.payment_intent, "amount": 1})
    assert error.value.code == "charge_already_refunded"

    events = standin.receiver.wait_for("charge.refunded", 2)
    assert [e["data"]["object"]["amount_refunded"] for e in events] == [3000, 5000]
    assert events[1]["data"]["object"]["refunded"] is True
    listed = refunds.list(params={"payment_intent": paid.payment_intent})
    assert [r.id for r in listed.data] == [rest.id, first.id]
    assert refunds.retrieve(first.id).amount == 3000
    with pytest.raises(stripe.InvalidRequestError):
        refunds.create(params={"payment_intent": "pi_nope"})


def test_pending_refunds_settle_later(standin):
    standin.sandbox("POST", "/config", {"refund_status": "pending"})
    paid = standin.paid_session()
    ok = standin.client.v1.refunds.create(params={"payment_intent": paid.payment_intent, "amount": 1000})
    bad = standin.client.v1.refunds.create(params={"payment_intent": paid.payment_intent, "amount": 1000})
    assert ok.status == bad.status == "pending"
    assert standin.sandbox("POST", f"/refunds/{ok.id}/settle", {"status": "succeeded"}).json()["status"] == "succeeded"
    assert standin.sandbox("POST", f"/refunds/{bad.id}/settle", {"status": "failed"}).json()["status"] == "failed"
    assert standin.receiver.wait_for("refund.updated")[0]["data"]["object"]["id"] == ok.id
    assert standin.receiver.wait_for("refund.failed")[0]["data"]["object"]["id"] == bad.id
    assert standin.client.v1.charges.retrieve(ok.charge).amount_refunded == 1000
    assert standin.sandbox("POST", f"/refunds/{ok.id}/settle", {"status": "failed"}).status_code == 400


def test_dashboard_refund_and_dispute(standin):
    paid = standin.paid_session()
    answer = standin.sandbox("POST", f"/charges/{paid.payment_intent}/refund", {"amount": 1500})
    assert answer.status_code == 200 and answer.json()["amount"] == 1500
    [event] = standin.receiver.wait_for("charge.refunded")
    assert event["data"]["object"]["amount_refunded"] == 1500 and event["request"]["id"] is None

    dispute = standin.sandbox("POST", f"/charges/{paid.payment_intent}/dispute").json()
    [event] = standin.receiver.wait_for("charge.dispute.created")
    assert event["data"]["object"] == dispute
    assert dispute["id"].startswith("dp_") and dispute["payment_intent"] == paid.payment_intent
    assert (dispute["reason"], dispute["status"], dispute["amount"]) == ("fraudulent", "needs_response", 3500)
    assert standin.client.v1.charges.retrieve(dispute["charge"]).disputed is True
    with pytest.raises(stripe.InvalidRequestError) as error:
        standin.client.v1.refunds.create(params={"payment_intent": paid.payment_intent})
    assert error.value.code == "charge_disputed"


# ---------------------------------------------------------------------------- faults

@pytest.mark.parametrize("mode, exception", [("500", stripe.APIError), ("429", stripe.RateLimitError),
                                             ("close", stripe.APIConnectionError)])
def test_faults_fail_before_any_effect(standin, mode, exception):
    paid = standin.paid_session()
    fault = standin.sandbox("POST", "/faults", {"method": "POST", "path_prefix": "/v1/refunds",
                                                 "mode": mode, "count": 1})
    assert fault.status_code == 200
    call = dict(params={"payment_intent": paid.payment_intent, "amount": 700},
                options={"idempotency_key": "refund:bk_1:fault"})
    with pytest.raises(exception):
        standin.client.v1.refunds.create(**call)
    assert standin.state()["refunds"] == [] and standin.receiver.of_type("charge.refunded") == []

    refund = standin.client.v1.refunds.create(**call)
    assert refund.amount == 700 and "idempotent-replayed" not in refund.last_response.headers
    state = standin.state()
    assert [r["id"] for r in state["refunds"]] == [refund.id]
    assert state["idempotency_keys"]["refund:bk_1:fault"] == 2 and state["faults"] == []
    assert len(standin.receiver.of_type("charge.refunded")) == 1


def test_fault_500_after_effect_then_retry_replays_the_success(standin):
    paid = standin.paid_session()
    standin.sandbox("POST", "/faults", {"method": "POST", "path_prefix": "/v1/refunds", "mode": "500_after"})
    call = dict(params={"payment_intent": paid.payment_intent, "amount": 1200},
                options={"idempotency_key": "refund:bk_1:lost"})
    with pytest.raises(stripe.APIError):
        standin.client.v1.refunds.create(**call)
    [stored] = standin.state()["refunds"]
    retried = standin.client.v1.refunds.create(**call)
    assert retried.id == stored["id"] and retried.last_response.headers["idempotent-replayed"] == "true"
    assert len(standin.state()["refunds"]) == 1 and len(standin.receiver.of_type("charge.refunded")) == 1


def test_sdk_network_retries_ride_over_a_fault(standin):
    paid = standin.paid_session()
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": standin.base}, max_network_retries=2)
    standin.sandbox("POST", "/faults", {"method": "POST", "path_prefix": "/v1/refunds", "mode": "500"})
    refund = client.v1.refunds.create(params={"payment_intent": paid.payment_intent})
    assert refund.amount == 5000 and len(standin.state()["refunds"]) == 1


def test_timeout_fault_delays_the_call(standin, monkeypatch):
    from sandbox.stripe import api as stripe_api

    answers: list[tuple[str, bool]] = []  # (key, replayed) for every call the stand-in executes
    original = stripe_api._replay_or_conflict

    def spy(store, key, *args):
        outcome = original(store, key, *args)
        answers.append((key, outcome is not None))
        return outcome

    monkeypatch.setattr(stripe_api, "_replay_or_conflict", spy)
    paid = standin.paid_session()
    impatient = stripe.StripeClient(SECRET_KEY, base_addresses={"api": standin.base},
                                    http_client=stripe.RequestsClient(timeout=0.3))
    standin.sandbox("POST", "/faults", {"method": "POST", "path_prefix": "/v1/refunds", "mode": "timeout",
                                         "delay_seconds": 1})
    call = dict(params={"payment_intent": paid.payment_intent, "amount": 500},
                options={"idempotency_key": "refund:bk_1:slow"})
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.refunds.create(**call)
    refund = impatient.v1.refunds.create(**call)  # the retry gets through at once
    assert [a for a in answers if a[0] == "refund:bk_1:slow"] == [("refund:bk_1:slow", False)]  # it refunded
    # The delayed first call then runs, and replays instead of refunding again: wait until it has run.
    deadline = time.monotonic() + 5
    while len([a for a in answers if a[0] == "refund:bk_1:slow"]) < 2:
        assert time.monotonic() < deadline, "the delayed first call never ran"
        time.sleep(0.02)
    assert [a for a in answers if a[0] == "refund:bk_1:slow"] == [("refund:bk_1:slow", False),
                                                                   ("refund:bk_1:slow", True)]
    assert [r["id"] for r in standin.state()["refunds"]] == [refund.id]
    assert len(standin.receiver.of_type("charge.refunded")) == 1
    assert standin.state()["idempotency_keys"]["refund:bk_1:slow"] == 2


def test_faults_can_be_cleared(standin):
    standin.sandbox("POST", "/faults", {"method": "GET", "path_prefix": "/v1/events", "mode": "500", "count": 3})
    assert standin.sandbox("GET", "/faults").json()[0]["remaining"] == 3
    assert standin.sandbox("DELETE", "/faults").json() == {"cleared": 1}
    assert standin.client.v1.events.list().data == []
    assert standin.sandbox("POST", "/faults", {"mode": "boom"}).status_code == 400


# ---------------------------------------------------------------------------- events and delivery

def test_events_list_filters(standin):
    before = int(time.time())
    paid = standin.paid_session()
    expired = standin.create_session()
    standin.client.v1.checkout.sessions.expire(expired.id)
    standin.client.v1.refunds.create(params={"payment_intent": paid.payment_intent, "amount": 100})
    events = standin.client.v1.events

    everything = events.list()
    assert everything.object == "list" and everything.url == "/v1/events" and everything.has_more is False
    assert [e.type for e in everything.data] == ["charge.refunded", "checkout.session.expired",
                                                 "checkout.session.completed"]  # newest first
    assert [e.type for e in events.list(params={"type": "checkout.session.completed"}).data] \
        == ["checkout.session.completed"]
    assert len(events.list(params={"type": "checkout.session.*"}).data) == 2
    both = events.list(params={"types": ["charge.refunded", "checkout.session.expired"]})
    assert [e.type for e in both.data] == ["charge.refunded", "checkout.session.expired"]
    assert len(events.list(params={"created": {"gte": before}}).data) == 3
    assert events.list(params={"created": {"gt": int(time.time()) + 60}}).data == []
    first = events.list(params={"limit": 1})
    assert len(first.data) == 1 and first.has_more is True
    rest = events.list(params={"limit": 5, "starting_after": first.data[0].id})
    assert [e.id for e in rest.data] == [e.id for e in everything.data[1:]] and rest.has_more is False
    assert [e.id for e in events.list(params={"limit": 1}).auto_paging_iter()] == [e.id for e in everything.data]
    one = events.retrieve(everything.data[0].id)
    assert one.data.object.object == "charge" and one.request.idempotency_key
    with pytest.raises(stripe.InvalidRequestError):
        events.list(params={"limit": 101})
    with pytest.raises(stripe.InvalidRequestError):
        events.retrieve("evt_missing")


def test_delivery_off_stores_without_delivering_then_redeliver(standin):
    config = standin.sandbox("POST", "/config", {"webhook_delivery": "off"}).json()
    assert config["webhook_delivery"] == "off"
    paid = standin.paid_session()
    [event] = standin.client.v1.events.list(params={"type": "checkout.session.completed"}).data
    assert event.data.object.id == paid.id and event.pending_webhooks == 1
    assert standin.receiver.events == [] and standin.state()["deliveries"] == []

    again = standin.sandbox("POST", f"/events/{event.id}/redeliver").json()
    assert again["status"] == 200 and again["attempt"] == 1
    # Exactly one delivery ever reached the receiver — the redelivery: had "off" delivered the
    # event anyway (at once or later), the receiver would hold two and the attempt would not be 1.
    assert [e["id"] for e in standin.receiver.of_type("checkout.session.completed")] == [event.id]
    assert [(d["event_id"], d["attempt"]) for d in standin.state()["deliveries"]] == [(event.id, 1)]


def test_failed_delivery_is_retried_in_the_background(standin):
    standin.sandbox("POST", "/config", {"webhook_retry_delays": [0.1, 0.2, 0.4]})
    standin.receiver.fail_next = 2
    session = standin.create_session()
    standin.client.v1.checkout.sessions.expire(session.id)
    [event] = standin.receiver.wait_for("checkout.session.expired")
    deadline = time.time() + 3
    while len(standin.state()["deliveries"]) < 3 and time.time() < deadline:
        time.sleep(0.02)
    deliveries = standin.state()["deliveries"]
    assert [(d["attempt"], d["status"]) for d in deliveries] == [(1, 500), (2, 500), (3, 200)]
    assert {d["event_id"] for d in deliveries} == {event["id"]}


def test_webhook_handler_may_call_back_during_sync_delivery(receiver_server):
    receiver, _hook_url = receiver_server
    seen: list[str] = []
    hook = FastAPI()

    @hook.post("/hook")
    async def callback(request: Request) -> Response:
        event = json.loads(await request.body())
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": standin_base})
        session = await asyncio.to_thread(
            client.v1.checkout.sessions.retrieve, event["data"]["object"]["id"])
        seen.append(session.status)
        return Response(status_code=200)

    with serve(hook) as hook_base:
        app = create_app(secret_key=SECRET_KEY, webhook_url=f"{hook_base}/hook",
                         webhook_secret=WEBHOOK_SECRET, public_url="http://x")
        with serve(app) as standin_base:
            client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": standin_base})
            session = client.v1.checkout.sessions.create(params=Standin(app, standin_base, receiver).session_params())
            client.v1.checkout.sessions.expire(session.id)
            assert seen == ["expired"]  # delivered (and answered) before expire() returned


# ---------------------------------------------------------------------------- apps and runner

def test_apps_are_independent(standin):
    standin.create_session()
    other = create_app(secret_key=SECRET_KEY, webhook_url=None, webhook_secret=WEBHOOK_SECRET,
                       public_url="http://y")
    assert other.state.store.sessions == {} and len(standin.store.sessions) == 1


def test_runner_defaults(monkeypatch, capsys):
    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    monkeypatch.delenv("SANDBOX_STRIPE_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_env")
    stripe_standin.main(["--port", "8123"])
    app = captured["app"]
    assert captured["port"] == 8123 and "listening on http://127.0.0.1:8123" in capsys.readouterr().out
    assert app.state.store.webhook_url == "http://127.0.0.1:8000/api/webhooks/stripe"
    assert app.state.store.deliverer.secret == "whsec_from_env"
    assert app.state.store.public_url == "http://127.0.0.1:8123"
    assert app.state.secret_key == "sk_test_*"
