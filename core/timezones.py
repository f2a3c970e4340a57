"""Which time zone a client sees times in: the first known zone among what we know of them.

The order is the rule (`client_zone`): the zone the client gave Calendly when booking (the
invitee's `timezone`), else the zone their browser reports, else UTC. Every zone comes from
outside (a webhook, a cookie), so it counts only if it is a real IANA zone name of bounded length.
"""
from __future__ import annotations

import re
from functools import lru_cache
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


def client_zone(invitee_zone: str | None, browser_zone: str | None) -> str:
    """The zone to show a client's times in: Calendly's invitee zone, else the browser's, else UTC."""
    return known_zone(invitee_zone) or known_zone(browser_zone) or UTC


def zone_info(name: str | None) -> ZoneInfo:
    return ZoneInfo(known_zone(name) or UTC)
