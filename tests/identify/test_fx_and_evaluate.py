from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from riskdesk.identify.evaluate import evaluate, month_ends
from riskdesk.identify.fx import convert, rates_both_ways


def test_fx_uses_the_latest_rate_on_or_before_the_date_and_the_inverse_pair() -> None:
    fx = pd.DataFrame(
        {
            "rate_date": pd.to_datetime(["2026-01-01", "2026-03-01"]),
            "base": ["EUR", "EUR"],
            "quote": ["USD", "USD"],
            "rate": [1.1, 1.2],
        }
    )
    rates = rates_both_ways(fx)
    out = convert(
        [100.0, 100.0, 120.0, 50.0, 70.0],
        ["EUR", "EUR", "USD", "CNY", "EUR"],
        ["USD", "USD", "EUR", "EUR", "EUR"],
        pd.to_datetime(["2026-02-01", "2026-03-15", "2026-03-15", "2026-03-15", "2026-03-15"]),
        rates,
    )
    assert out[0] == pytest.approx(110.0) and out[1] == pytest.approx(120.0)
    assert out[2] == pytest.approx(100.0)  # inverse of EUR/USD
    assert out[3] == 50.0  # no CNY rate: kept unconverted rather than dropped
    assert out[4] == 70.0


def test_month_ends_end_on_the_evaluation_date() -> None:
    assert month_ends(date(2026, 1, 15), date(2026, 3, 20)) == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 20),
    ]


def test_evaluation_counts_early_warnings_and_false_alarms(book) -> None:
    end = date(2026, 6, 30)
    warned, late, healthy, noisy = (book.customer() for _ in range(4))
    for c in (warned, late, healthy, noisy):
        for k in range(30):  # two and a half years of monthly orders
            book.order(c, end - timedelta(days=30 * k + 3), 1000)
    book.signal(warned, "legal_event", date(2025, 12, 1))  # 6 months before its default
    book.signal(late, "legal_event", date(2026, 4, 20))  # 11 days before its default
    book.signal(noisy, "legal_event", date(2026, 3, 1))  # never defaults
    truth = pd.DataFrame(
        {
            "customer_id": [warned, late, healthy, noisy],
            "default_date": pd.to_datetime(["2026-06-01", "2026-05-01", None, None]),
        }
    )
    r = evaluate(book.frames(), truth, end)
    assert (r.defaulters, r.warned, r.warned_share) == (2, 1, 0.5)
    assert (r.healthy, r.flagged, r.false_alarm_share) == (2, 1, 0.5)
    assert r.by_manifestation["external.legal_event"]["defaulters_warned_share"] == 0.5
    # first warnings at the 2025-12-31 run (152 days ahead) and the 2026-04-30 run (1 day)
    assert r.median_lead_days == pytest.approx((152 + 1) / 2)
