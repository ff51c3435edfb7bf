"""Customer features, each defined once, computable as of any date from what was known then.

Every feature is registered in :data:`REGISTRY` (name, description, unit, kind, group). A
*group* is one vectorised function over :class:`~riskdesk.analytics.frames.Frames` that
computes several related features for all customers at once; :func:`compute_features` runs
the groups needed for the requested names. ``python -m riskdesk.assess.features`` prints the
catalogue as Markdown (``docs/features.md``).

Point in time: every function first cuts the frames with ``Frames.as_of(T)`` and filters on
document dates, so a payment dated after T never counts. Status columns (``cancelled``,
``disputed``) are the current ones: the data model keeps no history of them.

**Core state features** (the shared contract with the real-time customer state in
``riskdesk.monitor``; see :func:`core_state_features`). Conventions, exactly:

* Currency: each document is converted into the customer's currency with the FX rate of the
  latest ``fx_rates`` row on or before *the document's own date* (invoice → ``issue_date``,
  payment allocation → its payment's ``payment_date`` and the payment's currency, credit note →
  its ``issue_date``, order → ``order_date``). Same currency → 1. A direct pair
  (base=document currency, quote=customer currency) is preferred; otherwise the inverse pair's
  latest rate is inverted (as :class:`riskdesk.domain.money.FxTable`). A document with no rate
  at all is left out of the sums.
* Open balance of an invoice at T (issue_date ≤ T, status ≠ ``cancelled``) =
  max(0, amount − Σ allocations with payment_date ≤ T − Σ credit notes on that invoice with
  issue_date ≤ T), all converted as above.
* Days past due = (T − due_date).days; a balance is overdue when that is ≥ 1.
* ``max_days_overdue`` = max(0, largest days past due among invoices whose open balance > 0.005).
* Orders: status ≠ ``cancelled`` (also for ``days_since_last_order``).
* Paid date of an invoice = the payment_date of the allocation at which the running balance
  (amount − allocations up to and including that date − credit notes issued on or before that
  date) first drops to ≤ 0.005; allocations of one day count together. An invoice settled only
  by a credit note has no paid date. Weight of ``dbt_wavg_paid_180d`` = the invoice amount
  (customer currency).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from riskdesk.analytics.frames import Frames

EPS = 0.005
"""An invoice with an open balance at or below this is settled."""

CORE_STATE_FEATURES: tuple[str, ...] = (
    "open_invoice_balance",
    "overdue_balance",
    "overdue_1_30",
    "overdue_31_60",
    "overdue_61_90",
    "overdue_90_plus",
    "max_days_overdue",
    "orders_count_90d",
    "orders_amount_90d",
    "days_since_last_order",
    "dbt_wavg_paid_180d",
)
"""The fixed names shared with the real-time customer state."""


# --------------------------------------------------------------------------- helpers


def _ts(as_of: date | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(as_of).normalize()


def _customer_index(frames: Frames) -> pd.Index:
    return pd.Index(frames.customers["customer_id"].astype("int64"), name="customer_id")


def fx_to_customer(
    frames: Frames,
    df: pd.DataFrame,
    *,
    amount: str = "amount",
    currency: str = "currency",
    on: str,
) -> pd.Series:
    """``df[amount]`` converted to each row's customer currency at the rate on or before ``on``.

    ``df`` needs ``customer_id``; rows with no known rate come back NaN.
    """
    if df.empty:
        return pd.Series([], index=df.index, dtype="float64")
    ccy = frames.customers.set_index("customer_id")["currency"]
    work = pd.DataFrame(
        {
            "src": df[currency].astype(str).str.upper().to_numpy(),
            "dst": df["customer_id"].map(ccy).astype(str).str.upper().to_numpy(),
            "on": pd.to_datetime(df[on]).astype("datetime64[ns]").to_numpy(),
            "pos": np.arange(len(df)),
        }
    )
    rate = np.where(work["src"].to_numpy() == work["dst"].to_numpy(), 1.0, np.nan)
    need = np.isnan(rate)
    if need.any() and len(frames.fx_rates):
        fx = frames.fx_rates[["rate_date", "base", "quote", "rate"]].copy()
        fx["base"] = fx["base"].str.upper()
        fx["quote"] = fx["quote"].str.upper()
        fx["rate_date"] = fx["rate_date"].astype("datetime64[ns]")
        fx = fx[fx["rate"] > 0].sort_values("rate_date")
        todo = work[need].sort_values("on")
        direct = pd.merge_asof(
            todo,
            fx.rename(columns={"rate_date": "on", "base": "src", "quote": "dst"}),
            on="on",
            by=["src", "dst"],
            direction="backward",
        )
        inverse = pd.merge_asof(
            todo,
            fx.rename(columns={"rate_date": "on", "base": "dst", "quote": "src"}),
            on="on",
            by=["src", "dst"],
            direction="backward",
        )
        got = direct["rate"].to_numpy(dtype=float)
        inv = 1.0 / inverse["rate"].to_numpy(dtype=float)
        got = np.where(np.isnan(got), inv, got)
        rate[todo["pos"].to_numpy()] = got
    return pd.Series(df[amount].to_numpy(dtype=float) * rate, index=df.index, dtype="float64")


@dataclass(frozen=True)
class InvoiceState:
    """Per-invoice state at T (customer currency)."""

    invoices: pd.DataFrame  # invoice_id, customer_id, issue_date, due_date, amount_cc, balance, dpd
    paid: pd.DataFrame  # invoice_id, customer_id, due_date, amount_cc, paid_date, n_allocations


def invoice_state(frames: Frames, as_of: date | pd.Timestamp) -> InvoiceState:
    """Open balance, days past due and paid date of every invoice known at ``as_of``."""
    t = _ts(as_of)
    f = frames.as_of(t.date())
    inv = f.invoices[f.invoices["status"] != "cancelled"].copy()
    inv["amount_cc"] = fx_to_customer(f, inv, on="issue_date")
    inv = inv[inv["amount_cc"].notna()]

    al = f.allocations.merge(
        f.payments[["payment_id", "currency"]], on="payment_id", how="left", validate="m:1"
    )
    al = al[al["invoice_id"].isin(inv["invoice_id"])]
    al = al.assign(customer_id=al["invoice_id"].map(inv.set_index("invoice_id")["customer_id"]))
    al["amount_cc"] = fx_to_customer(f, al, on="payment_date")
    al = al[al["amount_cc"].notna()]

    cn = f.credit_notes[
        f.credit_notes["invoice_id"].notna() & f.credit_notes["invoice_id"].isin(inv["invoice_id"])
    ].copy()
    cn["invoice_id"] = cn["invoice_id"].astype("int64")
    cn["amount_cc"] = fx_to_customer(f, cn, on="issue_date")
    cn = cn[cn["amount_cc"].notna()]

    paid_sum = al.groupby("invoice_id")["amount_cc"].sum()
    cn_sum = cn.groupby("invoice_id")["amount_cc"].sum()
    n_alloc = al.groupby("invoice_id").size()
    iid = inv["invoice_id"]
    inv["allocated"] = iid.map(paid_sum).fillna(0.0).to_numpy()
    inv["credited"] = iid.map(cn_sum).fillna(0.0).to_numpy()
    inv["n_allocations"] = iid.map(n_alloc).fillna(0).astype("int64").to_numpy()
    inv["balance"] = np.maximum(0.0, inv["amount_cc"] - inv["allocated"] - inv["credited"])
    inv["dpd"] = (t - inv["due_date"]).dt.days.astype("int64")

    # paid date: first allocation day at which the running balance drops to <= EPS
    if len(al):
        daily = al.groupby(["invoice_id", "payment_date"])["amount_cc"].sum().reset_index()
        daily = daily.sort_values(["invoice_id", "payment_date"])
        daily["alloc_cum"] = daily.groupby("invoice_id")["amount_cc"].cumsum()
        if len(cn):
            cnd = cn.groupby(["invoice_id", "issue_date"])["amount_cc"].sum().reset_index()
            cnd = cnd.sort_values(["invoice_id", "issue_date"])
            cnd["cn_cum"] = cnd.groupby("invoice_id")["amount_cc"].cumsum()
            m = pd.merge_asof(
                daily.sort_values("payment_date"),
                cnd[["invoice_id", "issue_date", "cn_cum"]].sort_values("issue_date"),
                left_on="payment_date",
                right_on="issue_date",
                by="invoice_id",
                direction="backward",
            )
            daily = m.sort_values(["invoice_id", "payment_date"])
            daily["cn_cum"] = daily["cn_cum"].fillna(0.0)
        else:
            daily["cn_cum"] = 0.0
        amt = daily["invoice_id"].map(inv.set_index("invoice_id")["amount_cc"])
        daily["running"] = amt - daily["alloc_cum"] - daily["cn_cum"]
        closed = daily[daily["running"] <= EPS]
        first = closed.groupby("invoice_id")["payment_date"].min()
        inv["paid_date"] = first.astype("datetime64[ns]").reindex(iid.to_numpy()).to_numpy()
    else:
        inv["paid_date"] = pd.Series(pd.NaT, index=inv.index, dtype="datetime64[ns]")
    inv["paid_date"] = inv["paid_date"].astype("datetime64[ns]")
    paid = inv[inv["paid_date"].notna()].copy()
    paid["dbt"] = np.maximum(0, (paid["paid_date"] - paid["due_date"]).dt.days).astype("float64")
    cols = [
        "invoice_id",
        "customer_id",
        "issue_date",
        "due_date",
        "amount_cc",
        "balance",
        "dpd",
        "n_allocations",
        "paid_date",
        "disputed",
    ]
    return InvoiceState(inv[cols].reset_index(drop=True), paid.reset_index(drop=True))


# --------------------------------------------------------------------------- core state


class Context:
    """Frames cut at T plus per-invoice state, computed once and shared by feature groups."""

    def __init__(self, frames: Frames, t: pd.Timestamp) -> None:
        self.t = t
        self.all_invoices = frames.invoices
        self.frames = frames.as_of(t.date())
        self.index = _customer_index(frames)
        self._state: InvoiceState | None = None

    @classmethod
    def make(cls, frames: Frames, as_of: date | pd.Timestamp) -> Context:
        return cls(frames, _ts(as_of))

    @property
    def state(self) -> InvoiceState:
        if self._state is None:
            self._state = invoice_state(self.frames, self.t)
        return self._state


def core_state_features(frames: Frames, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """The core state features of every customer as of ``as_of`` (see the module docstring).

    Indexed by ``customer_id`` (every customer in ``frames.customers``), columns exactly
    :data:`CORE_STATE_FEATURES`, float64.
    """
    return _core(Context.make(frames, as_of))


def _core(ctx: Context) -> pd.DataFrame:
    t, frames, idx = ctx.t, ctx.frames, ctx.index
    st = ctx.state
    inv = st.invoices
    out = pd.DataFrame(index=idx)
    out["open_invoice_balance"] = inv.groupby("customer_id")["balance"].sum()
    dpd = inv["dpd"]
    buckets = {
        "overdue_1_30": (dpd >= 1) & (dpd <= 30),
        "overdue_31_60": (dpd >= 31) & (dpd <= 60),
        "overdue_61_90": (dpd >= 61) & (dpd <= 90),
        "overdue_90_plus": dpd > 90,
    }
    out["overdue_balance"] = inv[dpd >= 1].groupby("customer_id")["balance"].sum()
    for name, mask in buckets.items():
        out[name] = inv[mask].groupby("customer_id")["balance"].sum()
    open_ = inv[inv["balance"] > EPS]
    out["max_days_overdue"] = open_.groupby("customer_id")["dpd"].max().clip(lower=0)

    orders = _orders_cc(frames, t)
    recent = orders[orders["order_date"] > t - pd.Timedelta(days=90)]
    out["orders_count_90d"] = recent.groupby("customer_id").size()
    out["orders_amount_90d"] = recent.groupby("customer_id")["amount_cc"].sum()
    out = out.fillna(0.0)
    last = orders.groupby("customer_id")["order_date"].max()
    out["days_since_last_order"] = (t - last).dt.days.reindex(idx)

    paid = st.paid
    window = paid[(paid["paid_date"] > t - pd.Timedelta(days=180)) & (paid["paid_date"] <= t)]
    out["dbt_wavg_paid_180d"] = _wavg(window, "dbt", "amount_cc").reindex(idx)
    return out[list(CORE_STATE_FEATURES)].astype("float64")


def _orders_cc(frames: Frames, t: pd.Timestamp) -> pd.DataFrame:
    o = frames.orders
    o = o[(o["order_date"] <= t) & (o["status"] != "cancelled")].copy()
    o["amount_cc"] = fx_to_customer(frames, o, on="order_date")
    return o


def _wavg(df: pd.DataFrame, value: str, weight: str) -> pd.Series:
    if df.empty:
        return pd.Series(dtype="float64")
    w = df[weight].clip(lower=0)
    num = (df[value] * w).groupby(df["customer_id"]).sum()
    den = w.groupby(df["customer_id"]).sum()
    return (num / den.where(den > 0)).astype("float64")


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Feature:
    """One feature: its definition lives in ``group``'s function, documented here."""

    name: str
    description: str
    unit: str
    group: str
    kind: str = "numeric"  # numeric | categorical


