from datetime import date
from decimal import Decimal

import pytest

from riskdesk.domain import CurrencyMismatch, FxTable, MissingRate, Money, to_decimal


def test_money_adds_exactly_in_one_currency() -> None:
    total = Money(Decimal("0.10"), "EUR") + Money(Decimal("0.20"), "eur")
    assert total == Money(Decimal("0.30"), "EUR")


def test_money_refuses_mixing_currencies() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(Decimal("1"), "EUR") + Money(Decimal("1"), "USD")


def test_floats_are_refused_as_amounts() -> None:
    with pytest.raises(ValueError):
        to_decimal(0.1)
    assert to_decimal("1,234.50") == Decimal("1234.50")


def test_fx_uses_latest_rate_on_or_before_the_date_and_inverts() -> None:
    fx = FxTable(
        [
            (date(2026, 1, 1), "EUR", "CNY", Decimal("7.50")),
            (date(2026, 2, 1), "EUR", "CNY", Decimal("8.00")),
        ]
    )
    assert fx.rate("EUR", "CNY", date(2026, 1, 31)) == Decimal("7.50")
    assert fx.rate("EUR", "CNY", date(2026, 3, 1)) == Decimal("8.00")
    assert fx.convert(Money(Decimal("80"), "CNY"), "EUR", date(2026, 2, 2)).amount == Decimal("10")
    with pytest.raises(MissingRate):
        fx.rate("EUR", "CNY", date(2025, 12, 31))
