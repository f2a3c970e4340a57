"""Cached report loaders: one read-only transaction per report, kept for 30 seconds.

The viewer is part of every cache key, so one user's figures are never served to another.
Actions clear the cache (`clear()`), so what an admin just did shows at once.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from core import reporting
from core.db import session_scope
from core.models import utcnow
from core.reporting import BookingFilters, Viewer

TTL = 30


def clear() -> None:
    st.cache_data.clear()


def period_start(days: int) -> datetime:
    # Whole minutes, so reruns within a minute share cache entries.
    return (utcnow() - timedelta(days=days)).replace(second=0, microsecond=0)


@st.cache_data(ttl=TTL, show_spinner=False)
def overview(viewer: Viewer, since: datetime) -> reporting.OverviewKpis:
    with session_scope(read_only=True) as session:
        return reporting.overview_kpis(session, viewer, since)


@st.cache_data(ttl=TTL, show_spinner=False)
def weekly(viewer: Viewer, since: datetime) -> list[reporting.WeeklyPoint]:
    with session_scope(read_only=True) as session:
        return reporting.weekly_series(session, viewer, since)


@st.cache_data(ttl=TTL, show_spinner=False)
def funnel(viewer: Viewer, since: datetime) -> reporting.StatusFunnel:
    with session_scope(read_only=True) as session:
        return reporting.status_funnel(session, viewer, since)


@st.cache_data(ttl=TTL, show_spinner=False)
def refund_reasons(viewer: Viewer, since: datetime) -> list[reporting.RefundReasonRow]:
    with session_scope(read_only=True) as session:
        return reporting.refunds_by_reason(session, viewer, since)


@st.cache_data(ttl=TTL, show_spinner=False)
def earnings(viewer: Viewer, builder_id: int | None = None) -> list[reporting.EarningsRow]:
    with session_scope(read_only=True) as session:
        return reporting.earnings_by_month(session, viewer, builder_id=builder_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def upcoming(viewer: Viewer) -> list[reporting.UpcomingSession]:
    with session_scope(read_only=True) as session:
        return reporting.upcoming_sessions(session, viewer)


@st.cache_data(ttl=TTL, show_spinner=False)
def bookings(viewer: Viewer, filters: BookingFilters, page: int, page_size: int) -> reporting.BookingPage:
    with session_scope(read_only=True) as session:
        return reporting.list_bookings(session, viewer, filters, page, page_size)


@st.cache_data(ttl=TTL, show_spinner=False)
def bookings_csv(viewer: Viewer, filters: BookingFilters) -> str:
    with session_scope(read_only=True) as session:
        return reporting.bookings_csv(session, viewer, filters)


@st.cache_data(ttl=10, show_spinner=False)
def pending(viewer: Viewer) -> list[reporting.PendingPayment]:
    with session_scope(read_only=True) as session:
        return reporting.pending_payments(session, viewer)


@st.cache_data(ttl=TTL, show_spinner=False)
def refunds(viewer: Viewer, statuses: tuple[str, ...], rules: tuple[str, ...], page: int,
            page_size: int) -> reporting.RefundLedger:
    with session_scope(read_only=True) as session:
        return reporting.refund_ledger(session, viewer, statuses=statuses, rules=rules, page=page,
                                       page_size=page_size)


@st.cache_data(ttl=TTL, show_spinner=False)
def detail(viewer: Viewer, booking_id: str) -> reporting.BookingDetail:
    with session_scope(read_only=True) as session:
        return reporting.booking_detail(session, viewer, booking_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def webhook_payload(viewer: Viewer, event_id: int) -> reporting.bookings.WebhookPayload:
    with session_scope(read_only=True) as session:
        return reporting.webhook_payload(session, viewer, event_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def failed_outbox(viewer: Viewer) -> list:
    with session_scope(read_only=True) as session:
        return reporting.failed_outbox(session, viewer)


@st.cache_data(ttl=TTL, show_spinner=False)
def needs_attention(viewer: Viewer) -> list:
    with session_scope(read_only=True) as session:
        return reporting.needs_attention(session, viewer)


@st.cache_data(ttl=TTL, show_spinner=False)
def failed_webhooks(viewer: Viewer) -> list:
    with session_scope(read_only=True) as session:
        return reporting.failed_webhooks(session, viewer)


@st.cache_data(ttl=TTL, show_spinner=False)
def prices(viewer: Viewer) -> list[reporting.BuilderPrices]:
    with session_scope(read_only=True) as session:
        return reporting.builders_and_prices(session, viewer)


@st.cache_data(ttl=TTL, show_spinner=False)
def session_types(viewer: Viewer) -> list[tuple[int, str]]:
    with session_scope(read_only=True) as session:
        return reporting.session_type_options(session, viewer)


@st.cache_data(ttl=TTL, show_spinner=False)
def builders(viewer: Viewer) -> list[tuple[int, str]]:
    with session_scope(read_only=True) as session:
        return reporting.builder_options(session, viewer)