GroupFn = Callable[[Context], pd.DataFrame]
REGISTRY: dict[str, Feature] = {}
GROUPS: dict[str, GroupFn] = {}


def _register(group: str, fn: GroupFn, features: list[tuple[str, str, str, str]]) -> None:
    GROUPS[group] = fn
    for name, desc, unit, kind in features:
        if name in REGISTRY:
            raise ValueError(f"feature {name!r} defined twice")
        REGISTRY[name] = Feature(name, desc, unit, group, kind)


_register(
    "core",
    _core,
    [
        (
            "open_invoice_balance",
            "Open invoice balance (after payments and credit notes)",
            "customer currency",
            "numeric",
        ),
        ("overdue_balance", "Open balance past its due date", "customer currency", "numeric"),
        ("overdue_1_30", "Open balance 1-30 days past due", "customer currency", "numeric"),
        ("overdue_31_60", "Open balance 31-60 days past due", "customer currency", "numeric"),
        ("overdue_61_90", "Open balance 61-90 days past due", "customer currency", "numeric"),
        (
            "overdue_90_plus",
            "Open balance more than 90 days past due",
            "customer currency",
            "numeric",
        ),
        (
            "max_days_overdue",
            "Worst days past due among open invoices (0 if none)",
            "days",
            "numeric",
        ),
        (
            "orders_count_90d",
            "Orders placed in the last 90 days (not cancelled)",
            "count",
            "numeric",
        ),
        (
            "orders_amount_90d",
            "Amount ordered in the last 90 days (not cancelled)",
            "customer currency",
            "numeric",
        ),
        ("days_since_last_order", "Days since the last order (NaN when none)", "days", "numeric"),
        (
            "dbt_wavg_paid_180d",
            "Amount-weighted days beyond terms of invoices fully paid in the last 180 days",
            "days",
            "numeric",
        ),
    ],
)


