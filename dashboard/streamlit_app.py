"""The dashboard's entry point: sign-in gate, then the pages the signed-in role may open.

A page that is not in the navigation cannot be reached, whatever URL is typed; each admin page
checks the role again, and the reports refuse another builder's data underneath.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `streamlit run` puts only dashboard/ on the path

import streamlit as st  # noqa: E402

from dashboard.lib.auth import current_user, write_session_cookie  # noqa: E402

st.set_page_config(page_title="Bookings dashboard", page_icon=":material/event_available:", layout="wide")

viewer = current_user()  # from this tab's memory, or from the session cookie after a reload
write_session_cookie()  # right after sign-in or sign-out: the browser keeps (or drops) the session id
if viewer is None:
    pages = st.navigation([st.Page("app_pages/sign_in.py", title="Sign in")], position="hidden")
elif viewer.is_admin:
    pages = st.navigation({
        "Marketplace": [
            st.Page("app_pages/admin_overview.py", title="Overview", icon=":material/monitoring:", default=True),
            st.Page("app_pages/admin_pending.py", title="Pending payments", icon=":material/hourglass_top:"),
            st.Page("app_pages/admin_bookings.py", title="Bookings", icon=":material/list_alt:"),
        ],
        "Money": [
            st.Page("app_pages/admin_refunds.py", title="Refunds", icon=":material/undo:"),
            st.Page("app_pages/earnings.py", title="Earnings", icon=":material/payments:"),
            st.Page("app_pages/prices.py", title="Session types and prices", icon=":material/sell:"),
        ],
        "Operations": [st.Page("app_pages/admin_operations.py", title="Failures", icon=":material/error:"),
                       st.Page("app_pages/admin_integrations.py", title="Integrations", icon=":material/hub:")],
        "People": [
            st.Page("app_pages/admin_people.py", title="Builders and users", icon=":material/group_add:"),
            st.Page("app_pages/my_settings.py", title="My settings", icon=":material/settings:"),
        ],
    })
else:
    back_from_calendly = "calendly" in st.query_params  # the OAuth callback sends the builder to /?calendly=…
    pages = st.navigation([
        st.Page("app_pages/upcoming.py", title="Upcoming sessions", icon=":material/event:",
                default=not back_from_calendly),
        st.Page("app_pages/my_bookings.py", title="Bookings", icon=":material/list_alt:"),
        st.Page("app_pages/earnings.py", title="Earnings", icon=":material/payments:"),
        st.Page("app_pages/prices.py", title="Session types and prices", icon=":material/sell:"),
        st.Page("app_pages/calendly.py", title="Calendly", icon=":material/link:", default=back_from_calendly),
        st.Page("app_pages/my_settings.py", title="My settings", icon=":material/settings:"),
    ])
pages.run()
