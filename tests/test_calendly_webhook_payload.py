"""parse_calendly_webhook: both payload shapes into one CalendlyWebhook, and nothing but PayloadError."""
from __future__ import annotations

import copy
import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.calendly import CalendlyWebhook, PayloadError, parse_calendly_webhook

RECORDINGS = Path(__file__).parent / "calendly_recordings"
API = "https://api.calendly.com"
USER_URI = f"{API}/users/5f2a9c1e-8b3d-4e6f-9a07-1c2d3e4f5a6b"
EVENT_TYPE_UUID = "7d1e2f3a-5b6c-4d7e-9f80-a1b2c3d4e5f6"
EVENT_UUID = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"
INVITEE_UUID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
# The other half of a reschedule: the old (or new) invitee on its own scheduled event.
OTHER_EVENT_UUID = "0b1c2d3e-4f5a-4b6c-8d7e-8f9a0b1c2d3e"
OTHER_INVITEE_UUID = "5d6e7f8a-9b0c-4d1e-8f2a-3b4c5d6e7f8a"
EVENT_URI = f"{API}/scheduled_events/{EVENT_UUID}"
INVITEE_URI = f"{EVENT_URI}/invitees/{INVITEE_UUID}"
OTHER_INVITEE_URI = f"{API}/scheduled_events/{OTHER_EVENT_UUID}/invitees/{OTHER_INVITEE_UUID}"
EVENT_TYPE_URI = f"{API}/event_types/{EVENT_TYPE_UUID}"
BOOKING_REF = "bk_01JNX4Q8R2M7T5V9W3Y6Z0A1B2"
CREATED_AT = "2025-03-10T13:27:46.000000Z"
START = datetime(2025, 3, 18, 14, 0, tzinfo=timezone.utc)
END = datetime(2025, 3, 18, 15, 0, tzinfo=timezone.utc)
CANCELLATION = {"canceled_by": "Jordan Lee", "reason": "Found another time", "canceler_type": "invitee", "created_at": "2025-03-12T08:00:00.000000Z"}


def recording(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())["resource"]


# ----- body builders: the same booking in both shapes ---------------------------------------


def v2_body(event: str, /, **changes: Any) -> dict:
    """A current-shape body from the recorded invitee + scheduled event, with `changes` applied."""
    invitee = recording("invitee.json")
    invitee["scheduled_event"] = recording("scheduled_event.json")
    invitee.update(changes)
    return {"created_at": CREATED_AT, "created_by": USER_URI, "event": event, "payload": invitee}


def legacy_body(event: str, /, *, invitee: dict | None = None, event_fields: dict | None = None, **changes: Any) -> dict:
    """The same booking in the older shape of the seed doc (uuids, objects, no URIs)."""
    payload: dict[str, Any] = {
        "event_type": {"uuid": EVENT_TYPE_UUID, "kind": "One-on-One", "slug": "architecture-review",
                       "name": "Architecture Review", "duration": 60,
                       "owner": {"type": "users", "uuid": "5f2a9c1e-8b3d-4e6f-9a07-1c2d3e4f5a6b"}},
        "event": {"uuid": EVENT_UUID, "assigned_to": ["Maya Okafor"],
                  # Older payloads carried local offsets; normalised to UTC.
                  "start_time": "2025-03-18T10:00:00-04:00", "end_time": "2025-03-18T11:00:00-04:00",
                  "location": {"type": "google_conference"}, "canceled": False, "cancellation": None,
                  **(event_fields or {})},
        "invitee": {"uuid": INVITEE_UUID, "email": "jordan.lee@example.org", "name": "Jordan Lee",
                    "first_name": None, "last_name": None, "timezone": "America/New_York",
                    "created_at": "2025-03-10T09:27:45-04:00", "canceled": False, "is_reschedule": False,
                    **(invitee or {})},
        "questions_and_answers": [{"question": "What are you building?",
                                   "answer": "A marketplace for local repair shops, Next.js + Supabase."}],
        "tracking": {"utm_source": "buildappswith", "utm_medium": "profile", "utm_campaign": None,
                     "utm_content": BOOKING_REF, "utm_term": None, "salesforce_uuid": None},
        "text_reminder_number": None,
        "old_invitee": None,
        "old_event": None,
        "reschedule_url": f"https://calendly.com/reschedulings/{INVITEE_UUID}",
        "cancel_url": f"https://calendly.com/cancellations/{INVITEE_UUID}",
        "payment": None,
    }
    payload.update(changes)
    return {"event": event, "created_at": CREATED_AT, "payload": payload}


