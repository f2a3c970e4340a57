"""In-memory model of the Calendly API v2 stand-in: users, event types, links, events, invitees.

Everything here is plain Python guarded by one re-entrant lock (``CalendlyState.lock``). The
operations that change bookings (book, cancel, reschedule, no-show) return the webhook
notifications they cause; the caller delivers them *after* releasing the lock.
"""
from __future__ import annotations

import base64
import html
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .identities import event_type_specs, event_type_uuid, identity_from_token, sandbox_user_uuid

UTC = timezone.utc
TIMEZONE = "Europe/London"         # the users' zone, and an invitee's when nobody chose one
QUESTION = "What would you like to build?"
SLOT_HOURS = range(9, 17)          # UTC start hours offered on the booking grid
SLOT_DAYS = 7                      # tomorrow .. +7 days are offered
WEBHOOK_EVENTS = ("invitee.created", "invitee.canceled", "invitee_no_show.created")
CREATED_EPOCH = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)   # created_at of users / event types

DEFAULT_CONFIG = {
    "webhook_delivery": "sync",            # sync | off
    "reschedule_order": "cancel_first",    # cancel_first | create_first
    "retry_delays_seconds": [1, 2, 4],     # background retries after a failed sync delivery
    "clock_offset_seconds": 0,             # shifts the stand-in's "now" (to make events past)
}


