"""The HTTP API, live: the admin JSON API (bearer token), the seed's scheduling contracts, health,
and the payment pages' redirects and states (including ten concurrent payment-page loads).
"""
from __future__ import annotations

import re
import threading
from urllib.parse import parse_qs, urlsplit

import requests

from core.db import session_scope
from core.models import Booking
from core.services.booking_access import link_token
from tests.webhook_helpers import future_slot, refunds, settle

BOOKING_FIELDS = {"id", "status", "payment_status", "amount_cents", "currency", "refunded_cents", "start_time",
                  "end_time", "calendly_event_uri", "calendly_invitee_uri", "stripe_checkout_session_id",
                  "stripe_payment_intent_id"}
EVENT_TYPE_FIELDS = {"id", "uri", "name", "description", "duration", "slug", "color", "active", "created_at",
                     "updated_at", "profile", "scheduling_url", "price"}


def scheduled(live, start: str | None = None) -> tuple[str, dict]:
    booking_id, url = live.start_booking(live.signed_in_client())
    return booking_id, live.pick_slot(url, start or future_slot())


def confirmed(live) -> str:
    booking_id, _ = scheduled(live)
    live.pay(booking_id)
    return booking_id


def refund(live, booking_id: str, body) -> requests.Response:
    return live.admin("POST", f"/api/bookings/{booking_id}/refund", json=body)


# ---------------------------------------------------------------- the admin API
BAD_ADMIN_HEADERS = [
    ({}, 401), ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401), ({"Authorization": "Bearer"}, 401),
    ({"Authorization": "Bearer not-the-token"}, 403), ({"Authorization": "Bearer sandbox-admin-token-x"}, 403),
]


def test_the_admin_api_needs_the_bearer_token(live):
    booking_id, _ = live.start_booking(live.signed_in_client())
    for headers, status in BAD_ADMIN_HEADERS:
        for method, path, body in (("GET", f"/api/bookings/{booking_id}", None),
                                   ("POST", f"/api/bookings/{booking_id}/refund", {"amount_cents": 100})):
            answer = requests.request(method, f"{live.web}{path}", headers=headers, json=body, timeout=10)
            assert answer.status_code == status, (headers, method, path)
            assert "detail" in answer.json()
            if status == 401:
                assert answer.headers["www-authenticate"] == "Bearer"
    assert live.admin("GET", f"/api/bookings/{booking_id}").status_code == 200


def test_a_booking_as_json_has_its_calendly_and_stripe_references(live):
    start = future_slot(days=2, hour=14)
    booking_id, answer = scheduled(live, start)
    checkout_id = live.pay(booking_id)

    data = live.booking(booking_id)

    assert BOOKING_FIELDS <= set(data)
    assert data["id"] == booking_id and data["status"] == "CONFIRMED" and data["payment_status"] == "paid"
    assert (data["amount_cents"], data["currency"], data["refunded_cents"]) == (4900, "USD", 0)
    assert data["start_time"].startswith(start[:19]) and data["end_time"] > data["start_time"]
    assert (data["calendly_event_uri"], data["calendly_invitee_uri"]) == (answer["event"], answer["invitee"])
    assert data["stripe_checkout_session_id"] == checkout_id
    assert data["stripe_payment_intent_id"].startswith("pi_")
    assert isinstance(data["amount_cents"], int) and isinstance(data["refunded_cents"], int)


def test_an_unknown_booking_is_404(live):
    assert live.admin("GET", "/api/bookings/bk_00000000000000000000").status_code == 404
    assert refund(live, "bk_00000000000000000000", {"amount_cents": 100}).status_code == 404


def test_a_partial_refund_then_the_rest(live):
    booking_id = confirmed(live)

    partial = refund(live, booking_id, {"amount_cents": 1000, "reason": "Started late"})
    assert partial.status_code == 202
    assert partial.json()["refunded_cents"] == 1000
    assert partial.json()["booking"]["payment_status"] == "partially_refunded"

    beyond = refund(live, booking_id, {"amount_cents": 5000})
    assert beyond.status_code == 409
    assert "more than the refundable remainder" in beyond.json()["detail"] and "$39.00" in beyond.json()["detail"]

    rest = refund(live, booking_id, {"amount_cents": None})
    assert rest.status_code == 202 and rest.json()["refunded_cents"] == 3900
    settle(live)

    data = live.booking(booking_id)
    assert data["payment_status"] == "refunded" and data["refunded_cents"] == 4900 and data["status"] == "CONFIRMED"
    assert [(r.amount_cents, r.rule, r.status) for r in refunds(live.engine, booking_id)] == [
        (1000, "manual", "succeeded"), (3900, "manual", "succeeded")]
    assert sorted(r["amount"] for r in live.stripe_state()["refunds"]) == [1000, 3900]
    nothing_left = refund(live, booking_id, {"amount_cents": None})
    assert nothing_left.status_code == 409 and "already fully refunded" in nothing_left.json()["detail"]


