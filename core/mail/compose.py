"""The email itself: plain text, the same words as HTML (a Jinja2 template, autoescaped: names
and reasons come from people), and the session's `.ics` when the content has one.

A message queued without content (a sign-in link, or one queued before content was kept) is sent
as its stored text, with an HTML part made from that text: each line a paragraph, a line that is
only a link a button.
"""
from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.mail.content import CALENDAR_FILENAME, MailContent

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True))
TEMPLATES.tests["link"] = lambda text: text.startswith(("https://", "http://")) and " " not in text


def content_from_text(subject: str, body: str) -> MailContent:
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    links = [line for line in lines if TEMPLATES.tests["link"](line)]
    if len(links) == 1:  # one link: it is the action
        return MailContent(subject=subject, paragraphs=[line for line in lines if line != links[0]],
                           action_label="Open the link", action_url=links[0])
    return MailContent(subject=subject, paragraphs=lines)


def render_html(content: MailContent) -> str:
    return TEMPLATES.get_template("message.html").render(
        subject=content.subject, paragraphs=content.paragraphs, action_label=content.action_label,
        action_url=content.action_url, details=content.details, links=content.links)


def compose(*, mail_from: str, to: str, subject: str, text: str, content: MailContent | None) -> EmailMessage:
    """multipart/alternative (text, HTML), inside multipart/mixed when an .ics is attached."""
    content = content or content_from_text(subject, text)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = mail_from, to, subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    message.set_content(text)
    message.add_alternative(render_html(content), subtype="html")
    if content.calendar:
        message.add_attachment(content.calendar.encode("utf-8"), maintype="text", subtype="calendar",
                               filename=CALENDAR_FILENAME,
                               params={"method": content.calendar_method or "PUBLISH", "charset": "utf-8"})
    return message
