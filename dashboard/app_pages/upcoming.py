"""A builder's next sessions, soonest first, in their own timezone."""
import streamlit as st

from core.states import BookingStatus
from dashboard.lib import data, layout, tables

viewer = layout.page("Upcoming sessions")
tz = layout.viewer_timezone(viewer)
sessions = data.upcoming(viewer)
if not sessions:
    st.info("No upcoming sessions yet — share your profile link so clients can book you.")
else:
    confirmed = sum(1 for s in sessions if s.status == BookingStatus.CONFIRMED)
    left, right = st.columns(2)
    left.metric("Confirmed sessions ahead", confirmed)
    right.metric("Waiting for the client's payment", len(sessions) - confirmed)
    st.dataframe(tables.upcoming_frame(sessions, tz, with_builder=viewer.is_admin), hide_index=True,
                 key="upcoming_table")
    st.caption(f"Times in {tz}. Sessions waiting for payment are released if the client does not pay in time.")