BAD_REFUND_BODIES = [{"amount_cents": 10.5}, {"amount_cents": 10.0}, {"amount_cents": -500}, {"amount_cents": 0},
                     {"amount_cents": "1000"}, {"amount_cents": True}, {"amount_cents": 100, "currency": "EUR"},
                     {"amount": 100}]


def test_refund_amounts_must_be_positive_whole_minor_units(live):
    booking_id = confirmed(live)

    for body in BAD_REFUND_BODIES:
        answer = refund(live, booking_id, body)
        assert answer.status_code == 422, body
        assert answer.json()["detail"] == "invalid request" and answer.json()["problems"]

    assert refunds(live.engine, booking_id) == []
    assert live.booking(booking_id)["payment_status"] == "paid"


def test_an_unpaid_booking_cannot_be_refunded(live):
    booking_id, _ = scheduled(live)
    answer = refund(live, booking_id, {"amount_cents": None})
    assert answer.status_code == 409 and "nothing was paid" in answer.json()["detail"]


# ---------------------------------------------------------------- the seed's contracts
def test_event_types_follow_the_seed_contract(live):
    answer = requests.get(f"{live.web}/api/scheduling/calendly/event-types",
                          params={"builderId": live.builder_id}, timeout=10)

    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"data", "pagination"} and {"next_page", "previous_page"} <= set(body["pagination"])
    assert len(body["data"]) == 4
    for item in body["data"]:
        assert EVENT_TYPE_FIELDS <= set(item)
        assert item["uri"].endswith("/" + item["id"]) and isinstance(item["duration"], int)
        assert set(item["profile"]) == {"name", "type"} and item["profile"]["type"] == "User"
    by_name = {item["name"]: item for item in body["data"]}
    discovery = by_name["Discovery call"]
    assert (discovery["duration"], discovery["slug"], discovery["active"], discovery["price"]) == (
        30, "discovery-call", True, 4900)
    assert discovery["id"] == live.event_type_ids[0] and discovery["description"]
    assert discovery["scheduling_url"].startswith(live.calendly)
    legacy = by_name["Legacy office hours"]
    assert legacy["active"] is False and legacy["price"] is None


def test_event_types_for_a_bad_builder_id(live):
    for builder, status in (("999999", 404), ("abc", 422), ("", 422), ("1" * 30, 422)):
        answer = requests.get(f"{live.web}/api/scheduling/calendly/event-types", params={"builderId": builder},
                              timeout=10)
        assert answer.status_code == status, builder
    missing = requests.get(f"{live.web}/api/scheduling/calendly/event-types", timeout=10)
    assert missing.status_code == 422


def _link_parts(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_scheduling_link_for_the_marketplace_server(live):
    answer = live.admin("POST", "/api/scheduling/calendly/scheduling-link", json={
        "eventTypeId": live.event_type_ids[1], "inviteeEmail": "Sam@Example.com", "inviteeName": "Sam Server",
        "customQuestions": [{"name": "Goal", "value": "An MVP"}], "metadata": {"source": "app"}})

    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"schedulingUrl", "bookingId"}
    assert body["schedulingUrl"].startswith(f"{live.calendly}/book/")
    assert _link_parts(body["schedulingUrl"])["utm_content"] == body["bookingId"]
    data = live.booking(body["bookingId"])
    assert data["status"] == "PENDING_SCHEDULING" and data["amount_cents"] == 14900
    assert data["client"]["email"] == "sam@example.com"

    live.pick_slot(body["schedulingUrl"])  # the link works: Calendly's webhook finds the booking
    assert live.status(body["bookingId"]) == "PENDING_PAYMENT"


def test_a_scheduling_link_for_a_signed_in_client(live):
    browser = live.signed_in_client("cookie@example.com", "Cookie Client")

    answer = browser.post(f"{live.web}/api/scheduling/calendly/scheduling-link", timeout=10, json={
        "eventTypeId": live.event_type_ids[0], "inviteeEmail": "someone-else@example.com", "inviteeName": ""})

    assert answer.status_code == 200
    body = answer.json()
    data = live.booking(body["bookingId"])
    assert data["status"] == "PENDING_SCHEDULING"
    assert data["client"]["email"] == "cookie@example.com"  # the session decides who books, not the body
    assert _link_parts(body["schedulingUrl"])["email"] == "cookie@example.com"


def test_a_scheduling_link_needs_a_signed_in_client_or_the_admin_token(live):
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": "Basic x"}, 401)):
        answer = requests.post(f"{live.web}/api/scheduling/calendly/scheduling-link", headers=headers, timeout=10,
                               json={"eventTypeId": live.event_type_ids[0], "inviteeEmail": "x@example.com",
                                     "inviteeName": "X"})
        assert answer.status_code == status, headers
    with session_scope(live.engine, read_only=True) as session:
        assert session.query(Booking).count() == 0


def test_a_scheduling_link_request_is_validated(live):
    base = {"eventTypeId": live.event_type_ids[0], "inviteeEmail": "x@example.com", "inviteeName": "X"}
    assert live.admin("POST", "/api/scheduling/calendly/scheduling-link",
                      json={**base, "inviteeEmail": ""}).status_code == 422
    assert live.admin("POST", "/api/scheduling/calendly/scheduling-link",
                      json={**base, "eventTypeId": "no-such-type"}).status_code == 404
    assert live.admin("POST", "/api/scheduling/calendly/scheduling-link",
                      json={**base, "unexpected": 1}).status_code == 422
    with session_scope(live.engine, read_only=True) as session:
        assert session.query(Booking).count() == 0


