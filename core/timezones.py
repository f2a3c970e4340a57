"""Which time zone a client sees times in: the first known zone among what we know of them.

The order is the rule (`client_zone`): the zone the client gave Calendly when booking (the
invitee's `timezone`), else the zone their browser reports, else UTC. Every zone comes from
outside (a webhook, a cookie), so it counts only if it is a real IANA zone name of bounded length.
"""
from __future__ import annotations

import re
from functools import lru_cache
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, available_timezones

UTC = "UTC"
MAX_ZONE_LENGTH = 64  # the columns that store a zone (bookings.invitee_timezone, clients.timezone)
ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/]{0,63}")
# Files in the system's zoneinfo directory that are not zones a person lives in.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_ZONES


def known_zone(name: object) -> str | None:
    """`name` if it is a real IANA zone (e.g. "America/New_York"), else None."""
    if not isinstance(name, str) or len(name) > MAX_ZONE_LENGTH or not ZONE_NAME.fullmatch(name):
        return None
    return name if name in _known_zones() else None


def first_known_zone(*names: str | None) -> str:
    """The first of `names` that is a real time zone, else "UTC"."""
    return next((name for name in names if known_zone(name)), UTC)


def client_zone(invitee_zone: str | None, browser_zone: str | None) -> str:
    """The zone to show a client's times in: Calendly's invitee zone, else the browser's, else UTC."""
    return first_known_zone(invitee_zone, browser_zone)


def zone_info(name: str | None) -> ZoneInfo:
    return ZoneInfo(known_zone(name) or UTC)


def format_local(moment: datetime | None, zone_name: str | None, *, missing: str) -> str:
    """"Tuesday 14 May 2030, 15:00 (Europe/London)": the local date and time with the zone named
    (UTC when `zone_name` is not a real zone); `missing` when there is no time. Pages and mail both
    write times this way, so a time reads the same in an email and on the page it links to."""
    if moment is None:
        return missing
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they are UTC
        moment = moment.replace(tzinfo=timezone.utc)
    zone = zone_info(zone_name)
    return f"{moment.astimezone(zone):%A %d %B %Y, %H:%M} ({zone.key})"
