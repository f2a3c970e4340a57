"""Email goes out through a real SMTP server, and a server that refuses or is down is retried.

A local SMTP server (aiosmtpd) on a free port receives what the outbox's `notify` sends. When the
server refuses the message or is not listening, the outbox entry stays pending with the reason and
a later attempt; once the server is back and the retry is due, the same message is delivered once.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from email import message_from_bytes, policy
from urllib.parse import parse_qs, urlparse

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from core.db import session_scope
from core.models import Notification, OutboxEntry, utcnow
from core.services import client_login, outbox
from core.worker import drain_outbox
from tests.servers import free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Inbox:
    """The SMTP server's handler: keeps what it accepts; `refuse` answers DATA with a 451."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.refuse = False

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 4.3.0 Mailbox temporarily unavailable"
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "message": message_from_bytes(envelope.original_content or envelope.content,
                                                            policy=policy.default)})
        return "250 OK"


@contextmanager
def smtp_server(port: int, inbox: Inbox):
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def port(settings_env):
    port = free_port()
    settings_env(smtp_url=f"smtp://127.0.0.1:{port}", mail_from="bookings@example.com")
    return port


def _magic_link(engine, email: str = "casey@example.com") -> str:
    with session_scope(engine) as session:
        return client_login.send_magic_link(session, email, "/")


def _entry(engine) -> OutboxEntry:
    with session_scope(engine, read_only=True) as session:
        return session.execute(select(OutboxEntry).where(OutboxEntry.kind == "notify")).scalar_one()


def _sent_at(engine):
    with session_scope(engine, read_only=True) as session:
        return session.execute(select(Notification.sent_at)).scalar_one()


def _token(text: str) -> str:
    return parse_qs(urlparse(text.strip()).query)["token"][0]


def test_a_message_is_delivered_through_smtp(engine, port):
    inbox = Inbox()
    with smtp_server(port, inbox):
        link = _magic_link(engine)
        assert drain_outbox(engine).done == 1
    assert len(inbox.messages) == 1
    received = inbox.messages[0]
    assert received["from"] == "bookings@example.com" and received["to"] == ["casey@example.com"]
    assert received["message"]["Subject"] == "Your sign-in link"
    body = received["message"].get_body(("plain",)).get_content()  # text, with an HTML alternative
    assert _token(next(line for line in body.splitlines() if "/login/verify?" in line)) == _token(link)
    assert _entry(engine).status == "done" and _sent_at(engine) is not None


def _later(monkeypatch, entry: OutboxEntry) -> None:
    """Move the outbox's clock to just after the entry's next attempt is due."""
    due = entry.next_attempt_at
    monkeypatch.setattr(outbox, "utcnow", lambda: max(utcnow(), due) + timedelta(seconds=1))


def test_an_unreachable_server_leaves_the_message_pending_then_delivers_it(engine, port, monkeypatch):
    _magic_link(engine)
    before = utcnow()
    summary = drain_outbox(engine)  # nothing listens on the port
    assert (summary.done, summary.retried) == (0, 1)
    entry = _entry(engine)
    assert entry.status == "pending" and entry.attempts == 1
    assert "SMTP" in entry.last_error and entry.next_attempt_at > before
    assert _sent_at(engine) is None

    inbox = Inbox()
    with smtp_server(port, inbox):
        assert drain_outbox(engine).total == 0  # the retry is not due yet: nothing is sent early
        assert inbox.messages == []
        _later(monkeypatch, entry)
        assert drain_outbox(engine).done == 1
    assert len(inbox.messages) == 1 and inbox.messages[0]["to"] == ["casey@example.com"]
    entry = _entry(engine)
    assert entry.status == "done" and entry.attempts == 2 and entry.last_error is None
    assert _sent_at(engine) is not None


def test_a_refusing_server_leaves_the_message_pending_then_delivers_it_once(engine, port, monkeypatch):
    inbox = Inbox()
    inbox.refuse = True
    with smtp_server(port, inbox):
        _magic_link(engine)
        assert drain_outbox(engine).retried == 1
        entry = _entry(engine)
        assert entry.status == "pending" and "SMTP" in entry.last_error
        assert inbox.messages == [] and _sent_at(engine) is None

        inbox.refuse = False
        _later(monkeypatch, entry)
        assert drain_outbox(engine).done == 1
        assert drain_outbox(engine).total == 0  # done is done: no second copy
    assert len(inbox.messages) == 1
    assert _entry(engine).status == "done"
