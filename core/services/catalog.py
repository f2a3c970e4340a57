"""Builders, their session types and prices, and dashboard accounts; and the builders as the home
page lists them (`builder_cards`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.avatars import Avatar, avatar_for
from core.errors import DomainError, NotFound
from core.models import Builder, DashboardUser, SessionType
from core.money import MoneyError, format_amount, normalize_currency


def add_builder(session: Session, *, name: str, email: str, calendly_token: str, calendly_user: dict) -> Builder:
    """Store a builder with the Calendly user their token belongs to (token encrypted); the rule
    is `core.services.people.add_builder`."""
    from core.services import people
    return people.add_builder(session, name=name, email=email, calendly_token=calendly_token,
                              calendly_user=calendly_user)


def _checked_price(amount_cents: int, currency: str) -> str:
    """Refuse anything but a positive integer amount; returns the normalised currency code."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise DomainError("the price must be a positive whole number of minor units")
    try:
        return normalize_currency(currency)
    except MoneyError as error:
        raise DomainError(str(error)) from None


def set_price(session: Session, *, builder_id: int, event_type: dict, amount_cents: int, currency: str,
              refund_full_hours: int | None = None, refund_partial_percent: int | None = None) -> SessionType:
    """Price one of the builder's Calendly event types (created or updated)."""
    builder = session.get(Builder, builder_id)
    if builder is None:
        raise NotFound(f"no builder {builder_id}")
    currency = _checked_price(amount_cents, currency)
    if refund_partial_percent is not None and not 0 <= refund_partial_percent <= 100:
        raise DomainError("the partial refund percentage must be between 0 and 100")
    if refund_full_hours is not None and refund_full_hours < 0:
        raise DomainError("the full-refund window cannot be negative")
    owner = (event_type.get("profile") or {}).get("owner")
    if owner and builder.calendly_user_uri and owner != builder.calendly_user_uri:
        raise DomainError("this event type belongs to another Calendly user")
    uri = event_type["uri"]
    session_type = session.execute(
        select(SessionType).where(SessionType.calendly_event_type_uri == uri)
    ).scalar_one_or_none()
    if session_type is not None and session_type.builder_id != builder_id:
        raise DomainError("this event type is priced for another builder")
    if session_type is None:
        session_type = SessionType(builder_id=builder_id, calendly_event_type_uri=uri)
        session.add(session_type)
    session_type.name = event_type.get("name", "")
    session_type.duration_minutes = event_type.get("duration")
    session_type.active = bool(event_type.get("active", True))
    session_type.price_cents = amount_cents
    session_type.currency = currency
    session_type.refund_full_hours = refund_full_hours
    session_type.refund_partial_percent = refund_partial_percent
    session.flush()
    return session_type


def add_user(session: Session, *, email: str, password: str, role: str, builder_id: int | None) -> DashboardUser:
    """A dashboard account; the rule is `core.services.people.add_user`."""
    from core.services import people
    return people.add_user(session, email=email, password=password, role=role, builder_id=builder_id)


def update_price(session: Session, session_type_id: int, amount_cents: int, currency: str, *,
                 active: bool | None = None) -> SessionType:
    """Change an existing session type's price (and optionally whether it is bookable).

    Bookings already made keep the price they were made at (it is copied onto the booking).
    """
    session_type = session.get(SessionType, session_type_id, with_for_update=True)
    if session_type is None:
        raise NotFound(f"no session type {session_type_id}")
    currency = _checked_price(amount_cents, currency)
    session_type.price_cents = amount_cents
    session_type.currency = currency
    if active is not None:
        session_type.active = active
    session.flush()
    return session_type


# ---------------------------------------------------------------- read side: the home page's list
@dataclass(frozen=True, slots=True)
class PriceRange:
    currency: str
    lowest: int
    highest: int

    @property
    def label(self) -> str:
        """'from $49.00 to $249.00', or '¥5,000' when every session costs the same."""
        if self.lowest == self.highest:
            return format_amount(self.lowest, self.currency)
        return f"from {format_amount(self.lowest, self.currency)} to {format_amount(self.highest, self.currency)}"


@dataclass(frozen=True, slots=True)
class BuilderCard:
    id: int
    name: str
    bio: str | None
    timezone: str
    prices: list[PriceRange] = field(default_factory=list)  # one per currency, of bookable session types

    @property
    def avatar(self) -> Avatar:
        return avatar_for(self.name)

    @property
    def price_label(self) -> str:
        return " · ".join(price.label for price in self.prices)


@dataclass(frozen=True, slots=True)
class BuilderPage:
    cards: list[BuilderCard]
    page: int
    has_next: bool


def builder_cards(session: Session, *, page: int = 1, per_page: int = 24) -> BuilderPage:
    """One page of builders by name, each with the price range of their active session types.

    One query whatever the number of builders: the page's builders (a limited subquery) joined to
    their session types' lowest and highest price per currency.
    """
    page = max(1, page)
    shown = (select(Builder.id).order_by(Builder.name, Builder.id)
             .limit(per_page + 1).offset((page - 1) * per_page).subquery())
    rows = session.execute(
        select(Builder.id, Builder.name, Builder.bio, Builder.timezone, SessionType.currency,
               func.min(SessionType.price_cents), func.max(SessionType.price_cents))
        .join(shown, shown.c.id == Builder.id)
        # A builder whose Calendly is disconnected offers nothing bookable until they reconnect.
        .outerjoin(SessionType, (SessionType.builder_id == Builder.id) & SessionType.active.is_(True)
                   & (Builder.calendly_status != "disconnected"))
        .group_by(Builder.id, Builder.name, Builder.bio, Builder.timezone, SessionType.currency)
        .order_by(Builder.name, Builder.id, SessionType.currency)
    ).all()
    cards: dict[int, BuilderCard] = {}
    for builder_id, name, bio, zone, currency, lowest, highest in rows:
        card = cards.setdefault(builder_id, BuilderCard(builder_id, name, bio, zone or "UTC"))
        if currency is not None:
            card.prices.append(PriceRange(currency, int(lowest), int(highest)))
    listed = list(cards.values())
    return BuilderPage(listed[:per_page], page, len(listed) > per_page)
