"""Session types and prices: a builder prices and edits their own; an admin picks any builder by
name. Pricing a new session type asks the builder's Calendly for their event types."""
import streamlit as st

from core.auth import Viewer
from core.db import session_scope
from core.errors import DomainError
from core.money import Money, MoneyError
from core.services import people
from dashboard.lib import actions, data, layout
from dashboard.lib.fmt import md, money

PRICED_KEY = "price_added"  # the last new price's description, shown once after the rerun
ROUND_KEY = "new_price_round"  # part of the new-price fields' keys: a new round empties them in the browser too

viewer = layout.page("Session types and prices",
                     caption="A new price applies to new bookings; existing bookings keep theirs.")


@st.cache_data(ttl=60, show_spinner="Asking Calendly for the event types…")
def unpriced_event_types(viewer: Viewer, builder_id: int) -> list[dict]:
    with session_scope(read_only=True) as session:
        return people.unpriced_event_types(session, viewer, builder_id)


builders = data.prices(viewer)
if viewer.is_admin and builders:
    names = {b.builder_id: f"{b.name} ({b.email})" for b in builders}
    chosen_id = st.selectbox("Builder", list(names), format_func=names.get, key="prices_builder",
                             help="Type a name to find a builder.")
    builders = [b for b in builders if b.builder_id == chosen_id]
if not builders:
    st.info("No builders yet — an admin adds them under *Builders and users*.")
    st.stop()
builder = builders[0]
if viewer.is_admin:
    st.caption(f"{md(builder.email)} · times in {md(builder.timezone)}")

if added := st.session_state.pop(PRICED_KEY, None):
    st.success(added)

st.subheader("Priced session types")
if not builder.session_types:
    st.caption("No session types priced yet: price one of the Calendly event types below to make it bookable.")
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
                    st.error(f"Not saved: {md(error)}. Enter an amount such as 49 or 49.50 and a currency "
                             "code such as USD.")
                else:
                    actions.update_price(viewer, session_type.id, cents, currency.strip(), active)
                    st.rerun()

st.subheader("Price a Calendly event type")
try:
    event_types = unpriced_event_types(viewer, builder.builder_id)
except DomainError as error:
    st.info(f"{md(error)}.")
    st.stop()
if not event_types:
    st.caption("Every Calendly event type of this builder has a price. New event types made in Calendly show up "
               "here within a minute.")
    st.stop()
by_uri = {event_type["uri"]: event_type for event_type in event_types}
usual_currency = builder.session_types[0].currency if builder.session_types else "USD"
round_ = st.session_state.get(ROUND_KEY, 0)
with st.form("new_price_form"):
    left, middle, right = st.columns([2, 1, 1])
    uri = left.selectbox("Calendly event type", list(by_uri), key=f"new_price_event_type_{round_}",
                         format_func=lambda u: f"{by_uri[u].get('name') or 'Untitled'} · "
                                               f"{by_uri[u].get('duration') or '?'} min")
    amount = middle.text_input("Price", key=f"new_price_amount_{round_}", placeholder="49.00")
    currency = right.text_input("Currency", value=usual_currency, max_chars=3, key=f"new_price_currency_{round_}")
    price_it = st.form_submit_button("Add price", type="primary")
if price_it:
    try:
        cents = Money.from_major(amount.strip() or "0", currency.strip()).amount
        if cents <= 0:
            raise DomainError("the price must be more than zero")
        with session_scope() as session:
            priced = people.price_event_type_by(session, viewer, builder.builder_id, by_uri[uri], cents, currency)
            described = (f"**{md(priced.name or 'Session type')}** now costs "
                         f"{money(priced.price_cents, priced.currency)}.")
    except MoneyError as error:
        st.error(f"Not priced: {md(error)}. Enter an amount such as 49 or 49.50 and a currency code such as USD.")
    except DomainError as error:
        st.error(f"Not priced: {md(error)}.")
    else:
        st.session_state[PRICED_KEY] = described + " Clients can book it now."
        st.session_state[ROUND_KEY] = round_ + 1
        data.clear()
        st.rerun()
