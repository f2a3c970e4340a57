"""Integrations (admins): every builder's Calendly connection — connected or not and why, how it
signs in, when the access token runs out, our webhook subscription, the last webhook and catch-up,
and what is wrong in plain words — with reconnect (a link the builder must approve), resync event
types and disconnect. The worker keeps subscriptions healthy on its own; this page shows it did."""
import pandas as pd
import streamlit as st

from core.errors import DomainError
from dashboard.lib import integration, layout
from dashboard.lib.fmt import md
from dashboard.lib.tables import NAME, NARROW, TIME, WIDE, local

PICKED_KEY = "integrations_builder"

viewer = layout.page("Integrations", admin_only=True,
                     caption="Each builder's Calendly connection. Subscriptions Calendly disabled are recreated "
                             "by the worker and the bookings missed meanwhile are caught up.")
tz = layout.viewer_timezone(viewer)
items = integration.health(tz)
if not items:
    st.info("No builders yet — add them under *Builders and users*.")
    st.stop()

connected = sum(item.status == "connected" for item in items)
troubled = [item for item in items if item.problems]
left, right = st.columns(2)
left.metric("Connected", f"{connected} of {len(items)}")
right.metric("Need a look", len(troubled))

frame = pd.DataFrame([{
    "Builder": item.builder_name,
    "Status": integration.status_line(item),
    "Signs in with": integration.AUTH_WORDS.get(item.auth or "", "—"),
    "Token valid until": local(item.token_expires_at, tz) if item.auth == "oauth" else pd.NaT,
    "Subscription": integration.SUBSCRIPTION_WORDS.get(item.subscription_state or "", "Not set up"),
    "Last webhook": local(item.last_webhook_at, tz),
    "Last catch-up": local(item.last_reconcile_at, tz),
    "Problems": " ".join(item.problems) or "None",
} for item in items])
when_column = {"format": "ddd D MMM, HH:mm", "timezone": tz, "width": TIME}
st.dataframe(frame, hide_index=True, key="integrations_table", column_config={
    "Builder": st.column_config.TextColumn("Builder", width=NAME, pinned=True),
    "Status": st.column_config.TextColumn("Status", width=NAME),
    "Signs in with": st.column_config.TextColumn("Signs in with", width=NAME),
    "Token valid until": st.column_config.DatetimeColumn("Token valid until", help=f"In {tz}; renewed automatically",
                                                         **when_column),
    "Subscription": st.column_config.TextColumn("Subscription", width=NARROW),
    "Last webhook": st.column_config.DatetimeColumn("Last webhook", help=f"In {tz}", **when_column),
    "Last catch-up": st.column_config.DatetimeColumn("Last catch-up", help=f"In {tz}", **when_column),
    "Problems": st.column_config.TextColumn("Problems", width=WIDE),
})

st.subheader("One builder")
by_id = {item.builder_id: item for item in sorted(items, key=lambda i: (not i.problems, i.builder_name.lower()))}
picked_id = st.selectbox("Builder", list(by_id), key=PICKED_KEY, help="Type a name to find a builder.",
                         format_func=lambda i: f"{by_id[i].builder_name} — {integration.status_line(by_id[i])}")
item = by_id[picked_id]
integration.facts(item, tz)
integration.action_buttons(viewer, item, key="integrations")

verb = "Reconnect" if item.status != "waiting" else "Connect"
if st.button(f"{verb}: make a link for {md(item.builder_name)}", key="integrations_reconnect",
             icon=":material/link:"):
    st.session_state["integrations_link_for"] = item.builder_id
if st.session_state.get("integrations_link_for") == item.builder_id:
    try:
        url = integration.connect_url(viewer, item.builder_id)
    except DomainError as error:
        st.error(f"No link made: {md(error)}.")
    else:
        st.markdown(f"Send this link to **{md(item.builder_name)}**. Only they can approve it, signed in to "
                    "their own Calendly; nothing changes until they do. It works once, for a short while.")
        st.code(url, language=None, wrap_lines=True)
