"""Expert scorecard: bands, weights, score → PD → grade, indicators from the data."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from tests.seed import customer_with_invoice

from riskdesk.analytics.frames import load_frames
from riskdesk.assess import expert_scorecard as es
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Customer, Invoice

CARD = es.default_scorecard()
BEST = {
    "max_days_overdue": 0,
    "dbt_wavg_paid_180d": -2,
    "overdue_share": 0.0,
    "tenure_years": 8,
    "bureau_score": 90,
    "order_trend_ratio": 1.0,
    "negative_signals_365d": 0,
    "management_quality": 5,
}
WORST = {
    "max_days_overdue": 200,
    "dbt_wavg_paid_180d": 90,
    "overdue_share": 0.9,
    "tenure_years": 0.5,
    "bureau_score": 10,
    "order_trend_ratio": 0.1,
    "negative_signals_365d": 4,
    "management_quality": 1,
}


def test_default_scorecard_weights_sum_to_one_and_anchor_the_pd() -> None:
    assert sum(CARD.weights().values()) == pytest.approx(1.0)
    assert CARD.pd_for_score(0.0) == pytest.approx(0.4)
    assert CARD.pd_for_score(100.0) == pytest.approx(0.001)


def test_best_and_worst_customers_land_at_the_ends_of_the_scale() -> None:
    out = CARD.score(pd.DataFrame([BEST, WORST], index=[1, 2]))
    assert out.loc[1, "score"] == pytest.approx(100.0)
    assert out.loc[1, "grade"] == 1
    # the worst customer scores the lowest band of every indicator
    floor = sum(i.weight * min(i.points) for i in CARD.indicators)
    assert out.loc[2, "score"] == pytest.approx(floor)
    assert floor < 5 and out.loc[2, "grade"] >= 9


def test_band_upper_bounds_are_inclusive_and_missing_values_get_missing_points() -> None:
    vals = pd.DataFrame({"max_days_overdue": [15.0, 16.0, np.nan]})
    out = CARD.score(vals)
    assert list(out["points_max_days_overdue"]) == [80.0, 60.0, 70.0]


def test_worse_payment_behaviour_never_improves_the_score() -> None:
    base = dict(BEST)
    scores = []
    for dpd in (0, 10, 20, 45, 75, 120):
        base["max_days_overdue"] = dpd
        scores.append(float(CARD.score(pd.DataFrame([base]))["score"].iloc[0]))
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]


def test_ahp_weights_replace_the_default_weights() -> None:
    card = es.with_weights(CARD, {"max_days_overdue": 3, "bureau_score": 1})
    assert card.weights()["max_days_overdue"] == pytest.approx(0.75)
    assert card.weights()["tenure_years"] == 0.0
    with pytest.raises(es.ScorecardConfigError, match="unknown"):
        es.with_weights(CARD, {"shoe_size": 1})


def test_invalid_configuration_is_refused() -> None:
    cfg = es.default_config()
    cfg["indicators"][0]["bands"][-1]["upto"] = 500
    with pytest.raises(es.ScorecardConfigError, match="last band"):
        es.from_dict(cfg)
    cfg = es.default_config()
    cfg["pd_at_score_0"] = 0.0001
    with pytest.raises(es.ScorecardConfigError):
        es.from_dict(cfg)


def test_portfolio_scoring_from_the_database_ranks_a_late_payer_worse(sqlite_url: str) -> None:
    on = date(2026, 11, 30)
    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        good = Customer(external_id="G", name="Good", currency="EUR")
        late = Customer(external_id="L", name="Late", currency="EUR")
        s.add_all([good, late])
        s.flush()
        for i, (c, due_days_ago) in enumerate(((good, -20), (late, 120))):
            s.add(
                Invoice(
                    external_id=f"I{i}",
                    customer_id=c.id,
                    issue_date=on - timedelta(days=due_days_ago + 30),
                    due_date=on - timedelta(days=due_days_ago),
                    amount=1000,
                    currency="EUR",
                )
            )
        ids = (good.id, late.id)
    out = es.score_portfolio(load_frames(eng), on)
    eng.dispose()
    assert out.loc[ids[1], "max_days_overdue"] == 120
    assert out.loc[ids[1], "overdue_share"] == pytest.approx(1.0)
    assert out.loc[ids[0], "score"] > out.loc[ids[1], "score"]
    assert out.loc[ids[0], "grade"] < out.loc[ids[1], "grade"]


def test_fallback_indicators_agree_on_overdue_days(sqlite_url: str) -> None:
    """Without the feature module the scorecard computes its basic indicators itself."""
    on = date(2026, 11, 30)
    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        c, _ = customer_with_invoice(
            s,
            external_id="L",
            name="Late",
            issue=on - timedelta(days=80),
            due=on - timedelta(days=50),
            amount=500,
        )
        cid = c.id
    feats = es._basic_features(load_frames(eng), on)
    eng.dispose()
    assert feats.loc[cid, "max_days_overdue"] == 50
    assert feats.loc[cid, "overdue_balance"] == feats.loc[cid, "open_invoice_balance"] == 500
    assert feats.loc[cid, "tenure_days"] == 80
