"""The benchmark's floor, `/api/webhooks/_floor/{provider}`: the same server and the same signed
payloads as the webhook endpoints, signature verification only, then 200.

Mounted by `create_app` only when `BENCH_FLOOR_ENDPOINT` is on (bench/README.md); production never
has the route.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.calendly import SignatureError
from core.services.webhook_ingest import verify_signature
from core.states import WebhookOutcome
from webhook_service.deps import SettingsDep
from webhook_service.routes.webhooks import _read_limited

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post("/_floor/{provider}", include_in_schema=False)
async def floor(provider: str, request: Request, settings: SettingsDep):
    if provider not in ("calendly", "stripe"):
        return JSONResponse({"detail": "not found"}, status_code=404)
    raw = await _read_limited(request, settings.webhook_max_body_bytes)
    try:
        verify_signature(provider, raw or b"", dict(request.headers))
    except SignatureError as error:
        return JSONResponse({"outcome": WebhookOutcome.REJECTED, "detail": error.reason}, status_code=400)
    return JSONResponse({"outcome": "verified"})
