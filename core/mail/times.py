"""Times in a message, in the reader's own time zone and with that zone named.

Which names count as zones is `core.timezones`' rule (real IANA names only: a bad value from
outside never breaks a message). A client's zone is the one Calendly says they booked in, else
their saved one, else UTC, which the text then says. The wording is
`core.timezones.format_local`, the client pages' too, so a time reads the same in both.
"""
from __future__ import annotations

from datetime import datetime

from core.timezones import first_known_zone, format_local

__all__ = ["first_known_zone", "format_when"]


def format_when(moment: datetime | None, zone_name: str, *, missing: str = "time not chosen yet") -> str:
    """"Tuesday 14 May 2030, 15:00 (Europe/London)": the local date and time, the zone named."""
    return format_local(moment, zone_name, missing=missing)
