"""How things read on screen: money with its currency, times in the viewer's timezone, labels."""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from core.money import format_amount

STATUS_LABELS = {
    "PENDING_SCHEDULING": "Choosing a time",
    "PENDING_PAYMENT": "Awaiting payment",
    "CONFIRMED": "Confirmed",
    "COMPLETED": "Completed",
    "CANCELED": "Canceled",
    "EXPIRED": "Expired",
}
PAYMENT_LABELS = {
    "unpaid": "Unpaid",
    "paid": "Paid",
    "partially_refunded": "Partially refunded",
    "refunded": "Refunded",
    "disputed": "Disputed",
}
ADMIN_TIMEZONES = ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
                   "Asia/Tokyo", "Australia/Sydney"]


def money(amount_cents: int | None, currency: str) -> str:
    return "" if amount_cents is None else format_amount(int(amount_cents), currency)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except Exception:
        return ZoneInfo("UTC")


def when(value: datetime | None, tz: str, *, with_zone: bool = False) -> str:
    """'Tue 04 Jun 2024 14:00' in `tz`; '' for no time."""
    if value is None:
        return ""
    local = value.astimezone(zone(tz))
    text = local.strftime("%a %d %b %Y %H:%M")
    return f"{text} {local.tzname()}" if with_zone else text


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


ON_ITS_WAY = "Bank transfer on its way"


def payment_label(state: str, *, on_its_way: bool = False) -> str:
    """The ledger's payment state; a settling bank payment is not "Unpaid"."""
    return ON_ITS_WAY if on_its_way else PAYMENT_LABELS.get(state, state)


def minutes_until(value: datetime | None, now: datetime) -> str:
    if value is None:
        return ""
    minutes = int((value - now).total_seconds() // 60)
    return f"in {minutes} min" if minutes >= 0 else f"{-minutes} min ago"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


# Markdown (and Streamlit's additions to it: :color[…], :emoji:, $math$) that outside text must not
# be able to start. Plain text — names, emails, ids like bk_1 — passes through unchanged.
_ALWAYS = re.compile(r"([\\`*\[\]<>$~|])")
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_ENTITY = re.compile(r"&(?=#?\w+;)")
_SHORTCODE_COLON = re.compile(r":(?!//)(?=[\w/+-]+:)")
_BLOCK_START = re.compile(r"^(?=[#>+\-=])|^(\d+)(?=[.)])")


def md(value: object) -> str:
    """Outside text (a client's name, an email, a cancel reason) for st.markdown, st.caption, labels
    and messages: it shows as typed and cannot add HTML, links, images, formatting or new lines."""
    text = " ".join(str(value).split())  # a newline would end the list item or start a block
    text = _ALWAYS.sub(r"\\\1", text)
    text = _EMPHASIS_UNDERSCORE.sub(r"\\_", text)
    text = _ENTITY.sub(r"\\&", text)
    text = _SHORTCODE_COLON.sub(r"\\:", text)
    text = text.replace("://", "\\://")  # no auto-linked URLs
    text = re.sub(r"(?i)\b(www)\.", r"\1\\.", text)
    return _BLOCK_START.sub(lambda m: m.group(1) + "\\" if m.group(1) else "\\", text, count=1)


def first_line(text: str | None, limit: int = 120) -> str:
    if not text:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # Tracebacks end with the error; everything else starts with it.
    line = lines[-1] if text.lstrip().startswith("Traceback") and lines else (lines[0] if lines else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"
