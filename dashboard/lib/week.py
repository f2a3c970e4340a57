"""A calendar week in the viewer's zone: where it starts and ends, and which day each session
falls on. Plain functions (no Streamlit), so tests can check the days directly."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from dashboard.lib.fmt import zone


@dataclass(frozen=True)
class Week:
    monday: date
    start: datetime  # Monday 00:00 in the viewer's zone
    end: datetime  # the next Monday 00:00 (a DST change makes the week 167 or 169 hours)

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=n) for n in range(7)]


def week_of(now: datetime, tz: str, offset: int = 0) -> Week:
    """The week `offset` weeks after the one `now` falls in, in `tz`."""
    today = now.astimezone(zone(tz)).date()
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=offset)
    return Week(monday, datetime.combine(monday, time.min, zone(tz)),
                datetime.combine(monday + timedelta(days=7), time.min, zone(tz)))


def by_day(sessions: Sequence, week: Week, tz: str) -> dict[date, list]:
    """Each day of `week` with the sessions starting on it in `tz`, in start order."""
    days: dict[date, list] = {day: [] for day in week.days}
    for session in sorted(sessions, key=lambda s: s.start_time):
        day = session.start_time.astimezone(zone(tz)).date()
        if day in days:
            days[day].append(session)
    return days
