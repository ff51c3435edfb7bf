"""The synthetic portfolio generator: determinism, plausibility and the behaviour model."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd
import pytest

from riskdesk.demo.generator import generate

N = 300


def _digest(portfolio) -> str:
    h = hashlib.sha256()
    for name, table in sorted(portfolio.tables.items()):
        df = table.to_pandas()
        h.update(name.encode())
        h.update(",".join(df.columns).encode())
        h.update(pd.util.hash_pandas_object(df, index=False).values.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module", params=["manufacturer", "retailer"])
def portfolio(request):
    return generate(request.param, N, seed=11)


def _frames(p) -> dict[str, pd.DataFrame]:
    return {name: t.to_pandas(date_as_object=False) for name, t in p.tables.items()}


def test_same_seed_gives_identical_tables():
    a = generate("manufacturer", 120, seed=5)
    b = generate("manufacturer", 120, seed=5)
    assert _digest(a) == _digest(b)


def test_different_seed_gives_different_tables():
    a = generate("manufacturer", 120, seed=5)
    b = generate("manufacturer", 120, seed=6)
    assert _digest(a) != _digest(b)


def test_default_rate_is_a_few_percent_a_year(portfolio):
    f = _frames(portfolio)
    defaulted = (f["customers"]["status"] == "defaulted").sum()
    first = f["orders"]["order_date"].min()
    years = (pd.Timestamp(portfolio.as_of) - first).days / 365.25
    rate = defaulted / (len(f["customers"]) * years)
    assert 0.01 <= rate <= 0.10, rate


def test_nothing_is_dated_after_as_of():
    as_of = date(2025, 6, 15)
    f = _frames(generate("retailer", 150, seed=3, as_of=as_of))
    limit = pd.Timestamp(as_of)
    for table, col in [
        ("orders", "order_date"),
        ("invoices", "issue_date"),
        ("payments", "payment_date"),
        ("credit_notes", "issue_date"),
        ("external_signals", "signal_date"),
        ("market_indicators", "period_date"),
        ("fx_rates", "rate_date"),
    ]:
        assert (f[table][col] <= limit).all(), table
    assert f["orders"]["order_date"].max() >= limit - pd.Timedelta(days=31)


def test_payments_slow_down_and_become_partial_before_default(portfolio):
    f = _frames(portfolio)
    truth = f["demo_truth"]
    observed = truth[truth["default_date"] <= pd.Timestamp(portfolio.as_of)]
    inv = f["invoices"].merge(observed[["customer_id", "default_date"]], on="customer_id")
    alloc = f["payment_allocations"].merge(
        f["payments"][["id", "payment_date"]].rename(columns={"id": "payment_id"}), on="payment_id"
    )
    paid = alloc.merge(
        inv[["id", "due_date", "default_date"]].rename(columns={"id": "invoice_id"}),
        on="invoice_id",
    )
    paid["dbt"] = (paid["payment_date"] - paid["due_date"]).dt.days
    before = paid["default_date"] - paid["payment_date"]
    late = paid[(before > pd.Timedelta(0)) & (before <= pd.Timedelta(days=182))]
    early = paid[(before > pd.Timedelta(days=365)) & (before <= pd.Timedelta(days=547))]
    assert len(late) > 20 and len(early) > 20
    assert late["dbt"].mean() > early["dbt"].mean() + 10
    # the share of invoices paid only in part rises too
    inv_before = inv["default_date"] - inv["issue_date"]
    recent = inv[(inv_before > pd.Timedelta(0)) & (inv_before <= pd.Timedelta(days=182))]
    older = inv[(inv_before > pd.Timedelta(days=365)) & (inv_before <= pd.Timedelta(days=547))]
    assert (recent["status"] != "paid").mean() > (older["status"] != "paid").mean() + 0.2


def test_defaulted_customers_stop_ordering_and_paying(portfolio):
    f = _frames(portfolio)
    truth = f["demo_truth"].set_index("customer_id")
    cust = f["customers"].set_index("id")
    observed = truth["default_date"] <= pd.Timestamp(portfolio.as_of)
    assert (cust.loc[observed[observed].index, "status"] == "defaulted").all()
    assert (cust.loc[observed[~observed].index, "status"] == "active").all()
    orders = f["orders"].join(truth["default_date"], on="customer_id")
    assert not (orders["order_date"] >= orders["default_date"]).any()
    pays = f["payments"].join(truth["default_date"], on="customer_id")
    assert not (pays["payment_date"] >= pays["default_date"]).any()
    # their last invoices stay open
    inv = f["invoices"].join(truth["default_date"], on="customer_id")
    near = inv[(inv["default_date"] - inv["issue_date"]).dt.days.between(0, 30)]
    assert len(near) > 0 and (near["status"] != "paid").all()


def test_orders_shrink_before_default(portfolio):
    f = _frames(portfolio)
    truth = f["demo_truth"]
    start = f["orders"]["order_date"].min()
    # defaulters with a full year of history before their warning period
    seen = truth[
        (truth["default_date"] <= pd.Timestamp(portfolio.as_of))
        & (truth["default_date"] >= start + pd.Timedelta(days=490))
    ]
    o = f["orders"].merge(seen[["customer_id", "default_date"]], on="customer_id")
    before = (o["default_date"] - o["order_date"]).dt.days
    recent = o[before.between(1, 120)].groupby("customer_id")["amount"].sum()
    year_ago = o[before.between(366, 485)].groupby("customer_id")["amount"].sum()
    ratio = (recent.reindex(year_ago.index, fill_value=0) / year_ago).dropna()
    assert len(ratio) >= 5
    assert ratio.median() < 0.7, ratio.describe()


def test_invoice_status_matches_payments_and_credit_notes(portfolio):
    f = _frames(portfolio)
    inv = f["invoices"].set_index("id")
    paid = f["payment_allocations"].groupby("invoice_id")["amount"].sum()
    credited = f["credit_notes"].groupby("invoice_id")["amount"].sum()
    settled = paid.reindex(inv.index, fill_value=0) + credited.reindex(inv.index, fill_value=0)
    full = np.isclose(settled, inv["amount"], atol=0.011)
    assert (inv.loc[full, "status"] == "paid").all()
    assert (inv.loc[~full & (settled > 0), "status"] == "partially_paid").all()
    assert (inv.loc[settled == 0, "status"] == "open").all()
    assert (settled <= inv["amount"] + 0.011).all()
    # a payment is the sum of its allocations, in the customer's currency
    pay = f["payments"].set_index("id")
    sums = f["payment_allocations"].groupby("payment_id")["amount"].sum()
    assert np.allclose(sums.reindex(pay.index), pay["amount"], atol=0.011)
    cur = f["customers"].set_index("id")["currency"]
    assert (inv["currency"] == cur.reindex(inv["customer_id"]).to_numpy()).all()


def test_groups_and_owners_are_consistent(portfolio):
    c = _frames(portfolio)["customers"].set_index("id")
    members = c[c["parent_id"].notna()]
    assert len(members) > 0
    parents = c.loc[members["parent_id"].astype(int)]
    assert (parents["group_code"].to_numpy() == members["group_code"].to_numpy()).all()
    assert (parents["owner"].to_numpy() == members["owner"].to_numpy()).all()
    assert c["owner"].str.startswith("sales_").all()
    assert 5 <= c["industry"].nunique() <= 6
    assert set(c["currency"]) <= {"CNY", "EUR", "USD"}


def test_a_downturn_shows_in_the_industry_index(portfolio):
    m = _frames(portfolio)["market_indicators"]
    drops = {}
    for _code, g in m[m["industry"].notna()].groupby("code"):
        v = g.sort_values("period_date")["value"].to_numpy()
        drops[g["industry"].iloc[0]] = 1 - (v / np.maximum.accumulate(v)).min()
    down = portfolio.summary["downturn_industries"]
    assert 1 <= len(down) <= 2
    for ind in down:
        assert drops[ind] > 0.12, drops
    assert m[m["region"].notna()]["code"].str.startswith("IDX_REGION_").all()


def test_bureau_scores_drop_before_default_and_contracts_get_breached(portfolio):
    f = _frames(portfolio)
    truth = f["demo_truth"]
    s = f["external_signals"]
    scores = s[s["kind"] == "bureau_score"].merge(truth, on="customer_id")
    assert scores["value"].between(0, 100).all()
    to_default = (scores["default_date"] - scores["signal_date"]).dt.days
    close = scores[to_default.between(0, 120)]["value"].mean()
    healthy = scores[scores["default_date"].isna()]["value"].mean()
    assert close < healthy - 15
    assert truth["breaches_contract"].any()
    breached = (
        f["contracts"]
        .set_index("customer_id")
        .loc[truth.loc[truth["breaches_contract"], "customer_id"]]
    )
    assert breached["min_volume_amount"].notna().all()
