"""Schemathesis against the service's own OpenAPI schema, as the app publishes it.

The schema is `create_app().openapi()` unchanged — each route declares what it answers
(`webhook_service/openapi.py`) — exercised in-process (ASGI) on the `live` system, so the Calendly
and Stripe stand-ins answer the calls the pages make. Each generated case is sent as generated,
then with the admin's bearer token, then with real ids (a builder, a booking awaiting payment, a
paid one) in place of its path and query ids, forms once more with a signed-in visitor's session
and CSRF token, and webhook bodies once more signed with the real secret — so cases reach the
handlers, and the test asserts that they did (an answer other than 401/403/422, or a webhook
answer past the signature check).

Checks: zero 5xx, and every answer conforms to the published schema — its status code is
documented, its content type is documented, and a JSON body matches the documented model.
"""
from __future__ import annotations

import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from tests.webhook_helpers import calendly_headers, future_slot, stripe_headers

OPERATIONS_IN_SCHEMA = {
    ("post", "/api/webhooks/calendly"), ("post", "/api/webhooks/stripe"),
    ("get", "/api/scheduling/calendly/event-types"), ("post", "/api/scheduling/calendly/scheduling-link"),
    ("get", "/api/bookings/{booking_id}"), ("post", "/api/bookings/{booking_id}/refund"),
    ("get", "/payment/calendly-return"), ("get", "/payment/success"), ("get", "/payment/cancel"),
    ("get", "/payment/{booking_id}"), ("get", "/profile/{builder_id}"), ("post", "/bookings"),
    ("get", "/login"), ("post", "/login"), ("get", "/login/verify"), ("get", "/healthz"),
    ("get", "/my-bookings"), ("get", "/my-bookings/{booking_id}/receipt"), ("get", "/my-bookings/{booking_id}/cancel"),
    ("post", "/my-bookings/{booking_id}/cancel"), ("get", "/my-bookings/{booking_id}/canceled"), ("get", "/signed-out"),
}
# Answers that stop before the handler: the token check, the form token, validation, and (for a
# route with a body) a body that cannot be decoded.
GATES = {401, 403, 422}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 40  # per operation; several calls each — the file runs in about a minute


@pytest.fixture
def real_ids(live):
    """A builder, a booking awaiting payment and a paid one, for the variants of each case."""
    scheduling_id, url = live.start_booking(live.signed_in_client())
    live.pick_slot(url, future_slot(days=2, hour=9))
    paid_id, url = live.start_booking(live.signed_in_client("payer@example.com", "Pat Payer"))
    live.pick_slot(url, future_slot(days=3, hour=11))
    live.pay(paid_id)
    browser = live.signed_in_client("forms@example.com", "Frankie Forms")
    profile = browser.get(f"{live.web}/profile/{live.builder_id}", timeout=30)
    return {"builder_id": str(live.builder_id), "awaiting": scheduling_id, "paid": paid_id,
            "event_type": live.event_type_ids[0], "session": browser.cookies.get("baw_session"),
            "csrf": re.search(r'name="csrf_token" value="([^"]+)"', profile.text).group(1)}


@pytest.fixture
def api_schema(live, real_ids):
    from webhook_service.app import create_app
    app = create_app()
    spec = app.openapi()
    assert {(m, p) for p, item in spec["paths"].items() for m in item} == OPERATIONS_IN_SCHEMA
    schema = schemathesis.openapi.from_dict(spec)  # the published schema, nothing added
    schema.app = app  # as `schemathesis.openapi.from_asgi` does: calls go to the app in-process
    schema.location = "/openapi.json"
    return schema


def _signed(case, settings) -> bool:
    """Sign a webhook case's JSON body with the real secret (as requests will send it)."""
    if not case.path.startswith("/api/webhooks/") or not isinstance(case.body, dict):
        return False
    try:
        raw = json.dumps(case.body, allow_nan=False).encode()
    except ValueError:
        return False
    signed = (calendly_headers(raw, settings.calendly_webhook_signing_key) if case.path.endswith("calendly")
              else stripe_headers(raw, settings.stripe_webhook_secret))
    case.headers = {**(case.headers or {}), **signed}
    return True


def _variants(case, ids: dict, token: str, settings):
    """The case as generated, with the admin token, and with real ids substituted."""
    yield "as generated"
    if _signed(case, settings):
        yield "signed webhook"
        return
    case.headers = {**(case.headers or {}), "authorization": f"Bearer {token}"}
    yield "admin token"
    if case.path_parameters:
        for name in case.path_parameters:
            case.path_parameters[name] = ids["builder_id"] if name == "builder_id" else ids["paid"]
    if case.query:
        for name, real in (("builderId", ids["builder_id"]), ("utm_content", ids["awaiting"]),
                           ("booking", ids["awaiting"])):
            if name in case.query:
                case.query[name] = real
    if isinstance(case.body, dict) and case.path.endswith("/scheduling-link"):
        case.body.update(eventTypeId=ids["event_type"], inviteeEmail="api@example.com")
    yield "real ids"
    if isinstance(case.body, dict) and case.method == "POST" and (
            case.path in ("/bookings", "/login") or case.path.startswith("/my-bookings/")):
        # A signed-in visitor's session and its form token: the form's other fields as generated.
        case.body["csrf_token"] = ids["csrf"]
        case.cookies = {**(case.cookies or {}), "baw_session": ids["session"]}
        yield "signed-in form"
        if case.path == "/bookings":
            case.body["event_type_id"] = ids["event_type"]
            yield "signed-in booking form"
        elif case.path == "/login":
            case.body["email"] = "forms@example.com"
            yield "signed-in sign-in form"


OPERATIONS = pytest.mark.parametrize("method,path", sorted(OPERATIONS_IN_SCHEMA),
                                     ids=lambda v: v.upper() if v.isalpha() else v)


@OPERATIONS
def test_every_answer_conforms_to_the_published_schema(api_schema, live, real_ids, method, path):
    """Positive and negative cases from the schema; every variant of each is checked, and the
    cases must reach the handler, not only the gates in front of it."""
    operation = api_schema[path][method.upper()]
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    seen: dict[int, int] = {}
    reached: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=strategy)
    def attempt(case):
        for label in _variants(case, real_ids, live.settings.admin_api_token, live.settings):
            response = case.call()
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (label, case.method, case.formatted_path, response.status_code,
                                                response.text[:500])
            assert response.status_code != 410
            case.validate_response(response, checks=CHECKS)
            if path.startswith("/api/webhooks/"):
                if label == "signed webhook" and response.json().get("outcome") != "rejected":
                    reached.append(label)
            elif response.status_code not in GATES | ({400} if method == "post" else set()):
                reached.append(label)

    attempt()
    print(f"\n[schemathesis] {method.upper()} {path}: {sum(seen.values())} calls, statuses {dict(sorted(seen.items()))}")
    assert reached, f"no case got past the gates (statuses {seen})"
