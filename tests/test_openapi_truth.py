"""The published OpenAPI schema tells the truth about every answer.

Two halves: the schema walked route by route (each documents the statuses its family answers:
admin routes 401/403, routes on a booking 404, bodies 413, throttled routes 429, redirects 303,
the refund 202), and real requests (one per answer we know how to provoke) whose status and body
must be documented for the operation they hit.
"""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from core.db import session_scope
from tests.factories import make_booking, make_session_type
from webhook_service import openapi as oa


@pytest.fixture
def app(engine):
    from webhook_service.app import create_app
    return create_app()


@pytest.fixture
def spec(app) -> dict:
    return app.openapi()


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def _codes(spec: dict, method: str, path: str) -> set[int]:
    return {int(code) for code in spec["paths"][path][method]["responses"]}


# Statuses each operation must document at least (what its handler and the gates in front of it answer).
MUST = {
    ("post", "/api/webhooks/calendly"): {200, 400, 413, 422, 500},
    ("post", "/api/webhooks/stripe"): {200, 400, 413, 422, 500},
    ("get", "/api/scheduling/calendly/event-types"): {200, 404, 422, 503},
    ("post", "/api/scheduling/calendly/scheduling-link"): {200, 400, 401, 403, 404, 409, 413, 422, 429, 503},
    ("get", "/api/bookings/{booking_id}"): {200, 401, 403, 404, 422},
    ("post", "/api/bookings/{booking_id}/refund"): {202, 400, 401, 403, 404, 409, 413, 422},
    ("get", "/payment/calendly-return"): {303, 400, 422},
    ("get", "/payment/success"): {200, 404, 422},
    ("get", "/payment/cancel"): {200, 404, 422},
    ("get", "/payment/{booking_id}"): {200, 303, 404, 422, 503},
    ("get", "/profile/{builder_id}"): {200, 404, 422, 503},
    ("post", "/bookings"): {303, 400, 403, 404, 409, 413, 422, 429, 503},
    ("get", "/login"): {200, 422},
    ("post", "/login"): {200, 400, 403, 413, 422, 429},
    ("get", "/login/verify"): {303, 400, 422},
    ("get", "/my-bookings"): {200, 303, 422},
    ("get", "/my-bookings/{booking_id}/receipt"): {200, 303, 404, 422},
    ("get", "/my-bookings/{booking_id}/cancel"): {200, 303, 404, 409, 422},
    ("post", "/my-bookings/{booking_id}/cancel"): {303, 403, 404, 409, 413, 422},
    ("get", "/my-bookings/{booking_id}/canceled"): {200, 303, 404, 422},
    ("get", "/signed-out"): {200, 422},
    ("get", "/healthz"): {200, 422, 503},
}


def test_every_operation_is_known(spec):
    assert {(m, p) for m, p, _ in _operations(spec)} == set(MUST)


@pytest.mark.parametrize("method,path", sorted(MUST))
def test_each_route_documents_the_statuses_it_answers(spec, method, path):
    documented = _codes(spec, method, path)
    missing = MUST[(method, path)] - documented
    assert not missing, f"{method.upper()} {path} does not document {sorted(missing)}"
    assert 410 not in documented  # a 410 would delete Calendly's subscription


def test_route_families_document_their_gates(spec):
    for method, path, operation in _operations(spec):
        codes = {int(c) for c in operation["responses"]}
        if path.startswith("/api/bookings/"):
            assert {401, 403, 404} <= codes, (method, path)  # admin token, then the booking
        if "{booking_id}" in path:
            assert 404 in codes, (method, path)
        if method == "post":
            assert 413 in codes, (method, path)  # every body is bounded
            assert operation.get("requestBody"), (method, path)
        if not path.startswith("/api/webhooks/"):
            assert 422 in codes, (method, path)  # the NUL guard answers on every other route
        assert not any(200 <= c < 300 for c in codes) or operation["responses"], (method, path)


def test_the_refund_answers_202_not_200(spec):
    codes = _codes(spec, "post", "/api/bookings/{booking_id}/refund")
    assert 202 in codes and 200 not in codes


def test_errors_have_a_detail_body(spec):
    """Every documented JSON error is `{"detail": str}` (422 adds its problems), and the models exist."""
    schemas = spec["components"]["schemas"]
    for name in ("ErrorBody", "ValidationErrorBody", "WebhookAnswer"):
        assert "detail" in schemas[name]["required"] and schemas[name]["properties"]["detail"]["type"] == "string"
    for method, path, operation in _operations(spec):
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            json_schema = response.get("content", {}).get("application/json", {}).get("schema")
            if json_schema is None:
                assert "text/html" in response["content"], (method, path, code)  # our error page
                continue
            name = json_schema["$ref"].rsplit("/", 1)[1]
            assert name in ("ErrorBody", "ValidationErrorBody", "WebhookAnswer", "Health"), (method, path, code, name)
            if int(code) == 422 and not path.startswith("/api/webhooks/"):
                assert name == "ValidationErrorBody"  # not FastAPI's HTTPValidationError: not what we send


def test_pages_document_html(spec):
    for path in ("/profile/{builder_id}", "/payment/{booking_id}", "/login"):
        assert "text/html" in spec["paths"][path]["get"]["responses"]["200"]["content"]


