"""The refund ledger: every refund with its status, rule and who issued it, totals per currency."""
import streamlit as st

from core.reporting.operations import REFUND_STATUSES
from core.reporting.overview import REFUND_RULE_LABELS
from dashboard.lib import components, data, layout, tables
from dashboard.lib.fmt import money

viewer = layout.page("Refunds", admin_only=True)
tz = layout.viewer_timezone(viewer)
left, right = st.columns(2)
statuses = left.multiselect("Status", REFUND_STATUSES, key="refunds_status")
rules = right.multiselect("Reason", list(REFUND_RULE_LABELS), key="refunds_rule",
                          format_func=lambda rule: REFUND_RULE_LABELS[rule])
size = components.page_size("refunds")
first = data.refunds(viewer, statuses=tuple(statuses), rules=tuple(rules), page=1, page_size=size)
if first.total == 0:
    st.info("No refunds yet." if not (statuses or rules) else "No refunds match these filters.")
    st.stop()

st.markdown("#### Totals")
st.dataframe([{"Currency": t.currency, "Status": t.status, "Refunds": t.count,
               "Amount": money(t.amount_cents, t.currency)} for t in first.totals],
             hide_index=True, key="refund_totals")
page, size = components.page_controls(first.total, "refunds")
ledger = data.refunds(viewer, statuses=tuple(statuses), rules=tuple(rules), page=page, page_size=size)
st.caption(f"{ledger.total:,} refunds, newest first")
st.dataframe(tables.refunds_frame(ledger.rows, tz), hide_index=True, key="refunds_table")
