"""A builder's Calendly integration on screen: how it stands (connected or not and why, how it
authenticates, when the access token runs out, our webhook subscription, the last webhook and the
last catch-up, what is wrong in plain words) and what can be done about it — connect or reconnect
(a link to Calendly's authorization page), resync event types, disconnect after a confirmation.

The builder's Calendly page and the admin's Integrations page both draw it; the rules are
`core.services.calendly_connection`'s and `core.services.integration_health`'s. Who may act on which
builder is checked here, before each call (the services act on a builder id, for the CLI too).
"""
from __future__ import annotations

import time

import streamlit as st
from sqlalchemy import select

from core.auth import Viewer, check_builder_access
from core.calendly import CalendlyError
from core.db import get_engine, session_scope
from core.errors import DomainError
from core.models import DashboardSession
from core.security import hash_token
from core.services import calendly_connection, integration_health
from core.services.integration_health import IntegrationHealth
from dashboard.lib import actions, auth, data
from dashboard.lib.fmt import md, when

STATUS_WORDS = {"connected": "Connected", "waiting": "Not connected yet", "disconnected": "Disconnected"}
AUTH_WORDS = {"oauth": "Calendly sign-in (OAuth)", "token": "Personal access token"}
AUTH_SHORT = {"oauth": "OAuth", "token": "Personal token"}  # for a table column
SUBSCRIPTION_WORDS = {"active": "Active", "disabled": "Disabled by Calendly", "missing": "Missing"}
CONNECT_URLS_KEY = "calendly_connect_urls"  # builder id → (authorization URL, when it was made) for this tab
# An authorization URL carries a single-use `state` that expires; the page makes a new one well before.
URL_FRESH_SECONDS = 5 * 60
DISCONNECT_KEY = "calendly_disconnect_pending"  # the builder (id, name) whose disconnect awaits confirmation


def health(tz: str, builder_id: int | None = None) -> list[IntegrationHealth]:
    """Every builder's integration, or one builder's (read each run: a connect finishes in another
    tab); times in the problems' words are in `tz`."""
    with session_scope(read_only=True) as session:
        return integration_health.integration_health(session, builder_id, zone=tz)


def status_line(item: IntegrationHealth) -> str:
    words = STATUS_WORDS.get(item.status, item.status)
    return f"{words}: {item.status_reason}" if item.status_reason and item.status != "connected" else words


def facts(item: IntegrationHealth, tz: str, *, problems: bool = True) -> None:
    """The integration's state, one fact a line, then its problems (each a warning saying what to
    do; written for admins, so a builder's own page leaves out the ones its banner already says)."""
    never = "never"
    lines = [f"**Status:** {md(status_line(item))}"
             + (f" (since {when(item.connected_at, tz)})" if item.status == "connected" and item.connected_at else "")]
    if item.auth:
        lines.append(f"**Signs in with:** {AUTH_WORDS.get(item.auth, md(item.auth))}")
    if item.auth == "oauth" and item.token_expires_at:
        lines.append(f"**Access token valid until:** {when(item.token_expires_at, tz)} (renewed automatically)")
    subscription = SUBSCRIPTION_WORDS.get(item.subscription_state or "", "Not set up yet")
    checked = f" (checked {when(item.subscription_checked_at, tz)})" if item.subscription_checked_at else ""
    lines.append(f"**Webhook subscription:** {subscription}{checked}")
    lines.append(f"**Last webhook received:** {when(item.last_webhook_at, tz) or never}")
    lines.append(f"**Last catch-up with Calendly:** {when(item.last_reconcile_at, tz) or never}")
    st.markdown("\n".join(f"- {line}" for line in lines))
    for problem in item.problems if problems else ():
        st.warning(md(problem), icon=":material/warning:")


# ---------------------------------------------------------------- connect
def _dashboard_session_row_id(session) -> int | None:
    """The row of this tab's dashboard sign-in (the `state` is bound to it), or None (single sign-on)."""
    sid = st.session_state.get(auth.SESSION_ID_KEY)
    if not sid:
        return None
    return session.execute(select(DashboardSession.id).where(
        DashboardSession.session_hash == hash_token(sid))).scalar_one_or_none()


