"""Money: a Decimal amount with a currency, and dated FX conversion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_DOCUMENT_AMOUNT = Decimal(10) ** 16
"""Amounts of business documents (orders, invoices, payments, credit notes) are below this:
the database holds them as NUMERIC(18, 2)."""


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined without conversion."""


def to_decimal(value: object) -> Decimal:
    """Parse a number given as str/int/Decimal (floats are refused: they are not exact)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise ValueError("amounts must be given as decimal strings, not floats")
    if isinstance(value, str):
        try:
            d = Decimal(value.strip().replace(",", "")) if value.strip() else None
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal number: {value!r}") from exc
        if d is None or not d.is_finite():
            raise ValueError(f"not a decimal number: {value!r}")
        return d
    raise ValueError(f"not a decimal number: {value!r}")


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency (ISO 4217 code)."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            object.__setattr__(self, "amount", to_decimal(self.amount))
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(f"not an ISO currency code: {self.currency!r}")
        object.__setattr__(self, "currency", self.currency.upper())

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal("0"), currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * Decimal(factor), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.amount <= other.amount

    def rounded(self) -> Money:
        return Money(self.amount.quantize(CENT, rounding=ROUND_HALF_EVEN), self.currency)

    def __str__(self) -> str:
        return f"{self.amount.quantize(CENT):,} {self.currency}"


class MissingRate(LookupError):
    """No FX rate is known for a currency pair on or before a date."""


class FxTable:
    """Dated FX rates: ``rate(base, quote, on)`` uses the latest rate on or before ``on``.

    A rate means 1 unit of ``base`` = ``rate`` units of ``quote``; the inverse pair is derived.
    """

    def __init__(self, rates: list[tuple[date, str, str, Decimal]] | None = None) -> None:
        self._rates: dict[tuple[str, str], list[tuple[date, Decimal]]] = {}
        for on, base, quote, rate in rates or []:
            self.add(on, base, quote, rate)

    def add(self, on: date, base: str, quote: str, rate: Decimal) -> None:
        if rate <= 0:
            raise ValueError("an FX rate must be positive")
        self._rates.setdefault((base.upper(), quote.upper()), []).append((on, rate))
        self._rates[(base.upper(), quote.upper())].sort()

    def rate(self, base: str, quote: str, on: date) -> Decimal:
        base, quote = base.upper(), quote.upper()
        if base == quote:
            return Decimal(1)
        direct = self._latest((base, quote), on)
        if direct is not None:
            return direct
        inverse = self._latest((quote, base), on)
        if inverse is not None:
            return Decimal(1) / inverse
        raise MissingRate(f"no {base}/{quote} rate on or before {on.isoformat()}")

    def _latest(self, pair: tuple[str, str], on: date) -> Decimal | None:
        best = None
        for d, r in self._rates.get(pair, []):
            if d <= on:
                best = r
            else:
                break
        return best

    def convert(self, money: Money, to: str, on: date) -> Money:
        return Money(money.amount * self.rate(money.currency, to, on), to.upper())
