"""Bookings waiting for payment, refreshed every 15 seconds: a click on a row offers resending the
payment link or canceling, and opens the booking."""
from datetime import timedelta

import streamlit as st

from core.models import utcnow
from dashboard.lib import actions, components, data, layout, tables
from dashboard.lib.fmt import md, when, zone

PICKED_KEY = "pending_booking"

viewer = layout.page("Pending payments", admin_only=True,
                     caption="Slots held for clients who have not paid yet. Holds are released automatically "
                             "when they end; a bank transfer on its way keeps its slot until it settles.")
tz = layout.viewer_timezone(viewer)


def row_actions(row) -> None:
    with st.container(border=True, key="pending_actions"):
        st.markdown(f"**{md(row.client_name or row.client_email)}** · {md(row.session_type_name)}, "
                    f"{when(row.start_time, tz, with_zone=True)}")
        left, middle, right = st.columns(3)
        if row.payment_on_its_way:
            # Paid by bank transfer, settling: a payment link would invite the client to pay twice.
            st.info(f"Bank transfer on its way since {when(row.payment_processing_since, tz, with_zone=True)}: "
                    "the slot stays held until it settles, so there is no payment link to resend.")
        elif left.button("Resend payment link", key="pending_resend"):
            actions.resend_payment_link(viewer, row.id)
            st.rerun()
        if middle.button("Cancel booking…", key="pending_cancel"):
            actions.ask_to_confirm(
                "cancel", f"Cancel {md(row.client_email)}'s booking of {md(row.session_type_name)}? The held Calendly "
                          "slot is released; " + ("the bank transfer on its way is refunded in full when it arrives."
                                                  if row.payment_on_its_way else
                                                  "nothing was paid, so nothing is refunded."),
                booking_id=row.id, currency=row.currency, reason="Canceled by admin while awaiting payment",
                money=actions.ON_ITS_WAY if row.payment_on_its_way else actions.UNPAID)
            st.rerun()
        if right.button("Open booking", key="pending_open", icon=":material/open_in_new:"):
            layout.open_booking(viewer, row.id)


@st.fragment(run_every=timedelta(seconds=15))
def pending_payments():
    rows = data.pending(viewer)
    if not rows:
        st.info("No payments pending — every held slot has been paid for or released.")
        return
    st.caption("Click a row to resend its payment link or cancel it.")
    components.clickable_table(tables.pending_table(rows, tz, utcnow()), key="pending_table", open_key=PICKED_KEY)
    by_id = {row.id: row for row in rows}
    picked = by_id.get(st.session_state.get(PICKED_KEY) or "")
    if picked is None and len(rows) == 1:
        picked = rows[0]  # nothing to choose between
    if picked is not None:
        row_actions(picked)
    st.caption(f"Updated {utcnow().astimezone(zone(tz)).strftime('%H:%M:%S')} ({tz}).")


pending_payments()
actions.confirm_pending(viewer)
layout.follow_to_booking(viewer)
