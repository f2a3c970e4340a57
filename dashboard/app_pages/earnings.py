"""Earnings per month and currency: paid, refunded, net, the platform's fee and the payout, and a
CSV of the same numbers."""
import streamlit as st

from core.config import get_settings
from core.reporting import earnings_csv, earnings_totals
from core.reporting.words import NET, PAID, PAYOUT, PLATFORM_FEE, REFUNDED
from dashboard.lib import charts, components, data, layout, tables
from dashboard.lib.fmt import money

viewer = layout.page("Earnings")
builder_id = None
if viewer.is_admin:
    builders = dict(data.builders(viewer))
    builder_id = st.selectbox("Builder", [None, *builders], key="earnings_builder",
                              format_func=lambda bid: "All builders" if bid is None else builders[bid])
st.caption(f"{NET.help} The platform fee is {get_settings().platform_fee_percent}% of each month's net; "
           f"{PAYOUT.help[0].lower()}{PAYOUT.help[1:]} Months are UTC; each currency is counted on its own.")
rows = data.earnings(viewer, builder_id=builder_id)
if not rows:
    st.info("No earnings yet — they appear here once a client has paid for a session.")
else:
    totals = earnings_totals(rows)
    for currency, tab in zip(totals, st.tabs(list(totals))):
        with tab:
            total = totals[currency]
            cols = st.columns(5)
            for col, term, cents in zip(cols, (PAID, REFUNDED, NET, PLATFORM_FEE, PAYOUT),
                                        (total.gross_cents, total.refunded_cents, total.net_cents,
                                         total.fee_cents, total.payout_cents)):
                col.metric(term.label, money(cents, currency), help=term.help)
            st.plotly_chart(charts.build_earnings_chart(rows, currency), key=f"earnings_chart_{currency}")
            components.plain_table(tables.earnings_table(rows, currency), key=f"earnings_table_{currency}")
    st.download_button("Download earnings (CSV)", data=earnings_csv(rows), file_name="earnings.csv", mime="text/csv",
                       key="earnings_csv", icon=":material/download:")
