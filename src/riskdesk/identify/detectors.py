"""Detectors: find the manifestations of each risk source in the portfolio's tables.

Every public detector is a pure function ``(frames, as_of, config) -> DataFrame`` working on
whole tables at once (no loop over customers). It sees only what was known on ``as_of``
(``frames.as_of(as_of)``) and returns one row per event with the columns of
:data:`EVENT_COLUMNS`; :func:`to_events` turns such a frame into :class:`RiskEvent` objects.
Amounts are converted to the customer's currency with the FX rate on or before the date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import poisson

from riskdesk.analytics.frames import Frames
from riskdesk.domain.events import SEVERITY_RANK, RiskEvent, Severity
from riskdesk.identify.config import IdentifyConfig
from riskdesk.identify.fx import convert, rates_both_ways

EVENT_COLUMNS = [
    "customer_id",
    "source",
    "manifestation",
    "severity",
    "first_seen",
    "subject",
    "evidence",
]

DAY = pd.Timedelta(days=1)
_BY_RANK = ["", "low", "medium", "high", "critical"]


def empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([], dtype="int64"),
            "source": pd.Series([], dtype=object),
            "manifestation": pd.Series([], dtype=object),
            "severity": pd.Series([], dtype=object),
            "first_seen": pd.Series([], dtype="datetime64[ns]"),
            "subject": pd.Series([], dtype=object),
            "evidence": pd.Series([], dtype=object),
        }
    )


def lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """``values[key]`` for each key (missing → NA), keeping ``values``' dtype even when empty."""
    return pd.Series(values.reindex(keys.to_numpy()).to_numpy(), index=keys.index)


