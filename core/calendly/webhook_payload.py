"""One parser for Calendly webhook bodies, in both payload shapes, into one `CalendlyWebhook`.

Shapes, told apart by structure (never by a version field, there is none):
- **v2** (current): `payload` is an Invitee: `payload.uri`, `payload.event` (a URI string),
  `payload.scheduled_event` {uri, start_time, end_time, event_type, ...}, `tracking`, ...
- **legacy** (the older shape in the seed doc): `payload.event_type`, `payload.event` and
  `payload.invitee` are objects carrying uuids, not URIs. URIs are rebuilt on `api_base` as
  `{api_base}/scheduled_events/{event uuid}[/invitees/{invitee uuid}]` (a `uri` field wins).

Normalisation choices for the legacy shape (documented differences from v2):
- `invitee.rescheduled` is reported as `invitee.created` (with `old_invitee_uri` when the payload
  has `old_invitee`), because in v2 a reschedule's new booking arrives as `invitee.created`.
- `rescheduled` on `invitee.canceled` is true only on structured evidence: `payload.rescheduled`
  or `invitee.rescheduled` true, or a `new_invitee`/`new_event` present. Calling a real
  cancellation a reschedule would withhold a refund, so two weaker hints are NOT used: the
  free-text cancellation reason (the invitee writes it) and `invitee.is_reschedule` (it says the
  invitee was itself created by an earlier reschedule, not that this cancellation is one).
- `status` is `invitee.status` when given, else derived: "canceled" for `invitee.canceled` or
  when the invitee/event says `canceled: true`, else "active".
- `canceler_type` / `canceled_by` are often absent there (None); `canceler_name` is used as
  `canceled_by` when present.
- `event_type_uri` is `event_type.uri`, else `{api_base}/event_types/{event_type.uuid}`, else None.

All times become aware UTC datetimes. Anything unusable raises PayloadError (and only that).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["PayloadError", "CalendlyWebhook", "parse_calendly_webhook", "DEFAULT_API_BASE"]

DEFAULT_API_BASE = "https://api.calendly.com"
NO_SHOW_EVENT_PREFIX = "invitee_no_show."


class PayloadError(ValueError):
    """The webhook body is malformed or misses a field we need; the message says which."""


@dataclass(frozen=True)
class CalendlyWebhook:
    """A Calendly webhook delivery, normalised from either payload shape.

    `rescheduled` follows Calendly's meaning: true on the OLD invitee's `invitee.canceled` (with
    `new_invitee_uri`). The new booking's `invitee.created` has `rescheduled` false and
    `old_invitee_uri` set. The two can arrive in either order.
    """

    event: str
    created_at: datetime | None
    invitee_uri: str
    event_uri: str
    event_type_uri: str | None
    booking_ref: str | None
    invitee_email: str | None
    invitee_name: str | None
    start_time: datetime | None
    end_time: datetime | None
    status: str | None
    rescheduled: bool
    old_invitee_uri: str | None
    new_invitee_uri: str | None
    cancel_reason: str | None
    canceler_type: str | None
    canceled_by: str | None
    no_show_uri: str | None
    timezone: str | None
    cancel_url: str | None
    reschedule_url: str | None
    questions_and_answers: tuple[tuple[str, str], ...]
    # The scheduled event's hosts (`event_memberships[].user`); empty when the shape lacks them
    # (the legacy shape names hosts only by display name), so the event must be read from the API.
    host_uris: tuple[str, ...] = ()
    # Which shape it came in ("v2" or "legacy"); informational, left out of equality.
    shape: str = field(default="v2", compare=False)

    @property
    def dedupe_key(self) -> str:
        """Idempotency key for this delivery; Calendly sends no event id.

        (event name, invitee URI), plus the no-show URI for no-show events, so marking, unmarking
        and re-marking a no-show are three distinct events.
        """
        from core.keys import calendly_event_key  # late: the parser stays free of the database

        no_show = self.no_show_uri if self.event.startswith(NO_SHOW_EVENT_PREFIX) else None
        return calendly_event_key(self.event, self.invitee_uri, no_show)


# ----- small typed getters: each raises PayloadError naming the field ----------------------


def _obj(container: dict, key: str, where: str) -> dict | None:
    """An optional object field."""
    value = container.get(key)
    if value is not None and not isinstance(value, dict):
        raise PayloadError(f"{where}.{key} must be an object, got {type(value).__name__}")
    return value


def _str(container: dict | None, key: str, where: str) -> str | None:
    """An optional string field; "" counts as absent."""
    value = None if container is None else container.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key} must be a string, got {type(value).__name__}")
    return value


def _present(value, where: str, key: str):
    """A required field: the optional getter's value, which is None only when the field is absent."""
    if value is None:
        raise PayloadError(f"{where}.{key} is missing")
    return value


