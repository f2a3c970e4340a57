"""What failed: side effects (outbox) to retry and webhook deliveries to reprocess."""
import streamlit as st

from dashboard.lib import components, data, layout, tables

viewer = layout.page("Failures", admin_only=True,
                     caption="Side effects run after each change is committed and are retried with backoff; "
                             "the ones here need a look.")
tz = layout.viewer_timezone(viewer)

st.markdown("#### Side effects (outbox)")
entries = data.failed_outbox(viewer)
if entries:
    components.outbox_entries(viewer, entries, tz, key="ops")
else:
    st.success("No failed side effects.")

st.markdown("#### Slots and payments that did not match their booking")
st.caption("A client can edit the booking id a Calendly slot or a payment carries. Such slots and "
           "payments never change the booking: the slot is released with its host's Calendly and the "
           "money goes back in full. A slot no builder of ours hosts shows above as a failed "
           "cancellation: cancel it in Calendly by hand.")
attention = data.needs_attention(viewer)
if attention:
    st.dataframe(tables.attention_frame(attention, tz), hide_index=True, key="ops_attention")
else:
    st.success("Nothing refused.")

st.markdown("#### Webhook events")
events = data.failed_webhooks(viewer)
if events:
    components.webhook_events(viewer, events, tz, key="ops")
else:
    st.success("No failed webhooks.")
