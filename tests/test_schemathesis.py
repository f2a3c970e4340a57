"""Schemathesis against the service's own OpenAPI schema: every operation, no 5xx, documented codes.

The schema is `create_app().openapi()`, exercised in-process (ASGI) on the `live` system, so the
Calendly and Stripe stand-ins answer the calls the pages make. Each generated case is sent as
generated, then with the admin's bearer token, then with real ids (a builder, a booking awaiting
payment, a paid one) in place of its path and query ids, and forms once more with a signed-in
visitor's session and CSRF token — so the checks reach past the 401s, 403s and 404s.

Checks: `not_a_server_error` (zero 5xx) and `status_code_conformance` against the schema plus
`ANSWERS` — the codes each route is built to answer but FastAPI cannot infer (a 303 redirect, a
401/403 from the token check, a 404/409 from a refusal, 413 for an oversized webhook, 503 when a
provider is down, and FastAPI's own 400 for a body it cannot decode). A code outside that list fails the test as surely as a 500 does.
"""
from __future__ import annotations

import copy
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.webhook_helpers import future_slot

# What each operation may answer besides what FastAPI documents (200 and 422).
ANSWERS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/webhooks/calendly"): (400, 413, 422),
    ("post", "/api/webhooks/stripe"): (400, 413, 422),
    ("get", "/api/scheduling/calendly/event-types"): (404, 503),
    ("post", "/api/scheduling/calendly/scheduling-link"): (400, 401, 403, 404, 409, 503),
    ("get", "/api/bookings/{booking_id}"): (401, 403, 404),
    ("post", "/api/bookings/{booking_id}/refund"): (202, 400, 401, 403, 404, 409),
    ("get", "/payment/calendly-return"): (303, 400),
    ("get", "/payment/success"): (404,),
    ("get", "/payment/cancel"): (404,),
    ("get", "/payment/{booking_id}"): (303, 404, 503),
    ("get", "/profile/{builder_id}"): (404, 503),
    ("post", "/bookings"): (303, 403, 404, 409, 503),
    ("get", "/login"): (),
    ("post", "/login"): (403,),
    ("get", "/login/verify"): (303, 400),
    ("get", "/healthz"): (503,),
}
EXAMPLES = 40  # per operation; three calls each — the file runs in about a minute


def documented(spec: dict) -> dict:
    """The app's schema with `ANSWERS` added as documented responses."""
    spec = copy.deepcopy(spec)
    operations = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert operations == set(ANSWERS), f"operations changed: update ANSWERS ({operations ^ set(ANSWERS)})"
    for (method, path), codes in ANSWERS.items():
        responses = spec["paths"][path][method]["responses"]
        for code in codes:
            responses.setdefault(str(code), {"description": "see the route"})
    return spec


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
    schema = schemathesis.openapi.from_dict(documented(app.openapi()))
    schema.app = app  # as `schemathesis.openapi.from_asgi` does: calls go to the app in-process
    schema.location = "/openapi.json"
    return schema


def test_the_schema_documents_every_answer(live):
    """The augmented schema is what the checks use; its operations are exactly the app's."""
    from webhook_service.app import create_app
    spec = documented(create_app().openapi())
    assert spec["paths"]["/api/bookings/{booking_id}/refund"]["post"]["responses"].keys() >= {"202", "401", "403"}


def _variants(case, ids: dict, token: str):
    """The case as generated, with the admin token, and with real ids substituted."""
    yield "as generated"
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
    if isinstance(case.body, dict) and "eventTypeId" in case.body:
        case.body["eventTypeId"] = ids["event_type"]
    yield "real ids"
    if isinstance(case.body, dict) and "csrf_token" in case.body:
        # A signed-in visitor's session and its form token: the form's other fields as generated.
        case.body["csrf_token"] = ids["csrf"]
        case.cookies = {**(case.cookies or {}), "baw_session": ids["session"]}
        yield "signed-in form"
        if "event_type_id" in case.body:
            case.body["event_type_id"] = ids["event_type"]
            yield "signed-in booking form"


OPERATIONS = pytest.mark.parametrize("method,path", sorted(ANSWERS), ids=lambda v: v.upper() if v.isalpha() else v)


@OPERATIONS
def test_no_operation_answers_a_server_error(api_schema, live, real_ids, method, path):
    """Positive and negative cases from the schema; every variant of each is checked."""
    operation = api_schema[path][method.upper()]
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    seen: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=strategy)
    def attempt(case):
        for label in _variants(case, real_ids, live.settings.admin_api_token):
            response = case.call()
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (label, case.method, case.formatted_path, response.status_code,
                                                response.text[:500])
            assert response.status_code != 410
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])

    attempt()
    print(f"\n[schemathesis] {method.upper()} {path}: {sum(seen.values())} calls, statuses {dict(sorted(seen.items()))}")
