"""The one piece of raw HTML in the dashboard: a script that writes the sign-in cookie.

Streamlit answers over a websocket, so no response of ours can carry a Set-Cookie header: the
cookie is written by a script in the page. That is why it cannot be HttpOnly (a script that can
write it can read it). Acceptable here: the id alone is worth little — it is revocable on the
server (sign-out, `dashboard_sessions.revoke_all`), expires after idle hours with an absolute cap,
and only its hash is stored; SameSite=Strict keeps other sites from sending it, and Secure is
added whenever the dashboard is served over HTTPS.

Nothing a person typed reaches this HTML: the name is ours and the value must look like the ids
`dashboard_sessions` makes (URL-safe base64), or nothing is written.
"""
from __future__ import annotations

import json
import re

import streamlit as st

COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{0,128}")  # secrets.token_urlsafe, or "" to clear
COOKIE_NAME = re.compile(r"[a-z_]{1,40}")


def write(name: str, value: str, *, max_age: int) -> None:
    """Set (or, with "" and max_age 0, clear) cookie `name` in the browser showing this page."""
    if not (COOKIE_NAME.fullmatch(name) and COOKIE_VALUE.fullmatch(value)):
        raise ValueError("a dashboard cookie holds only a session id")
    cookie = json.dumps(f"{name}={value}; Path=/; Max-Age={int(max_age)}; SameSite=Strict")
    st.html(f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? '; Secure' : '');</script>",
            unsafe_allow_javascript=True)