def _payment_behaviour(ctx: Context) -> pd.DataFrame:
    t, idx = ctx.t, ctx.index
    st = ctx.state
    paid, inv = st.paid, st.invoices
    out = pd.DataFrame(index=idx)
    for w in (90, 180, 365):
        win = paid[(paid["paid_date"] > t - pd.Timedelta(days=w)) & (paid["paid_date"] <= t)]
        g = win.groupby("customer_id")
        out[f"dbt_avg_paid_{w}d"] = g["dbt"].mean()
        if w != 180:  # the 180-day weighted one is a core state feature
            out[f"dbt_wavg_paid_{w}d"] = _wavg(win, "dbt", "amount_cc")
        cust = win["customer_id"]
        out[f"late_share_{w}d"] = (win["dbt"] > 0).astype(float).groupby(cust).mean()
        out[f"partial_share_{w}d"] = (win["n_allocations"] > 1).astype(float).groupby(cust).mean()
    win = paid[(paid["paid_date"] > t - pd.Timedelta(days=365)) & (paid["paid_date"] <= t)]
    out["max_dbt_paid_365d"] = win.groupby("customer_id")["dbt"].max()
    bal = inv.groupby("customer_id")["balance"].sum().reindex(idx).fillna(0.0)
    for w in (90, 365):
        sales = (
            inv[inv["issue_date"] > t - pd.Timedelta(days=w)]
            .groupby("customer_id")["amount_cc"]
            .sum()
            .reindex(idx)
        )
        out[f"dso_{w}d"] = bal / sales.where(sales > 0) * w
    out["dbt_trend"] = out["dbt_wavg_paid_90d"] - out["dbt_wavg_paid_365d"]
    out["late_share_trend"] = out["late_share_90d"] - out["late_share_365d"]
    out["partial_share_trend"] = out["partial_share_90d"] - out["partial_share_365d"]
    out["dso_trend"] = out["dso_90d"] - out["dso_365d"]
    return out


