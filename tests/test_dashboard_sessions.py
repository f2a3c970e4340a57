"""Server-side dashboard sessions (core/services/dashboard_sessions.py) on the test database:
a session resolves to the person as they are now, and ends on expiry, sign-out, a changed role or
an account that can no longer sign in."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from core.db import session_scope
from core.models import DashboardSession, DashboardUser, utcnow
from core.security import hash_token
from core.services import dashboard_sessions
from tests.dashboard_helpers import ADMIN_EMAIL, make_admin_and_builders


def _users(engine) -> dict[str, int]:
    with session_scope(engine) as s:
        make_admin_and_builders(s, ada_timezone="Europe/London")
        return {u.email: u.id for u in s.execute(select(DashboardUser)).scalars()}


def _start(engine, user_id: int) -> str:
    with session_scope(engine) as s:
        sid, _row = dashboard_sessions.start(s, user_id)
    return sid


def _resolve(engine, sid, **kwargs):
    with session_scope(engine) as s:
        return dashboard_sessions.resolve(s, sid, **kwargs)


def _row(engine, sid: str) -> DashboardSession:
    with session_scope(engine, read_only=True) as s:
        row = s.execute(select(DashboardSession).where(DashboardSession.session_hash == hash_token(sid))).scalar_one()
        s.expunge(row)
        return row


def _age(engine, sid: str, **shift) -> None:
    """Move a session into the past by `shift` (as if signed in and last used that long ago)."""
    with session_scope(engine) as s:
        row = s.execute(select(DashboardSession).where(DashboardSession.session_hash == hash_token(sid))).scalar_one()
        delta = timedelta(**shift)
        row.created_at -= delta
        row.last_seen_at -= delta
        row.expires_at -= delta


def test_a_new_session_resolves_to_the_person_and_stores_only_a_hash(engine):
    users = _users(engine)
    sid = _start(engine, users["ada@test"])
    viewer = _resolve(engine, sid)
    assert (viewer.email, viewer.role, viewer.timezone, viewer.name) == ("ada@test", "builder", "Europe/London", "Ada")
    row = _row(engine, sid)
    assert row.session_hash == hash_token(sid) and sid not in row.session_hash
    assert timedelta(hours=11, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=12)
    admin = _resolve(engine, _start(engine, users[ADMIN_EMAIL]))
    assert admin.is_admin and admin.timezone == "UTC"


def test_unknown_or_missing_ids_resolve_to_nobody(engine):
    _users(engine)
    assert _resolve(engine, None) is None
    assert _resolve(engine, "") is None
    assert _resolve(engine, "not-a-session-id") is None


def test_a_session_expires_after_its_idle_time(engine):
    users = _users(engine)
    sid = _start(engine, users["ada@test"])
    _age(engine, sid, hours=11, minutes=50)
    assert _resolve(engine, sid) is not None  # still within 12 h, and this use extends it
    assert _row(engine, sid).expires_at > utcnow() + timedelta(hours=11)
    _age(engine, sid, hours=12, minutes=1)
    assert _resolve(engine, sid) is None


def test_use_never_extends_a_session_past_its_absolute_cap(engine, settings_env):
    settings_env(DASHBOARD_SESSION_MAX_DAYS=1)
    users = _users(engine)
    sid = _start(engine, users["ada@test"])
    _age(engine, sid, hours=20)
    with session_scope(engine) as s:  # used again a minute ago: the idle window would run 12 h more
        row = s.execute(select(DashboardSession)).scalar_one()
        row.last_seen_at = utcnow() - timedelta(minutes=2)
        row.expires_at = utcnow() + timedelta(hours=1)
    assert _resolve(engine, sid) is not None
    row = _row(engine, sid)
    assert abs((row.expires_at - row.created_at) - timedelta(days=1)) < timedelta(seconds=5)
    _age(engine, sid, hours=4, minutes=1)
    assert _resolve(engine, sid) is None


def test_sign_out_revokes_that_session_only(engine):
    users = _users(engine)
    laptop, phone = _start(engine, users["ada@test"]), _start(engine, users["ada@test"])
    with session_scope(engine) as s:
        assert dashboard_sessions.revoke(s, laptop) is True
        assert dashboard_sessions.revoke(s, laptop) is False  # already ended
        assert dashboard_sessions.revoke(s, None) is False
    assert _resolve(engine, laptop) is None
    assert _resolve(engine, phone).email == "ada@test"
    with session_scope(engine) as s:
        assert dashboard_sessions.revoke_all(s, users["ada@test"]) == 1
    assert _resolve(engine, phone) is None


def test_a_changed_role_or_builder_ends_the_session(engine):
    users = _users(engine)
    sid = _start(engine, users["ada@test"])
    signed_in_as = _resolve(engine, sid)
    with session_scope(engine) as s:
        s.get(DashboardUser, users["ada@test"]).role = "admin"
    assert _resolve(engine, sid, signed_in_as=signed_in_as) is None  # not promoted in place
    assert _resolve(engine, sid) is None  # and the session stays ended

    other = _start(engine, users["bo@test"])
    bo = _resolve(engine, other)
    with session_scope(engine) as s:
        s.get(DashboardUser, users["bo@test"]).builder_id = s.get(DashboardUser, users["ada@test"]).builder_id
    assert _resolve(engine, other, signed_in_as=bo) is None


def test_an_account_that_can_no_longer_sign_in_ends_the_session(engine):
    users = _users(engine)
    sid = _start(engine, users["bo@test"])
    with session_scope(engine) as s:
        s.get(DashboardUser, users["bo@test"]).builder_id = None  # a builder account without a builder
    assert _resolve(engine, sid) is None
    assert _row(engine, sid).revoked_at is not None


def test_a_changed_time_zone_is_seen_at_once(engine):
    users = _users(engine)
    sid = _start(engine, users["ada@test"])
    with session_scope(engine) as s:
        s.get(DashboardUser, users["ada@test"]).timezone = "America/New_York"
    assert _resolve(engine, sid).timezone == "America/New_York"


def test_ended_sessions_are_purged_after_a_week(engine):
    users = _users(engine)
    old, recent, live = (_start(engine, users["ada@test"]) for _ in range(3))
    _age(engine, old, days=8)
    _age(engine, recent, days=1)
    with session_scope(engine) as s:
        assert dashboard_sessions.purge_ended(s) == 1
        remaining = s.execute(select(func.count()).select_from(DashboardSession)).scalar_one()
    assert remaining == 2
    assert _resolve(engine, live) is not None and _resolve(engine, recent) is None
