"""The client's way in: a builder's bookable session types, and starting a booking in Calendly.

Calendly is the source of truth for which event types exist and are active; our database adds
the price. A type is bookable only if Calendly says it is active and we have priced it.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import Engine, select

from core.calendly import CalendlyClient, EventTypeCache
from core.db import session_scope
from core.errors import DomainError, NotFound
from core.models import Builder, SessionType
from core.money import format_amount
from core.providers import calendly_for
from core.refund_policy import RefundPolicy, policy_for
from core.services import booking_service
from core.services.calendly_connection import DISCONNECTED, CalendlyDisconnected

EVENT_TYPES = EventTypeCache(ttl_seconds=300)
# What a Calendly uuid is made of (ours and the sandbox's add lowercase and '-'); anything else is no id.
UUID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class OfferedSessionType:
    id: str  # the Calendly event type's uuid: the seed's `eventTypeId`
    uri: str
    name: str
    description: str | None
    duration: int
    slug: str
    color: str
    active: bool
    created_at: str | None
    updated_at: str | None
    profile: dict
    scheduling_url: str
    session_type_id: int | None  # our row, None if not priced
    price_cents: int | None
    currency: str | None
    refund_policy: RefundPolicy | None = None

    @property
    def policy_label(self) -> str:
        """The cancellation terms in words, shown before the client books."""
        policy = self.refund_policy
        if policy is None:
            return ""
        inside = (f"{policy.partial_percent}% back" if policy.partial_percent else "no refund")
        return (f"Cancel at least {policy.full_refund_hours} h before the start for a full refund; "
                f"later: {inside}; after the start: no refund.")

    @property
    def bookable(self) -> bool:
        return self.active and self.session_type_id is not None

    @property
    def price_label(self) -> str:
        return format_amount(self.price_cents, self.currency) if self.price_cents is not None else "not bookable"


def event_type_uuid(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _load_builder(engine: Engine, builder_id: int) -> tuple[Builder, CalendlyClient, dict[str, SessionType]]:
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, builder_id)
        if builder is None:
            raise NotFound("there is no builder with this id")
        if builder.calendly_status == DISCONNECTED:  # withdrawn until they connect Calendly again
            raise _not_bookable(builder)
        prices = {
            row.calendly_event_type_uri: row
            for row in session.execute(select(SessionType).where(SessionType.builder_id == builder.id)).scalars()
        }
        return builder, calendly_for(builder), prices


def _not_bookable(builder: Builder) -> CalendlyDisconnected:
    """What a client reads about a builder whose Calendly is disconnected."""
    return CalendlyDisconnected(f"{builder.name}'s sessions cannot be booked at the moment: their calendar is not "
                                "connected. Nothing was booked; please check again later.")


def offered_session_types(engine: Engine, builder_id: int) -> tuple[Builder, list[OfferedSessionType]]:
    """The builder's Calendly event types (cached), enriched with our prices."""
    builder, client, prices = _load_builder(engine, builder_id)
    try:
        event_types = EVENT_TYPES.get(str(builder.id),
                                      lambda: client.list_event_types(builder.calendly_user_uri, active=None))
    except CalendlyDisconnected:  # found out just now (a refresh was refused)
        raise _not_bookable(builder) from None
    offered = []
    for item in event_types:
        priced = prices.get(item["uri"])
        offered.append(OfferedSessionType(
            id=event_type_uuid(item["uri"]), uri=item["uri"], name=item.get("name", ""),
            description=item.get("description_plain"), duration=int(item.get("duration") or 0),
            slug=item.get("slug", ""), color=item.get("color", "#0069ff"),
            active=bool(item.get("active")) and (priced is None or priced.active),
            created_at=item.get("created_at"), updated_at=item.get("updated_at"),
            profile=item.get("profile") or {}, scheduling_url=item.get("scheduling_url", ""),
            session_type_id=priced.id if priced else None,
            price_cents=priced.price_cents if priced else None,
            currency=priced.currency if priced else None,
            refund_policy=policy_for(priced) if priced else None,
        ))
    return builder, offered


@dataclass(frozen=True)
class StartedBooking:
    booking_id: str
    scheduling_url: str


def session_type_for_event_type(session, event_type_id: str) -> SessionType | None:
    """The session type priced for the Calendly event type `event_type_id`, matched exactly.

    The seed's eventTypeId is the event type's uuid (the last segment of its URI); a full URI is
    accepted too. Client input is never a pattern: `%` or `_` are literal characters here, and an
    id that is not exactly one event type's uuid matches nothing.
    """
    if "/" in event_type_id:
        return session.execute(select(SessionType).where(
            SessionType.calendly_event_type_uri == event_type_id)).scalar_one_or_none()
    if not event_type_id or not UUID_CHARS.issuperset(event_type_id):
        return None
    # The suffix narrows the search (escaped); equality on the last segment decides.
    candidates = session.execute(select(SessionType).where(
        SessionType.calendly_event_type_uri.endswith(f"/{event_type_id}", autoescape=True)).limit(2)).scalars()
    matches = [row for row in candidates if event_type_uuid(row.calendly_event_type_uri) == event_type_id]
    # Two Calendly accounts' event types sharing a uuid: only the full URI can say which is meant.
    return matches[0] if len(matches) == 1 else None


def start_scheduling(engine: Engine, event_type_id: str, *, client_email: str, client_name: str,
                     actor: str) -> StartedBooking:
    """Create the PENDING_SCHEDULING booking, then a single-use Calendly link that carries its id."""
    with session_scope(engine, read_only=True) as session:
        row = session_type_for_event_type(session, event_type_id)
        if row is None:
            raise NotFound("this session type is not offered")
        session_type_id, builder_id = row.id, row.builder_id
    builder, offered = offered_session_types(engine, builder_id)
    match = next((o for o in offered if o.session_type_id == session_type_id), None)
    if match is None or not match.bookable:
        raise DomainError("this session type is not bookable at the moment")
    if "@" not in client_email:
        raise DomainError("a valid email address is needed to book")
    with session_scope(engine) as session:
        booking = booking_service.start_booking(session, session_type_id, client_email, client_name, actor=actor)
        booking_id = booking.id
    _builder, client, _prices = _load_builder(engine, builder_id)
    link = client.create_scheduling_link(match.uri)
    query = urlencode({"name": client_name, "email": client_email, "utm_source": "buildappswith",
                       "utm_medium": "booking", "utm_content": booking_id})
    return StartedBooking(booking_id, f"{link}{'&' if '?' in link else '?'}{query}")


def offered_session_type(engine: Engine, event_type_id: str) -> tuple[Builder, OfferedSessionType]:
    """One session type as its builder's profile offers it, by its Calendly event type id (the
    page a client returns to after signing in to book it). NotFound when we do not price it."""
    with session_scope(engine, read_only=True) as session:
        row = session_type_for_event_type(session, event_type_id)
        if row is None:
            raise NotFound("this session type is not offered")
        session_type_id, builder_id = row.id, row.builder_id
    builder, offered = offered_session_types(engine, builder_id)
    match = next((o for o in offered if o.session_type_id == session_type_id), None)
    if match is None:
        raise NotFound("this session type is not offered")
    return builder, match
