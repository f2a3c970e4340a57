"""Every figure the dashboard shows, aggregated by the database: read-only queries, no writes.

Each function takes a `core.auth.Viewer`: admins see everything, a builder only their own builder's
rows (another builder's booking raises `core.errors.Forbidden`). Money stays integer minor units per
currency; format it with `core.money.format_amount`. Sign-in and roles live in `core.auth`; the
admin's actions (refund, cancel, retry…) in `core.services.admin_actions`.
"""
from core.reporting.bookings import (
    BookingDetail, BookingFilters, BookingPage, BookingRow, PendingPayment, UpcomingSession,
    booking_detail, bookings_csv, count_bookings, list_bookings, pending_payments, sessions_between,
    upcoming_sessions, webhook_payload,
)
from core.reporting.earnings import EarningsRow, earnings_by_month, earnings_csv, earnings_totals, platform_fee
from core.reporting.operations import (
    AttentionItem, BuilderPrices, RefundFilters, RefundLedger, builder_options, builders_and_prices,
    failed_outbox, failed_webhooks, needs_attention, refund_currencies, refund_ledger, refunds_csv,
    session_type_options,
)
from core.reporting.overview import (
    REFUND_RULE_LABELS, OverviewKpis, RefundReasonRow, StatusFunnel, WeeklyPoint, overview_kpis,
    refunds_by_reason, status_funnel, weekly_series,
)

__all__ = [
    "BookingDetail", "BookingFilters", "BookingPage", "BookingRow", "PendingPayment", "UpcomingSession",
    "booking_detail", "bookings_csv", "count_bookings", "list_bookings", "pending_payments",
    "sessions_between", "upcoming_sessions", "webhook_payload",
    "EarningsRow", "earnings_by_month", "earnings_csv", "earnings_totals", "platform_fee",
    "BuilderPrices", "RefundFilters", "RefundLedger", "builder_options", "builders_and_prices",
    "failed_outbox", "failed_webhooks", "refund_currencies", "refund_ledger", "refunds_csv",
    "session_type_options", "AttentionItem", "needs_attention",
    "REFUND_RULE_LABELS", "OverviewKpis", "RefundReasonRow", "StatusFunnel", "WeeklyPoint",
    "overview_kpis", "refunds_by_reason", "status_funnel", "weekly_series",
]