class CalendlyError(Exception):
    """An API error rendered as Calendly's ``{title, message, details?}`` body."""

    def __init__(self, status: int, title: str, message: str, details: list | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message
        self.details, self.headers = details, headers

    def body(self) -> dict:
        out: dict[str, Any] = {"title": self.title, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


def not_found() -> CalendlyError:
    return CalendlyError(404, "Resource Not Found", "The server could not find the requested resource.")


def invalid(parameter: str, message: str) -> CalendlyError:
    return CalendlyError(400, "Invalid Argument", "The supplied parameters are invalid.",
                         [{"parameter": parameter, "message": message}])


def permission_denied(message: str = "You do not have permission to access this resource.") -> CalendlyError:
    return CalendlyError(403, "Permission Denied", message)


# ---------------------------------------------------------------- time formats
def fmt_time(dt: datetime) -> str:
    """Calendly's API timestamps: ``2026-12-02T15:00:00.000000Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fmt_offset(dt: datetime) -> str:
    """Redirect-parameter style: ``2026-12-02T15:00:00+00:00``."""
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def fmt_slot(dt: datetime) -> str:
    """Value of a slot radio button: ``2026-12-02T15:00:00Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def invitee_zone(value: Any) -> str:
    """The zone an invitee chose on the booking page, if it is a real IANA zone; else TIMEZONE."""
    if not isinstance(value, str) or not 0 < len(value) <= 64 or value.startswith(("/", ".")) or ".." in value:
        return TIMEZONE
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return TIMEZONE
    return value


def uuid_from_uri(value: Any, collection: str) -> str | None:
    """The uuid in ``…/<collection>/<uuid>`` (host-agnostic), or None."""
    if not isinstance(value, str):
        return None
    match = re.search(rf"/{collection}/([0-9a-fA-F-]{{36}})/?$", value.strip())
    return match.group(1).lower() if match else None


# ---------------------------------------------------------------- records
@dataclass
class User:
    uuid: str
    name: str
    slug: str
    email: str
    org_uuid: str


@dataclass
class EventType:
    uuid: str
    user_uuid: str
    slug: str
    name: str
    duration: int
    active: bool
    color: str
    description: str


@dataclass
class Link:
    uuid: str
    event_type_uuid: str
    created_at: datetime
    used_by: str | None = None       # invitee uuid once booked


@dataclass
class Event:
    uuid: str
    event_type_uuid: str
    user_uuid: str
    start: datetime
    end: datetime
    created_at: datetime
    updated_at: datetime
    status: str = "active"
    cancellation: dict | None = None


@dataclass
class Invitee:
    uuid: str
    event_uuid: str
    name: str
    email: str
    tracking: dict
    questions_and_answers: list
    created_at: datetime
    updated_at: datetime
    status: str = "active"
    rescheduled: bool = False
    old_invitee: str | None = None
    new_invitee: str | None = None
    cancellation: dict | None = None
    no_show: dict | None = None
    timezone: str = TIMEZONE         # the zone the invitee saw the times in (Calendly detects the browser's)


@dataclass
class Subscription:
    uuid: str
    callback_url: str
    events: list
    scope: str
    organization: str | None
    user: str | None
    creator: str | None
    signing_key: str
    created_at: datetime
    preregistered: bool = False
    state: str = "active"            # active | disabled (a disabled one gets no deliveries)


@dataclass
class Notification:
    """One webhook to send: event name, payload (the invitee, event embedded), host URI."""
    event: str
    invitee_uri: str
    payload: dict
    host_uri: str
    created_at: str
    no_show_uri: str | None = None


@dataclass
class StateData:
    users: dict = field(default_factory=dict)
    event_types: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    invitees: dict = field(default_factory=dict)
    no_shows: dict = field(default_factory=dict)        # no-show uuid → invitee uuid
    subscriptions: dict = field(default_factory=dict)
    claims: set = field(default_factory=set)            # (scope, owner uuid, url): see covers()
    deliveries: list = field(default_factory=list)
    faults: list = field(default_factory=list)
    request_counts: dict = field(default_factory=dict)
    config: dict = field(default_factory=lambda: {k: (list(v) if isinstance(v, list) else v)
                                                  for k, v in DEFAULT_CONFIG.items()})


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = raw.partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise invalid("page_token", "is invalid")


class CalendlyState:
    """All state of one stand-in app (see ``ops`` for the booking operations)."""

    def __init__(self, *, public_url: str, webhook_url: str | None, signing_key: str,
                 redirect_url: str | None):
        self.public_url = public_url.rstrip("/")
        self.webhook_url = webhook_url
        self.signing_key = signing_key
        self.redirect_url = redirect_url
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            users = getattr(self, "data", None)
            self.data = StateData()
            if users is not None:       # users are derived from tokens: keep them known
                self.data.users, self.data.event_types = users.users, users.event_types
            if self.webhook_url:
                sub_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, "calendly-sandbox-hook:" + self.webhook_url))
                self.data.subscriptions[sub_uuid] = Subscription(
                    sub_uuid, self.webhook_url, list(WEBHOOK_EVENTS), "organization",
                    f"{self.public_url}/organizations/sandbox", None, None, self.signing_key,
                    CREATED_EPOCH, preregistered=True)

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=float(self.data.config["clock_offset_seconds"]))

    # ------------------------------------------------------------ URIs
    def uri(self, *parts: str) -> str:
        return "/".join([self.public_url, *parts])

    def user_uri(self, user: User) -> str:
        return self.uri("users", user.uuid)

    def event_uri(self, event: Event) -> str:
        return self.uri("scheduled_events", event.uuid)

    def invitee_uri(self, inv: Invitee) -> str:
        return self.uri("scheduled_events", inv.event_uuid, "invitees", inv.uuid)

    # ------------------------------------------------------------ users
    def user_for_token(self, token: str) -> User:
        with self.lock:
            user_uuid = sandbox_user_uuid(token)
            user = self.data.users.get(user_uuid)
            if user is None:
                name, slug = identity_from_token(token)
                org = str(uuid.uuid5(uuid.UUID(user_uuid), "organization"))
                user = User(user_uuid, name, slug, f"{slug}@sandbox.calendly.test", org)
                self.data.users[user_uuid] = user
                for slug_, name_, duration, active, color, description in event_type_specs(token):
                    et = EventType(event_type_uuid(user_uuid, slug_), user_uuid, slug_, name_,
                                   duration, active, color, description)
                    self.data.event_types[et.uuid] = et
            return user

    def event_types_of(self, user: User) -> list[EventType]:
        return [et for et in self.data.event_types.values() if et.user_uuid == user.uuid]

    # ------------------------------------------------------------ webhook subscriptions
    def claimed(self, host: User, url: str) -> bool:
        return (("user", host.uuid, url) in self.data.claims
                or ("organization", host.org_uuid, url) in self.data.claims)

    def covers(self, sub: Subscription, host: User) -> bool:
        """Whether ``sub`` hears of ``host``'s events (whatever its state). The pre-registered
        subscription (``webhook_url``) stands for the one an admin set up by hand for every
        personal-token builder: it covers every host except one who has subscribed its URL
        themselves through the API (user scope, or their organization's) — from then on that
        host's deliveries to it follow their own subscription only, even after it is deleted."""
        if sub.preregistered:
            return not self.claimed(host, sub.callback_url)
        if sub.scope == "user":
            return uuid_from_uri(sub.user, "users") == host.uuid
        return uuid_from_uri(sub.organization, "organizations") == host.org_uuid

    # ------------------------------------------------------------ serializers
    def user_json(self, user: User) -> dict:
        return {
            "uri": self.user_uri(user), "name": user.name, "slug": user.slug, "email": user.email,
            "scheduling_url": self.uri(user.slug), "timezone": TIMEZONE, "avatar_url": None,
            "current_organization": self.uri("organizations", user.org_uuid),
            "created_at": fmt_time(CREATED_EPOCH), "updated_at": fmt_time(CREATED_EPOCH),
        }

    def event_type_json(self, et: EventType) -> dict:
        user = self.data.users[et.user_uuid]
        return {
            "uri": self.uri("event_types", et.uuid), "name": et.name, "active": et.active,
            "slug": et.slug, "scheduling_url": self.uri(user.slug, et.slug),
            "duration": et.duration, "kind": "solo", "pooling_type": None,
            "type": "StandardEventType", "color": et.color,
            "created_at": fmt_time(CREATED_EPOCH), "updated_at": fmt_time(CREATED_EPOCH),
            "internal_note": None, "description_plain": et.description,
            "description_html": f"<p>{html.escape(et.description, quote=False)}</p>",
            "profile": {"type": "User", "name": user.name, "owner": self.user_uri(user)},
            "secret": False, "booking_method": "instant", "custom_questions": [],
            "deleted_at": None, "admin_managed": False,
        }

    def event_json(self, ev: Event) -> dict:
        user = self.data.users[ev.user_uuid]
        invs = [i for i in self.data.invitees.values() if i.event_uuid == ev.uuid]
        out = {
            "uri": self.event_uri(ev), "name": self.data.event_types[ev.event_type_uuid].name,
            "status": ev.status, "start_time": fmt_time(ev.start), "end_time": fmt_time(ev.end),
            "event_type": self.uri("event_types", ev.event_type_uuid),
            "location": {"type": "google_conference", "status": "pushed",
                         "join_url": f"https://meet.google.com/sbx-{ev.uuid[:4]}-{ev.uuid[4:8]}"},
            "invitees_counter": {"total": len(invs),
                                 "active": sum(1 for i in invs if i.status == "active"), "limit": 1},
            "created_at": fmt_time(ev.created_at), "updated_at": fmt_time(ev.updated_at),
            "event_memberships": [{"user": self.user_uri(user), "user_email": user.email,
                                   "user_name": user.name}],
            "event_guests": [],
        }
        if ev.cancellation:
            out["cancellation"] = dict(ev.cancellation)
        return out

    def invitee_json(self, inv: Invitee, *, embed_event: bool = False) -> dict:
        out = {
            "uri": self.invitee_uri(inv), "email": inv.email, "name": inv.name,
            "first_name": None, "last_name": None, "status": inv.status, "timezone": inv.timezone,
            "event": self.uri("scheduled_events", inv.event_uuid),
        }
        if embed_event:
            out["scheduled_event"] = self.event_json(self.data.events[inv.event_uuid])
        out.update({
            "tracking": dict(inv.tracking),
            "questions_and_answers": [dict(q) for q in inv.questions_and_answers],
            "cancel_url": self.uri("cancellations", inv.uuid),
            "reschedule_url": self.uri("reschedulings", inv.uuid),
            "rescheduled": inv.rescheduled, "old_invitee": inv.old_invitee,
            "new_invitee": inv.new_invitee,
            "cancellation": dict(inv.cancellation) if inv.cancellation else None,
            "payment": None, "no_show": dict(inv.no_show) if inv.no_show else None,
            "reconfirmation": None, "routing_form_submission": None, "text_reminder_number": None,
            "created_at": fmt_time(inv.created_at), "updated_at": fmt_time(inv.updated_at),
        })
        return out

    def subscription_json(self, sub: Subscription) -> dict:
        return {
            "uri": self.uri("webhook_subscriptions", sub.uuid), "callback_url": sub.callback_url,
            "created_at": fmt_time(sub.created_at), "updated_at": fmt_time(sub.created_at),
            "retry_started_at": None, "state": sub.state, "events": list(sub.events),
            "scope": sub.scope, "organization": sub.organization, "user": sub.user,
            "creator": sub.creator,
        }

    def link_json(self, link: Link) -> dict:
        return {"booking_url": self.uri("book", link.uuid),
                "owner": self.uri("event_types", link.event_type_uuid), "owner_type": "EventType"}

    # ------------------------------------------------------------ pagination
    def paginate(self, items: list, *, path: str, params: dict, count: int,
                 page_token: str | None) -> dict:
        offset = decode_page_token(page_token) if page_token else 0
        page = items[offset:offset + count]
        base = {k: v for k, v in params.items() if v is not None and k != "page_token"}

        def link(off: int) -> tuple[str, str]:
            token = encode_page_token(off)
            return f"{self.public_url}{path}?{urlencode({**base, 'page_token': token})}", token

        nxt = link(offset + count) if offset + count < len(items) else (None, None)
        prev = link(max(0, offset - count)) if offset > 0 else (None, None)
        return {"collection": page, "pagination": {
            "count": len(page), "next_page": nxt[0], "previous_page": prev[0],
            "next_page_token": nxt[1], "previous_page_token": prev[1]}}
