"""My settings (builders and admins): the time zone every page shows times in, kept with the
account (`DashboardUser.timezone`), so it holds on every device and after a reload."""
from dataclasses import replace

import streamlit as st

from core.db import session_scope
from core.errors import DomainError
from core.services import people
from dashboard.lib import auth, layout
from dashboard.lib.fmt import md

SAVED_KEY = "settings_saved"

viewer = layout.page("My settings", caption="Every page shows times in the zone you choose here.")
if saved := st.session_state.pop(SAVED_KEY, None):
    st.success(f"Times are now shown in **{md(saved)}** on every page.")

zones = people.time_zones()
if viewer.timezone not in zones:
    zones.insert(0, viewer.timezone)
with st.form("settings_form"):
    zone = st.selectbox("My time zone", zones, index=zones.index(viewer.timezone), key="settings_timezone",
                        help="Type to search, e.g. “New York” or “Tokyo”.")
    save = st.form_submit_button("Save", type="primary")
if save:
    try:
        with session_scope() as session:
            zone = people.set_timezone(session, viewer.user_id, zone)
    except DomainError as error:
        st.error(f"Not saved: {md(error)}.")
    else:
        auth.update_viewer(replace(viewer, timezone=zone))
        st.session_state.pop(layout.TZ_KEY, None)  # the admin's "Show times in" starts from the new zone
        st.session_state[SAVED_KEY] = zone
        st.rerun()