def _need_obj(container: dict, key: str, where: str) -> dict:
    return _present(_obj(container, key, where), where, key)


def _need_str(container: dict, key: str, where: str) -> str:
    return _present(_str(container, key, where), where, key)


def _bool(container: dict | None, key: str, where: str) -> bool | None:
    value = None if container is None else container.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise PayloadError(f"{where}.{key} must be a boolean, got {type(value).__name__}")
    return value


def _time(container: dict | None, key: str, where: str) -> datetime | None:
    """An ISO-8601 time with "Z" or an offset, as an aware UTC datetime."""
    value = _str(container, key, where)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{where}.{key} is not an ISO-8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise PayloadError(f"{where}.{key} has no UTC offset: {value[:40]!r}")
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise PayloadError(f"{where}.{key} is out of range: {value[:40]!r}") from None


def _uri_ref(value: Any, where: str) -> str | None:
    """A reference given as a URI string or as an object with a `uri` (v2 old/new invitee)."""
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _str(value, "uri", where)
    raise PayloadError(f"{where} must be a URI or an object, got {type(value).__name__}")


def _booking_ref(payload: dict, where: str) -> str | None:
    tracking = _obj(payload, "tracking", where)
    ref = _str(tracking, "utm_content", f"{where}.tracking")
    ref = ref.strip() if ref else None
    return ref or None


def _objects(container: dict | None, key: str, where: str) -> list[tuple[dict, str]]:
    """The objects of an optional list field, each with where it is (for error messages)."""
    raw = None if container is None else container.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PayloadError(f"{where}.{key} must be a list")
    items = [(item, f"{where}.{key}[{index}]") for index, item in enumerate(raw)]
    for item, item_where in items:
        if not isinstance(item, dict):
            raise PayloadError(f"{item_where} must be an object")
    return items


def _host_uris(scheduled: dict | None, where: str) -> tuple[str, ...]:
    """`event_memberships[].user` of a scheduled event (its hosts), in order."""
    users = (_str(member, "user", member_where) for member, member_where in
             _objects(scheduled, "event_memberships", where))
    return tuple(user for user in users if user)


def _questions(payload: dict, where: str) -> tuple[tuple[str, str], ...]:
    # Unanswered optional questions come as "" or null.
    return tuple((_need_str(item, "question", item_where), _str(item, "answer", item_where) or "")
                 for item, item_where in _objects(payload, "questions_and_answers", where))


# ----- the two shapes ------------------------------------------------------------------------


def _parse_v2(name: str, created_at: datetime | None, payload: dict) -> CalendlyWebhook:
    where = "payload"
    invitee_uri = _need_str(payload, "uri", where)
    scheduled = _obj(payload, "scheduled_event", where)
    event_uri = _str(payload, "event", where) or _str(scheduled, "uri", f"{where}.scheduled_event")
    if event_uri is None and "/invitees/" in invitee_uri:
        # An invitee URI is …/scheduled_events/<event uuid>/invitees/<invitee uuid>.
        event_uri = invitee_uri.rsplit("/invitees/", 1)[0]
    if event_uri is None:
        raise PayloadError("payload.event (the scheduled event URI) is missing")
    cancellation = _obj(payload, "cancellation", where)
    no_show = _obj(payload, "no_show", where)
    return CalendlyWebhook(
        event=name,
        created_at=created_at,
        invitee_uri=invitee_uri,
        event_uri=event_uri,
        event_type_uri=_str(scheduled, "event_type", f"{where}.scheduled_event"),
        booking_ref=_booking_ref(payload, where),
        invitee_email=_str(payload, "email", where),
        invitee_name=_str(payload, "name", where),
        start_time=_time(scheduled, "start_time", f"{where}.scheduled_event"),
        end_time=_time(scheduled, "end_time", f"{where}.scheduled_event"),
        status=_str(payload, "status", where),
        rescheduled=bool(_bool(payload, "rescheduled", where)),
        old_invitee_uri=_uri_ref(payload.get("old_invitee"), f"{where}.old_invitee"),
        new_invitee_uri=_uri_ref(payload.get("new_invitee"), f"{where}.new_invitee"),
        cancel_reason=_str(cancellation, "reason", f"{where}.cancellation"),
        canceler_type=_str(cancellation, "canceler_type", f"{where}.cancellation"),
        canceled_by=_str(cancellation, "canceled_by", f"{where}.cancellation"),
        no_show_uri=_str(no_show, "uri", f"{where}.no_show"),
        timezone=_str(payload, "timezone", where),
        cancel_url=_str(payload, "cancel_url", where),
        reschedule_url=_str(payload, "reschedule_url", where),
        questions_and_answers=_questions(payload, where),
        host_uris=_host_uris(scheduled, f"{where}.scheduled_event"),
        shape="v2",
    )