def canceled_v2(**changes: Any) -> dict:
    return v2_body("invitee.canceled", status="canceled", cancellation=CANCELLATION, **changes)


def canceled_legacy(**changes: Any) -> dict:
    return legacy_body(
        "invitee.canceled",
        invitee={"canceled": True, "canceler_name": "Jordan Lee", "cancel_reason": "Found another time"},
        event_fields={"canceled": True, "cancellation": {"reason": "Found another time"}},
        **changes,
    )


# ----- v2 shape ------------------------------------------------------------------------------


def test_v2_invitee_created() -> None:
    hook = parse_calendly_webhook(json.dumps(v2_body("invitee.created")).encode())
    assert hook == CalendlyWebhook(
        event="invitee.created",
        created_at=datetime(2025, 3, 10, 13, 27, 46, tzinfo=timezone.utc),
        invitee_uri=INVITEE_URI,
        event_uri=EVENT_URI,
        event_type_uri=EVENT_TYPE_URI,
        booking_ref=BOOKING_REF,
        invitee_email="jordan.lee@example.org",
        invitee_name="Jordan Lee",
        start_time=START,
        end_time=END,
        status="active",
        rescheduled=False,
        old_invitee_uri=None,
        new_invitee_uri=None,
        cancel_reason=None,
        canceler_type=None,
        canceled_by=None,
        no_show_uri=None,
        timezone="America/New_York",
        cancel_url=f"https://calendly.com/cancellations/{INVITEE_UUID}",
        reschedule_url=f"https://calendly.com/reschedulings/{INVITEE_UUID}",
        questions_and_answers=(("What are you building?", "A marketplace for local repair shops, Next.js + Supabase."),),
        host_uris=(USER_URI,),
    )
    assert hook.shape == "v2"
    assert hook.created_at is not None and hook.created_at.tzinfo is timezone.utc
    assert hook.dedupe_key == f"calendly:invitee.created:{INVITEE_URI}"


def test_v2_invitee_canceled_plain() -> None:
    hook = parse_calendly_webhook(canceled_v2())
    assert (hook.event, hook.status, hook.rescheduled) == ("invitee.canceled", "canceled", False)
    assert (hook.cancel_reason, hook.canceler_type, hook.canceled_by) == ("Found another time", "invitee", "Jordan Lee")
    assert hook.new_invitee_uri is None
    assert hook.booking_ref == BOOKING_REF
    assert hook.dedupe_key == f"calendly:invitee.canceled:{INVITEE_URI}"


def test_v2_invitee_canceled_for_a_reschedule() -> None:
    hook = parse_calendly_webhook(canceled_v2(rescheduled=True, new_invitee=OTHER_INVITEE_URI))
    assert hook.rescheduled is True
    assert hook.new_invitee_uri == OTHER_INVITEE_URI
    assert hook.old_invitee_uri is None


def test_v2_reschedule_invitee_created_has_old_invitee() -> None:
    hook = parse_calendly_webhook(v2_body("invitee.created", old_invitee=OTHER_INVITEE_URI))
    assert hook.event == "invitee.created"
    assert hook.rescheduled is False  # Calendly's flag marks the OLD invitee
    assert hook.old_invitee_uri == OTHER_INVITEE_URI
    assert hook.booking_ref == BOOKING_REF  # utm_* carry over to the rescheduled booking


def test_v2_no_show_dedupe_key_includes_the_no_show_uri() -> None:
    no_show_uri = f"{API}/invitee_no_shows/6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"
    hook = parse_calendly_webhook(v2_body("invitee_no_show.created", no_show={"uri": no_show_uri, "created_at": "2025-03-18T14:20:00Z"}))
    assert hook.no_show_uri == no_show_uri
    assert hook.dedupe_key == f"calendly:invitee_no_show.created:{INVITEE_URI}:{no_show_uri}"
    other = parse_calendly_webhook(v2_body("invitee_no_show.created", no_show={"uri": no_show_uri + "x"}))
    assert other.dedupe_key != hook.dedupe_key


