"""Default definition, snapshots, calibration and expected loss on small hand-built data."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from tests.seed import make_frames

from riskdesk.assess.calibration import IsotonicCalibrator, PlattCalibrator, calibrator_from_dict
from riskdesk.assess.loss import LgdPolicy, expected_loss
from riskdesk.assess.training import (
    DefaultDefinition,
    build_snapshots,
    default_dates,
    labelled,
    out_of_time_split,
    train_portfolio_model,
)

D = pd.Timestamp


def books():  # type: ignore[no-untyped-def]
    """C1 leaves a 1000 invoice unpaid (due 2025-03-01); C2 pays late but within 90 days;
    C3 has a bankruptcy signal; C4 leaves 50 unpaid (immaterial)."""
    customers = [
        {"customer_id": i, "external_id": f"C{i}", "name": f"c{i}", "currency": "EUR"}
        for i in (1, 2, 3, 4)
    ]
    inv = []
    for i, (cid, amount) in enumerate([(1, 1000.0), (2, 1000.0), (3, 500.0), (4, 50.0)]):
        inv.append(
            {
                "invoice_id": 10 + i,
                "customer_id": cid,
                "issue_date": D("2025-01-30"),
                "due_date": D("2025-03-01"),
                "amount": amount,
                "currency": "EUR",
                "status": "open",
                "disputed": False,
            }
        )
    payments = [
        {
            "payment_id": 1,
            "customer_id": 2,
            "payment_date": D("2025-05-01"),
            "amount": 1000.0,
            "currency": "EUR",
        }
    ]
    allocations = [
        {
            "allocation_id": 1,
            "payment_id": 1,
            "invoice_id": 11,
            "amount": 1000.0,
            "payment_date": D("2025-05-01"),
            "customer_id": 2,
        }
    ]
    signals = [
        {
            "signal_id": 1,
            "customer_id": 3,
            "kind": "bankruptcy",
            "signal_date": D("2025-02-10"),
            "value": None,
        }
    ]
    return make_frames(
        customers=customers,
        invoices=inv,
        payments=payments,
        allocations=allocations,
        external_signals=signals,
    )


def test_default_dates_follow_the_definition() -> None:
    dd = default_dates(books(), as_of=date(2025, 12, 31))
    assert dd.loc[1] == D("2025-05-31")  # due 03-01 + 91 days, still open and material
    assert 2 not in dd.index  # paid 61 days late: not a default
    assert dd.loc[3] == D("2025-02-10")  # bankruptcy signal
    assert 4 not in dd.index  # 50 is below the material amount
    # a trigger after the end of what is known is not a default yet
    assert 1 not in default_dates(books(), as_of=date(2025, 5, 30)).index
    strict = default_dates(
        books(), DefaultDefinition(material_amount=10.0), as_of=date(2025, 12, 31)
    )
    assert 4 in strict.index


def test_snapshots_label_the_next_12_months_and_drop_customers_in_default() -> None:
    snaps = build_snapshots(
        books(),
        [date(2025, 1, 31), date(2025, 4, 30), date(2025, 6, 30)],
        features=["max_days_overdue"],
        as_of=date(2025, 12, 31),
    )
    lab = snaps.set_index(["snapshot_date", "customer_id"])["default_12m"]
    assert lab[(D("2025-01-31"), 1)] == 1 and lab[(D("2025-01-31"), 2)] == 0
    assert lab[(D("2025-01-31"), 3)] == 1
    assert (D("2025-04-30"), 3) not in lab.index  # already in default (bankruptcy)
    assert (D("2025-06-30"), 1) not in lab.index  # defaulted on 05-31
    train, test = out_of_time_split(snaps, date(2025, 4, 1))
    assert train["snapshot_date"].max() < D("2025-04-01") <= test["snapshot_date"].min()


def test_portfolio_training_needs_enough_defaults() -> None:
    tr = train_portfolio_model(books(), date(2026, 12, 31))
    assert not tr.ok and "bad snapshots" in tr.reason


def test_labelled_refuses_an_unclear_target() -> None:
    df = pd.DataFrame({"x": [1, 2, 3], "t": ["good", "bad", "good"]})
    with pytest.raises(ValueError, match="bad-value"):
        labelled(df, "t")
    X, y = labelled(df, "t", "bad")
    assert list(y) == [0, 1, 0] and list(X.columns) == ["x"]
    with pytest.raises(KeyError):
        labelled(df, "missing", "bad")


@pytest.mark.parametrize("cal", [PlattCalibrator(), IsotonicCalibrator()])
def test_calibrated_pd_falls_as_the_score_rises_and_survives_json(cal) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    score = rng.normal(600, 50, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp((score - 560) / 25))).astype(int)
    cal.fit(score, y)
    grid = np.linspace(450, 750, 50)
    p = cal.predict(grid)
    assert (np.diff(p) <= 1e-12).all() and p[0] > 0.5 > p[-1]
    again = calibrator_from_dict(cal.to_dict())
    assert np.array_equal(again.predict(grid), p)
    # calibrated on average: mean PD close to the observed bad rate
    assert cal.predict(score).mean() == pytest.approx(y.mean(), abs=0.01)


def test_expected_loss_uses_the_most_specific_lgd() -> None:
    policy = LgdPolicy(default=0.5, by_industry={"retail": 0.6}, insured=0.1)
    ind = pd.Series(["retail", "steel", "retail"])
    ins = pd.Series([False, False, True])
    lgd = policy.lgd(ind, ins)
    assert list(lgd) == [0.6, 0.5, 0.1]
    el = expected_loss(np.array([0.1, 0.2, 0.1]), lgd, np.array([1000.0, 500.0, -5.0]))
    assert list(el) == pytest.approx([60.0, 50.0, 0.0])
    with pytest.raises(ValueError):
        LgdPolicy(default=1.5)
