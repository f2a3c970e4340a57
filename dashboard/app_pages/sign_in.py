"""Sign in: what this dashboard is, then email and password (and single sign-on when it is
configured). Nothing else is shown."""
import streamlit as st

from core.services.throttle import Throttled
from dashboard.lib import auth

st.title("Sign in")
st.markdown("The bookings dashboard of the marketplace: **builders** see their sessions, bookings and "
            "earnings; **admins** run payments, refunds, builders and prices.")
if st.session_state.pop(auth.SESSION_ENDED_KEY, False):
    st.info("Your sign-in has ended (signed out, or not used for a while). Please sign in again.")
with st.form("sign_in_form"):
    email = st.text_input("Email", key="sign_in_email")
    password = st.text_input("Password", type="password", key="sign_in_password")
    submitted = st.form_submit_button("Sign in", type="primary")
if submitted:
    try:
        signed_in = auth.sign_in(email, password)
    except Throttled as refusal:  # locked out: says when to try again
        st.error(refusal.detail)
    else:
        if signed_in:
            st.rerun()
        st.error("Wrong email or password.")
st.caption("No account yet? An admin adds dashboard users under *Builders and users*.")
if auth.sso_configured():
    st.divider()
    st.button("Sign in with single sign-on", key="sso", on_click=st.login)
    if getattr(st.user, "is_logged_in", False):
        st.warning(f"{st.user.get('email')} has no dashboard account; ask an admin to add one.")
