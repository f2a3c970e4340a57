"""Who is signed in. Identity lives in `st.session_state` behind `current_user()`, so tests can set
it and single sign-on (`st.login`, only when `st.secrets` has an `[auth]` section) can feed it."""
from __future__ import annotations

import streamlit as st

from core.auth import Viewer, authenticate, viewer_for_email
from core.config import get_settings
from core.db import get_engine, session_scope
from core.services import throttle

VIEWER_KEY = "viewer"


def sso_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def current_user() -> Viewer | None:
    """The signed-in dashboard user, or None."""
    viewer = st.session_state.get(VIEWER_KEY)
    if isinstance(viewer, Viewer):
        return viewer
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        with session_scope(read_only=True) as session:
            viewer = viewer_for_email(session, str(st.user.get("email") or ""))
        if viewer is not None:
            st.session_state[VIEWER_KEY] = viewer
        return viewer
    return None


def client_address() -> str | None:
    """The browser's address, when Streamlit knows it: `st.context.ip_address` is the TCP peer
    and None on localhost; behind TRUSTED_PROXY_HOPS proxies, X-Forwarded-For as for the web
    service. Unknown (None), sign-in is throttled per account only."""
    try:
        peer, forwarded_for = st.context.ip_address, st.context.headers.get("X-Forwarded-For")
    except Exception:  # no browser session (a script run outside `streamlit run`)
        return None
    return throttle.client_address(peer, forwarded_for, get_settings().trusted_proxy_hops)


def sign_in(email: str, password: str) -> Viewer | None:
    """The viewer for a right email and password, or None; raises `throttle.Throttled` while the
    account or this address is locked out after too many wrong passwords (even for the right one)."""
    def check_password() -> Viewer | None:
        with session_scope(read_only=True) as session:
            return authenticate(session, email, password)

    viewer = throttle.guard_sign_in(get_engine(), check_password, account=email, address=client_address())
    if viewer is not None:
        st.session_state[VIEWER_KEY] = viewer
    return viewer


def sign_out() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()