def _legacy_event_uri(event: dict | None, where: str, api_base: str) -> str | None:
    if event is None:
        return None
    uri = _str(event, "uri", where)
    if uri:
        return uri
    uuid = _str(event, "uuid", where)
    return f"{api_base}/scheduled_events/{uuid}" if uuid else None


def _legacy_invitee_uri(invitee: Any, event: dict | None, where: str, event_where: str, api_base: str) -> str | None:
    """URI of a legacy invitee object (or URI string): its `uri`, else event uuid + invitee uuid."""
    if invitee is None or (isinstance(invitee, str) and invitee == ""):
        return None
    if isinstance(invitee, str):
        return invitee
    if not isinstance(invitee, dict):
        raise PayloadError(f"{where} must be an object, got {type(invitee).__name__}")
    uri = _str(invitee, "uri", where)
    if uri:
        return uri
    uuid = _str(invitee, "uuid", where)
    event_uri = _legacy_event_uri(event, event_where, api_base)
    # Without its event we cannot name the other invitee; report None rather than refuse the
    # delivery (a refused delivery is retried for 24 h and then the subscription is disabled).
    return f"{event_uri}/invitees/{uuid}" if uuid and event_uri else None


def _parse_legacy(name: str, created_at: datetime | None, payload: dict, api_base: str) -> CalendlyWebhook:
    where = "payload"
    event = _need_obj(payload, "event", where)
    invitee = _need_obj(payload, "invitee", where)
    event_uri = _legacy_event_uri(event, f"{where}.event", api_base)
    if event_uri is None:
        raise PayloadError("payload.event.uuid is missing")
    invitee_uri = _legacy_invitee_uri(invitee, event, f"{where}.invitee", f"{where}.event", api_base)
    if invitee_uri is None:
        raise PayloadError("payload.invitee.uuid is missing")

    event_type = _obj(payload, "event_type", where)
    event_type_uri = _str(event_type, "uri", f"{where}.event_type")
    if event_type_uri is None:
        event_type_uuid = _str(event_type, "uuid", f"{where}.event_type")
        event_type_uri = f"{api_base}/event_types/{event_type_uuid}" if event_type_uuid else None

    old_event = _obj(payload, "old_event", where)
    new_event = _obj(payload, "new_event", where)
    old_invitee_uri = _legacy_invitee_uri(payload.get("old_invitee"), old_event, f"{where}.old_invitee", f"{where}.old_event", api_base)
    new_invitee_uri = _legacy_invitee_uri(payload.get("new_invitee"), new_event, f"{where}.new_invitee", f"{where}.new_event", api_base)

    if name == "invitee.rescheduled":
        name = "invitee.created"
    canceled_flag = bool(_bool(invitee, "canceled", f"{where}.invitee")) or bool(_bool(event, "canceled", f"{where}.event"))
    if name == "invitee.canceled":
        rescheduled = (
            bool(_bool(payload, "rescheduled", where))
            or bool(_bool(invitee, "rescheduled", f"{where}.invitee"))
            or new_invitee_uri is not None
            or new_event is not None
        )
    else:
        rescheduled = bool(_bool(payload, "rescheduled", where))

    status = _str(invitee, "status", f"{where}.invitee")
    if status is None:
        status = "canceled" if name == "invitee.canceled" or canceled_flag else "active"

    cancellation = _obj(event, "cancellation", f"{where}.event") or _obj(invitee, "cancellation", f"{where}.invitee")
    cancel_where = f"{where}.event.cancellation"
    cancel_reason = (
        _str(cancellation, "reason", cancel_where)
        or _str(event, "cancel_reason", f"{where}.event")
        or _str(invitee, "cancel_reason", f"{where}.invitee")
    )
    canceled_by = (
        _str(cancellation, "canceled_by", cancel_where)
        or _str(event, "canceler_name", f"{where}.event")
        or _str(invitee, "canceler_name", f"{where}.invitee")
    )
    no_show = _obj(payload, "no_show", where) or _obj(invitee, "no_show", f"{where}.invitee")

    return CalendlyWebhook(
        event=name,
        created_at=created_at,
        invitee_uri=invitee_uri,
        event_uri=event_uri,
        event_type_uri=event_type_uri,
        booking_ref=_booking_ref(payload, where),
        invitee_email=_str(invitee, "email", f"{where}.invitee"),
        invitee_name=_str(invitee, "name", f"{where}.invitee"),
        start_time=_time(event, "start_time", f"{where}.event"),
        end_time=_time(event, "end_time", f"{where}.event"),
        status=status,
        rescheduled=rescheduled,
        old_invitee_uri=old_invitee_uri,
        new_invitee_uri=new_invitee_uri,
        cancel_reason=cancel_reason,
        canceler_type=_str(cancellation, "canceler_type", cancel_where),
        canceled_by=canceled_by,
        no_show_uri=_str(no_show, "uri", f"{where}.no_show"),
        timezone=_str(invitee, "timezone", f"{where}.invitee"),
        cancel_url=_str(payload, "cancel_url", where) or _str(invitee, "cancel_url", f"{where}.invitee"),
        reschedule_url=_str(payload, "reschedule_url", where) or _str(invitee, "reschedule_url", f"{where}.invitee"),
        questions_and_answers=_questions(payload, where),
        shape="legacy",
    )


