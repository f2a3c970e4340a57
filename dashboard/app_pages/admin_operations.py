"""What failed: side effects (outbox) to retry, slots and payments refused, webhook deliveries to
reprocess."""
import streamlit as st

from dashboard.lib import components, data, layout, tables

viewer = layout.page("Failures", admin_only=True,
                     caption="Side effects run after each change is committed and are retried with backoff; "
                             "the ones here need a look.")
tz = layout.viewer_timezone(viewer)


def section(title: str, rows: list, show, when_empty: str, caption: str = "") -> None:
    st.markdown(f"#### {title}")
    if caption:
        st.caption(caption)
    if rows:
        show(rows)
    else:
        st.success(when_empty)


section("Side effects (outbox)", data.failed_outbox(viewer),
        lambda rows: components.outbox_entries(viewer, rows, tz, key="ops"), "No failed side effects.")
section("Slots and payments that did not match their booking", data.needs_attention(viewer),
        lambda rows: components.clickable_table(tables.attention_table(rows, tz), key="ops_attention",
                                                open_key=layout.GOTO_KEY),
        "Nothing refused.",
        caption="A client can edit the booking id a Calendly slot or a payment carries. Such slots and "
                "payments never change the booking: the slot is released with its host's Calendly and the "
                "money goes back in full. A slot no builder of ours hosts shows above as a failed "
                "cancellation: cancel it in Calendly by hand. Click a row to open its booking.")
section("Webhook events", data.failed_webhooks(viewer),
        lambda rows: components.webhook_events(viewer, rows, tz, key="ops"), "No failed webhooks.")
layout.follow_to_booking(viewer)