def test_no_show_on_a_non_no_show_event_does_not_change_its_key() -> None:
    hook = parse_calendly_webhook(canceled_v2(no_show={"uri": f"{API}/invitee_no_shows/x"}))
    assert hook.dedupe_key == f"calendly:invitee.canceled:{INVITEE_URI}"


@pytest.mark.parametrize(
    ("tracking", "expected"),
    [
        ({"utm_content": f"  {BOOKING_REF}\n"}, BOOKING_REF),
        ({"utm_content": "   "}, None),
        ({"utm_content": ""}, None),
        ({"utm_content": None}, None),
        ({}, None),
        (None, None),
    ],
)
def test_booking_ref_from_utm_content(tracking: dict | None, expected: str | None) -> None:
    assert parse_calendly_webhook(v2_body("invitee.created", tracking=tracking)).booking_ref == expected


def test_unknown_event_names_are_kept() -> None:
    assert parse_calendly_webhook(v2_body("invitee.updated")).event == "invitee.updated"


def test_v2_event_uri_falls_back_to_scheduled_event_then_invitee_uri() -> None:
    body = v2_body("invitee.created", event=None)
    assert parse_calendly_webhook(body).event_uri == EVENT_URI
    body = v2_body("invitee.created", event=None, scheduled_event=None)
    hook = parse_calendly_webhook(body)
    assert hook.event_uri == EVENT_URI
    assert (hook.start_time, hook.event_type_uri) == (None, None)


def test_v2_old_and_new_invitee_may_be_objects() -> None:
    hook = parse_calendly_webhook(v2_body("invitee.created", old_invitee={"uri": OTHER_INVITEE_URI}))
    assert hook.old_invitee_uri == OTHER_INVITEE_URI


def test_questions_with_empty_answers() -> None:
    qas = [{"question": "Q1", "answer": "", "position": 0}, {"question": "Q2", "answer": None, "position": 1}]
    hook = parse_calendly_webhook(v2_body("invitee.created", questions_and_answers=qas))
    assert hook.questions_and_answers == (("Q1", ""), ("Q2", ""))


def test_body_may_be_bytes_str_or_dict() -> None:
    body = v2_body("invitee.created")
    text = json.dumps(body)
    assert parse_calendly_webhook(body) == parse_calendly_webhook(text) == parse_calendly_webhook(text.encode())


def test_times_with_offsets_become_utc() -> None:
    body = v2_body("invitee.created")
    body["payload"]["scheduled_event"]["start_time"] = "2025-03-18T16:00:00+02:00"
    body["created_at"] = "2025-03-10T13:27:46Z"
    hook = parse_calendly_webhook(body)
    assert hook.start_time == START and hook.start_time.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert hook.created_at == datetime(2025, 3, 10, 13, 27, 46, tzinfo=timezone.utc)


# ----- the older shape -----------------------------------------------------------------------

# Fields where the older shape legitimately says less than v2 (see webhook_payload's docstring).
LEGACY_GAPS_CANCEL = {"canceler_type"}

SAME_BOOKING_IN_BOTH_SHAPES: list[tuple[str, Callable[[], dict], Callable[[], dict], set[str]]] = [
    ("created", lambda: v2_body("invitee.created"), lambda: legacy_body("invitee.created"), set()),
    ("canceled", canceled_v2, canceled_legacy, LEGACY_GAPS_CANCEL),
    (
        "canceled for a reschedule",
        lambda: canceled_v2(rescheduled=True, new_invitee=OTHER_INVITEE_URI),
        lambda: canceled_legacy(new_invitee={"uuid": OTHER_INVITEE_UUID}, new_event={"uuid": OTHER_EVENT_UUID}),
        LEGACY_GAPS_CANCEL,
    ),
    (
        "created by a reschedule (legacy 'invitee.rescheduled')",
        lambda: v2_body("invitee.created", old_invitee=OTHER_INVITEE_URI),
        lambda: legacy_body("invitee.rescheduled", invitee={"is_reschedule": True},
                            old_invitee={"uuid": OTHER_INVITEE_UUID}, old_event={"uuid": OTHER_EVENT_UUID}),
        set(),
    ),
    (
        "created by a reschedule (legacy 'invitee.created')",
        lambda: v2_body("invitee.created", old_invitee=OTHER_INVITEE_URI),
        lambda: legacy_body("invitee.created", old_invitee={"uri": OTHER_INVITEE_URI, "uuid": "ignored"}),
        set(),
    ),
    (
        "event type given with a uri",
        lambda: v2_body("invitee.created"),
        lambda: legacy_body("invitee.created", event_type={"uri": EVENT_TYPE_URI, "name": "Architecture Review"}),
        set(),
    ),
]