def _exposure_orders(ctx: Context) -> pd.DataFrame:
    t, f, idx = ctx.t, ctx.frames, ctx.index
    inv = ctx.state.invoices
    out = pd.DataFrame(index=idx)
    orders = _orders_cc(f, t)
    linked_all = set(
        ctx.all_invoices.loc[ctx.all_invoices["order_id"].notna(), "order_id"].astype("int64")
    )
    invoiced = set(f.invoices.loc[f.invoices["order_id"].notna(), "order_id"].astype("int64"))
    # an order is open until an invoice issued on or before T refers to it; an order marked
    # ``invoiced`` that no invoice refers to at all counts as invoiced (its date is unknown)
    unlinked_invoiced = (orders["status"] == "invoiced") & ~orders["order_id"].isin(linked_all)
    open_orders = orders[~orders["order_id"].isin(invoiced) & ~unlinked_invoiced]
    out["open_orders_amount"] = open_orders.groupby("customer_id")["amount_cc"].sum()
    out["open_orders_amount"] = out["open_orders_amount"].fillna(0.0)
    bal = inv.groupby("customer_id")["balance"].sum().reindex(idx).fillna(0.0)
    out["exposure"] = bal + out["open_orders_amount"]
    recent = orders[orders["order_date"] > t - pd.Timedelta(days=90)]
    base = orders[
        (orders["order_date"] > t - pd.Timedelta(days=455))
        & (orders["order_date"] <= t - pd.Timedelta(days=90))
    ]
    amt90 = recent.groupby("customer_id")["amount_cc"].sum().reindex(idx).fillna(0.0)
    baseline = base.groupby("customer_id")["amount_cc"].sum().reindex(idx) / 4.0
    out["order_trend_ratio"] = amt90 / baseline.where(baseline > 0)
    first = pd.concat(
        [
            f.orders.groupby("customer_id")["order_date"].min(),
            f.invoices.groupby("customer_id")["issue_date"].min(),
        ],
        axis=1,
    ).min(axis=1)
    out["tenure_days"] = (t - first).dt.days.reindex(idx)
    return out


