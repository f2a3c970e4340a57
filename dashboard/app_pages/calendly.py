"""Calendly (builders): connect your own Calendly account in two clicks — Connect Calendly, then
approve at Calendly — and see how the connection stands and which of your event types clients
can book. The connection's rules are `core.services.calendly_connection`'s."""
import streamlit as st

from core.db import session_scope
from core.errors import DomainError
from core.services import people
from dashboard.lib import data, integration, layout
from dashboard.lib.fmt import md, money

viewer = layout.page("Calendly", caption="Clients book your sessions in your Calendly; we take the payment.")
tz = layout.viewer_timezone(viewer)
if viewer.builder_id is None:
    st.info("This page is a builder's own: admins see every builder's connection under *Integrations*.")
    st.stop()
found = integration.health(tz, viewer.builder_id)
if not found:
    st.error("Your builder profile no longer exists; ask an admin.")
    st.stop()
item = found[0]

if item.status == "connected":
    integration.forget_connect_url(item.builder_id)  # a reconnect later needs a fresh `state`
    st.success("Your Calendly account is connected.", icon=":material/check_circle:")
elif item.status == "disconnected":
    st.error("Your Calendly account is disconnected: clients cannot book you until you connect it again.",
             icon=":material/link_off:")
else:
    st.info("Connect your Calendly account so clients can book your sessions here.", icon=":material/link:")

integration.facts(item, tz, problems=item.status == "connected")  # else the banner says it

if item.status != "connected":
    label = "Reconnect Calendly" if item.status == "disconnected" else "Connect Calendly"
    try:
        url = integration.connect_url(viewer, item.builder_id)
    except DomainError as error:
        st.error(f"Calendly cannot be connected right now: {md(error)}.")
    else:
        st.link_button(label, url, type="primary", icon=":material/open_in_new:")
        st.caption("Calendly opens in a new tab: sign in there and allow the connection. That tab then comes "
                   "back here, connected; in this one, press **Check again**.")
    st.button("Check again", key="calendly_check_again", icon=":material/refresh:")
    st.stop()

integration.action_buttons(viewer, item, key="calendly")
with st.expander("Reconnect (sign in to Calendly again)"):
    st.caption("Only needed if you changed your Calendly account's permissions or were asked to. Bookings "
               "keep working meanwhile.")
    if st.button("Make a reconnect link", key="calendly_reconnect"):
        st.link_button("Reconnect Calendly", integration.connect_url(viewer, item.builder_id),
                       icon=":material/open_in_new:")

st.subheader("Your event types")
lines = []
for session_type in next((b.session_types for b in data.prices(viewer)), []):
    bookable = "bookable" if session_type.active else "not bookable (switched off)"
    lines.append(f"**{md(session_type.name or 'Untitled')}** · {session_type.duration_minutes or '?'} min · "
                 f"{money(session_type.price_cents, session_type.currency)}, {bookable}")
priced_count = len(lines)
try:
    with session_scope(read_only=True) as session:
        unpriced = people.unpriced_event_types(session, viewer, item.builder_id)
except DomainError as error:
    unpriced = []
    st.info(f"{md(error)}.")
lines += [f"**{md(event_type.get('name') or 'Untitled')}** · {event_type.get('duration') or '?'} min · no price yet"
          for event_type in unpriced]
if lines:
    st.markdown("\n".join(f"- {line}" for line in lines))
if unpriced:
    st.caption("Give an event type a price under *Session types and prices* to make it bookable here.")
elif not priced_count:
    st.caption("No active event types in your Calendly yet: create one there, then press Resync event types.")
