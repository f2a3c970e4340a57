"""Who is signed in. Identity lives in `st.session_state` behind `current_user()`, so tests can set
it and single sign-on (`st.login`, only when `st.secrets` has an `[auth]` section) can feed it."""
from __future__ import annotations

import streamlit as st

from core.db import session_scope
from core.reporting import Viewer, authenticate, viewer_for_email

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


def sign_in(email: str, password: str) -> Viewer | None:
    with session_scope(read_only=True) as session:
        viewer = authenticate(session, email, password)
    if viewer is not None:
        st.session_state[VIEWER_KEY] = viewer
    return viewer


def sign_out() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()
