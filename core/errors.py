"""Domain errors that entry points translate into clear answers (4xx, a page, exit 2)."""
from core.states import IllegalTransition  # noqa: F401  (re-exported: one import for callers)


class DomainError(Exception):
    """A request that the rules refuse; the message says why, for a person."""


class NotFound(DomainError):
    pass


class Forbidden(DomainError):
    pass


class RefundRefused(DomainError):
    pass