def _disputes_contracts(ctx: Context) -> pd.DataFrame:
    t, f, idx = ctx.t, ctx.frames, ctx.index
    inv = ctx.state.invoices
    out = pd.DataFrame(index=idx)
    last = inv[inv["issue_date"] > t - pd.Timedelta(days=365)]
    disputed = last[last["disputed"].astype(bool)]
    out["disputed_invoices_365d"] = disputed.groupby("customer_id").size()
    out["disputed_invoices_365d"] = out["disputed_invoices_365d"].fillna(0.0)
    total = last.groupby("customer_id")["amount_cc"].sum().reindex(idx)
    out["disputed_share_365d"] = disputed.groupby("customer_id")["amount_cc"].sum().reindex(
        idx
    ).fillna(0.0) / total.where(total > 0)
    # minimum-volume shortfall of contracts active at T over their latest period
    c = f.contracts
    c = c[
        (c["start_date"] <= t)
        & (c["end_date"].isna() | (c["end_date"] >= t))
        & c["min_volume_amount"].notna()
        & (c["min_volume_amount"] > 0)
    ]
    c = c.assign(
        period_days=c["min_volume_period"]
        .map({"month": 30, "quarter": 91, "year": 365})
        .fillna(365)
    )
    c = c[(t - c["start_date"]).dt.days >= c["period_days"]]  # a first full period has ended
    orders = _orders_cc(f, t)
    m = c[["contract_id", "customer_id", "period_days", "min_volume_amount"]].merge(
        orders[["customer_id", "contract_id", "order_date", "amount_cc"]].rename(
            columns={"contract_id": "order_contract"}
        ),
        on="customer_id",
        how="left",
    )
    in_window = (m["order_date"] > t - pd.to_timedelta(m["period_days"], unit="D")) & (
        (m["order_contract"] == m["contract_id"]) | m["order_contract"].isna()
    )
    volume = m["amount_cc"].where(in_window, 0.0).fillna(0.0).groupby(m["contract_id"]).sum()
    c = c.set_index("contract_id")
    ratio = volume.reindex(c.index).fillna(0.0) / c["min_volume_amount"]
    s = pd.DataFrame(
        {
            "customer_id": c["customer_id"].to_numpy(),
            "shortfall": (1.0 - ratio).clip(lower=0.0).to_numpy(),
        }
    )
    out["contract_volume_shortfall"] = s.groupby("customer_id")["shortfall"].max()
    out["contract_breaches"] = (s[s["shortfall"] > 0].groupby("customer_id").size()).reindex(idx)
    out["contract_breaches"] = out["contract_breaches"].fillna(0.0)
    return out


