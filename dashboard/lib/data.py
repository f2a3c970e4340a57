"""Cached report loaders: one read-only transaction per report, kept for 30 seconds.

Each loader is a `core.reporting` query wrapped by `cached`: called with the viewer and the query's
other arguments, without the session. The viewer is part of every cache key, so one user's figures
are never served to another. Actions clear the cache (`clear()`), so what an admin just did shows
at once.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Concatenate, ParamSpec, TypeVar

import streamlit as st
from sqlalchemy.orm import Session

from core import reporting
from core.auth import Viewer
from core.db import session_scope
from core.models import utcnow

TTL = 30

P = ParamSpec("P")
T = TypeVar("T")


def clear() -> None:
    st.cache_data.clear()


def period_start(days: int) -> datetime:
    # Whole minutes, so reruns within a minute share cache entries.
    return (utcnow() - timedelta(days=days)).replace(second=0, microsecond=0)


def cached(query: Callable[Concatenate[Session, Viewer, P], T], *,
           ttl: int = TTL) -> Callable[Concatenate[Viewer, P], T]:
    """`query(session, viewer, ...)` as a loader `(viewer, ...)`: run in its own read-only
    transaction, its result kept for `ttl` seconds per viewer and arguments."""
    def load(viewer: Viewer, *args: P.args, **kwargs: P.kwargs) -> T:
        with session_scope(read_only=True) as session:
            return query(session, viewer, *args, **kwargs)

    # Streamlit keys a function's cache by its module, qualified name and source; every loader has
    # this same source, so each takes its query's name (or they would share one cache).
    load.__name__ = load.__qualname__ = query.__name__
    return st.cache_data(ttl=ttl, show_spinner=False)(load)


overview = cached(reporting.overview_kpis)
weekly = cached(reporting.weekly_series)
funnel = cached(reporting.status_funnel)
refund_reasons = cached(reporting.refunds_by_reason)
earnings = cached(reporting.earnings_by_month)
upcoming = cached(reporting.upcoming_sessions)
week = cached(reporting.sessions_between)
bookings = cached(reporting.list_bookings)
bookings_csv = cached(reporting.bookings_csv)
pending = cached(reporting.pending_payments, ttl=10)
refunds = cached(reporting.refund_ledger)
refunds_csv = cached(reporting.refunds_csv)
refund_currencies = cached(reporting.refund_currencies)
detail = cached(reporting.booking_detail)
webhook_payload = cached(reporting.webhook_payload)
failed_outbox = cached(reporting.failed_outbox)
needs_attention = cached(reporting.needs_attention)
failed_webhooks = cached(reporting.failed_webhooks)
prices = cached(reporting.builders_and_prices)
session_types = cached(reporting.session_type_options)
builders = cached(reporting.builder_options)
