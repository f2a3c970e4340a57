"""Earnings per month and currency: gross, refunds, the platform's fee and what the builder keeps."""
import streamlit as st

from core.config import get_settings
from core.reporting import earnings_totals
from dashboard.lib import charts, data, layout, tables
from dashboard.lib.fmt import money

viewer = layout.page("Earnings")
builder_id = None
if viewer.is_admin:
    builders = dict(data.builders(viewer))
    builder_id = st.selectbox("Builder", [None, *builders], key="earnings_builder",
                              format_func=lambda bid: "All builders" if bid is None else builders[bid])
st.caption(f"The platform fee is {get_settings().platform_fee_percent}% of each month's payments net of "
           "refunds. Months are UTC; each currency is counted on its own.")
rows = data.earnings(viewer, builder_id=builder_id)
if not rows:
    st.info("No earnings yet — they appear here once a client has paid for a session.")
else:
    totals = earnings_totals(rows)
    for currency, tab in zip(totals, st.tabs(list(totals))):
        with tab:
            total = totals[currency]
            cols = st.columns(4)
            cols[0].metric("Gross", money(total.gross_cents, currency))
            cols[1].metric("Refunded", money(total.refunded_cents, currency))
            cols[2].metric("Platform fee", money(total.fee_cents, currency))
            cols[3].metric("Net", money(total.net_cents, currency))
            st.plotly_chart(charts.build_earnings_chart(rows, currency), key=f"earnings_chart_{currency}")
            st.dataframe(tables.earnings_frame(rows, currency), hide_index=True, key=f"earnings_table_{currency}")
