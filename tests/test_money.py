"""Money is integer minor units with a currency; times on the database are aware UTC."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from core.db import session_scope
from core.models import Booking
from core.money import Money, MoneyError, format_amount, minor_unit_exponent, normalize_currency
from tests.factories import make_booking


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("text,currency,minor,formatted", [
    ("12.50", "USD", 1250, "$12.50"),
    ("0.01", "USD", 1, "$0.01"),
    ("1234567.89", "USD", 123456789, "$1,234,567.89"),
    ("49", "USD", 4900, "$49.00"),
    ("500", "JPY", 500, "¥500"),
    ("1500000", "JPY", 1500000, "¥1,500,000"),
    ("0", "JPY", 0, "¥0"),
    ("12.00", "EUR", 1200, "€12.00"),
    ("12", "CHF", 1200, "CHF 12.00"),
    ("1000", "KRW", 1000, "KRW 1,000"),
])
def test_major_amount_round_trips_through_minor_units(text, currency, minor, formatted):
    money = Money.from_major(text, currency)
    assert money == Money(minor, currency)
    assert money.format() == formatted == str(money)
    assert money.major == Decimal(text)
    assert Money.from_major(money.major, currency) == money


def test_zero_decimal_currencies_have_no_minor_unit():
    assert minor_unit_exponent("JPY") == 0
    assert minor_unit_exponent("krw") == 0
    assert minor_unit_exponent("USD") == 2
    assert Money(500, "JPY").major == Decimal(500)
    assert Money.from_major("500.0", "JPY") == Money(500, "JPY")  # a zero fraction is still whole yen


@pytest.mark.parametrize("text,currency", [("500.5", "JPY"), ("12.345", "USD"), ("0.001", "EUR")])
def test_more_decimals_than_the_currency_has_is_refused(text, currency):
    with pytest.raises(MoneyError, match="more decimals than"):
        Money.from_major(text, currency)


def test_from_major_accepts_decimal_and_int():
    assert Money.from_major(Decimal("19.99"), "usd") == Money(1999, "USD")
    assert Money.from_major(20, "USD") == Money(2000, "USD")
    assert Money.from_major("-5.25", "USD").amount == -525


@pytest.mark.parametrize("value", ["abc", "", "12,50", "NaN", "Infinity", "-inf", "1e400000000"])
def test_text_that_is_not_a_finite_amount_is_refused(value):
    with pytest.raises(MoneyError):
        Money.from_major(value, "USD")


def test_format_amount_formats_minor_units():
    assert format_amount(4900, "USD") == "$49.00"
    assert format_amount(5000, "JPY") == "¥5,000"
    assert format_amount(-250, "GBP") == "£-2.50"


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("amount", [12.5, 12.0, Decimal("12"), "12", None])
def test_non_integer_amounts_are_refused(amount):
    with pytest.raises(MoneyError, match="integer number of minor units"):
        Money(amount, "USD")


def test_float_major_amounts_are_refused():
    with pytest.raises(MoneyError, match="not a float"):
        Money.from_major(12.5, "USD")


@pytest.mark.parametrize("amount", [True, False])
def test_bools_are_refused_as_amounts(amount):
    with pytest.raises(MoneyError):
        Money(amount, "USD")


@pytest.mark.parametrize("operation", [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a < b, lambda a, b: a <= b,
])
def test_mixing_currencies_raises(operation):
    with pytest.raises(MoneyError, match="cannot combine USD with EUR"):
        operation(Money(100, "USD"), Money(100, "EUR"))


def test_combining_money_with_a_plain_number_raises():
    with pytest.raises(MoneyError, match="cannot combine Money with int"):
        Money(100, "USD") + 5


def test_same_currency_arithmetic_and_comparison():
    assert Money(150, "USD") + Money(50, "usd") == Money(200, "USD")
    assert Money(150, "USD") - Money(200, "USD") == Money(-50, "USD")
    assert Money(1, "JPY") < Money(2, "JPY")
    assert Money(2, "JPY") <= Money(2, "JPY")
    assert not Money(3, "JPY") <= Money(2, "JPY")


@pytest.mark.parametrize("code", ["US", "USDD", "", "12A", "U$D", "ÄBC", "usd ", None, 840])
def test_bad_currency_codes_are_refused(code):
    with pytest.raises(MoneyError, match="three-letter ISO code"):
        normalize_currency(code)
    with pytest.raises(MoneyError):
        Money(100, code)


def test_currency_codes_are_normalised_to_upper_case():
    assert normalize_currency("eur") == "EUR"
    assert Money(1, "jpy").currency == "JPY"


def test_money_is_immutable_and_a_value_error():
    money = Money(100, "USD")
    with pytest.raises(AttributeError):
        money.amount = 200  # type: ignore[misc]
    assert issubclass(MoneyError, ValueError)


# ---------------------------------------------------------------- UTCDateTime on the database
def test_aware_datetimes_round_trip_as_aware_utc(engine):
    tokyo = timezone(timedelta(hours=9))
    start = datetime(2026, 3, 29, 10, 30, 15, 123456, tzinfo=tokyo)  # 01:30:15.123456 UTC
    with session_scope(engine) as session:
        booking_id = make_booking(session, start_time=start).id

    with session_scope(engine, read_only=True) as session:
        stored = session.get(Booking, booking_id).start_time
    assert stored == start
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert (stored.year, stored.month, stored.day, stored.hour, stored.minute, stored.second,
            stored.microsecond) == (2026, 3, 29, 1, 30, 15, 123456)


def test_comparisons_on_the_database_use_the_instant_not_the_wall_clock(engine):
    new_york = timezone(timedelta(hours=-5))
    tokyo = timezone(timedelta(hours=9))
    with session_scope(engine) as session:
        early = make_booking(session, start_time=datetime(2026, 1, 10, 9, 0, tzinfo=tokyo)).id   # 00:00 UTC
        late = make_booking(session, start_time=datetime(2026, 1, 10, 0, 0, tzinfo=new_york)).id  # 05:00 UTC
    with session_scope(engine, read_only=True) as session:
        ordered = session.execute(select(Booking.id).order_by(Booking.start_time)).scalars().all()
        before_two_utc = session.execute(
            select(Booking.id).where(Booking.start_time < datetime(2026, 1, 10, 2, 0, tzinfo=timezone.utc))
        ).scalars().all()
    assert ordered == [early, late]
    assert before_two_utc == [early]


def test_naive_datetimes_are_refused_on_write(engine):
    with session_scope(engine) as session:
        booking_id = make_booking(session).id
    with pytest.raises(StatementError) as refused:
        with session_scope(engine) as session:
            session.get(Booking, booking_id).start_time = datetime(2026, 1, 1, 12, 0)
            session.flush()
    assert isinstance(refused.value.orig, ValueError)
    assert "naive datetimes are refused" in str(refused.value.orig)
    with session_scope(engine, read_only=True) as session:
        assert session.get(Booking, booking_id).start_time != datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def test_naive_datetimes_are_refused_in_queries(engine):
    with pytest.raises(StatementError, match="naive datetimes are refused"):
        with session_scope(engine, read_only=True) as session:
            session.execute(select(Booking).where(Booking.start_time < datetime(2026, 1, 1))).all()


def test_null_datetimes_stay_null(engine):
    with session_scope(engine) as session:
        booking_id = make_booking(session, "PENDING_SCHEDULING").id
    with session_scope(engine, read_only=True) as session:
        booking = session.get(Booking, booking_id)
        assert booking.start_time is None and booking.hold_expires_at is None
        assert booking.created_at.tzinfo is not None
