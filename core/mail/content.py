"""What a message says, as data: the subject, paragraphs, one action (a button in HTML, a line in
text), a few labelled details and, for a session in the calendar, an `.ics` file.

The content is decided once, when the message is queued (`notifications.notify`), and kept with its
outbox entry, so a retry sends the same words; the plain text is stored as the Notification's body
and the HTML is rendered from the same content when it is sent (`compose`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CALENDAR_FILENAME = "session.ics"


@dataclass
class MailContent:
    subject: str
    paragraphs: list[str]
    action_label: str | None = None
    action_url: str | None = None
    details: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # secondary links: (label, url)
    calendar: str | None = None  # the .ics text
    calendar_method: str | None = None  # PUBLISH or CANCEL

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> "MailContent":
        known = {name: data.get(name) for name in cls.__dataclass_fields__ if name in data}
        known["details"] = [tuple(pair) for pair in known.get("details") or []]
        known["links"] = [tuple(pair) for pair in known.get("links") or []]
        return cls(**known)

    def text(self) -> str:
        """The plain-text part: paragraphs, the action's link, then the details."""
        blocks = list(self.paragraphs)
        if self.action_url:
            blocks.append(f"{self.action_label}: {self.action_url}" if self.action_label else self.action_url)
        if self.links:
            blocks.append("\n".join(f"{label}: {url}" for label, url in self.links))
        if self.details:
            width = max(len(label) for label, _ in self.details) + 1
            blocks.append("\n".join(f"{label + ':':<{width}} {value}" for label, value in self.details))
        return "\n\n".join(blocks)
