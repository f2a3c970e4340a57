"""A builder's week: confirmed sessions by day in their own time zone, week by week; below it,
the slots held for clients who have not paid yet (not sessions until they pay)."""
import streamlit as st

from core.models import utcnow
from core.states import BookingStatus
from dashboard.lib import components, data, layout, tables
from dashboard.lib.fmt import md, zone
from dashboard.lib.week import by_day, week_of

OFFSET_KEY = "week_offset"

viewer = layout.page("Upcoming sessions")
tz = layout.viewer_timezone(viewer)
now = utcnow()


def move(weeks: int | None) -> None:
    st.session_state[OFFSET_KEY] = 0 if weeks is None else st.session_state.get(OFFSET_KEY, 0) + weeks


week = week_of(now, tz, st.session_state.get(OFFSET_KEY, 0))
sessions = data.week(viewer, week.start, week.end)
holds = data.pending(viewer)

back, today, forward = st.columns(3)
back.button("Previous week", key="week_back", icon=":material/chevron_left:", on_click=move, args=(-1,),
            width="stretch")
today.button("This week", key="week_now", on_click=move, args=(None,), width="stretch",
             disabled=st.session_state.get(OFFSET_KEY, 0) == 0)
forward.button("Next week", key="week_next", icon=":material/chevron_right:", on_click=move, args=(1,),
               width="stretch")
last_day = week.days[-1]
st.markdown(f"#### {week.monday.strftime('%a %d %b')} – {last_day.strftime('%a %d %b %Y')}")
confirmed = sum(1 for s in sessions if s.status == BookingStatus.CONFIRMED)
st.caption(f"{confirmed} confirmed session{'s' if confirmed != 1 else ''} · times in {tz} · "
           "click a session to open its booking")

local_today = now.astimezone(zone(tz)).date()
sessions_by_day = by_day(sessions, week, tz)
PER_ROW = 3  # cards wide enough for a session's name at 1280 px; a phone stacks them
# Day by day down the page (an agenda week): seven narrow columns cut names mid-word at 1280 px.
for day in week.days:
    mark = " · today" if day == local_today else ""
    day_sessions = sessions_by_day[day]
    st.markdown(f"**{day.strftime('%A %d %B')}**{mark}" + ("" if day_sessions else "  \n:gray[No sessions]"))
    for first in range(0, len(day_sessions), PER_ROW):
        for session, column in zip(day_sessions[first:first + PER_ROW], st.columns(PER_ROW, gap="small")):
            start = session.start_time.astimezone(zone(tz))
            end = session.end_time.astimezone(zone(tz)).strftime("–%H:%M") if session.end_time else ""
            done = " (done)" if session.status == BookingStatus.COMPLETED else ""
            with column, st.container(border=True):
                st.markdown(f"**{start.strftime('%H:%M')}{end}**{done}  \n"
                            f"{md(session.client_name or session.client_email)}  \n"
                            f":gray[{md(session.session_type_name)}]")
                if st.button("Open", key=f"week_{session.id}", width="stretch",
                             help=f"Open the booking of {session.client_name or session.client_email}"):
                    layout.open_booking(viewer, session.id)

st.markdown("#### Not paid yet")
st.caption("Slots held for clients who have not paid: they are not sessions yet. A hold is released when it "
           "ends unless the client pays; a bank transfer on its way keeps its slot until it settles.")
if holds:
    components.clickable_table(tables.pending_table(holds, tz, now, with_builder=viewer.is_admin),
                               key="holds_table", open_key=layout.GOTO_KEY)
else:
    st.caption("No unpaid holds.")
if not sessions and not holds and st.session_state.get(OFFSET_KEY, 0) == 0 and not data.upcoming(viewer, limit=1):
    st.info("No upcoming sessions yet — share your profile link so clients can book you.")
layout.follow_to_booking(viewer)