NEGATIVE_SIGNALS = ("legal_event", "negative_news", "bankruptcy", "write_off")


def _external(ctx: Context) -> pd.DataFrame:
    t, f, idx = ctx.t, ctx.frames, ctx.index
    out = pd.DataFrame(index=idx)
    sig = f.external_signals.sort_values(["signal_date", "signal_id"])
    bureau = sig[(sig["kind"] == "bureau_score") & sig["value"].notna()]
    out["bureau_score"] = bureau.groupby("customer_id")["value"].last()
    old = bureau[bureau["signal_date"] <= t - pd.Timedelta(days=365)]
    out["bureau_score_change_365d"] = out["bureau_score"] - old.groupby("customer_id")[
        "value"
    ].last().reindex(idx)
    neg = sig[
        sig["kind"].isin(NEGATIVE_SIGNALS) & (sig["signal_date"] > t - pd.Timedelta(days=365))
    ]
    out["negative_signals_365d"] = neg.groupby("customer_id").size()
    out["negative_signals_365d"] = out["negative_signals_365d"].fillna(0.0)
    # market index trend of the customer's industry: mean over the industry's index codes
    mi = f.market_indicators
    mi = mi[mi["industry"].notna()].sort_values("period_date")
    if len(mi):
        latest = mi.groupby("code").last()
        before = mi[mi["period_date"] <= t - pd.Timedelta(days=365)].groupby("code").last()
        chg = (latest["value"] / before["value"].where(before["value"] != 0) - 1.0).dropna()
        by_ind = chg.groupby(latest.loc[chg.index, "industry"]).mean()
        ind = f.customers.set_index("customer_id")["industry"]
        out["market_index_trend_365d"] = ind.map(by_ind).reindex(idx).astype("float64")
    else:
        out["market_index_trend_365d"] = np.nan
    return out


