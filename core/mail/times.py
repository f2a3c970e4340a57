"""Times in a message, in the reader's own time zone and with that zone named.

Which names count as zones is `core.timezones`' rule (real IANA names only: a bad value from
outside never breaks a message). A client's zone is the one Calendly says they booked in, else
their saved one, else UTC, which the text then says. The wording matches the client pages
(`webhook_service/rendering.local_time`), so a time reads the same in the mail and on the page.
"""
from __future__ import annotations

from datetime import datetime, timezone

from core.timezones import UTC, known_zone, zone_info


def first_known_zone(*names: str | None) -> str:
    """The first of `names` that is a real time zone, else "UTC"."""
    for name in names:
        if known_zone(name):
            return name
    return UTC


def format_when(moment: datetime | None, zone_name: str, *, missing: str = "time not chosen yet") -> str:
    """"Tuesday 14 May 2030, 15:00 (Europe/London)": the local date and time, the zone named."""
    if moment is None:
        return missing
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they are UTC
        moment = moment.replace(tzinfo=timezone.utc)
    zone = zone_info(zone_name)
    return f"{moment.astimezone(zone):%A %d %B %Y, %H:%M} ({zone.key})"
