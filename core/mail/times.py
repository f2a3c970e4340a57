"""Times in a message, in the reader's own time zone and with that zone named.

The zone is the invitee's (what Calendly says they picked the slot in), else the client's saved
one, else UTC, which the text then says. A name that is not a real IANA zone is passed over, so a
bad value from outside never breaks a message.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC_NAME = "UTC"


def _zone(name: str | None) -> ZoneInfo | None:
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def first_known_zone(*names: str | None) -> str:
    """The first of `names` that is a real time zone, else "UTC"."""
    for name in names:
        if _zone(name) is not None:
            return name
    return UTC_NAME


def zone_label(zone_name: str) -> str:
    """How the zone reads in a sentence: "America/New York", "UTC"."""
    return zone_name.replace("_", " ")


def format_when(moment: datetime | None, zone_name: str, *, missing: str = "time not chosen yet") -> str:
    """"Tuesday 14 May 2030, 15:00 (Europe/London)": the local date and time, the zone named."""
    if moment is None:
        return missing
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they are UTC
        moment = moment.replace(tzinfo=timezone.utc)
    local = moment.astimezone(_zone(zone_name) or timezone.utc)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} ({zone_label(zone_name)})"