# ---------------------------------------------------------------- real answers are documented
def _conforms(spec: dict, method: str, path: str, response) -> None:
    documented = spec["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (method, path, response.status_code, response.text[:300])
    content = documented[str(response.status_code)].get("content", {})
    kind = response.headers.get("content-type", "").split(";")[0]
    if response.status_code == 303:
        return
    assert kind in content, (method, path, response.status_code, kind, list(content))
    if kind == "application/json":
        body = response.json()
        ref = content[kind]["schema"].get("$ref")
        if ref:
            required = spec["components"]["schemas"][ref.rsplit("/", 1)[1]].get("required", [])
            assert set(required) <= set(body), (method, path, body)


def test_real_answers_are_documented(app, spec, engine, settings_env):
    token = settings_env().admin_api_token
    admin = {"Authorization": f"Bearer {token}"}
    with session_scope(engine) as session:
        session_type = make_session_type(session)
        pending = make_booking(session, "PENDING_PAYMENT", session_type=session_type).id
        canceled = make_booking(session, "CANCELED", session_type=session_type).id
    json_h = {"accept": "application/json"}
    html_h = {"accept": "text/html"}
    probes = [
        ("get", "/healthz", "/healthz", {}, None),
        ("get", "/healthz", "/healthz?x=%00", {}, None),
        ("get", "/api/bookings/{booking_id}", f"/api/bookings/{pending}", {}, None),
        ("get", "/api/bookings/{booking_id}", f"/api/bookings/{pending}", {"Authorization": "Bearer wrong"}, None),
        ("get", "/api/bookings/{booking_id}", "/api/bookings/bk_nothing", admin, None),
        ("get", "/api/bookings/{booking_id}", f"/api/bookings/{pending}", admin, None),
        ("post", "/api/bookings/{booking_id}/refund", f"/api/bookings/{pending}/refund", admin, {"json": {}}),
        ("post", "/api/bookings/{booking_id}/refund", "/api/bookings/bk_nothing/refund", admin, {"json": {}}),
        ("post", "/api/bookings/{booking_id}/refund", f"/api/bookings/{pending}/refund", admin,
         {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("post", "/api/bookings/{booking_id}/refund", f"/api/bookings/{pending}/refund", admin,
         {"json": {"amount_cents": "ten"}}),
        ("get", "/api/scheduling/calendly/event-types", "/api/scheduling/calendly/event-types?builderId=x", {}, None),
        ("get", "/api/scheduling/calendly/event-types", "/api/scheduling/calendly/event-types?builderId=999", {}, None),
        ("post", "/api/scheduling/calendly/scheduling-link", "/api/scheduling/calendly/scheduling-link", {},
         {"json": {"eventTypeId": "x"}}),
        ("post", "/api/scheduling/calendly/scheduling-link", "/api/scheduling/calendly/scheduling-link", admin,
         {"json": {"eventTypeId": "no-such-type", "inviteeEmail": "a@example.com"}}),
        ("post", "/api/webhooks/stripe", "/api/webhooks/stripe", {}, {"content": b"{}"}),
        ("post", "/api/webhooks/calendly", "/api/webhooks/calendly", {}, {"content": b"{}"}),
        ("get", "/payment/{booking_id}", "/payment/bk_00000000000000000000", html_h, None),
        ("get", "/payment/{booking_id}", f"/payment/{canceled}", html_h, None),
        ("get", "/payment/cancel", f"/payment/cancel?booking={pending}", html_h, None),
        ("get", "/payment/cancel", "/payment/cancel?booking=nope", html_h, None),
        ("get", "/payment/success", "/payment/success?session_id=cs_nope", html_h, None),
        ("get", "/payment/calendly-return", "/payment/calendly-return?utm_content=nope", html_h, None),
        ("get", "/payment/calendly-return", f"/payment/calendly-return?utm_content={pending}", html_h, None),
        ("get", "/profile/{builder_id}", "/profile/abc", html_h, None),
        ("get", "/profile/{builder_id}", "/profile/abc?q=%00", json_h, None),
        ("get", "/login", "/login", html_h, None),
        ("post", "/login", "/login", json_h, {"data": {"email": "a@example.com", "csrf_token": "forged"}}),
        ("post", "/bookings", "/bookings", json_h, {"data": {"event_type_id": "x", "csrf_token": "forged"}}),
        ("post", "/bookings", "/bookings", json_h, {"data": {"csrf_token": "forged"}}),
        ("get", "/login/verify", "/login/verify?token=forged", html_h, None),
    ]
    with TestClient(app, follow_redirects=False) as client:
        for method, path, url, headers, body in probes:
            kwargs = dict(body or {})
            kwargs["headers"] = {**headers, **kwargs.get("headers", {})}
            response = client.request(method.upper(), url, **kwargs)
            assert response.status_code < 500, (url, response.text[:300])
            _conforms(spec, method, path, response)


def test_the_shared_families_are_in_one_place():
    """413 and 429 come from webhook_service/openapi.py, so a family's answer is added once."""
    assert oa.BODY_LIMIT == 413 and oa.THROTTLED == 429
    assert re.search(r"413", str(oa.JSON_API_WITH_BODY)) and 413 in oa.FORM and 429 in oa.THROTTLED_PAGE
