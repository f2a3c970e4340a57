"""Integrations (admins): every builder's Calendly connection — connected or not and why, how it
signs in, when the access token runs out, our webhook subscription, the last webhook and catch-up,
and what is wrong in plain words — with reconnect (a link the builder must approve), resync event
types and disconnect. The worker keeps subscriptions healthy on its own; this page shows it did."""
import pandas as pd
import streamlit as st

from core.errors import DomainError
from dashboard.lib import integration, layout
from dashboard.lib.fmt import md, zone
from dashboard.lib.tables import NAME, NARROW, TIME, WIDE

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

def short(value, empty: str) -> str:
    return value.astimezone(zone(tz)).strftime("%a %d %b, %H:%M") if value else empty


frame = pd.DataFrame([{
    "Builder": item.builder_name,
    "Status": integration.status_line(item),
    "Problems": " ".join(item.problems) or "None",
    "Signs in with": integration.AUTH_SHORT.get(item.auth or "", "—"),
    "Token valid until": short(item.token_expires_at, "—"),
    "Subscription": integration.SUBSCRIPTION_WORDS.get(item.subscription_state or "", "Not set up"),
    "Last webhook": short(item.last_webhook_at, "never"),
    "Last catch-up": short(item.last_reconcile_at, "never"),
} for item in items])
st.dataframe(frame, hide_index=True, key="integrations_table", column_config={
    "Builder": st.column_config.TextColumn("Builder", width=NAME, pinned=True),
    "Status": st.column_config.TextColumn("Status", width=NAME),
    "Problems": st.column_config.TextColumn("Problems", width=WIDE, help="Pick the builder below to read them whole"),
    "Signs in with": st.column_config.TextColumn("Signs in with", width=NAME),
    "Token valid until": st.column_config.TextColumn("Token valid until", width=TIME,
                                                     help=f"In {tz}; renewed automatically"),
    "Subscription": st.column_config.TextColumn("Subscription", width=NARROW),
    "Last webhook": st.column_config.TextColumn("Last webhook", width=TIME, help=f"In {tz}"),
    "Last catch-up": st.column_config.TextColumn("Last catch-up", width=TIME, help=f"In {tz}"),
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
