"""The marketplace at a glance: KPIs for a period, bookings and revenue by week, the funnel,
refunds by reason, and what needs attention."""
import streamlit as st

from dashboard.lib import charts, data, layout
from core.reporting.words import NET, PAID, REFUNDED
from dashboard.lib.fmt import money, percent

PERIODS = {"Last 30 days": 30, "Last 90 days": 90, "Last 12 months": 365}

viewer = layout.page("Overview", admin_only=True)
period = st.segmented_control("Period", list(PERIODS), default="Last 90 days", key="overview_period") or "Last 90 days"
since = data.period_start(PERIODS[period])
kpis = data.overview(viewer, since)

cols = st.columns(5)
cols[0].metric("Bookings", f"{kpis.bookings:,}", border=True)
cols[1].metric("Scheduled → paid", percent(kpis.conversion), border=True,
               help=f"{kpis.paid:,} of {kpis.scheduled:,} bookings with a chosen time were paid")
cols[2].metric("Pending payments", kpis.pending_payments, border=True)
cols[3].metric("Failed side effects", kpis.failed_outbox, border=True)
cols[4].metric("Failed webhooks", kpis.failed_webhooks, border=True)
if kpis.failed_outbox or kpis.failed_webhooks:
    st.warning("Some side effects or webhooks failed — see **Failures** to retry them.")

if not kpis.currencies:
    st.info("No payments in this period yet.")
for currency in kpis.currencies:
    cols = st.columns(3)
    cols[0].metric(f"{PAID.label} ({currency})", money(kpis.revenue.get(currency, 0), currency), help=PAID.help)
    cols[1].metric(f"{REFUNDED.label} ({currency})", money(kpis.refunds.get(currency, 0), currency),
                   help=REFUNDED.help)
    cols[2].metric(f"{NET.label} ({currency})", money(kpis.net(currency), currency), help=NET.help)

st.plotly_chart(charts.build_weekly_chart(data.weekly(viewer, since)), key="weekly_chart")
left, right = st.columns(2)
with left:
    st.plotly_chart(charts.build_funnel_chart(data.funnel(viewer, since)), key="funnel_chart")
with right:
    st.plotly_chart(charts.build_refunds_by_reason_chart(data.refund_reasons(viewer, since)), key="refunds_chart")