@pytest.mark.parametrize(
    ("v2", "legacy", "gaps"),
    [pytest.param(v2, legacy, gaps, id=name) for name, v2, legacy, gaps in SAME_BOOKING_IN_BOTH_SHAPES],
)
def test_both_shapes_normalise_to_the_same_webhook(v2: Callable[[], dict], legacy: Callable[[], dict], gaps: set[str]) -> None:
    new, old = parse_calendly_webhook(v2()), parse_calendly_webhook(legacy())
    assert (new.shape, old.shape) == ("v2", "legacy")
    # The legacy shape names hosts by display name only: the service reads them from the API.
    blank = {name: None for name in gaps} | {"host_uris": ()}
    assert old.host_uris == ()
    assert dataclasses.replace(new, **blank) == dataclasses.replace(old, **blank)
    assert new.dedupe_key == old.dedupe_key
    for name in gaps:
        assert getattr(old, name) is None


def test_legacy_uris_are_built_on_api_base() -> None:
    hook = parse_calendly_webhook(legacy_body("invitee.created"), api_base="http://127.0.0.1:8001/")
    assert hook.invitee_uri == f"http://127.0.0.1:8001/scheduled_events/{EVENT_UUID}/invitees/{INVITEE_UUID}"
    assert hook.event_uri == f"http://127.0.0.1:8001/scheduled_events/{EVENT_UUID}"
    assert hook.event_type_uri == f"http://127.0.0.1:8001/event_types/{EVENT_TYPE_UUID}"


def test_legacy_uri_fields_win_over_uuids() -> None:
    body = legacy_body("invitee.created", invitee={"uri": OTHER_INVITEE_URI}, event_fields={"uri": f"{API}/scheduled_events/{OTHER_EVENT_UUID}"})
    hook = parse_calendly_webhook(body)
    assert hook.invitee_uri == OTHER_INVITEE_URI
    assert hook.event_uri == f"{API}/scheduled_events/{OTHER_EVENT_UUID}"


def test_legacy_old_invitee_without_its_event_is_unknown_not_an_error() -> None:
    hook = parse_calendly_webhook(legacy_body("invitee.rescheduled", old_invitee={"uuid": OTHER_INVITEE_UUID}))
    assert hook.event == "invitee.created"
    assert hook.old_invitee_uri is None


@pytest.mark.parametrize(
    ("changes", "invitee", "rescheduled"),
    [
        ({"rescheduled": True}, {}, True),
        ({}, {"rescheduled": True}, True),
        ({"new_invitee": {"uri": OTHER_INVITEE_URI}}, {}, True),
        ({"new_event": {"uuid": OTHER_EVENT_UUID}}, {}, True),
        # Free text written by the invitee is not evidence of a reschedule, nor is the flag
        # saying this booking itself came from an earlier reschedule.
        ({}, {"cancel_reason": "Rescheduled"}, False),
        ({}, {"is_reschedule": True}, False),
        ({}, {}, False),
    ],
)
def test_legacy_cancel_reschedule_detection(changes: dict, invitee: dict, rescheduled: bool) -> None:
    body = legacy_body("invitee.canceled", invitee={"canceled": True, **invitee}, **changes)
    hook = parse_calendly_webhook(body)
    assert hook.rescheduled is rescheduled
    assert hook.status == "canceled"


def test_legacy_status_is_derived() -> None:
    assert parse_calendly_webhook(legacy_body("invitee.created")).status == "active"
    assert parse_calendly_webhook(legacy_body("invitee.canceled")).status == "canceled"
    assert parse_calendly_webhook(legacy_body("invitee.created", invitee={"status": "active"})).status == "active"


