"""Point-in-time features on small hand-built portfolios."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from tests.seed import make_frames

from riskdesk.analytics.frames import Frames
from riskdesk.assess.features import (
    CORE_STATE_FEATURES,
    REGISTRY,
    compute_features,
    core_state_features,
    markdown,
)


def D(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


def portfolio(payment_date: str = "2026-03-10") -> Frames:
    """Customer 1 (EUR) buys in EUR and USD; customer 2 has nothing."""
    customers = [
        {
            "customer_id": 1,
            "external_id": "C1",
            "name": "A",
            "currency": "EUR",
            "industry": "steel",
        },
        {"customer_id": 2, "external_id": "C2", "name": "B", "currency": "EUR", "industry": "food"},
    ]
    invoices = [
        # 1000 EUR, due 2026-02-01, paid 400 then 600 -> fully paid on the second payment
        {
            "invoice_id": 10,
            "customer_id": 1,
            "issue_date": D("2026-01-02"),
            "due_date": D("2026-02-01"),
            "amount": 1000.0,
            "currency": "EUR",
            "status": "open",
            "disputed": False,
        },
        # 500 USD issued when 1 EUR = 1.25 USD -> 400 EUR; credit note 100 USD at 1 EUR = 1 USD (100 EUR)
        {
            "invoice_id": 11,
            "customer_id": 1,
            "issue_date": D("2026-02-10"),
            "due_date": D("2026-03-12"),
            "amount": 500.0,
            "currency": "USD",
            "status": "open",
            "disputed": False,
        },
        # 300 EUR, long overdue, untouched
        {
            "invoice_id": 12,
            "customer_id": 1,
            "issue_date": D("2025-10-01"),
            "due_date": D("2025-11-01"),
            "amount": 300.0,
            "currency": "EUR",
            "status": "open",
            "disputed": True,
        },
        # cancelled: never counts
        {
            "invoice_id": 13,
            "customer_id": 1,
            "issue_date": D("2025-10-01"),
            "due_date": D("2025-11-01"),
            "amount": 999.0,
            "currency": "EUR",
            "status": "cancelled",
            "disputed": False,
        },
    ]
    payments = [
        {
            "payment_id": 100,
            "customer_id": 1,
            "payment_date": D("2026-02-01"),
            "amount": 400.0,
            "currency": "EUR",
        },
        {
            "payment_id": 101,
            "customer_id": 1,
            "payment_date": D(payment_date),
            "amount": 600.0,
            "currency": "EUR",
        },
    ]
    allocations = [
        {
            "allocation_id": 1,
            "payment_id": 100,
            "invoice_id": 10,
            "amount": 400.0,
            "payment_date": D("2026-02-01"),
            "customer_id": 1,
        },
        {
            "allocation_id": 2,
            "payment_id": 101,
            "invoice_id": 10,
            "amount": 600.0,
            "payment_date": D(payment_date),
            "customer_id": 1,
        },
    ]
    credit_notes = [
        {
            "credit_note_id": 1,
            "customer_id": 1,
            "invoice_id": 11,
            "issue_date": D("2026-03-01"),
            "amount": 100.0,
            "currency": "USD",
        },
    ]
    orders = [
        {
            "order_id": 1,
            "customer_id": 1,
            "order_date": D("2026-01-20"),
            "amount": 200.0,
            "currency": "EUR",
            "status": "open",
        },
        {
            "order_id": 2,
            "customer_id": 1,
            "order_date": D("2026-03-15"),
            "amount": 80.0,
            "currency": "USD",
            "status": "open",
        },
        {
            "order_id": 3,
            "customer_id": 1,
            "order_date": D("2026-03-20"),
            "amount": 999.0,
            "currency": "EUR",
            "status": "cancelled",
        },
        {
            "order_id": 4,
            "customer_id": 1,
            "order_date": D("2025-11-01"),
            "amount": 50.0,
            "currency": "EUR",
            "status": "open",
        },
    ]
    fx = [
        {"rate_date": D("2026-01-01"), "base": "EUR", "quote": "USD", "rate": 1.25},
        {"rate_date": D("2026-02-20"), "base": "EUR", "quote": "USD", "rate": 1.0},
    ]
    return make_frames(
        customers=customers,
        invoices=invoices,
        payments=payments,
        allocations=allocations,
        credit_notes=credit_notes,
        orders=orders,
        fx_rates=fx,
    )


def test_core_state_features_with_partial_payment_credit_note_and_other_currency() -> None:
    f = core_state_features(portfolio(), date(2026, 3, 31))
    assert list(f.columns) == list(CORE_STATE_FEATURES)
    assert list(f.index) == [1, 2]
    c1 = f.loc[1]
    # inv 10 paid; inv 11: 400 EUR - 100 EUR credit = 300 EUR, 19 dpd; inv 12: 300 EUR, 150 dpd
    assert c1["open_invoice_balance"] == pytest.approx(600.0)
    assert c1["overdue_balance"] == pytest.approx(600.0)
    assert c1["overdue_1_30"] == pytest.approx(300.0)
    assert c1["overdue_31_60"] == 0.0 and c1["overdue_61_90"] == 0.0
    assert c1["overdue_90_plus"] == pytest.approx(300.0)
    assert c1["max_days_overdue"] == 150
    # orders in (2026-01-01, 2026-03-31]: 200 EUR + 80 USD at 1.0 -> 2 orders, 280 EUR
    assert c1["orders_count_90d"] == 2
    assert c1["orders_amount_90d"] == pytest.approx(280.0)
    assert c1["days_since_last_order"] == 16  # the cancelled order on 03-20 does not count
    # inv 10 fully paid on 2026-03-10, 37 days after its due date
    assert c1["dbt_wavg_paid_180d"] == pytest.approx(37.0)
    c2 = f.loc[2]
    assert c2["open_invoice_balance"] == 0.0 and c2["max_days_overdue"] == 0.0
    assert math.isnan(c2["days_since_last_order"]) and math.isnan(c2["dbt_wavg_paid_180d"])


def test_partially_paid_invoice_keeps_its_remaining_balance() -> None:
    f = core_state_features(portfolio(), date(2026, 2, 15))
    # inv 10: 1000 - 400 = 600 open, 14 dpd; inv 11: 400 EUR not yet due; inv 12: 106 dpd
    c1 = f.loc[1]
    assert c1["open_invoice_balance"] == pytest.approx(600 + 400 + 300)
    assert c1["overdue_1_30"] == pytest.approx(600.0)
    assert c1["overdue_90_plus"] == pytest.approx(300.0)
    assert c1["max_days_overdue"] == 106
    assert math.isnan(c1["dbt_wavg_paid_180d"])


def test_a_payment_after_the_as_of_date_is_never_seen() -> None:
    as_of = date(2026, 3, 31)
    later = portfolio(payment_date="2026-05-05")  # the closing payment moves after T
    on_time = compute_features(portfolio(), as_of)
    moved = compute_features(later, as_of)
    assert moved.loc[1, "open_invoice_balance"] == pytest.approx(
        on_time.loc[1, "open_invoice_balance"] + 600.0
    )
    # the same as-of with the payment moved to 2026-03-31 vs 2026-05-05: features as of 03-09
    # (before either closing payment) do not change at all
    early = date(2026, 3, 9)
    a = compute_features(portfolio(payment_date="2026-03-31"), early)
    b = compute_features(later, early)
    pd.testing.assert_frame_equal(a, b)


def test_features_of_one_customer_equal_those_computed_for_all() -> None:
    f = portfolio()
    everyone = compute_features(f, date(2026, 3, 31))
    one = compute_features(f, date(2026, 3, 31), customer_ids=[1])
    pd.testing.assert_series_equal(one.loc[1], everyone.loc[1])


def test_wider_features_on_the_hand_built_portfolio() -> None:
    out = compute_features(portfolio(), date(2026, 3, 31))
    c1 = out.loc[1]
    assert c1["late_share_90d"] == 1.0
    assert c1["partial_share_90d"] == 1.0  # paid in two instalments
    # open orders (not invoiced, not cancelled): 200 EUR + 80 USD + 50 EUR
    assert c1["open_orders_amount"] == pytest.approx(330.0)
    assert c1["exposure"] == pytest.approx(600.0 + 330.0)
    assert c1["disputed_invoices_365d"] == 1
    assert c1["industry"] == "steel"
    assert set(out.columns) == set(REGISTRY)
    numeric = [n for n, f in REGISTRY.items() if f.kind == "numeric"]
    assert all(out[n].dtype == np.float64 for n in numeric)


def test_missing_fx_rate_uses_the_inverse_pair() -> None:
    f = portfolio()
    fx = f.fx_rates.copy()
    fx[["base", "quote"]] = [["USD", "EUR"], ["USD", "EUR"]]
    fx["rate"] = [0.8, 1.0]  # 1 USD = 0.8 EUR is the same as 1 EUR = 1.25 USD
    f.fx_rates = fx
    base = core_state_features(portfolio(), date(2026, 3, 31))
    inv = core_state_features(f, date(2026, 3, 31))
    pd.testing.assert_frame_equal(base, inv)


def test_feature_catalogue_lists_every_feature() -> None:
    md = markdown()
    assert all(f"`{name}`" in md for name in REGISTRY)


def test_contract_minimum_volume_shortfall() -> None:
    f = portfolio()
    f.contracts = make_frames(
        contracts=[
            {
                "contract_id": 7,
                "customer_id": 1,
                "start_date": D("2025-01-01"),
                "end_date": None,
                "min_volume_amount": 1000.0,
                "min_volume_period": "quarter",
                "status": "active",
            },
        ]
    ).contracts
    out = compute_features(
        f, date(2026, 3, 31), names=["contract_volume_shortfall", "contract_breaches"]
    )
    # orders in the last 91 days: 200 EUR + 80 USD (1.0) = 280 of the 1000 minimum
    assert out.loc[1, "contract_volume_shortfall"] == pytest.approx(0.72)
    assert out.loc[1, "contract_breaches"] == 1
    assert math.isnan(out.loc[2, "contract_volume_shortfall"])
    assert out.loc[2, "contract_breaches"] == 0
