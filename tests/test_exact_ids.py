"""Ids from clients are matched exactly, never as patterns.

`eventTypeId` of `%` or `_` was a LIKE pattern (500: MultipleResultsFound), and `%<tail of a
uuid>` started a booking of that session type. Against the running system (the `live` fixture):
the seed's JSON API and the profile page's form answer 404 with a reason, nothing is booked.
"""
from __future__ import annotations

import re

import pytest

from core.db import session_scope
from core.models import Booking
from core.services.scheduling import session_type_for_event_type
from tests import factories


def _bookings(live) -> int:
    with session_scope(live.engine, read_only=True) as session:
        return factories.count(session, Booking)


def _patterns(live) -> list[str]:
    uuid = live.event_type_ids[0]
    return ["%", "_", "%%", "%_", "\\%", f"%{uuid[-7:]}", f"_{uuid[1:]}", f"{uuid[:-1]}_", f"{uuid[:-3]}%",
            f"{uuid}%", f"%/{uuid}", uuid.upper() if uuid != uuid.upper() else uuid.lower(), f" {uuid}"]


def test_pattern_characters_in_event_type_id_are_404_on_the_seed_api(live):
    before = _bookings(live)

    for event_type_id in _patterns(live):
        answer = live.admin("POST", "/api/scheduling/calendly/scheduling-link", json={
            "eventTypeId": event_type_id, "inviteeEmail": "eve@example.com", "inviteeName": "Eve"})

        assert answer.status_code == 404, (event_type_id, answer.status_code, answer.text)
        assert answer.json() == {"detail": "this session type is not offered"}
    assert _bookings(live) == before


def test_pattern_characters_in_the_booking_form_get_our_404_page(live):
    browser = live.signed_in_client()
    before = _bookings(live)

    for event_type_id in _patterns(live):
        profile = browser.get(f"{live.web}/profile/{live.builder_id}", timeout=10)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', profile.text).group(1)
        answer = browser.post(f"{live.web}/bookings", allow_redirects=False, timeout=10, headers={
            "Accept": "text/html"}, data={"event_type_id": event_type_id, "builder_id": str(live.builder_id),
                                          "csrf_token": csrf})

        assert answer.status_code == 404, (event_type_id, answer.status_code)
        assert "Session not found" in answer.text and "Traceback" not in answer.text
    assert _bookings(live) == before


def test_the_exact_uuid_and_the_exact_uri_still_book(live):
    before = _bookings(live)
    uuid = live.event_type_ids[0]
    with session_scope(live.engine, read_only=True) as session:
        uri = session_type_for_event_type(session, uuid).calendly_event_type_uri

    for event_type_id in (uuid, uri):
        answer = live.admin("POST", "/api/scheduling/calendly/scheduling-link", json={
            "eventTypeId": event_type_id, "inviteeEmail": "sam@example.com", "inviteeName": "Sam"})
        assert answer.status_code == 200, answer.text
    assert _bookings(live) == before + 2


@pytest.mark.parametrize("given", ["%", "_", "type-%", "%{n}", "{u}_", "_{tail}", "{U}", "{u}/", "", " {u}"])
def test_lookup_matches_only_the_exact_last_segment(session, given):
    """Unit level, ids as the factories make them (`type-N`); two types, so a pattern would match both."""
    first = factories.make_session_type(session)
    factories.make_session_type(session)
    session.flush()
    uuid = first.calendly_event_type_uri.rsplit("/", 1)[1]

    assert session_type_for_event_type(session, uuid).id == first.id
    assert session_type_for_event_type(session, given.format(
        u=uuid, U=uuid.upper(), n=uuid.split("-")[1], tail=uuid[1:])) is None