def connect_url(viewer: Viewer, builder_id: int) -> str:
    """Calendly's authorization URL for this builder, made once per tab and renewed before its
    `state` expires (each URL is a row in calendly_oauth_states; a rerun must not add one).
    A builder's own connect is bound to their sign-in; an admin's is for the builder to open."""
    check_builder_access(viewer, builder_id, "Calendly connection")
    urls = st.session_state.setdefault(CONNECT_URLS_KEY, {})
    made = urls.get(builder_id)
    if made and time.monotonic() - made[1] < URL_FRESH_SECONDS:
        return made[0]
    with session_scope() as session:
        url = calendly_connection.start_connect(
            session, builder_id, started_by=viewer.actor,
            dashboard_session_id=None if viewer.is_admin else _dashboard_session_row_id(session))
    urls[builder_id] = (url, time.monotonic())
    return url


def forget_connect_url(builder_id: int) -> None:
    st.session_state.get(CONNECT_URLS_KEY, {}).pop(builder_id, None)


# ---------------------------------------------------------------- resync and disconnect
def _report(kind: str, message: str) -> None:
    st.session_state[actions.OUTCOME_KEY] = (kind, message)  # shown by the page frame on the next run


def resync(viewer: Viewer, item: IntegrationHealth) -> None:
    check_builder_access(viewer, item.builder_id, "Calendly connection")
    try:
        count = integration_health.resync_event_types(get_engine(), item.builder_id, actor=viewer.actor)
    except (DomainError, CalendlyError) as error:
        _report("error", f"Not resynced: {md(error)}")
    else:
        data.clear()
        st.cache_data.clear()  # the event types listed on the prices page too
        _report("success", f"Event types read again from Calendly: {count} found for {md(item.builder_name)}.")


def disconnect(viewer: Viewer, builder_id: int, name: str) -> None:
    check_builder_access(viewer, builder_id, "Calendly connection")
    try:
        calendly_connection.disconnect(get_engine(), builder_id, actor=viewer.actor)
    except (DomainError, CalendlyError) as error:
        _report("error", f"Not disconnected: {md(error)}")
    else:
        forget_connect_url(builder_id)
        data.clear()
        _report("success", f"Calendly disconnected for {md(name)}: the access is revoked and our webhook "
                           "subscription removed. Their session types cannot be booked until they connect again.")


@st.dialog("Disconnect Calendly?", on_dismiss=lambda: st.session_state.pop(DISCONNECT_KEY, None))
def _confirm_disconnect(viewer: Viewer) -> None:
    builder_id, name = st.session_state[DISCONNECT_KEY]
    st.markdown(f"**{md(name)}** will no longer be bookable: we revoke our access to their Calendly and remove "
                "our webhook subscription. Bookings already made stay as they are. They can connect again "
                "at any time.")
    confirm, back = st.columns(2)
    if confirm.button("Disconnect", key="confirm_disconnect", type="primary"):
        st.session_state.pop(DISCONNECT_KEY, None)
        disconnect(viewer, builder_id, name)
        st.rerun()
    if back.button("Keep connected", key="cancel_disconnect"):
        st.session_state.pop(DISCONNECT_KEY, None)
        st.rerun()


def action_buttons(viewer: Viewer, item: IntegrationHealth, *, key: str) -> None:
    """Resync and Disconnect for a connected builder (Disconnect asks first)."""
    if item.status != "connected":
        return
    left, right = st.columns(2)
    if left.button("Resync event types", key=f"{key}_resync", icon=":material/sync:", width="stretch"):
        resync(viewer, item)
        st.rerun()
    if right.button("Disconnect", key=f"{key}_disconnect", icon=":material/link_off:", width="stretch"):
        st.session_state[DISCONNECT_KEY] = (item.builder_id, item.builder_name)
    if st.session_state.get(DISCONNECT_KEY, (None,))[0] == item.builder_id:
        _confirm_disconnect(viewer)
