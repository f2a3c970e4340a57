"""Email addresses: one check for every address that enters the system (sign-in, bookings, the
seed API, the operator's CLI), so an identity is always one real-looking mailbox."""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from core.config import get_settings
from core.errors import DomainError

MAX_LENGTH = 320


class InvalidEmail(DomainError):
    """The address is not one mailbox; the message says why, for a person."""


def normalize_email(text: str | None) -> str:
    """The address as we store it (trimmed, ASCII, lower case), or InvalidEmail with the reason.

    email-validator checks the syntax (one address, no lists, nothing before or after it); we do
    not look the domain up (no DNS at sign-in). Local parts must be ASCII: our mail goes out over
    plain SMTP, and a non-ASCII identity could not receive its own sign-in link. The sandbox
    accepts the reserved `.test` domain its demo data uses.
    """
    candidate = (text or "").strip()
    if not candidate:
        raise InvalidEmail("please enter an email address")
    if len(candidate) > MAX_LENGTH:
        raise InvalidEmail("this email address is too long")
    try:
        checked = validate_email(candidate, check_deliverability=False, allow_smtputf8=False,
                                 test_environment=bool(get_settings().sandbox))
    except EmailNotValidError as error:
        reason = str(error).rstrip(".") or "it is not valid"
        raise InvalidEmail(f"not a valid email address: {reason}") from None
    # The ASCII form: an internationalised domain is stored as IDNA, so one mailbox is one identity
    # and plain SMTP can reach it.
    return (checked.ascii_email or checked.normalized).lower()