def _profile(ctx: Context) -> pd.DataFrame:
    t, f, idx = ctx.t, ctx.frames, ctx.index
    c = f.customers.set_index("customer_id").reindex(idx)
    out = pd.DataFrame(index=idx)
    rev = pd.to_numeric(c["revenue"], errors="coerce")
    out["log_revenue"] = np.log10(rev.where(rev > 0))
    out["employees"] = pd.to_numeric(c["employees"], errors="coerce").astype("float64")
    out["market_share"] = pd.to_numeric(c["market_share"], errors="coerce").astype("float64")
    founded = pd.to_datetime(c["founded_on"])
    out["company_age_years"] = ((t - founded).dt.days / 365.25).where(founded <= t)
    out["industry"] = c["industry"].astype("object")
    out["region"] = c["region"].astype("object")
    return out


_register(
    "payment_behaviour",
    _payment_behaviour,
    [
        *[
            (
                f"dbt_avg_paid_{w}d",
                f"Average days beyond terms of invoices fully paid in the last {w} days",
                "days",
                "numeric",
            )
            for w in (90, 180, 365)
        ],
        *[
            (
                f"dbt_wavg_paid_{w}d",
                f"Amount-weighted days beyond terms of invoices fully paid in the last {w} days",
                "days",
                "numeric",
            )
            for w in (90, 365)
        ],
        *[
            (
                f"late_share_{w}d",
                f"Share of invoices fully paid in the last {w} days that were paid late",
                "ratio",
                "numeric",
            )
            for w in (90, 180, 365)
        ],
        *[
            (
                f"partial_share_{w}d",
                f"Share of invoices fully paid in the last {w} days that took more than one payment",
                "ratio",
                "numeric",
            )
            for w in (90, 180, 365)
        ],
        (
            "max_dbt_paid_365d",
            "Worst days beyond terms among invoices paid in the last 365 days",
            "days",
            "numeric",
        ),
        (
            "dso_90d",
            "Days sales outstanding: open balance / invoiced in the last 90 days × 90",
            "days",
            "numeric",
        ),
        (
            "dso_365d",
            "Days sales outstanding: open balance / invoiced in the last 365 days × 365",
            "days",
            "numeric",
        ),
        (
            "dbt_trend",
            "dbt_wavg_paid_90d − dbt_wavg_paid_365d (positive = paying later)",
            "days",
            "numeric",
        ),
        ("late_share_trend", "late_share_90d − late_share_365d", "ratio", "numeric"),
        ("partial_share_trend", "partial_share_90d − partial_share_365d", "ratio", "numeric"),
        ("dso_trend", "dso_90d − dso_365d", "days", "numeric"),
    ],
)
_register(
    "exposure_orders",
    _exposure_orders,
    [
        (
            "open_orders_amount",
            "Orders placed (not cancelled) with no invoice yet",
            "customer currency",
            "numeric",
        ),
        (
            "exposure",
            "open_invoice_balance + open_orders_amount (the EAD)",
            "customer currency",
            "numeric",
        ),
        (
            "order_trend_ratio",
            "Amount ordered in the last 90 days / the customer's own quarterly average over the 12 months before",
            "ratio",
            "numeric",
        ),
        ("tenure_days", "Days since the first order or invoice", "days", "numeric"),
    ],
)
_register(
    "disputes_contracts",
    _disputes_contracts,
    [
        (
            "disputed_invoices_365d",
            "Invoices issued in the last 365 days that are disputed",
            "count",
            "numeric",
        ),
        (
            "disputed_share_365d",
            "Disputed share of the amount invoiced in the last 365 days",
            "ratio",
            "numeric",
        ),
        (
            "contract_volume_shortfall",
            "Worst shortfall against a contract's minimum volume over its latest full period (0 = met)",
            "ratio",
            "numeric",
        ),
        (
            "contract_breaches",
            "Active contracts whose minimum volume is not met over their latest period",
            "count",
            "numeric",
        ),
    ],
)
_register(
    "external",
    _external,
    [
        ("bureau_score", "Latest external bureau score", "score", "numeric"),
        (
            "bureau_score_change_365d",
            "Bureau score now minus the one known 365 days ago",
            "score",
            "numeric",
        ),
        (
            "negative_signals_365d",
            "Legal events, negative news, bankruptcy or write-off signals in the last 365 days",
            "count",
            "numeric",
        ),
        (
            "market_index_trend_365d",
            "Change over 365 days of the market indices of the customer's industry (mean)",
            "ratio",
            "numeric",
        ),
    ],
)
_register(
    "profile",
    _profile,
    [
        ("log_revenue", "log10 of annual revenue", "log10 amount", "numeric"),
        ("employees", "Number of employees", "count", "numeric"),
        ("market_share", "Market share of the customer", "ratio", "numeric"),
        ("company_age_years", "Years since the company was founded", "years", "numeric"),
        ("industry", "Industry", "category", "categorical"),
        ("region", "Region", "category", "categorical"),
    ],
)


