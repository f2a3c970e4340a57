"""What failed: side effects (outbox) to retry and webhook deliveries to reprocess."""
import streamlit as st

from dashboard.lib import components, data, layout

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

st.markdown("#### Webhook events")
events = data.failed_webhooks(viewer)
if events:
    components.webhook_events(viewer, events, tz, key="ops")
else:
    st.success("No failed webhooks.")