def test_legacy_seed_shape_minimal() -> None:
    # Exactly the fields the seed's TypeScript sketch names, nothing more.
    body = {"event": "invitee.created", "payload": {
        "event_type": {"uri": EVENT_TYPE_URI, "name": "Architecture Review"},
        "invitee": {"email": "a@example.org", "name": "A", "uuid": INVITEE_UUID},
        "event": {"uuid": EVENT_UUID, "start_time": "2025-03-18T14:00:00Z", "end_time": "2025-03-18T15:00:00Z",
                  "location": {"type": "zoom"}, "canceled": False},
        "questions_and_answers": [],
        "tracking": {"utm_content": BOOKING_REF},
    }}
    hook = parse_calendly_webhook(body)
    assert (hook.invitee_uri, hook.event_uri, hook.booking_ref, hook.created_at) == (INVITEE_URI, EVENT_URI, BOOKING_REF, None)
    assert (hook.start_time, hook.end_time) == (START, END)


# ----- malformed input -----------------------------------------------------------------------


def _with(body: dict, path: tuple, value: Any) -> dict:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def _without(body: dict, path: tuple) -> dict:
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


GOOD_V2 = v2_body("invitee.created")
GOOD_LEGACY = legacy_body("invitee.created")

MALFORMED: list[tuple[str, Any, str]] = [
    ("invalid json", b'{"event": "invitee.created", ', "not valid JSON"),
    ("not utf-8", b'{"event": "\xff"}', "not UTF-8"),
    ("empty", b"", "not valid JSON"),
    ("json list", b"[1, 2]", "JSON object"),
    ("json string", '"invitee.created"', "JSON object"),
    ("json null", b"null", "JSON object"),
    ("wrong python type", 42, "bytes, str or dict"),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ("no event", _without(GOOD_V2, ("event",)), "body.event is missing"),
    ("event not a string", _with(GOOD_V2, ("event",), 7), "body.event must be a string"),
    ("no payload", _without(GOOD_V2, ("payload",)), "body.payload is missing"),
    ("payload a list", _with(GOOD_V2, ("payload",), []), "body.payload must be an object"),
    ("unknown shape", {"event": "invitee.created", "payload": {"email": "a@b.c"}}, "unrecognised payload shape"),
    ("bad created_at", _with(GOOD_V2, ("created_at",), "yesterday"), "body.created_at is not an ISO-8601 time"),
    ("naive time", _with(GOOD_V2, ("payload", "scheduled_event", "start_time"), "2025-03-18T14:00:00"), "no UTC offset"),
    ("time not a string", _with(GOOD_V2, ("payload", "scheduled_event", "end_time"), 1742310000), "must be a string"),
    ("v2 uri not a string", _with(GOOD_V2, ("payload", "uri"), {"x": 1}), "payload.uri must be a string"),
    ("v2 without uri", _without(GOOD_V2, ("payload", "uri")), "payload.uri is missing"),
    ("v2 no event uri at all", {"event": "invitee.created", "payload": {"uri": "urn:x", "scheduled_event": {}}}, "payload.event"),
    ("email not a string", _with(GOOD_V2, ("payload", "email"), ["a@b.c"]), "payload.email must be a string"),
    ("rescheduled not a bool", _with(GOOD_V2, ("payload", "rescheduled"), "yes"), "payload.rescheduled must be a boolean"),
    ("questions not a list", _with(GOOD_V2, ("payload", "questions_and_answers"), {}), "questions_and_answers must be a list"),
    ("question missing", _with(GOOD_V2, ("payload", "questions_and_answers"), [{"answer": "x"}]), "question is missing"),
    ("tracking a string", _with(GOOD_V2, ("payload", "tracking"), "utm"), "payload.tracking must be an object"),
    ("cancellation a list", _with(GOOD_V2, ("payload", "cancellation"), []), "payload.cancellation must be an object"),
    ("old_invitee a number", _with(GOOD_V2, ("payload", "old_invitee"), 3), "payload.old_invitee must be a URI"),
    ("legacy without event uuid", _without(GOOD_LEGACY, ("payload", "event", "uuid")), "payload.event.uuid is missing"),
    ("legacy without invitee uuid", _without(GOOD_LEGACY, ("payload", "invitee", "uuid")), "payload.invitee.uuid is missing"),
    ("legacy bad start", _with(GOOD_LEGACY, ("payload", "event", "start_time"), "2025-13-45T99:00:00Z"), "payload.event.start_time"),
    ("legacy canceled not a bool", _with(GOOD_LEGACY, ("payload", "event", "canceled"), "no"), "payload.event.canceled must be a boolean"),
    ("legacy event_type a list", _with(GOOD_LEGACY, ("payload", "event_type"), []), "payload.event_type must be an object"),
]