def feature_names() -> list[str]:
    """Every registered feature, in registry order."""
    return list(REGISTRY)


def compute_features(
    frames: Frames,
    as_of: date | pd.Timestamp,
    names: list[str] | None = None,
    customer_ids: list[int] | None = None,
) -> pd.DataFrame:
    """Features ``names`` (default: all) as of ``as_of`` for all customers (or ``customer_ids``).

    Indexed by ``customer_id``; numeric features float64, categorical ones object.
    """
    wanted = list(REGISTRY) if names is None else list(names)
    unknown = [n for n in wanted if n not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown features: {', '.join(unknown)}")
    if customer_ids is not None:
        frames = _only_customers(frames, set(customer_ids))
    ctx = Context.make(frames, as_of)
    parts = []
    for group in dict.fromkeys(REGISTRY[n].group for n in wanted):
        parts.append(GROUPS[group](ctx))
    out = pd.concat(parts, axis=1)
    out = out[wanted]
    for n in wanted:
        if REGISTRY[n].kind == "numeric":
            out[n] = pd.to_numeric(out[n], errors="coerce").astype("float64")
    return out


def _only_customers(frames: Frames, ids: set[int]) -> Frames:
    kw = {}
    for name in Frames.__dataclass_fields__:
        df = getattr(frames, name)
        kw[name] = df[df["customer_id"].isin(ids)] if "customer_id" in df.columns else df
    return Frames(**kw)


def markdown() -> str:
    """The feature catalogue as Markdown (``docs/features.md``)."""
    lines = [
        "# Features",
        "",
        "Generated by `python -m riskdesk.assess.features > docs/features.md` from the registry in",
        "`src/riskdesk/assess/features.py`; do not edit by hand. Every feature is computed as of a",
        "date T from what was known on T (documents dated after T never count).",
        "",
        "Core state features (shared with the real-time customer state, `monitor`): "
        + ", ".join(f"`{n}`" for n in CORE_STATE_FEATURES)
        + ".",
        "",
        "| name | group | kind | unit | description |",
        "|---|---|---|---|---|",
    ]
    for f in REGISTRY.values():
        lines.append(f"| `{f.name}` | {f.group} | {f.kind} | {f.unit} | {f.description} |")
    lines += ["", "## Definitions", "", (__doc__ or "").strip(), ""]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(markdown())