# ----- bounds ------------------------------------------------------------------------------------

# Longest values we store (the columns they go to); real ones are a fraction of this.
_MAX_LENGTHS = {
    "invitee_uri": 500, "event_uri": 500, "event_type_uri": 500, "old_invitee_uri": 500,
    "new_invitee_uri": 500, "no_show_uri": 500, "cancel_url": 500, "reschedule_url": 500,
    "booking_ref": 500, "timezone": 64, "canceler_type": 100, "host_uris": 500,
}


def _within_bounds(hook: CalendlyWebhook) -> CalendlyWebhook:
    """Refuse values no real delivery has and the database could not store (NUL, absurd lengths)."""
    for name in CalendlyWebhook.__dataclass_fields__:
        value = getattr(hook, name)
        if name == "questions_and_answers":
            texts = [text for pair in value for text in pair]
        elif name == "host_uris":
            texts = list(value)
        else:
            texts = [value]
        for text in texts:
            if not isinstance(text, str):
                continue
            if "\x00" in text:
                raise PayloadError(f"{name} contains a NUL character")
            if len(text) > _MAX_LENGTHS.get(name, len(text)):
                raise PayloadError(f"{name} is longer than {_MAX_LENGTHS[name]} characters")
    return hook


# ----- entry point ---------------------------------------------------------------------------


def _decode(body: bytes | str | dict) -> dict:
    if isinstance(body, dict):
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("webhook body is not UTF-8") from None
    if not isinstance(body, str):
        raise PayloadError(f"webhook body must be bytes, str or dict, got {type(body).__name__}")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise PayloadError(f"webhook body is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise PayloadError(f"webhook body must be a JSON object, got {type(data).__name__}")
    return data


def parse_calendly_webhook(body: bytes | str | dict, *, api_base: str = DEFAULT_API_BASE) -> CalendlyWebhook:
    """Parse a webhook body (raw bytes, text or decoded dict) of either shape into a CalendlyWebhook.

    `api_base` roots the URIs rebuilt from legacy uuids; pass the Calendly base the project talks
    to so they match URIs the API returns. Raises PayloadError, and nothing else, on bad input.
    """
    data = _decode(body)
    name = _need_str(data, "event", "body")
    created_at = _time(data, "created_at", "body")
    payload = _need_obj(data, "payload", "body")
    api_base = api_base.rstrip("/")

    if "scheduled_event" in payload or "uri" in payload:
        return _within_bounds(_parse_v2(name, created_at, payload))
    if isinstance(payload.get("invitee"), dict) and isinstance(payload.get("event"), dict):
        return _within_bounds(_parse_legacy(name, created_at, payload, api_base))
    raise PayloadError(
        "unrecognised payload shape: expected payload.uri/payload.scheduled_event (v2) "
        "or payload.invitee and payload.event objects (legacy)"
    )
