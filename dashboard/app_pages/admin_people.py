"""Builders and users (admins): add a builder and the people who sign in to this dashboard.

The rules are `core.services.people`'s (the CLI's `add-builder` and `add-user` call the same ones);
this page only collects the fields and shows the outcome. A form is emptied after a success only
(its fields get new keys: the browser keeps a form's typed values otherwise), so a refused entry
can be corrected instead of typed again.
"""
import streamlit as st

from core.db import session_scope
from core.errors import DomainError
from core.services import people
from dashboard.lib import layout
from dashboard.lib.fmt import md

DONE_KEY = "people_done"  # (section, markdown) of the last success, shown once after the rerun
ROLES = {"builder": "Builder (sees only their own bookings)", "admin": "Admin (sees and does everything)"}

viewer = layout.page("Builders and users", admin_only=True,
                     caption="Add builders and the people who sign in here. The command line "
                             "(`python -m core add-builder`, `add-user`) does the same.")


def field(section: str, name: str) -> str:
    """The key of one of a form's fields; it changes after each success, so the field is empty again."""
    return f"{name}_{st.session_state.get(f'people_{section}_round', 0)}"


def succeeded(section: str, message: str) -> None:
    """Remember the outcome, empty the form, and draw the page again."""
    st.session_state[DONE_KEY] = (section, message)
    st.session_state[f"people_{section}_round"] = st.session_state.get(f"people_{section}_round", 0) + 1
    st.rerun()


def show_done(section: str) -> None:
    done = st.session_state.get(DONE_KEY)
    if done and done[0] == section:
        st.session_state.pop(DONE_KEY)
        st.success(done[1])


with session_scope(read_only=True) as session:
    builders = [(b.id, b.name, b.email, b.timezone, bool(b.calendly_user_uri))
                for b in people.builders_by_name(session)]
    users = [(u.email, u.role, builder_name or "", u.timezone or "")
             for u, builder_name in people.dashboard_users(session)]
zones = people.time_zones()

# ---------------------------------------------------------------- add a builder
st.subheader("Add a builder")
with st.form("add_builder_form"):
    left, right = st.columns(2)
    name = left.text_input("Name", key=field("builder", "new_builder_name"), max_chars=people.MAX_NAME_LENGTH)
    email = right.text_input("Email", key=field("builder", "new_builder_email"), placeholder="name@example.com")
    left, right = st.columns(2)  # one row at a time: on a phone the fields stack in reading order
    zone = left.selectbox("Time zone", zones, index=zones.index("UTC"),
                          key=field("builder", "new_builder_timezone"),
                          help="Their sessions and earnings are shown in this zone.")
    token = right.text_input("Calendly personal access token (optional)", type="password",
                             key=field("builder", "new_builder_token"),
                             help="Needed before their session types can be priced and booked; stored encrypted.")
    bio = st.text_area("Bio (shown on their profile)", key=field("builder", "new_builder_bio"),
                       max_chars=people.MAX_BIO_LENGTH)
    add_builder = st.form_submit_button("Add builder", type="primary")
show_done("builder")  # under the button, where the eyes are (on a phone too)
if add_builder:
    try:
        calendly_user = people.calendly_user_for_token(token) if token.strip() else None
        with session_scope() as session:
            builder = people.add_builder_by(session, viewer, name=name, email=email, timezone=zone, bio=bio,
                                            calendly_token=token.strip() or None, calendly_user=calendly_user)
            added = (builder.name, builder.email, builder.timezone, builder.calendly_user_uri)
    except DomainError as error:
        st.error(f"Not added: {md(error)}.")
    else:
        next_step = ("Price their Calendly event types under *Session types and prices*." if added[3] else
                     "Connect their Calendly account below before they can be booked.")
        succeeded("builder", f"Builder **{md(added[0])}** ({md(added[1])}, {md(added[2])}) added. {next_step} "
                             "Give them a dashboard account below.")

# ---------------------------------------------------------------- add a dashboard user
st.subheader("Add a dashboard user")
builder_names = {builder_id: f"{name} ({email})" for builder_id, name, email, _zone, _cal in builders}
with st.form("add_user_form"):
    left, right = st.columns(2)
    user_email = left.text_input("Email", key=field("user", "new_user_email"), placeholder="name@example.com")
    role = right.selectbox("Role", list(ROLES), format_func=ROLES.get, key=field("user", "new_user_role"))
    left, right = st.columns(2)
    builder_id = left.selectbox("Builder (for a builder account)", [None, *builder_names],
                                key=field("user", "new_user_builder"),
                                format_func=lambda bid: "—" if bid is None else builder_names[bid])
    password = right.text_input(f"Password (at least {people.MIN_PASSWORD_LENGTH} characters; empty: one is made)",
                                type="password", key=field("user", "new_user_password"))
    add_user = st.form_submit_button("Add user", type="primary")
show_done("user")  # under the button, where the eyes are (on a phone too)
if add_user:
    chosen = password or people.new_password()
    try:
        with session_scope() as session:
            user = people.add_user_by(session, viewer, email=user_email, password=chosen, role=role,
                                      builder_id=builder_id if role == "builder" else None)
            added_email, added_role = user.email, user.role
    except DomainError as error:
        hint = " Choose their builder in the list." if role == "builder" and builder_id is None else ""
        st.error(f"Not added: {md(error)}.{hint}")
    else:
        handover = ("They sign in with the password you chose." if password else
                    f"Their password, shown only now — copy it and hand it over safely: `{chosen}`")
        succeeded("user", f"Dashboard user **{md(added_email)}** ({added_role}) added. {handover}")

# ---------------------------------------------------------------- connect Calendly later
unconnected = {bid: f"{name} ({email})" for bid, name, email, _zone, cal in builders if not cal}
if unconnected:
    st.subheader("Connect a builder's Calendly")
    with st.form("connect_calendly_form"):
        left, right = st.columns(2)
        connect_id = left.selectbox("Builder", list(unconnected), format_func=unconnected.get,
                                    key=field("calendly", "connect_builder"))
        connect_token = right.text_input("Calendly personal access token", type="password",
                                         key=field("calendly", "connect_token"))
        connect = st.form_submit_button("Connect Calendly")
    show_done("calendly")  # under the button, where the eyes are (on a phone too)
    if connect:
        try:
            if not connect_token.strip():
                raise DomainError("please paste the builder's Calendly personal access token")
            calendly_user = people.calendly_user_for_token(connect_token)
            with session_scope() as session:
                builder = people.connect_calendly_by(session, viewer, connect_id, calendly_token=connect_token,
                                                     calendly_user=calendly_user)
                connected_name = builder.name
        except DomainError as error:
            st.error(f"Not connected: {md(error)}.")
        else:
            succeeded("calendly", f"Calendly connected for **{md(connected_name)}**. Price their event types under "
                                  "*Session types and prices*.")

# ---------------------------------------------------------------- who is there
st.subheader("Builders")
st.dataframe(
    [{"Name": name, "Email": email, "Time zone": zone_name, "Calendly": "connected" if cal else "not connected"}
     for _id, name, email, zone_name, cal in builders],
    hide_index=True)
st.subheader("Dashboard users")
st.dataframe(
    [{"Email": email, "Role": role_name, "Builder": builder_name, "Time zone": zone_name or "(default)"}
     for email, role_name, builder_name, zone_name in users],
    hide_index=True)
