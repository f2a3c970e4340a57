"""The caught messages, in memory, bounded: at most `max_messages`, each at most
`max_message_bytes` (the SMTP server refuses larger ones), and `max_total_bytes` in all; the
oldest are dropped to make room. Shared by the SMTP thread and the web server, hence the lock."""
from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage

MAX_RECIPIENTS = 50


@dataclass
class Attachment:
    index: int
    filename: str
    content_type: str
    data: bytes

    @property
    def text(self) -> str | None:
        """The content, when it is text a person can read (an .ics is)."""
        if not self.content_type.startswith("text/"):
            return None
        return self.data.decode("utf-8", "replace")


@dataclass
class CaughtMessage:
    id: int
    received_at: datetime
    mail_from: str
    rcpt_to: list[str]
    raw: bytes
    parsed: EmailMessage = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.parsed = message_from_bytes(self.raw, policy=policy.default)

    def header(self, name: str) -> str:
        try:
            return str(self.parsed.get(name, "") or "")
        except Exception:  # a malformed header: say so rather than fail the page
            return "(unreadable header)"

    @property
    def subject(self) -> str:
        return self.header("Subject") or "(no subject)"

    @property
    def to(self) -> str:
        return self.header("To") or ", ".join(self.rcpt_to)

    def body(self, subtype: str) -> str | None:
        """The message's text/plain or text/html body, decoded (bad charsets replaced)."""
        try:
            part = self.parsed.get_body((subtype,))
        except Exception:
            return None
        if part is None:
            return None
        try:
            return part.get_content()
        except Exception:
            payload = part.get_payload(decode=True) or b""
            return payload.decode("utf-8", "replace")

    def attachments(self) -> list[Attachment]:
        found = []
        try:
            parts = list(self.parsed.iter_attachments())
        except Exception:
            return found
        for index, part in enumerate(parts):
            data = part.get_payload(decode=True) or b""
            found.append(Attachment(index, part.get_filename() or f"attachment-{index + 1}",
                                    part.get_content_type(), data))
        return found


class MailStore:
    def __init__(self, *, max_messages: int = 200, max_message_bytes: int = 2 * 1024 * 1024,
                 max_total_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_messages, self.max_message_bytes = max_messages, max_message_bytes
        self.max_total_bytes = max_total_bytes
        self._messages: OrderedDict[int, CaughtMessage] = OrderedDict()
        self._ids = itertools.count(1)
        self._total = 0
        self._lock = threading.Lock()

    def add(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> CaughtMessage:
        if len(raw) > self.max_message_bytes:
            raise ValueError(f"message larger than {self.max_message_bytes} bytes")
        with self._lock:
            message = CaughtMessage(next(self._ids), datetime.now(timezone.utc), mail_from,
                                    list(rcpt_to)[:MAX_RECIPIENTS], raw)
            self._messages[message.id] = message
            self._total += len(raw)
            while self._messages and (len(self._messages) > self.max_messages
                                      or self._total > self.max_total_bytes):
                _, dropped = self._messages.popitem(last=False)
                self._total -= len(dropped.raw)
            return message

    def newest_first(self) -> list[CaughtMessage]:
        with self._lock:
            return list(reversed(self._messages.values()))

    def get(self, message_id: int) -> CaughtMessage | None:
        with self._lock:
            return self._messages.get(message_id)

    def clear(self) -> int:
        with self._lock:
            count = len(self._messages)
            self._messages.clear()
            self._total = 0
            return count
