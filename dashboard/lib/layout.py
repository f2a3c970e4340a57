"""The frame around every page: who is signed in, the timezone, sign-out, and last action's outcome."""
from __future__ import annotations

import streamlit as st

from core.auth import Viewer
from dashboard.lib import actions, auth
from dashboard.lib.fmt import ADMIN_TIMEZONES, md

TZ_KEY = "admin_timezone"
# A row clicked on a page that does not show bookings itself (refunds, failures, the week view)
# opens its booking on the viewer's Bookings page: the page's file and where it keeps the open one.
GOTO_KEY = "goto_booking"
BOOKINGS_PAGE = {True: ("app_pages/admin_bookings.py", "open_booking"),
                 False: ("app_pages/my_bookings.py", "my_open_booking")}


def open_booking(viewer: Viewer, booking_id: str) -> None:
    """Go to the viewer's Bookings page with `booking_id` open."""
    path, open_key = BOOKINGS_PAGE[viewer.is_admin]
    st.session_state[open_key] = booking_id
    st.switch_page(path)


def follow_to_booking(viewer: Viewer) -> None:
    """Open the booking a table row's click asked for (under GOTO_KEY; a click's callback cannot
    change pages itself). Call at the end of the page."""
    booking_id = st.session_state.pop(GOTO_KEY, None)
    if booking_id:
        open_booking(viewer, booking_id)


def viewer_timezone(viewer: Viewer) -> str:
    """Builders see their own timezone; admins the one picked in the sidebar (their My settings zone by default)."""
    if viewer.is_admin:
        return st.session_state.get(TZ_KEY, viewer.timezone or "UTC")
    return viewer.timezone or "UTC"


def page(title: str, *, admin_only: bool = False, caption: str | None = None) -> Viewer:
    """Start a page: stop unless someone (an admin, if asked) is signed in; draw the frame."""
    viewer = auth.current_user()
    if viewer is None:
        st.stop()
    if admin_only and not viewer.is_admin:
        st.error("This page is for admins.")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{md(viewer.email)}** ({viewer.role})")
        if viewer.is_admin:
            zones = list(ADMIN_TIMEZONES)
            browser = getattr(st.context, "timezone", None)
            if browser and browser not in zones:
                zones.insert(1, browser)
            if viewer.timezone not in zones:  # the zone chosen under My settings
                zones.insert(0, viewer.timezone)
            st.session_state.setdefault(TZ_KEY, viewer.timezone)
            st.selectbox("Show times in", zones, key=TZ_KEY)
        else:
            st.caption(f"Times are shown in {md(viewer.timezone)}.")
        if st.button("Sign out", key="sign_out"):
            auth.sign_out()
            st.rerun()
    st.title(title)
    if caption:
        st.caption(caption)
    actions.show_outcome()
    return viewer
