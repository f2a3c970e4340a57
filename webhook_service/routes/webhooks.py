"""The two webhook endpoints: raw bytes in, one core call, the status core decided out.

Never 410 (Calendly deletes the subscription on 410): failures are 5xx so providers retry.
"""
from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from core.services.webhook_ingest import ingest
from core.states import WebhookOutcome
from webhook_service import openapi as oa
from webhook_service.deps import EngineDep, SettingsDep
from webhook_service.outbox_kick import kick_outbox

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it passes `limit` bytes (we stop reading there)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _receive(provider: str, request: Request, engine, settings, background: BackgroundTasks):
    raw = await _read_limited(request, settings.webhook_max_body_bytes)
    if raw is None:
        return JSONResponse({"outcome": WebhookOutcome.REJECTED, "detail": "body too large"}, status_code=413)
    result = await run_in_threadpool(ingest, engine, provider, raw, dict(request.headers))
    if result.status_code == 200 and result.outcome == WebhookOutcome.PROCESSED:
        kick_outbox(background, engine)
    return JSONResponse(result.body(), status_code=result.status_code)


@router.post("/calendly", summary="Calendly webhook (signed with Calendly-Webhook-Signature)", responses=oa.WEBHOOK,
             openapi_extra=oa.WEBHOOK_BODY)
async def calendly_webhook(request: Request, engine: EngineDep, settings: SettingsDep, background: BackgroundTasks):
    return await _receive("calendly", request, engine, settings, background)


@router.post("/stripe", summary="Stripe webhook (signed with Stripe-Signature)", responses=oa.WEBHOOK,
             openapi_extra=oa.WEBHOOK_BODY)
async def stripe_webhook(request: Request, engine: EngineDep, settings: SettingsDep, background: BackgroundTasks):
    return await _receive("stripe", request, engine, settings, background)
