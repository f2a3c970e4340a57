"""The refund ledger: every refund with its status, why it was given and who issued it; filters by
status, reason, dates, builder and currency; totals per currency; a CSV of what is filtered; a
click on a row opens its booking."""
from dataclasses import replace

import streamlit as st

from core.reporting import RefundFilters
from core.reporting.operations import REFUND_STATUSES
from core.reporting.overview import REFUND_RULE_LABELS
from core.reporting.words import refund_status_label
from dashboard.lib import components, data, layout, tables
from dashboard.lib.fmt import money

viewer = layout.page("Refunds", admin_only=True)
tz = layout.viewer_timezone(viewer)
# The date filters are whole days in the zone the times are shown in.
viewer = replace(viewer, timezone=tz)

first, second, third = st.columns(3)
date_from = first.date_input("From", value=None, key="refunds_from", help=f"Refunds given on or after this day ({tz})")
date_to = second.date_input("To", value=None, key="refunds_to", help=f"Refunds given on or before this day ({tz})")
currencies = data.refund_currencies(viewer)
currency = third.selectbox("Currency", [None, *currencies], key="refunds_currency",
                           format_func=lambda c: "All currencies" if c is None else c)
first, second, third = st.columns(3)
builders = dict(data.builders(viewer))
builder_id = first.selectbox("Builder", [None, *builders], key="refunds_builder",
                             format_func=lambda bid: "All builders" if bid is None else builders[bid])
statuses = second.multiselect("Status", REFUND_STATUSES, key="refunds_status", format_func=refund_status_label)
rules = third.multiselect("Why", list(REFUND_RULE_LABELS), key="refunds_rule",
                          format_func=lambda rule: REFUND_RULE_LABELS[rule])
if date_from and date_to and date_from > date_to:
    st.error("The “From” day is after the “To” day: no refund can match.")
    st.stop()
filters = RefundFilters(statuses=tuple(statuses), rules=tuple(rules), currency=currency, date_from=date_from,
                        date_to=date_to, builder_id=builder_id)
filtered = filters != RefundFilters()

size = components.page_size("refunds")
first_page = data.refunds(viewer, filters=filters, page=1, page_size=size)
if first_page.total == 0:
    st.info("No refunds match these filters." if filtered else "No refunds yet.")
    st.stop()

st.markdown("#### Totals")
st.dataframe([{"Currency": t.currency, "Status": refund_status_label(t.status), "Refunds": t.count,
               "Amount": money(t.amount_cents, t.currency)} for t in first_page.totals],
             hide_index=True, key="refund_totals")
page, size = components.page_controls(first_page.total, "refunds")
ledger = data.refunds(viewer, filters=filters, page=page, page_size=size)
st.caption(f"{ledger.total:,} refunds{' matching the filters' if filtered else ''}, newest first · "
           "click a row to open its booking")
components.clickable_table(tables.refunds_table(ledger.rows, tz, ledger=True), key="refunds_table",
                           open_key=layout.GOTO_KEY)
st.download_button(f"Download {'these' if filtered else 'all'} {ledger.total:,} refunds (CSV)",
                   data=lambda: data.refunds_csv(viewer, filters), file_name="refunds.csv", mime="text/csv",
                   key="refunds_csv", icon=":material/download:")
layout.follow_to_booking(viewer)