def _jsonable(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return None if np.isnan(v) else round(float(v), 2)
    if isinstance(v, list | np.ndarray):
        return [_jsonable(x) for x in v]
    if v is pd.NaT:
        return None
    return v


class Context:
    """The point-in-time view shared by the detectors of one run."""

    def __init__(self, frames: Frames, as_of: date, with_evidence: bool = True) -> None:
        self.full = frames
        self.f = frames.as_of(as_of)
        self.as_of = as_of
        self.ts = pd.Timestamp(as_of)
        self.with_evidence = with_evidence

    # -- helpers ----------------------------------------------------------------------------

    @cached_property
    def rates(self) -> pd.DataFrame:
        return rates_both_ways(self.f.fx_rates)

    @cached_property
    def customer_ccy(self) -> pd.Series:
        c = self.f.customers
        return pd.Series(c["currency"].to_numpy(), index=c["customer_id"].to_numpy())

    def ccy_of(self, customer_ids: pd.Series, fallback: pd.Series) -> np.ndarray:
        mapped = customer_ids.map(self.customer_ccy)
        return mapped.fillna(fallback).astype(str).to_numpy()

    def evidence(self, df: pd.DataFrame, cols: dict[str, str]) -> list[dict[str, Any]]:
        """One evidence dict per row: ``{name: df[col]}`` with dates as ISO strings."""
        if not self.with_evidence:
            return [{} for _ in range(len(df))]
        out = df[list(cols.values())].rename(columns={v: k for k, v in cols.items()})
        records = out.to_dict("records")
        return [{str(k): _jsonable(v) for k, v in r.items()} for r in records]

    def events(
        self,
        df: pd.DataFrame,
        source: str,
        manifestation: str | np.ndarray | pd.Series,
        severity: str | np.ndarray | pd.Series,
        first_seen: pd.Series | np.ndarray,
        subject: pd.Series | np.ndarray | str,
        evidence: list[dict[str, Any]],
    ) -> pd.DataFrame:
        if len(df) == 0:
            return empty_events()
        return pd.DataFrame(
            {
                "customer_id": df["customer_id"].astype("int64").to_numpy(),
                "source": source,
                "manifestation": manifestation
                if isinstance(manifestation, str)
                else np.asarray(manifestation, dtype=object),
                "severity": severity
                if isinstance(severity, str)
                else np.asarray(severity, dtype=object),
                "first_seen": np.asarray(first_seen, dtype="datetime64[ns]"),
                "subject": subject if isinstance(subject, str) else np.asarray(subject, object),
                "evidence": pd.Series(evidence, dtype=object).to_numpy(),
            }
        )

    # -- invoice ledger ---------------------------------------------------------------------

    @cached_property
    def moves(self) -> pd.DataFrame:
        """Allocations and invoice credit notes in the invoice's currency: invoice_id, date, amount."""
        inv = self.f.invoices
        alloc = self.f.allocations[["invoice_id", "payment_date", "amount"]].rename(
            columns={"payment_date": "date"}
        )
        cn = self.f.credit_notes
        cn = cn[cn["invoice_id"].notna()][["invoice_id", "issue_date", "amount", "currency"]]
        cn = cn.rename(columns={"issue_date": "date"})
        cn = cn.astype({"invoice_id": "int64"})
        if len(cn):
            inv_ccy = pd.Series(inv["currency"].to_numpy(), index=inv["invoice_id"].to_numpy())
            target = cn["invoice_id"].map(inv_ccy).fillna(cn["currency"])
            cn = cn.assign(
                amount=convert(cn["amount"], cn["currency"], target, cn["date"], self.rates)
            )
        moves = pd.concat(
            [alloc.astype({"invoice_id": "int64"}), cn[["invoice_id", "date", "amount"]]],
            ignore_index=True,
        )
        return moves[moves["invoice_id"].isin(inv["invoice_id"])]

    @cached_property
    def ledger(self) -> pd.DataFrame:
        """Invoices as of the date with balance, settlement date and days overdue."""
        tol = 0.005
        inv = self.f.invoices
        inv = inv[inv["status"].fillna("open") != "cancelled"].copy()
        mv = self.moves.sort_values(["invoice_id", "date"], kind="stable")
        paid = mv.groupby("invoice_id")["amount"].sum()
        inv["settled"] = inv["invoice_id"].map(paid).fillna(0.0)
        inv["balance"] = (inv["amount"] - inv["settled"]).clip(lower=0.0)
        inv["first_paid"] = lookup(inv["invoice_id"], mv.groupby("invoice_id")["date"].min())
        mv = mv.assign(cum=mv.groupby("invoice_id")["amount"].cumsum())
        mv = mv.merge(inv[["invoice_id", "amount"]].rename(columns={"amount": "inv_amount"}))
        done = mv[mv["cum"] >= mv["inv_amount"] - tol]
        inv["settled_date"] = lookup(inv["invoice_id"], done.groupby("invoice_id")["date"].min())
        inv["open"] = inv["balance"] > tol
        inv.loc[inv["open"], "settled_date"] = pd.NaT
        inv["cust_ccy"] = self.ccy_of(inv["customer_id"], inv["currency"])
        inv["balance_cc"] = convert(
            inv["balance"], inv["currency"], inv["cust_ccy"], self.ts, self.rates
        )
        late = (self.ts - inv["due_date"]).dt.days
        inv["days_overdue"] = np.where(inv["open"], late.clip(lower=0), 0).astype("int64")
        end = inv["settled_date"].fillna(self.ts)
        inv["lateness"] = (end - inv["due_date"]).dt.days.clip(lower=0)
        return inv

    @cached_property
    def exposure(self) -> pd.Series:
        """Open invoice balance per customer (customer currency)."""
        led = self.ledger
        return led[led["open"]].groupby("customer_id")["balance_cc"].sum()

    @cached_property
    def orders(self) -> pd.DataFrame:
        o = self.f.orders
        o = o[o["status"].fillna("open") != "cancelled"].copy()
        ccy = self.ccy_of(o["customer_id"], o["currency"])
        o["amount_cc"] = convert(o["amount"], o["currency"], ccy, o["order_date"], self.rates)
        return o


# --- credit ------------------------------------------------------------------------------

_BUCKETS = (
    (30, "credit.overdue_1_30", "1_30", 1),
    (60, "credit.overdue_31_60", "31_60", 31),
    (90, "credit.overdue_61_90", "61_90", 61),
)


def _overdue(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    led = ctx.ledger
    o = led[
        led["open"]
        & (led["days_overdue"] >= 1)
        & (led["balance_cc"] >= cfg.credit.min_overdue_amount)
    ]
    d = o["days_overdue"].to_numpy()
    conds = [d <= b[0] for b in _BUCKETS]
    code = np.select(conds, [b[1] for b in _BUCKETS], "credit.overdue_90_plus")
    sevs = cfg.credit.overdue_severity
    sev = np.select(conds, [sevs[b[2]] for b in _BUCKETS], sevs["90_plus"])
    serious = o["days_overdue"] > 30
    n_serious = serious.groupby(o["customer_id"]).transform("sum")
    up = (serious & (n_serious >= cfg.credit.escalate_count)).to_numpy()
    ranks = (
        np.array([SEVERITY_RANK[x] for x in sev], dtype="int64")
        if len(sev)
        else np.array([], "int64")
    )
    ranks = np.where(up, np.minimum(ranks + 1, SEVERITY_RANK["high"]), ranks)
    sev = np.array(_BY_RANK, dtype=object)[ranks]
    start = np.select(conds, [b[3] for b in _BUCKETS], 91)
    first = o["due_date"] + pd.to_timedelta(start, unit="D")
    ev = ctx.evidence(
        o,
        {
            "invoice_id": "invoice_id",
            "invoice": "external_id",
            "amount": "amount",
            "balance": "balance",
            "currency": "currency",
            "balance_customer_currency": "balance_cc",
            "customer_currency": "cust_ccy",
            "due_date": "due_date",
            "days_overdue": "days_overdue",
        },
    )
    subject = "invoice:" + o["invoice_id"].astype(str)
    return ctx.events(o, "credit", code, sev, first, subject, ev)


def _partial(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    led = ctx.ledger
    o = led[
        led["open"]
        & (led["settled"] > cfg.credit.partial_tolerance)
        & (led["due_date"] < ctx.ts)
        & (led["balance_cc"] >= cfg.credit.min_overdue_amount)
    ]
    first = np.maximum(o["first_paid"], o["due_date"] + DAY)
    o = o.assign(paid_share=o["settled"] / o["amount"])
    ev = ctx.evidence(
        o,
        {
            "invoice_id": "invoice_id",
            "invoice": "external_id",
            "amount": "amount",
            "paid": "settled",
            "balance": "balance",
            "currency": "currency",
            "paid_share": "paid_share",
            "due_date": "due_date",
        },
    )
    return ctx.events(
        o,
        "credit",
        "credit.partial_payment",
        "low",
        first,
        "invoice:" + o["invoice_id"].astype(str),
        ev,
    )


def _worsening(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    c = cfg.credit
    led = ctx.ledger
    due = led[led["due_date"] <= ctx.ts]
    cut = ctx.ts - pd.Timedelta(days=c.recent_days)
    recent = due[due["due_date"] > cut]
    hist = due[
        (due["due_date"] <= cut) & (due["due_date"] > cut - pd.Timedelta(days=c.history_days))
    ]
    r = recent.groupby("customer_id")["lateness"].agg(["mean", "count", "max"])
    h = hist.groupby("customer_id")["lateness"].agg(["mean", "count"])
    m = r.join(h, lsuffix="_recent", rsuffix="_hist", how="inner")
    m["delta"] = m["mean_recent"] - m["mean_hist"]
    m = m[
        (m["count_recent"] >= c.min_invoices)
        & (m["count_hist"] >= c.min_invoices)
        & (m["delta"] >= c.worsening_days)
        & (m["mean_recent"] >= c.worsening_min_days)
    ].reset_index()
    sev = np.where(m["delta"] >= c.worsening_medium_days, "medium", "low")
    ids = (
        recent[recent["customer_id"].isin(m["customer_id"])]
        .groupby("customer_id")["invoice_id"]
        .agg(list)
    )
    m["invoices"] = m["customer_id"].map(ids)
    ev = ctx.evidence(
        m,
        {
            "recent_mean_days_beyond_terms": "mean_recent",
            "history_mean_days_beyond_terms": "mean_hist",
            "recent_invoices": "count_recent",
            "history_invoices": "count_hist",
            "recent_max_days": "max",
            "invoice_ids": "invoices",
        },
    )
    first = np.full(len(m), ctx.ts.to_datetime64())
    return ctx.events(m, "credit", "credit.payment_worsening", sev, first, "customer", ev)


def _default(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    led = ctx.ledger
    o = led[led["open"] & (led["days_overdue"] > 90)]
    g = o.groupby("customer_id").agg(
        overdue_90=("balance_cc", "sum"),
        since=("due_date", "min"),
        invoices=("invoice_id", list),
        currency=("cust_ccy", "first"),
    )
    g = g[g["overdue_90"] >= cfg.credit.default_min_amount]
    g["since"] = g["since"] + pd.Timedelta(days=91)
    s = ctx.f.external_signals
    s = s[s["kind"].isin(["bankruptcy", "write_off"])]
    sg = s.groupby("customer_id").agg(
        signal_date=("signal_date", "min"), signals=("signal_id", list), kinds=("kind", list)
    )
    m = g.join(sg, how="outer").reset_index()
    if m.empty:
        return empty_events()
    m["first"] = m[["since", "signal_date"]].min(axis=1)
    ev = ctx.evidence(
        m,
        {
            "overdue_90_plus": "overdue_90",
            "currency": "currency",
            "invoice_ids": "invoices",
            "signal_ids": "signals",
            "signal_kinds": "kinds",
        },
    )
    ev = [{k: v for k, v in e.items() if v is not None and v == v} for e in ev]
    return ctx.events(m, "credit", "credit.default", "critical", m["first"], "customer", ev)


def detect_overdue(
    frames: Frames, as_of: date, config: IdentifyConfig | None = None
) -> pd.DataFrame:
    """Invoices overdue in ageing buckets (1–30, 31–60, 61–90, 90+ days), one event each."""
    return _overdue(Context(frames, as_of), config or IdentifyConfig())


def detect_partial_payments(
    frames: Frames, as_of: date, config: IdentifyConfig | None = None
) -> pd.DataFrame:
    """Invoices past due that were paid only in part."""
    return _partial(Context(frames, as_of), config or IdentifyConfig())


def detect_payment_worsening(
    frames: Frames, as_of: date, config: IdentifyConfig | None = None
) -> pd.DataFrame:
    """Mean days beyond terms of recent invoices well above the customer's own history."""
    return _worsening(Context(frames, as_of), config or IdentifyConfig())


def detect_default(
    frames: Frames, as_of: date, config: IdentifyConfig | None = None
) -> pd.DataFrame:
    """A material balance 90+ days past due, or a bankruptcy / write-off signal."""
    return _default(Context(frames, as_of), config or IdentifyConfig())


# --- contract ----------------------------------------------------------------------------


def _terms_broken(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    c = cfg.contract
    led = ctx.ledger
    w = led[
        (led["due_date"] <= ctx.ts)
        & (led["due_date"] > ctx.ts - pd.Timedelta(days=c.terms_window_days))
        & (led["lateness"] > c.terms_grace_days)
    ]
    g = w.groupby("customer_id").agg(
        broken=("invoice_id", "count"),
        invoices=("invoice_id", list),
        max_days=("lateness", "max"),
        first=("due_date", "min"),
    )
    g = g[g["broken"] >= c.terms_min_count].reset_index()
    g["first"] = g["first"] + pd.Timedelta(days=c.terms_grace_days + 1)
    sev = np.where(g["broken"] >= 2 * c.terms_min_count, "high", "medium")
    ev = ctx.evidence(
        g, {"broken_invoices": "broken", "invoice_ids": "invoices", "max_days_late": "max_days"}
    )
    return ctx.events(g, "contract", "contract.terms_broken", sev, g["first"], "customer", ev)


def _disputes(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    led = ctx.ledger
    d = led[led["open"] & led["disputed"].astype(bool)]
    g = d.groupby("customer_id").agg(
        disputed=("invoice_id", "count"),
        invoices=("invoice_id", list),
        balance=("balance_cc", "sum"),
        currency=("cust_ccy", "first"),
        first=("issue_date", "min"),
    )
    g = g[g["disputed"] >= cfg.contract.disputes_min_count].reset_index()
    ev = ctx.evidence(
        g,
        {
            "disputed_invoices": "disputed",
            "invoice_ids": "invoices",
            "disputed_balance": "balance",
            "currency": "currency",
        },
    )
    return ctx.events(g, "contract", "contract.disputes", "medium", g["first"], "customer", ev)


def _period_bounds(ts: pd.Timestamp, period: str) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    freq = {"month": "M", "quarter": "Q", "year": "Y"}[period]
    p = ts.to_period(freq) - 1
    return p.start_time.normalize(), p.end_time.normalize(), str(p)


def _min_volume(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    con = ctx.f.contracts
    con = con[con["min_volume_amount"].fillna(0) > 0]
    parts = []
    for period in ("month", "quarter", "year"):
        ps, pe, label = _period_bounds(ctx.ts, period)
        c = con[
            (con["min_volume_period"] == period)
            & (con["start_date"] <= ps)
            & (con["end_date"].isna() | (con["end_date"] >= pe))
        ]
        if c.empty:
            continue
        c = c.assign(
            mv_ccy=c["min_volume_currency"]
            .fillna(c["customer_id"].map(ctx.customer_ccy))
            .fillna("EUR")
        )
        o = ctx.orders
        o = o[(o["order_date"] >= ps) & (o["order_date"] <= pe)]
        o = o.merge(
            c[["contract_id", "customer_id", "mv_ccy"]], on="customer_id", suffixes=("_o", "")
        )
        o = o.assign(
            conv=convert(o["amount"], o["currency"], o["mv_ccy"], o["order_date"], ctx.rates)
        )
        vol = o.groupby("contract_id")["conv"].agg(["sum", "count"])
        c = c.assign(
            ordered=c["contract_id"].map(vol["sum"]).fillna(0.0),
            orders=c["contract_id"].map(vol["count"]).fillna(0).astype("int64"),
            period=label,
            period_start=ps,
            period_end=pe,
        )
        c = c[c["ordered"] < c["min_volume_amount"]]
        parts.append(c)
    if not parts:
        return empty_events()
    m = pd.concat(parts, ignore_index=True)
    m["shortfall"] = 1.0 - m["ordered"] / m["min_volume_amount"]
    sev = np.where(m["shortfall"] >= cfg.contract.min_volume_medium_shortfall, "medium", "low")
    ev = ctx.evidence(
        m,
        {
            "contract_id": "contract_id",
            "contract": "external_id",
            "period": "period",
            "ordered": "ordered",
            "minimum": "min_volume_amount",
            "currency": "mv_ccy",
            "orders": "orders",
            "shortfall": "shortfall",
        },
    )
    first = m["period_end"] + DAY
    subject = "contract:" + m["contract_id"].astype(str)
    return ctx.events(m, "contract", "contract.min_volume_missed", sev, first, subject, ev)


def _expiring(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    c = cfg.contract
    con = ctx.f.contracts
    con = con[con["status"].fillna("active") != "terminated"]
    ending = con[
        con["end_date"].notna()
        & (con["end_date"] <= ctx.ts + pd.Timedelta(days=c.expiring_days))
        & (con["end_date"] >= ctx.ts - pd.Timedelta(days=c.expired_grace_days))
    ]
    if ending.empty:
        return empty_events()
    # a successor is any other contract of the customer running past this one's end; renewals
    # entered with a future start date count (the database knows them today)
    allc = ctx.full.contracts[["contract_id", "customer_id", "start_date", "end_date"]]
    pairs = ending[["contract_id", "customer_id", "end_date"]].merge(
        allc, on="customer_id", suffixes=("", "_o")
    )
    succ = pairs[
        (pairs["contract_id_o"] != pairs["contract_id"])
        & (pairs["end_date_o"].isna() | (pairs["end_date_o"] > pairs["end_date"]))
        & (pairs["start_date"] <= pairs["end_date"] + pd.Timedelta(days=31))
    ]
    e = ending[~ending["contract_id"].isin(succ["contract_id"])]
    e = e.assign(days_left=(e["end_date"] - ctx.ts).dt.days)
    ev = ctx.evidence(
        e,
        {
            "contract_id": "contract_id",
            "contract": "external_id",
            "end_date": "end_date",
            "days_left": "days_left",
        },
    )
    first = np.maximum(e["end_date"] - pd.Timedelta(days=c.expiring_days), e["start_date"])
    subject = "contract:" + e["contract_id"].astype(str)
    return ctx.events(e, "contract", "contract.expiring", "low", first, subject, ev)


def detect_contract_breaches(
    frames: Frames, as_of: date, config: IdentifyConfig | None = None
) -> pd.DataFrame:
    """Minimum volume missed, payment terms broken repeatedly, disputes, expiring contracts."""
    ctx, cfg = Context(frames, as_of), config or IdentifyConfig()
    return _concat(
        [_min_volume(ctx, cfg), _terms_broken(ctx, cfg), _disputes(ctx, cfg), _expiring(ctx, cfg)]
    )


# --- demand ------------------------------------------------------------------------------


def _drops(o: pd.DataFrame, end: pd.Timestamp, d: Any) -> pd.DataFrame:
    """Customers whose orders in the window ending ``end`` fell against the same window a
    year earlier (significantly for their own order rate)."""
    w = pd.Timedelta(days=d.window_days)
    year = pd.Timedelta(days=364)  # 52 weeks: the same weekdays last year
    recent = o[(o["order_date"] > end - w) & (o["order_date"] <= end)]
    cur = recent.groupby("customer_id")["amount_cc"].agg(["sum", "count"])
    lo, hi = end - year - w, end - year
    base = o[(o["order_date"] > lo) & (o["order_date"] <= hi)]
    b = base.groupby("customer_id")["amount_cc"].agg(["sum", "count"])
    m = b.join(cur, lsuffix="_base", rsuffix="_cur", how="left").fillna(0.0)
    m = m[(m["count_base"] >= d.min_baseline_orders) & (m["sum_base"] > 0)]
    m["ratio"] = m["sum_cur"] / m["sum_base"]
    # as few orders as now, if the customer still ordered at last year's rate
    m["p_value"] = poisson.cdf(m["count_cur"], m["count_base"])
    return m[(m["ratio"] < 1.0 - d.drop_ratio) & (m["p_value"] <= d.significance)]


def _volume_drop(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    d = cfg.demand
    o = ctx.orders
    w = pd.Timedelta(days=d.window_days)
    year = pd.Timedelta(days=364)
    lo, hi = ctx.ts - year - w, ctx.ts - year
    m = _drops(o, ctx.ts, d).reset_index()
    # one window can catch a lumpy customer between two big orders: a medium drop must also
    # have been a drop `persistence_days` earlier
    earlier = _drops(o, ctx.ts - pd.Timedelta(days=d.persistence_days), d)
    m["persistent"] = m["customer_id"].isin(earlier.index) | (d.persistence_days == 0)
    sev = np.where((m["ratio"] <= 1.0 - d.drop_medium_ratio) & m["persistent"], "medium", "low")
    m["currency"] = m["customer_id"].map(ctx.customer_ccy)
    m["window_start"] = ctx.ts - w + DAY
    m["baseline_start"] = lo + DAY
    m["baseline_end"] = hi
    ev = ctx.evidence(
        m,
        {
            "recent_amount": "sum_cur",
            "recent_orders": "count_cur",
            "baseline_amount": "sum_base",
            "baseline_orders": "count_base",
            "ratio": "ratio",
            "p_value": "p_value",
            "persistent": "persistent",
            "currency": "currency",
            "window_start": "window_start",
            "baseline_start": "baseline_start",
            "baseline_end": "baseline_end",
        },
    )
    first = np.full(len(m), ctx.ts.to_datetime64())
    return ctx.events(m, "demand", "demand.volume_drop", sev, first, "customer", ev)


def _silent(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    d = cfg.demand
    o = ctx.orders.sort_values(["customer_id", "order_date"], kind="stable")
    gap = o.groupby("customer_id")["order_date"].diff().dt.days
    g = (
        o.assign(gap=gap)
        .groupby("customer_id")
        .agg(
            orders=("order_id", "count"),
            usual=("gap", "median"),
            last=("order_date", "max"),
            last_id=("order_id", "last"),
        )
    )
    g = g[g["orders"] >= d.silent_min_orders]
    g["limit"] = np.maximum(g["usual"] * d.silent_factor, d.silent_min_days)
    g["since"] = (ctx.ts - g["last"]).dt.days
    g = g[g["since"] > g["limit"]].reset_index()
    first = g["last"] + pd.to_timedelta(np.ceil(g["limit"]).astype("int64") + 1, unit="D")
    ev = ctx.evidence(
        g,
        {
            "last_order_id": "last_id",
            "last_order_date": "last",
            "days_since_last_order": "since",
            "usual_interval_days": "usual",
            "orders": "orders",
        },
    )
    return ctx.events(g, "demand", "demand.silent", "low", first, "customer", ev)


def _spike(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    d = cfg.demand
    o = ctx.orders
    cut = ctx.ts - pd.Timedelta(days=d.spike_days)
    recent = o[o["order_date"] > cut]
    hist = o[
        (o["order_date"] <= cut) & (o["order_date"] > cut - pd.Timedelta(days=d.spike_history_days))
    ]
    r = recent.groupby("customer_id").agg(recent=("amount_cc", "sum"), n=("order_id", "count"))
    h = hist.groupby("customer_id")["amount_cc"].agg(["sum", "count"])
    m = r.join(h, how="inner")
    m["usual"] = m["sum"] * d.spike_days / d.spike_history_days
    # as many orders as now, if the customer ordered at its usual rate
    m["p_value"] = poisson.sf(m["n"] - 1, m["count"] * d.spike_days / d.spike_history_days)
    m = m[
        (m["count"] >= d.spike_min_orders)
        & (m["recent"] > d.spike_factor * m["usual"])
        & (m["p_value"] <= d.significance)
    ]
    m = m.reset_index()
    ids = recent[recent["customer_id"].isin(m["customer_id"])].groupby("customer_id")["order_id"]
    m["orders"] = lookup(m["customer_id"], ids.agg(list))
    m["factor"] = m["recent"] / m["usual"]
    m["currency"] = m["customer_id"].map(ctx.customer_ccy)
    ev = ctx.evidence(
        m,
        {
            "recent_amount": "recent",
            "usual_amount": "usual",
            "factor": "factor",
            "currency": "currency",
            "order_ids": "orders",
        },
    )
    first = np.full(len(m), ctx.ts.to_datetime64())
    return ctx.events(m, "demand", "demand.spike", "low", first, "customer", ev)


def detect_demand_changes(
    frames: Frames, as_of: date, config: IdentifyConfig | None = None
) -> pd.DataFrame:
    """Volume far below the same months last year, a customer gone silent, an order spike."""
    ctx, cfg = Context(frames, as_of), config or IdentifyConfig()
    return _concat([_volume_drop(ctx, cfg), _silent(ctx, cfg), _spike(ctx, cfg)])


# --- market ------------------------------------------------------------------------------


def _market(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    mc = cfg.market
    mi = ctx.f.market_indicators.dropna(subset=["value"]).sort_values("period_date", kind="stable")
    if mi.empty:
        return empty_events()
    latest = mi.groupby("code").tail(1)
    latest = latest[(ctx.ts - latest["period_date"]).dt.days <= mc.stale_days]
    q = latest.assign(target=latest["period_date"] - pd.Timedelta(days=mc.lookback_days))
    q = q.sort_values("target", kind="stable")
    ref = mi[["code", "period_date", "value"]].rename(
        columns={"period_date": "ref_date", "value": "ref_value"}
    )
    m = pd.merge_asof(
        q, ref, left_on="target", right_on="ref_date", by="code", direction="backward"
    )
    m = m[m["ref_value"].notna() & (m["ref_value"] > 0)]
    m["change"] = m["value"] / m["ref_value"] - 1.0
    drops = m[m["change"] <= -mc.drop_ratio]
    if drops.empty:
        return empty_events()
    exposure = ctx.exposure
    cust = ctx.f.customers[["customer_id", "industry", "region"]]
    cust = cust[cust["customer_id"].isin(exposure.index)]
    cols = ["code", "industry", "region", "period_date", "value", "ref_date", "ref_value", "change"]
    parts = []
    both = drops[drops["industry"].notna() & drops["region"].notna()][cols]
    parts.append(both.merge(cust, on=["industry", "region"]))
    ind = drops[drops["industry"].notna() & drops["region"].isna()][cols].drop(columns="region")
    parts.append(ind.merge(cust, on="industry"))
    reg = drops[drops["industry"].isna() & drops["region"].notna()][cols].drop(columns="industry")
    parts.append(reg.merge(cust, on="region"))
    e = pd.concat(parts, ignore_index=True)
    if e.empty:
        return empty_events()
    e["exposure"] = e["customer_id"].map(exposure)
    e["currency"] = e["customer_id"].map(ctx.customer_ccy)
    sev = np.select(
        [e["change"] <= -mc.high_ratio, e["change"] <= -mc.medium_ratio], ["high", "medium"], "low"
    )
    ev = ctx.evidence(
        e,
        {
            "index": "code",
            "industry": "industry",
            "region": "region",
            "period_date": "period_date",
            "value": "value",
            "reference_date": "ref_date",
            "reference_value": "ref_value",
            "change": "change",
            "exposure": "exposure",
            "currency": "currency",
        },
    )
    if ctx.with_evidence:
        for x in ev:  # a change is a ratio: keep 4 decimals, not 2
            x["change"] = None
        for x, ch in zip(ev, e["change"].round(4).tolist(), strict=True):
            x["change"] = ch
    return ctx.events(
        e,
        "market",
        "market.index_drop",
        sev,
        e["period_date"],
        "index:" + e["code"].astype(str),
        ev,
    )


def detect_market(
    frames: Frames, as_of: date, config: IdentifyConfig | None = None
) -> pd.DataFrame:
    """A market index down beyond the threshold: one event for every exposed customer."""
    return _market(Context(frames, as_of), config or IdentifyConfig())


# --- external ----------------------------------------------------------------------------


def _bureau(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    x = cfg.external
    s = ctx.f.external_signals
    s = s[
        (s["kind"] == "bureau_score")
        & s["value"].notna()
        & (s["signal_date"] > ctx.ts - pd.Timedelta(days=x.bureau_lookback_days))
    ].sort_values(["customer_id", "signal_date"], kind="stable")
    if s.empty:
        return empty_events()
    # the highest of the last `persistence` scores: all of them must be below the line
    recent_max = (
        s.groupby("customer_id")["value"]
        .rolling(x.bureau_persistence, min_periods=x.bureau_persistence)
        .max()
        .groupby(level=0)
        .last()
    )
    g = s.groupby("customer_id").agg(
        latest=("value", "last"),
        latest_id=("signal_id", "last"),
        latest_date=("signal_date", "last"),
        total=("value", "sum"),
        n=("value", "count"),
    )
    g["n"] = g["n"] - 1
    g = g[g["n"] >= x.bureau_min_scores]
    g["reference"] = (g["total"] - g["latest"]) / g["n"]
    g = g[g["reference"] > 0]
    g["drop"] = 1.0 - g["latest"] / g["reference"]
    g["points"] = g["reference"] - g["latest"]
    g = g[(g["drop"] >= x.bureau_drop_ratio) & (g["points"] >= x.bureau_min_points)]
    g = g.reset_index()
    line = g["reference"] * (1.0 - x.bureau_drop_ratio)
    g["persistent"] = lookup(g["customer_id"], recent_max).le(line).fillna(False).astype(bool)
    g["at_risk_level"] = g["latest"] <= x.bureau_risk_score
    confirmed = g["persistent"] | g["at_risk_level"]
    sev = np.where(~confirmed, "low", np.where(g["drop"] >= x.bureau_high_ratio, "high", "medium"))
    ev = ctx.evidence(
        g,
        {
            "signal_id": "latest_id",
            "score": "latest",
            "score_date": "latest_date",
            "reference_score": "reference",
            "reference_scores": "n",
            "drop": "drop",
            "drop_points": "points",
            "persistent": "persistent",
            "at_risk_level": "at_risk_level",
        },
    )
    if ctx.with_evidence:
        for e, dr in zip(ev, g["drop"].round(4).tolist(), strict=True):
            e["drop"] = dr
        for e in ev:
            e["persistent"] = bool(e["persistent"])
            e["at_risk_level"] = bool(e["at_risk_level"])
    return ctx.events(g, "external", "external.bureau_drop", sev, g["latest_date"], "customer", ev)


def _legal(ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    s = ctx.f.external_signals
    s = s[
        s["kind"].isin(["legal_event", "negative_news"])
        & (s["signal_date"] > ctx.ts - pd.Timedelta(days=cfg.external.legal_days))
    ]
    sev = np.where(s["kind"] == "legal_event", "high", "medium")
    ev = ctx.evidence(
        s,
        {
            "signal_id": "signal_id",
            "kind": "kind",
            "signal_date": "signal_date",
            "source": "source",
            "description": "description",
        },
    )
    subject = "signal:" + s["signal_id"].astype(str)
    return ctx.events(s, "external", "external.legal_event", sev, s["signal_date"], subject, ev)


def detect_external(
    frames: Frames, as_of: date, config: IdentifyConfig | None = None
) -> pd.DataFrame:
    """A bureau score drop against the recent best; a legal event or negative news."""
    ctx, cfg = Context(frames, as_of), config or IdentifyConfig()
    return _concat([_bureau(ctx, cfg), _legal(ctx, cfg)])


# --- all ---------------------------------------------------------------------------------

_ALL: tuple[Callable[[Context, IdentifyConfig], pd.DataFrame], ...] = (
    _overdue,
    _partial,
    _worsening,
    _default,
    _min_volume,
    _terms_broken,
    _disputes,
    _expiring,
    _volume_drop,
    _silent,
    _spike,
    _market,
    _bureau,
    _legal,
)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_events()
    out = pd.concat(parts, ignore_index=True)
    return out.drop_duplicates(["customer_id", "manifestation", "subject"]).reset_index(drop=True)


def grade(events: pd.DataFrame, ctx: Context, cfg: IdentifyConfig) -> pd.DataFrame:
    """Grade each customer's events against each other (the severity a credit manager gives).

    * escalation: when symptoms (``combine.symptoms``) from ``combine.escalate_sources``
      independent sources coincide for a customer, each of its low symptoms becomes medium;
    * a market drop is portfolio context: for a customer with no symptom of its own and an
      exposure below ``market.material_exposure`` it is capped at ``market.context_severity``.

    The reason of a changed severity is written to the event's evidence (``graded``).
    """
    if events.empty:
        return events
    out = events.copy()
    rank = out["severity"].map(SEVERITY_RANK).astype("int64")
    reasons = pd.Series([None] * len(out), index=out.index, dtype=object)
    is_symptom = out["manifestation"].isin(cfg.combine.symptoms)
    sym = out[is_symptom]
    n_sources = sym.groupby("customer_id")["source"].nunique()
    many = out["customer_id"].map(n_sources).fillna(0) >= cfg.combine.escalate_sources
    up = is_symptom & many & (rank == SEVERITY_RANK["low"])
    rank = rank.where(~up, SEVERITY_RANK["medium"])
    reasons[up] = "escalated: symptoms from several sources"

    market = out["source"] == "market"
    if market.any():
        mc = cfg.market
        exp = ctx.exposure
        exp_ids = pd.Series(exp.index.to_numpy())
        in_ccy = pd.Series(
            convert(
                exp.to_numpy(),
                exp_ids.map(ctx.customer_ccy).to_numpy(),
                np.full(len(exp), mc.exposure_currency),
                ctx.ts,
                ctx.rates,
            ),
            index=exp.index,
        )
        material = out["customer_id"].map(in_ccy).fillna(0.0) >= mc.material_exposure
        strong = sym[rank[is_symptom] >= SEVERITY_RANK[mc.symptom_severity]]
        n_own = strong.groupby("customer_id")["manifestation"].nunique()
        own = out["customer_id"].map(n_own).fillna(0) >= mc.min_symptoms
        cap = SEVERITY_RANK[mc.context_severity]
        capped = market & ~own & ~material & (rank > cap)
        rank = rank.where(~capped, cap)
        reasons[capped] = "context: no symptom of the customer's own, exposure not material"
    out["severity"] = np.array(_BY_RANK, dtype=object)[rank.to_numpy()]
    if ctx.with_evidence:
        evidence = [
            e if r is None else {**(e or {}), "graded": r}
            for e, r in zip(out["evidence"], reasons, strict=True)
        ]
        out["evidence"] = pd.Series(evidence, index=out.index, dtype=object)
    return out


def detect_all(
    frames: Frames,
    as_of: date,
    config: IdentifyConfig | None = None,
    *,
    with_evidence: bool = True,
) -> pd.DataFrame:
    """Run every detector once over the portfolio as of ``as_of``, then :func:`grade` them."""
    ctx, cfg = Context(frames, as_of, with_evidence), config or IdentifyConfig()
    return grade(_concat([d(ctx, cfg) for d in _ALL]), ctx, cfg)


def to_events(df: pd.DataFrame) -> list[RiskEvent]:
    """The rows of an events frame as :class:`RiskEvent` objects."""
    out: list[RiskEvent] = []
    for r in df.to_dict("records"):
        out.append(
            RiskEvent(
                customer_id=int(r["customer_id"]),
                source=str(r["source"]),
                manifestation=str(r["manifestation"]),
                severity=Severity(str(r["severity"])),
                first_seen=pd.Timestamp(r["first_seen"]).date(),
                subject=str(r["subject"]),
                evidence=dict(r["evidence"] or {}),
            )
        )
    return out
