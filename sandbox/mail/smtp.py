"""The SMTP side: aiosmtpd in its own thread, every accepted message into the store.

Bounds are the SMTP server's own: DATA larger than the store's per-message limit is refused with
552 before it is kept, more than MAX_RECIPIENTS recipients get 452, and a session that sends
nothing is dropped after a timeout."""
from __future__ import annotations

from aiosmtpd.controller import Controller

from .store import MAX_RECIPIENTS, MailStore

IDLE_TIMEOUT_SECONDS = 30


class CatchAll:
    """aiosmtpd handler: accept any recipient (up to the bound), keep every message."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 Too many recipients (at most {MAX_RECIPIENTS})"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            message = self.store.add(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except ValueError as error:
            return f"552 5.3.4 {error}"
        return f"250 OK kept as message {message.id}"


def smtp_controller(store: MailStore, *, host: str, port: int) -> Controller:
    return Controller(CatchAll(store), hostname=host, port=port,
                      data_size_limit=store.max_message_bytes, timeout=IDLE_TIMEOUT_SECONDS)