@pytest.mark.parametrize(("body", "message"), [pytest.param(b, m, id=n) for n, b, m in MALFORMED])
def test_malformed_input_raises_payload_error(body: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_calendly_webhook(body)


def test_payload_error_is_a_value_error() -> None:
    assert issubclass(PayloadError, ValueError)


def test_the_input_dict_is_not_modified() -> None:
    body = legacy_body("invitee.rescheduled", old_invitee={"uuid": OTHER_INVITEE_UUID}, old_event={"uuid": OTHER_EVENT_UUID})
    before = copy.deepcopy(body)
    parse_calendly_webhook(body)
    assert body == before


# ----- fuzz: nothing but PayloadError or a CalendlyWebhook ----------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
time_like = st.sampled_from([
    "2025-03-18T14:00:00Z", "2025-03-18T14:00:00.000000Z", "2025-03-18T14:00:00+02:00", "2025-03-18",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2025-03-18T14:00:00", "Z", "",
]) | st.text(max_size=30)
KNOWN_KEYS = sorted({
    *GOOD_V2["payload"], *GOOD_LEGACY["payload"], "uri", "no_show", "new_event", "rescheduled", "status",
    "start_time", "end_time", "uuid", "reason", "canceler_type", "canceled_by", "utm_content", "question", "answer",
})
known_values = json_values | time_like | st.just(GOOD_V2["payload"]["scheduled_event"]) | st.just(GOOD_LEGACY["payload"]["event"])
structured_payloads = st.dictionaries(st.sampled_from(KNOWN_KEYS), known_values, max_size=12)
envelopes = st.fixed_dictionaries(
    {"event": st.sampled_from(["invitee.created", "invitee.canceled", "invitee.rescheduled", "invitee_no_show.created"]) | json_values,
     "payload": structured_payloads | json_values},
    optional={"created_at": time_like | json_values},
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, prefix + (key,)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, prefix + (index,)))
    return found


def _mutants() -> st.SearchStrategy[dict]:
    bases = [GOOD_V2, GOOD_LEGACY, canceled_v2(rescheduled=True, new_invitee=OTHER_INVITEE_URI),
             legacy_body("invitee.rescheduled", old_invitee={"uuid": OTHER_INVITEE_UUID}, old_event={"uuid": OTHER_EVENT_UUID})]
    choices = [(base, path) for base in bases for path in _paths(base)]
    return st.tuples(st.sampled_from(choices), known_values).map(lambda pick: _with(pick[0][0], pick[0][1], pick[1]))


def assert_parses_or_payload_error(body: Any) -> None:
    try:
        result = parse_calendly_webhook(body)
    except PayloadError:
        return
    assert isinstance(result, CalendlyWebhook)
    for moment in (result.created_at, result.start_time, result.end_time):
        assert moment is None or moment.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert isinstance(result.dedupe_key, str)
    hash(result)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(json_values)
def test_fuzz_any_json_value(value: Any) -> None:
    assert_parses_or_payload_error(value if isinstance(value, dict) else json.dumps(value))


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_random_bytes(raw: bytes) -> None:
    assert_parses_or_payload_error(raw)


@FUZZ
@given(envelopes)
def test_fuzz_envelopes_with_plausible_keys(body: dict) -> None:
    assert_parses_or_payload_error(body)
    assert_parses_or_payload_error(json.dumps(body).encode())


@FUZZ
@given(_mutants())
def test_fuzz_one_field_of_a_good_body_replaced(body: dict) -> None:
    assert_parses_or_payload_error(body)


def test_the_hosts_come_from_event_memberships_and_the_legacy_shape_has_none() -> None:
    """The binding of a slot to a booking reads its hosts; the older shape names hosts only by
    display name, so it has none and the service must read the event from the API."""
    body = v2_body("invitee.created")
    body["payload"]["scheduled_event"]["event_memberships"] = [
        {"user": USER_URI, "user_email": "a@example.test"}, {"user": f"{API}/users/co-host"}]
    assert parse_calendly_webhook(json.dumps(body).encode()).host_uris == (USER_URI, f"{API}/users/co-host")
    assert parse_calendly_webhook(json.dumps(legacy_body("invitee.created")).encode()).host_uris == ()
    body["payload"]["scheduled_event"]["event_memberships"] = "not a list"
    with pytest.raises(PayloadError, match="event_memberships must be a list"):
        parse_calendly_webhook(json.dumps(body).encode())