def test_a_cookie_cannot_be_used_with_a_form_posted_body(live):
    """A cross-site form can send text/plain that looks like JSON: it must not start a booking."""
    browser = live.signed_in_client()
    answer = browser.post(f"{live.web}/api/scheduling/calendly/scheduling-link", timeout=10,
                          data=f'{{"eventTypeId": "{live.event_type_ids[0]}"}}',
                          headers={"Content-Type": "text/plain"})
    assert answer.status_code == 422
    with session_scope(live.engine, read_only=True) as session:
        assert session.query(Booking).count() == 0


def test_healthz(live):
    answer = requests.get(f"{live.web}/healthz", timeout=10)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


# ---------------------------------------------------------------- payment pages
def test_calendlys_redirect_goes_to_the_payment_page(live):
    booking_id, answer = scheduled(live)

    redirect = requests.get(answer["redirect_url"], allow_redirects=False, timeout=10)

    assert redirect.status_code == 303 and redirect.headers["location"] == f"/payment/{booking_id}"
    direct = requests.get(f"{live.web}/payment/calendly-return", params={"utm_content": booking_id},
                          allow_redirects=False, timeout=10)
    assert direct.status_code == 303 and direct.headers["location"] == f"/payment/{booking_id}"


def test_calendlys_redirect_without_a_booking_reference_is_a_400_page(live):
    for query in ({}, {"utm_content": ""}, {"utm_content": "garbage"}, {"utm_content": "bk_../../../etc/passwd"},
                  {"utm_content": "<script>alert(1)</script>"}):
        answer = requests.get(f"{live.web}/payment/calendly-return", params=query, allow_redirects=False,
                              timeout=10)
        assert answer.status_code == 400, query
        assert "We could not match your booking" in answer.text and "<script>alert" not in answer.text


def test_the_payment_page_waits_for_calendly_while_scheduling(live):
    booking_id, _ = live.start_booking(live.signed_in_client())

    page = requests.get(live.payment_url(booking_id), allow_redirects=False, timeout=10)

    assert page.status_code == 200
    assert re.search(r'<meta http-equiv="refresh" content="\d+"', page.text)
    assert "Confirming your time with Calendly" in page.text
    assert live.stripe_state()["sessions"] == []  # nothing to pay yet


def test_the_payment_page_of_a_confirmed_booking_shows_its_status(live):
    booking_id = confirmed(live)

    page = requests.get(live.payment_url(booking_id), allow_redirects=False, timeout=10)

    assert page.status_code == 200 and "You're booked" in page.text
    assert 'http-equiv="refresh"' not in page.text
    assert len(live.stripe_state()["sessions"]) == 1


def test_the_payment_page_of_a_canceled_booking_offers_no_payment(live):
    booking_id, answer = scheduled(live)
    live.calendly_sandbox("POST", f"/invitees/{answer['invitee_uuid']}/cancel", {})

    page = requests.get(live.payment_url(booking_id), allow_redirects=False, timeout=10)

    assert page.status_code == 200 and "This booking was canceled" in page.text
    assert live.stripe_state()["sessions"] == []


def test_the_payment_page_of_an_unknown_booking_is_404(live):
    for booking_id in ("bk_00000000000000000000", "nope", "bk_ZZZ"):
        page = requests.get(f"{live.web}/payment/{booking_id}", allow_redirects=False, timeout=10)
        assert page.status_code == 404 and "Booking not found" in page.text, booking_id


def test_the_success_redirect_alone_does_not_confirm(live):
    """The query string is a hint: only Stripe's own answer about the session counts."""
    booking_id, _ = scheduled(live)
    checkout_id = live.checkout(booking_id)

    page = requests.get(f"{live.web}/payment/success", params={"session_id": checkout_id,
                                                               "t": link_token(booking_id)}, timeout=10)

    assert page.status_code == 200 and "You're booked" not in page.text
    assert live.status(booking_id) == "PENDING_PAYMENT"
    forged = requests.get(f"{live.web}/payment/success", params={"session_id": "cs_forged"}, timeout=10)
    assert forged.status_code == 404


def test_ten_concurrent_payment_page_loads_create_one_checkout_session(live):
    booking_id, _ = scheduled(live)
    barrier = threading.Barrier(10)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def load():
        barrier.wait()
        answer = requests.get(live.payment_url(booking_id), allow_redirects=False, timeout=30)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=load) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [303] * 10
    assert len({a.headers["location"] for a in answers}) == 1
    sessions = [s for s in live.stripe_state()["sessions"] if s["client_reference_id"] == booking_id]
    assert len(sessions) == 1
    assert answers[0].headers["location"] == sessions[0]["url"]
    assert live.booking(booking_id)["stripe_checkout_session_id"] == sessions[0]["id"]
