"""Shared by the mail tests: the local mail catcher as the SMTP server our outbox sends to, and a
reader for the .ics files it receives."""
from __future__ import annotations

import re
from contextlib import contextmanager
from email import message_from_bytes, policy

import pytest

from sandbox.mail.smtp import smtp_controller
from sandbox.mail.store import MailStore
from tests.servers import free_port


@contextmanager
def running_catcher(store: MailStore, port: int):
    controller = smtp_controller(store, host="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def catcher(settings_env):
    """A mail catcher on a free port; the system's SMTP_URL points at it. Yields its store."""
    port = free_port()
    settings_env(smtp_url=f"smtp://127.0.0.1:{port}", mail_from="bookings@example.com")
    store = MailStore(max_messages=50)
    store.smtp_port = port
    with running_catcher(store, port):
        yield store


def parsed(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def read_ics(text: str) -> dict[str, str]:
    """The calendar's properties (unfolded, unescaped); the last one wins for repeated names."""
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")  # CRLF only
    for line in text.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75, line
    unfolded = text.replace("\r\n ", "")
    values: dict[str, str] = {}
    for line in unfolded.split("\r\n"):
        if not line:
            continue
        name, _, value = line.partition(":")
        values[name.split(";")[0]] = re.sub(r"\\([\\;,nN])",
                                            lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)
    return values


def send_mail(engine):
    """Carry out the due `notify` entries only (no refunds or Calendly calls in these tests)."""
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import OutboxEntry
    from core.worker import drain_outbox

    with session_scope(engine, read_only=True) as session:
        ids = list(session.execute(select(OutboxEntry.id).where(OutboxEntry.kind == "notify")).scalars())
    return drain_outbox(engine, only_ids=ids)
