"""Money as integer minor units with an ISO 4217 currency. Never a float.

Stripe's zero-decimal currencies (JPY, KRW, ...) have no minor unit: 500 JPY is `Money(500, "JPY")`.
Amounts of different currencies are never added together; doing so raises.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# Stripe's list of zero-decimal currencies (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL_CURRENCIES = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()
)
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


class MoneyError(ValueError):
    """An amount or currency that cannot be money."""


def normalize_currency(code: str) -> str:
    """'usd' → 'USD'; anything that is not three ASCII letters is refused."""
    if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isalpha():
        raise MoneyError(f"currency must be a three-letter ISO code, got {code!r}")
    return code.upper()


def minor_unit_exponent(currency: str) -> int:
    return 0 if normalize_currency(currency) in ZERO_DECIMAL_CURRENCIES else 2


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass and float is the classic money bug: refuse both.
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise MoneyError(f"amount must be an integer number of minor units, got {self.amount!r}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    @classmethod
    def from_major(cls, value: str | Decimal | int, currency: str) -> "Money":
        """Parse a human amount ('12.50' USD → 1250); more decimals than the currency has is an error."""
        if isinstance(value, float):
            raise MoneyError("use a string or Decimal for amounts, not a float")
        exponent = minor_unit_exponent(currency)
        try:
            decimal = Decimal(str(value))
        except Exception:
            raise MoneyError(f"not an amount: {value!r}") from None
        if not decimal.is_finite():
            raise MoneyError(f"not an amount: {value!r}")
        try:
            minor = decimal.scaleb(exponent)
            whole = minor == minor.to_integral_value()
        except ArithmeticError:  # decimal.Overflow for absurd exponents such as '1e400000000'
            raise MoneyError(f"not an amount: {value!r}") from None
        if not whole:
            raise MoneyError(f"{value} has more decimals than {currency.upper()} allows")
        return cls(int(minor), currency)

    def _same_currency(self, other: "Money") -> None:
        if not isinstance(other, Money):
            raise MoneyError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: "Money") -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: "Money") -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    @property
    def major(self) -> Decimal:
        return Decimal(self.amount).scaleb(-minor_unit_exponent(self.currency))

    def format(self) -> str:
        """'$12.50', '¥500', 'CHF 12.00' — for people, never for arithmetic."""
        exponent = minor_unit_exponent(self.currency)
        number = f"{self.major:,.{exponent}f}"
        symbol = _SYMBOLS.get(self.currency)
        return f"{symbol}{number}" if symbol else f"{self.currency} {number}"

    def __str__(self) -> str:
        return self.format()


def format_amount(amount: int, currency: str) -> str:
    return Money(amount, currency).format()
