"""Bookings waiting for payment, refreshed every 15 seconds: resend the payment link, or cancel."""
from datetime import timedelta

import streamlit as st

from core.models import utcnow
from dashboard.lib import actions, data, layout, tables
from dashboard.lib.fmt import md, when, zone

viewer = layout.page("Pending payments", admin_only=True,
                     caption="Slots held for clients who have not paid yet. Holds are released automatically "
                             "when they end; a bank transfer on its way keeps its slot until it settles.")
tz = layout.viewer_timezone(viewer)


@st.fragment(run_every=timedelta(seconds=15))
def pending_payments():
    rows = data.pending(viewer)
    if not rows:
        st.info("No payments pending — every held slot has been paid for or released.")
        return
    st.dataframe(tables.pending_frame(rows, tz, utcnow()), hide_index=True, key="pending_table")
    by_id = {row.id: row for row in rows}
    chosen = st.selectbox("Booking", list(by_id), key="pending_booking",
                          format_func=lambda bid: f"{by_id[bid].client_name or by_id[bid].client_email} · "
                                                  f"{by_id[bid].session_type_name} ({bid})")
    row = by_id[chosen]
    left, right = st.columns(2)
    if row.payment_on_its_way:
        # Paid by bank transfer, settling: a payment link would invite the client to pay twice.
        left.info(f"Bank transfer on its way since {when(row.payment_processing_since, tz, with_zone=True)}: "
                  "the slot stays held until it settles, so there is no payment link to resend.")
    elif left.button("Resend payment link", key="pending_resend"):
        actions.resend_payment_link(viewer, row.id)
        st.rerun()
    if right.button("Cancel booking…", key="pending_cancel"):
        actions.ask_to_confirm(
            "cancel", f"Cancel {md(row.client_email)}'s booking of {md(row.session_type_name)}? The held Calendly "
                      "slot is released; " + ("the bank transfer on its way is refunded in full when it arrives."
                                              if row.payment_on_its_way else
                                              "nothing was paid, so nothing is refunded."),
            booking_id=row.id, currency=row.currency, reason="Canceled by admin while awaiting payment")
        st.rerun()
    st.caption(f"Updated {utcnow().astimezone(zone(tz)).strftime('%H:%M:%S')} ({tz}).")


pending_payments()
actions.confirm_pending(viewer)
