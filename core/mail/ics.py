"""An iCalendar (RFC 5545) file for one session, written by hand: a calendar app adds it, and a
later file with the same UID and a higher SEQUENCE moves it (a reschedule) or removes it (CANCEL).

Times are UTC (`...Z`), so no VTIMEZONE is needed; the reader's calendar shows them in its own zone.
TEXT values escape backslash, semicolon, comma and newlines; lines longer than 75 octets are folded
(CRLF plus a space), never inside a UTF-8 character.
"""
from __future__ import annotations

from datetime import datetime, timezone

PRODID = "-//BuildAppsWith//Bookings//EN"
LINE_OCTETS = 75


def escape_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n"))


def fold(line: str) -> str:
    """`line` cut into pieces of at most 75 octets, each continuation starting with a space."""
    pieces, current, size = [], "", 0
    for char in line:
        width = len(char.encode("utf-8"))
        limit = LINE_OCTETS if not pieces else LINE_OCTETS - 1  # the leading space counts
        if size + width > limit:
            pieces.append(current)
            current, size = "", 0
        current += char
        size += width
    pieces.append(current)
    return "\r\n ".join(pieces)


def utc_stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def calendar(*, method: str, uid: str, sequence: int, stamp: datetime, start: datetime, end: datetime,
             summary: str, description: str, url: str, canceled: bool = False) -> str:
    """The whole file, CRLF line ends. `method`: PUBLISH (add or update) or CANCEL."""
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN", f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"UID:{escape_text(uid)}",
        f"SEQUENCE:{sequence}",
        f"DTSTAMP:{utc_stamp(stamp)}",
        f"DTSTART:{utc_stamp(start)}",
        f"DTEND:{utc_stamp(end)}",
        f"SUMMARY:{escape_text(summary)}",
        f"DESCRIPTION:{escape_text(description)}",
        f"URL:{url}",
        f"STATUS:{'CANCELLED' if canceled else 'CONFIRMED'}",
        "END:VEVENT", "END:VCALENDAR",
    ]
    return "".join(fold(line) + "\r\n" for line in lines)
