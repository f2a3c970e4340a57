"""Adding builders, dashboard users and a person's time zone (core/services/people.py), on the test
database: what is stored, and the clear refusals the dashboard shows."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.auth import API_ADMIN, Viewer, authenticate
from core.db import session_scope
from core.errors import DomainError, Forbidden
from core.models import Builder, DashboardUser, SessionType
from core.security import decrypt_secret
from core.services import people
from tests.dashboard_helpers import make_builder


def test_a_builder_without_calendly_is_stored_with_zone_and_bio(engine):
    with session_scope(engine) as s:
        builder = people.add_builder(s, name="  Grace Hopper ", email="Grace@Example.TEST",
                                     timezone="America/New_York", bio="  Compilers and COBOL.  ")
        builder_id = builder.id
    with session_scope(engine, read_only=True) as s:
        stored = s.get(Builder, builder_id)
        assert (stored.name, stored.email, stored.timezone, stored.bio) == (
            "Grace Hopper", "grace@example.test", "America/New_York", "Compilers and COBOL.")
        assert stored.calendly_user_uri is None and stored.calendly_token_encrypted is None


def test_a_builder_with_calendly_keeps_the_token_encrypted_and_the_calendly_zone(engine, settings_env):
    settings = settings_env()
    user = {"uri": "https://api.calendly.test/users/U1", "name": "Linus", "timezone": "Europe/Helsinki",
            "current_organization": "https://api.calendly.test/organizations/O1"}
    with session_scope(engine) as s:
        builder = people.add_builder(s, name="", email="linus@example.test", calendly_token="tok-123",
                                     calendly_user=user)
        assert (builder.name, builder.timezone, builder.calendly_user_uri) == ("Linus", "Europe/Helsinki", user["uri"])
        assert decrypt_secret(builder.calendly_token_encrypted, settings.app_secret_key) == "tok-123"
    with session_scope(engine) as s, pytest.raises(DomainError, match="Calendly account .* already exists"):
        people.add_builder(s, name="Other", email="other@example.test", calendly_token="tok-9", calendly_user=user)


@pytest.mark.parametrize("fields, message", [
    ({"email": "ada@example.test"}, "a builder with email ada@example.test already exists"),
    ({"email": "ADA@example.test"}, "already exists"),
    ({"timezone": "Mars/Olympus"}, "Mars/Olympus is not a time zone: choose one like Europe/London"),
    ({"timezone": "EST"}, "not a time zone"),
    ({"name": "   "}, "please enter the builder's name"),
    ({"email": "not an address"}, "not a valid email address"),
    ({"bio": "x" * 2001}, "the bio is too long"),
])
def test_bad_builders_are_refused_with_what_to_do(engine, fields, message):
    with session_scope(engine) as s:
        make_builder(s, name="Ada", email="ada@example.test")
    base = {"name": "New", "email": "new@example.test", "timezone": "UTC"}
    with session_scope(engine) as s, pytest.raises(DomainError, match=message):
        people.add_builder(s, **{**base, **fields})
    with session_scope(engine, read_only=True) as s:
        assert s.execute(select(func.count()).select_from(Builder)).scalar_one() == 1


def test_a_user_added_for_a_builder_can_sign_in_as_that_builder(engine):
    with session_scope(engine) as s:
        builder_id = make_builder(s, name="Ada", email="ada@example.test").id
        password = people.new_password()
        people.add_user(s, email="Ada@Example.test", password=password, role="builder", builder_id=builder_id)
    with session_scope(engine, read_only=True) as s:
        viewer = authenticate(s, "ada@example.test", password)
    assert (viewer.role, viewer.builder_id, viewer.name) == ("builder", builder_id, "Ada")
    assert len(password) >= people.MIN_PASSWORD_LENGTH


@pytest.mark.parametrize("fields, message", [
    ({"password": "short"}, "at least 8 characters"),
    ({"role": "builder", "builder_id": None}, "a builder account needs the builder it belongs to"),
    ({"role": "root"}, "role must be admin or builder"),
    ({"email": "OPS@example.test"}, "a dashboard user ops@example.test already exists"),
])
def test_bad_users_are_refused(engine, fields, message):
    with session_scope(engine) as s:
        people.add_user(s, email="ops@example.test", password="first-pass-1", role="admin", builder_id=None)
    base = {"email": "new@example.test", "password": "long-enough-1", "role": "admin", "builder_id": None}
    with session_scope(engine) as s, pytest.raises(DomainError, match=message):
        people.add_user(s, **{**base, **fields})


def test_a_person_chooses_their_time_zone(engine):
    with session_scope(engine) as s:
        user = people.add_user(s, email="ops@example.test", password="first-pass-1", role="admin", builder_id=None)
        assert people.set_timezone(s, user.id, "Asia/Tokyo") == "Asia/Tokyo"
        with pytest.raises(DomainError, match="not a time zone"):
            people.set_timezone(s, user.id, "Tokyo")
    with session_scope(engine, read_only=True) as s:
        assert s.execute(select(DashboardUser.timezone)).scalar_one() == "Asia/Tokyo"
    assert "Asia/Tokyo" in people.time_zones() and people.time_zones()[0] == "UTC"


def test_only_admins_add_people_and_builders_price_only_their_own(engine):
    with session_scope(engine) as s:
        ada, bo = make_builder(s, name="Ada"), make_builder(s, name="Bo")
        ada_viewer = Viewer(user_id=5, email="ada@x.test", role="builder", builder_id=ada.id)
        with pytest.raises(Forbidden):
            people.add_builder_by(s, ada_viewer, name="Eve", email="eve@example.test")
        with pytest.raises(Forbidden):
            people.add_user_by(s, ada_viewer, email="eve@example.test", password="long-enough-1", role="admin",
                               builder_id=None)
        event_type = {"uri": "https://api.calendly.test/event_types/E1", "name": "Review", "duration": 30}
        with pytest.raises(Forbidden):
            people.price_event_type_by(s, ada_viewer, bo.id, event_type, 5000, "EUR")
        own = people.price_event_type_by(s, ada_viewer, ada.id, event_type, 5000, "eur")
        assert (own.builder_id, own.price_cents, own.currency, own.name) == (ada.id, 5000, "EUR", "Review")
        added = people.add_builder_by(s, API_ADMIN, name="Eve", email="eve@example.test", timezone="Europe/Paris")
        assert added.timezone == "Europe/Paris"
        assert [b.name for b in people.builders_by_name(s)] == ["Ada", "Bo", "Eve"]
        assert people.priced_event_type_uris(s, ada.id) == {event_type["uri"]}
    with session_scope(engine, read_only=True) as s:
        assert s.execute(select(func.count()).select_from(SessionType)).scalar_one() == 1
