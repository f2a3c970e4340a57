"""The admin's actions live once (core.services.admin_actions): the dashboard and the admin API call
them, "who may cancel" is one predicate, and the dashboard's loaders each keep their own cache."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.auth import Viewer
from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError
from core.models import BookingHistory, Refund
from core.reporting import booking_detail
from core.services import admin_actions
from core.states import CANCELABLE, BookingStatus as S, can_cancel
from tests import factories

ROOT = Path(__file__).resolve().parent.parent
ADMIN = Viewer(user_id=1, email="admin@example.test", role="admin")
# Core services that change bookings, money or side effects: entry points for admins reach them only
# through admin_actions, which checks the viewer and records them as the actor.
WRITE_SERVICES = {"payment_service", "checkout_service", "payment_events", "refunds", "booking_service",
                  "notifications", "outbox", "catalog", "webhook_ingest", "transitions"}


@pytest.fixture
def api(settings_env, request):
    settings_env(run_outbox_after_request="false")  # look at what is stored, not sent
    request.getfixturevalue("engine")
    from webhook_service.app import create_app
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def test_the_admin_api_refunds_as_the_api_admin(api, engine):
    with session_scope(engine) as session:
        booking = factories.make_booking(session, S.CONFIRMED)
        factories.make_payment(session, booking)
        booking_id = booking.id

    answer = api.post(f"/api/bookings/{booking_id}/refund", json={"amount_cents": 1000},
                      headers={"Authorization": f"Bearer {get_settings().admin_api_token}"})

    assert answer.status_code == 202 and answer.json()["refunded_cents"] == 1000
    with session_scope(engine, read_only=True) as session:
        refund = session.execute(select(Refund)).scalar_one()
        assert (refund.amount_cents, refund.reason, refund.issued_by) == (1000, "Refund by admin (API)", "admin:api")
        actors = {row.actor for row in session.execute(
            select(BookingHistory).where(BookingHistory.booking_id == booking_id)).scalars()}
        assert "admin:api" in actors


def _core_services_imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "core.services":
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("core.services."):
            names.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            names |= {alias.name.split(".")[2] for alias in node.names if alias.name.startswith("core.services.")}
    return names


def test_the_dashboard_and_the_admin_api_act_only_through_admin_actions():
    entry_points = [ROOT / "webhook_service" / "routes" / "api.py", *sorted((ROOT / "dashboard").rglob("*.py"))]
    reaching_past = {str(path.relative_to(ROOT)): _core_services_imported(path) & WRITE_SERVICES
                     for path in entry_points}
    assert {path: names for path, names in reaching_past.items() if names} == {}
    assert "admin_actions" in _core_services_imported(ROOT / "webhook_service" / "routes" / "api.py")
    assert "admin_actions" in _core_services_imported(ROOT / "dashboard" / "lib" / "actions.py")


def test_who_may_cancel_is_read_off_the_transition_table():
    assert CANCELABLE == {S.PENDING_SCHEDULING, S.PENDING_PAYMENT, S.CONFIRMED}
    assert [status for status in S if can_cancel(status)] == [S.PENDING_SCHEDULING, S.PENDING_PAYMENT, S.CONFIRMED]
    assert can_cancel("CONFIRMED") and not can_cancel("EXPIRED")


@pytest.mark.parametrize("status", list(S))
def test_the_dashboard_offers_cancel_exactly_when_the_service_allows_it(session, status):
    booking = factories.make_booking(session, status)
    session.commit()
    offered = booking_detail(session, ADMIN, booking.id).can_cancel

    if offered:
        admin_actions.cancel(session, ADMIN, booking.id, reason="by hand")
        session.commit()
        assert session.get(type(booking), booking.id).status == S.CANCELED
    else:
        with pytest.raises(DomainError, match="cannot be canceled"):
            admin_actions.cancel(session, ADMIN, booking.id, reason="by hand")
    assert offered == can_cancel(status)


def test_each_dashboard_loader_has_its_own_cache():
    # Streamlit keys a function's cache by module, name and source: loaders made by one helper
    # would share a cache (and answer each other's calls) unless each carries its query's name.
    from streamlit.runtime.caching.cache_type import CacheType
    from streamlit.runtime.caching.cache_utils import _make_function_key

    from dashboard.lib import data
    loaders = [value for value in vars(data).values() if type(value).__name__ == "CachedFunc"]
    assert len(loaders) >= 18
    keys = {_make_function_key(CacheType.DATA, loader._info.func) for loader in loaders}
    assert len(keys) == len(loaders)
    assert data.pending._info.ttl == 10 and data.overview._info.ttl == data.TTL
