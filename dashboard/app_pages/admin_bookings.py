"""All bookings, and one booking in full: history, webhooks, payments, refunds, side effects,
with the admin's actions (refund, cancel, retry, reprocess)."""
import streamlit as st

from core.errors import DomainError
from dashboard.lib import actions, components, data, layout
from dashboard.lib.fmt import md

viewer = layout.page("Bookings", admin_only=True)
tz = layout.viewer_timezone(viewer)

with st.expander("Find bookings", expanded=not st.session_state.get("open_booking")):
    shown = components.bookings_list(viewer, tz, key="admin_bookings",
                                     empty_message="No bookings yet — they appear when clients book a builder.")
    if shown:
        st.selectbox("Open a booking from this page", [None, *shown], key="pick_booking",
                     format_func=lambda bid: "—" if bid is None else bid,
                     on_change=lambda: st.session_state.update(open_booking=st.session_state.pick_booking or ""))

booking_id = st.text_input("Booking id", key="open_booking", placeholder="bk_…").strip()
if booking_id:
    try:
        detail = data.detail(viewer, booking_id)
    except DomainError as error:
        st.error(md(error))  # the message can repeat the id that was typed
    else:
        components.booking_detail(viewer, detail, tz)
actions.confirm_pending(viewer)
