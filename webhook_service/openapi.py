"""What each route answers, in one place, so the OpenAPI schema lists every status a route really
answers (tests/test_openapi_truth.py walks the schema; tests/test_schemathesis.py checks the
answers against it).

Route decorators take `responses=` built from these families; a family's answer (the admin token's
401/403, the body limit's 413, throttling's 429) is added here once, not route by route.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """Every JSON error: a reason a person can read."""
    detail: str


class Problem(BaseModel):
    field: str
    message: str


class ValidationErrorBody(BaseModel):
    """422: what was wrong with the request (the NUL guard answers with `detail` only)."""
    detail: str
    problems: list[Problem] = []


class WebhookAnswer(BaseModel):
    """Both webhook endpoints answer with what became of the delivery."""
    outcome: str
    detail: str


class Health(BaseModel):
    status: str
    database: str | None = None


REASONS = {
    200: "Done", 202: "Accepted; the external call follows from the outbox", 303: "Redirect (see Location)",
    400: "Bad request (a body that cannot be decoded, or a link that is not valid)", 401: "Missing bearer token", 403: "Refused (wrong admin token, or an expired form)",
    404: "Not found", 409: "Conflicts with the booking's current state", 413: "Request body too large",
    422: "Invalid request", 429: "Too many requests; see Retry-After", 500: "Failed on our side; retried",
    503: "A provider (Calendly, Stripe) or the database is unavailable",
}
HTML = {"text/html": {"schema": {"type": "string"}}}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"model": model}


def api_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """JSON errors `{"detail": ...}` (422 with its `problems`)."""
    return {code: {"description": REASONS[code],
                   **_schema(ValidationErrorBody if code == 422 else ErrorBody)} for code in codes}


def page_answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Our HTML pages (an error page for a person), for page routes; a 303 has no body."""
    return {code: {"description": REASONS[code], **({} if code == 303 else {"content": HTML})} for code in codes}


def page_or_json(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Answers a page route gives as our HTML page to a browser and as JSON `{"detail": ...}` to
    anything that does not accept text/html (a refused form token, a validation error, a limit)."""
    answers = {}
    for code in codes:
        model = ValidationErrorBody if code == 422 else ErrorBody
        answers[code] = {"description": REASONS[code], "content": {
            **HTML, "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
    return answers


def merge(*families: dict) -> dict:
    out: dict = {}
    for family in families:
        out.update(family)
    return out


# ---------------------------------------------------------------- families
# Every route outside the webhooks: a NUL in the path, query or body is refused as 422.
NUL_GUARD = 422
# Every route that reads a body bounds it first (413) — webhooks, the JSON API and the forms.
BODY_LIMIT = 413
# A body FastAPI cannot decode (not JSON, a broken form) is refused before the handler.
UNDECODABLE = 400
# Anything a stranger can repeat: magic links, booking creation, the seed's scheduling-link API.
THROTTLED = 429

WEBHOOK = {
    200: {"description": "Processed, a duplicate, ignored or unmatched (no retry needed)",
          "model": WebhookAnswer},
    **{code: {"description": REASONS[code], "model": WebhookAnswer} for code in (400, 413, 422, 500)},
}
# The webhooks read raw bytes (the signature covers them), so FastAPI cannot infer their body.
WEBHOOK_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "The provider's signed event, verified on the raw bytes"}}}}}
ADMIN = api_errors(401, 403)
JSON_API = api_errors(NUL_GUARD)
JSON_API_WITH_BODY = api_errors(UNDECODABLE, NUL_GUARD, BODY_LIMIT)
PAGE = page_or_json(NUL_GUARD)
FORM = page_or_json(UNDECODABLE, 403, NUL_GUARD, BODY_LIMIT)  # 403: the CSRF token
THROTTLED_API = api_errors(THROTTLED)
THROTTLED_PAGE = page_or_json(THROTTLED)
HEALTH = {200: {"description": "The database answers", "model": Health},
          503: {"description": REASONS[503], "model": Health}, **api_errors(NUL_GUARD)}
