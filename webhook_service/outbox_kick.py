"""After a request commits side effects, carry them out at once, off the request's critical path.

Not durable by itself (a dying process loses the kick); the worker process picks up whatever
is left, so this only makes things faster, never correct.
"""
from __future__ import annotations

import logging

from fastapi import BackgroundTasks
from sqlalchemy import Engine

from core.config import get_settings

log = logging.getLogger(__name__)


def _drain(engine: Engine) -> None:
    from core.worker import drain_outbox
    try:
        drain_outbox(engine, limit=20)
    except Exception:
        log.exception("draining the outbox after a request failed; the worker will retry")


def kick_outbox(background: BackgroundTasks, engine: Engine) -> None:
    if get_settings().run_outbox_after_request:
        background.add_task(_drain, engine)
