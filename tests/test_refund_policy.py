"""The refund policy at its boundaries, and which policy a session type gets."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.config import ConfigError, load_settings
from core.errors import DomainError
from core.models import SessionType
from core.refund_policy import RefundDecision, RefundPolicy, decide_refund, policy_for
from core.services import catalog
from tests.factories import count, make_builder

START = datetime(2026, 6, 1, 15, 0, tzinfo=timezone.utc)
POLICY = RefundPolicy(full_refund_hours=24, partial_percent=50)
SECOND = timedelta(seconds=1)


def test_cancel_exactly_the_full_refund_window_before_the_start_refunds_everything():
    decision = decide_refund(POLICY, 10_000, START, START - timedelta(hours=24))
    assert decision == RefundDecision(10_000, "full")


def test_cancel_well_before_the_window_refunds_everything():
    assert decide_refund(POLICY, 10_000, START, START - timedelta(days=30)) == RefundDecision(10_000, "full")


def test_cancel_one_second_inside_the_window_refunds_the_percentage():
    decision = decide_refund(POLICY, 10_000, START, START - timedelta(hours=24) + SECOND)
    assert decision == RefundDecision(5_000, "partial")


def test_cancel_one_second_before_the_start_still_refunds_the_percentage():
    assert decide_refund(POLICY, 10_000, START, START - SECOND) == RefundDecision(5_000, "partial")


@pytest.mark.parametrize("paid,percent,expected", [
    (999, 50, 499),      # 499.5 rounds down
    (1, 50, 0),          # half a cent is never refunded
    (1_000, 33, 330),
    (4_999, 33, 1_649),  # 1649.67 rounds down
    (10_001, 1, 100),
    (1_000, 0, 0),
    (1_000, 100, 1_000),
])
def test_partial_refund_is_an_integer_rounded_down(paid, percent, expected):
    decision = decide_refund(RefundPolicy(24, percent), paid, START, START - timedelta(hours=1))
    assert decision.rule == "partial"
    assert decision.amount_cents == expected
    assert type(decision.amount_cents) is int


@pytest.mark.parametrize("after", [timedelta(0), SECOND, timedelta(hours=2), timedelta(days=10)])
def test_cancel_at_or_after_the_start_refunds_nothing(after):
    assert decide_refund(POLICY, 10_000, START, START + after) == RefundDecision(0, "none")


@pytest.mark.parametrize("when", [START - timedelta(days=3), START - timedelta(hours=1), START, START + timedelta(hours=5)])
def test_host_cancel_always_refunds_in_full(when):
    assert decide_refund(POLICY, 10_000, START, when, canceled_by_host=True) == RefundDecision(10_000, "host_canceled")


def test_cancel_of_an_unscheduled_booking_refunds_in_full():
    assert decide_refund(POLICY, 4_900, None, START) == RefundDecision(4_900, "not_scheduled")


def test_nothing_paid_means_nothing_refunded_even_for_a_host_cancel():
    assert decide_refund(POLICY, 0, START, START - timedelta(days=5), canceled_by_host=True) == RefundDecision(0, "none")


def test_zero_hour_window_refunds_in_full_up_to_the_start():
    policy = RefundPolicy(full_refund_hours=0, partial_percent=50)
    assert decide_refund(policy, 1_000, START, START - SECOND) == RefundDecision(1_000, "full")
    assert decide_refund(policy, 1_000, START, START) == RefundDecision(0, "none")


def test_the_window_is_measured_across_time_zones_as_one_instant():
    tokyo = timezone(timedelta(hours=9))
    # 24 h before 15:00 UTC is 00:00 the same day in Tokyo (UTC+9).
    canceled = datetime(2026, 6, 1, 0, 0, tzinfo=tokyo)
    assert decide_refund(POLICY, 100, START, canceled).rule == "full"
    assert decide_refund(POLICY, 100, START, canceled + SECOND).rule == "partial"


def test_explanations_name_the_policy_numbers():
    policy = RefundPolicy(48, 25)
    assert RefundDecision(10, "full").explain(policy) == "canceled at least 48 h before the start: full refund"
    assert RefundDecision(10, "partial").explain(policy) == "canceled less than 48 h before the start: 25% refund"
    assert RefundDecision(0, "none").explain(policy) == "canceled after the start: no refund"
    assert RefundDecision(10, "host_canceled").explain(policy) == "the builder canceled: full refund"


@pytest.mark.parametrize("hours,percent,message", [
    (-1, 50, "full_refund_hours cannot be negative"),
    (24, -1, "partial_percent must be between 0 and 100"),
    (24, 101, "partial_percent must be between 0 and 100"),
])
def test_invalid_policies_are_refused(hours, percent, message):
    with pytest.raises(ValueError) as refused:
        RefundPolicy(full_refund_hours=hours, partial_percent=percent)
    assert str(refused.value) == message


# ---------------------------------------------------------------- which policy applies
def test_session_type_without_override_gets_the_global_default(settings_env):
    settings_env(REFUND_FULL_HOURS=48, REFUND_PARTIAL_PERCENT=25)
    policy = policy_for(SessionType(refund_full_hours=None, refund_partial_percent=None))
    assert policy == RefundPolicy(full_refund_hours=48, partial_percent=25)


def test_built_in_global_default_is_24_hours_and_half(settings_env):
    policy = policy_for(SessionType(refund_full_hours=None, refund_partial_percent=None))
    assert policy == RefundPolicy(full_refund_hours=24, partial_percent=50)


def test_session_type_override_wins_over_the_global_default(settings_env):
    settings_env(REFUND_FULL_HOURS=48, REFUND_PARTIAL_PERCENT=25)
    policy = policy_for(SessionType(refund_full_hours=12, refund_partial_percent=75))
    assert policy == RefundPolicy(full_refund_hours=12, partial_percent=75)


def test_zero_overrides_are_used_not_mistaken_for_missing(settings_env):
    settings_env(REFUND_FULL_HOURS=48, REFUND_PARTIAL_PERCENT=25)
    policy = policy_for(SessionType(refund_full_hours=0, refund_partial_percent=0))
    assert policy == RefundPolicy(full_refund_hours=0, partial_percent=0)


def test_one_field_overridden_takes_the_other_from_the_default(settings_env):
    settings_env(REFUND_FULL_HOURS=48, REFUND_PARTIAL_PERCENT=25)
    hours_only = policy_for(SessionType(refund_full_hours=6, refund_partial_percent=None))
    percent_only = policy_for(SessionType(refund_full_hours=None, refund_partial_percent=90))
    assert hours_only == RefundPolicy(6, 25)
    assert percent_only == RefundPolicy(48, 90)


@pytest.mark.parametrize("name,value", [("REFUND_PARTIAL_PERCENT", "101"), ("REFUND_PARTIAL_PERCENT", "-1"),
                                        ("REFUND_FULL_HOURS", "-2")])
def test_invalid_global_policy_is_a_configuration_error(settings_env, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert name in str(refused.value)


@pytest.mark.parametrize("hours,percent,message", [
    (None, 150, "the partial refund percentage must be between 0 and 100"),
    (None, -5, "the partial refund percentage must be between 0 and 100"),
    (-3, None, "the full-refund window cannot be negative"),
])
def test_invalid_session_type_policy_is_refused_when_pricing(session, hours, percent, message):
    builder = make_builder(session)
    with pytest.raises(DomainError) as refused:
        catalog.set_price(session, builder_id=builder.id, event_type={"uri": "https://calendly.test/event_types/x"},
                          amount_cents=1000, currency="USD", refund_full_hours=hours,
                          refund_partial_percent=percent)
    assert str(refused.value) == message
    assert count(session, SessionType) == 0
