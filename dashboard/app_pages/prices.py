"""Session types and their prices; a builder edits their own, an admin anyone's."""
import streamlit as st

from core.money import Money, MoneyError
from dashboard.lib import actions, data, layout
from dashboard.lib.fmt import md, money

viewer = layout.page("Session types and prices",
                     caption="A new price applies to new bookings; existing bookings keep theirs.")
builders = data.prices(viewer)
if not any(b.session_types for b in builders):
    st.info("No session types yet — price one of your Calendly event types with "
            "`python -m core set-price` to make it bookable.")
for builder in builders:
    if viewer.is_admin:
        st.subheader(md(builder.name))
        st.caption(f"{md(builder.email)} · {md(builder.timezone)}")
    if not builder.session_types:
        st.caption("No session types priced yet.")
    for session_type in builder.session_types:
        with st.expander(f"{md(session_type.name or 'Untitled')} — {money(session_type.price_cents, session_type.currency)}"
                         f"{'' if session_type.active else ' (not bookable)'} · {session_type.bookings} bookings"):
            st.caption(f"{session_type.duration_minutes or '?'} minutes · Calendly: {md(session_type.calendly_event_type_uri)}")
            with st.form(f"price_{session_type.id}"):
                left, middle, right = st.columns(3)
                amount = left.text_input("Price", value=str(Money(session_type.price_cents, session_type.currency).major),
                                         key=f"price_amount_{session_type.id}")
                currency = middle.text_input("Currency", value=session_type.currency, max_chars=3,
                                             key=f"price_currency_{session_type.id}")
                active = right.checkbox("Bookable", value=session_type.active, key=f"price_active_{session_type.id}")
                if st.form_submit_button("Save price"):
                    try:
                        cents = Money.from_major(amount.strip(), currency.strip()).amount
                    except MoneyError as error:
                        st.error(f"Not saved: {md(error)}")
                    else:
                        actions.update_price(viewer, session_type.id, cents, currency.strip(), active)
                        st.rerun()
