"""Who is signed in. Identity lives in `st.session_state` behind `current_user()`, so tests can set
it and single sign-on (`st.login`, only when `st.secrets` has an `[auth]` section) can feed it.

A password sign-in also opens a server-side session (`core.services.dashboard_sessions`) whose id
the browser keeps in a cookie, so a reload (a new Streamlit session with empty `st.session_state`)
finds the person again through `st.context.cookies`. Every run re-checks the session, so sign-out,
expiry, revocation or a changed role takes effect at once.
"""
from __future__ import annotations

import time

import streamlit as st

from core.auth import Viewer, authenticate, viewer_for_email
from core.config import get_settings
from core.db import get_engine, session_scope
from core.services import dashboard_sessions, throttle
from dashboard.lib import session_cookie

VIEWER_KEY = "viewer"
SESSION_ID_KEY = "dashboard_session_id"  # the id of the server-side session this tab is signed in with
COOKIE_TO_WRITE_KEY = "dashboard_cookie_to_write"  # the id to put in the cookie, or "" to clear it
REFUSED_COOKIE_KEY = "dashboard_cookie_refused"  # a cookie id already found dead: not looked up again
SESSION_ENDED_KEY = "dashboard_session_ended"  # say so on the sign-in page
CHECKED_AT_KEY = "dashboard_session_checked_at"
COOKIE = "dashboard_session"  # not the web service's `baw_session`: cookies are shared across ports
# One run asks who is signed in more than once (the app, then the page frame); the session row is
# looked up again after this many seconds, so a sign-out elsewhere ends this tab within them.
RECHECK_SECONDS = 5.0


def sso_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def current_user() -> Viewer | None:
    """The signed-in dashboard user, or None."""
    viewer = st.session_state.get(VIEWER_KEY)
    session_id = st.session_state.get(SESSION_ID_KEY)
    if isinstance(viewer, Viewer):
        if session_id is None:  # signed in without a server-side session: single sign-on, tests
            return viewer
        if time.monotonic() - st.session_state.get(CHECKED_AT_KEY, 0.0) < RECHECK_SECONDS:
            return viewer
        return _resume(session_id, signed_in_as=viewer)
    cookie_id = _cookie_session_id()
    if cookie_id and cookie_id != st.session_state.get(REFUSED_COOKIE_KEY):
        resumed = _resume(cookie_id)
        if resumed is not None:
            return resumed
        st.session_state[REFUSED_COOKIE_KEY] = cookie_id
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        with session_scope(read_only=True) as session:
            viewer = viewer_for_email(session, str(st.user.get("email") or ""))
        if viewer is not None:
            st.session_state[VIEWER_KEY] = viewer
        return viewer
    return None


def _cookie_session_id() -> str | None:
    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:  # no browser session (a script run outside `streamlit run`)
        return None
    return value if isinstance(value, str) and value else None  # AppTest's context holds no real cookies


def _resume(session_id: str, *, signed_in_as: Viewer | None = None) -> Viewer | None:
    """The person of a live session (as they are now), remembered for this tab; None (and the
    tab signed out, the cookie cleared) when the session has ended."""
    with session_scope() as session:
        viewer = dashboard_sessions.resolve(session, session_id, signed_in_as=signed_in_as)
    if viewer is None:
        _forget_identity()
        st.session_state[SESSION_ENDED_KEY] = True
        st.session_state[COOKIE_TO_WRITE_KEY] = ""
        return None
    st.session_state[VIEWER_KEY] = viewer
    st.session_state[SESSION_ID_KEY] = session_id
    st.session_state[CHECKED_AT_KEY] = time.monotonic()
    return viewer


def _forget_identity() -> None:
    for key in (VIEWER_KEY, SESSION_ID_KEY, CHECKED_AT_KEY):
        st.session_state.pop(key, None)


def write_session_cookie() -> None:
    """Put the session id in the browser's cookie (or clear it), once, after sign-in or sign-out."""
    value = st.session_state.pop(COOKIE_TO_WRITE_KEY, None)
    if value is not None:
        max_age = int(dashboard_sessions.max_lifetime().total_seconds()) if value else 0
        session_cookie.write(COOKIE, value, max_age=max_age)


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
    account or this address is locked out after too many wrong passwords (even for the right one).
    A right password opens a server-side session whose id goes into the browser's cookie."""
    def check_password() -> Viewer | None:
        with session_scope(read_only=True) as session:
            return authenticate(session, email, password)

    viewer = throttle.guard_sign_in(get_engine(), check_password, account=email, address=client_address())
    if viewer is not None:
        with session_scope() as session:
            session_id, _row = dashboard_sessions.start(session, viewer.user_id)
        st.session_state[VIEWER_KEY] = viewer
        st.session_state[SESSION_ID_KEY] = session_id
        st.session_state[COOKIE_TO_WRITE_KEY] = session_id
        st.session_state[CHECKED_AT_KEY] = time.monotonic()
        st.session_state.pop(SESSION_ENDED_KEY, None)
    return viewer


def sign_out() -> None:
    """End the server-side session, forget everything of this tab, and clear the cookie."""
    session_id = st.session_state.get(SESSION_ID_KEY)
    if session_id:
        with session_scope() as session:
            dashboard_sessions.revoke(session, session_id)
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state[COOKIE_TO_WRITE_KEY] = ""
    # This tab's cookies were read when it opened: the old id is still among them until a reload.
    st.session_state[REFUSED_COOKIE_KEY] = _cookie_session_id()
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()


def update_viewer(viewer: Viewer) -> None:
    """After the person changed their own settings (e.g. their time zone)."""
    st.session_state[VIEWER_KEY] = viewer
