# ruff: noqa: N803, N806  (X is scikit-learn's name for the feature matrix)
"""Training a scorecard: labelled tables, portfolio snapshots, default definition, tuning.

* :func:`labelled` turns any table with a target column into ``(X, y)`` (1 = bad).
* :func:`default_dates` finds each customer's first default date under a configurable
  :class:`DefaultDefinition` (90+ days past due on a material amount, a ``bankruptcy`` /
  ``write_off`` signal). ``demo_truth`` is never used here: it is for measuring only.
* :func:`build_snapshots` makes the training set: month-end snapshots T, features as of T,
  outcome = default in (T, T + horizon]; customers already in default at T are left out.
  :func:`out_of_time_split` splits it by snapshot date.
* :func:`tune` picks hyper-parameters by repeated stratified cross-validation AUC on the
  training rows only; :func:`fit_artefact` fits and packs the JSON artefact.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold

from riskdesk.analytics.frames import Frames
from riskdesk.assess.features import REGISTRY, compute_features, fx_to_customer
from riskdesk.assess.model_io import model_to_dict, table_fingerprint
from riskdesk.assess.scorecard import Scorecard
from riskdesk.assess.validation import score_distribution, validate

DEFAULT_GRID: dict[str, list[Any]] = {
    "monotonic_trend": ["auto_asc_desc", "auto_heuristic"],
    "C": [0.1, 0.3, 1.0],
}
"""The small grid :func:`tune` searches by default."""


def labelled(
    df: pd.DataFrame, target: str, bad_value: Any = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Split a table into features and a 0/1 target (1 = bad).

    ``bad_value`` marks bad rows; without it the target must already be 0/1 (or true/false).
    Rows with an empty target are refused (a clear error, not silently dropped).
    """
    if target not in df.columns:
        raise KeyError(
            f"target column {target!r} not in the table (columns: {', '.join(map(str, df.columns))})"
        )
    t = df[target]
    if t.isna().any():
        rows = [int(i) + 2 for i in np.flatnonzero(t.isna().to_numpy())[:5]]
        raise ValueError(f"target {target!r} is empty on line(s) {rows} of the table")
    if bad_value is not None:
        y = (t.astype(str).str.strip() == str(bad_value)).astype(int).to_numpy()
        if y.sum() == 0:
            raise ValueError(f"no row has {target} = {bad_value!r}")
    else:
        vals = set(t.astype(str).str.strip().str.lower().unique())
        if not vals <= {"0", "1", "true", "false", "0.0", "1.0"}:
            raise ValueError(
                f"target {target!r} has values {sorted(vals)[:5]}: give --bad-value to say which is bad"
            )
        y = t.astype(str).str.strip().str.lower().isin({"1", "true", "1.0"}).astype(int).to_numpy()
    return df.drop(columns=[target]), y


# ------------------------------------------------------------------ default definition


@dataclass(frozen=True)
class DefaultDefinition:
    """When a customer is in default.

    ``dpd``: an invoice still open more than this many days past due, with an open amount of
    at least ``material_amount`` (customer currency) and ``material_share`` of the invoice, on
    day ``due_date + dpd + 1``. ``signals``: external signal kinds that are a default on their
    date.
    """

    dpd: int = 90
    material_amount: float = 100.0
    material_share: float = 0.05
    signals: tuple[str, ...] = ("bankruptcy", "write_off")


def default_dates(
    frames: Frames, definition: DefaultDefinition | None = None, as_of: date | None = None
) -> pd.Series:
    """First default date (on or before ``as_of``) of each customer that defaulted.

    ``as_of`` defaults to the latest document date in ``frames``: a 90-day trigger that falls
    after the end of the data is not known yet, so it is not a default.
    """
    d = definition or DefaultDefinition()
    if as_of is None:
        ends = [
            frames.invoices["issue_date"].max(),
            frames.allocations["payment_date"].max(),
            frames.orders["order_date"].max(),
        ]
        known = [e for e in ends if pd.notna(e)]
        end = max(known) if known else pd.Timestamp.max
    else:
        end = pd.Timestamp(as_of)
    inv = frames.invoices[frames.invoices["status"] != "cancelled"].copy()
    inv["amount_cc"] = fx_to_customer(frames, inv, on="issue_date")
    inv["trigger"] = inv["due_date"] + pd.Timedelta(days=d.dpd + 1)
    al = frames.allocations.merge(
        frames.payments[["payment_id", "currency"]], on="payment_id", how="left"
    )
    al = al[al["invoice_id"].isin(inv["invoice_id"])].copy()
    al["customer_id"] = al["invoice_id"].map(inv.set_index("invoice_id")["customer_id"])
    al["amount_cc"] = fx_to_customer(frames, al, on="payment_date")
    al = al.merge(inv[["invoice_id", "trigger"]], on="invoice_id")
    paid = al[al["payment_date"] <= al["trigger"]].groupby("invoice_id")["amount_cc"].sum()
    cn = frames.credit_notes[frames.credit_notes["invoice_id"].notna()].copy()
    cn["invoice_id"] = cn["invoice_id"].astype("int64")
    cn = cn[cn["invoice_id"].isin(inv["invoice_id"])]
    cn["amount_cc"] = fx_to_customer(frames, cn, on="issue_date")
    cn = cn.merge(inv[["invoice_id", "trigger"]], on="invoice_id")
    credited = cn[cn["issue_date"] <= cn["trigger"]].groupby("invoice_id")["amount_cc"].sum()
    iid = inv["invoice_id"]
    open_at = (
        inv["amount_cc"].to_numpy()
        - iid.map(paid).fillna(0.0).to_numpy()
        - iid.map(credited).fillna(0.0).to_numpy()
    )
    bad = inv[
        (open_at >= d.material_amount) & (open_at >= d.material_share * inv["amount_cc"].to_numpy())
    ]
    by_dpd = bad[bad["trigger"] <= end].groupby("customer_id")["trigger"].min()
    sig = frames.external_signals
    sig = sig[sig["kind"].isin(d.signals) & (sig["signal_date"] <= end)]
    by_sig = sig.groupby("customer_id")["signal_date"].min()
    both = pd.concat([by_dpd.rename("a"), by_sig.rename("b")], axis=1).min(axis=1)
    both.index.name = "customer_id"
    return both.rename("default_date").astype("datetime64[ns]")


def month_ends(start: date, end: date) -> list[date]:
    return [d.date() for d in pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="ME")]


def build_snapshots(
    frames: Frames,
    dates: Sequence[date],
    *,
    definition: DefaultDefinition | None = None,
    horizon_days: int = 365,
    features: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    as_of: date | None = None,
) -> pd.DataFrame:
    """One row per (customer, snapshot date): features as of T and ``default_12m`` (0/1).

    A customer enters a snapshot once it has any order or invoice on or before T and is not
    yet in default at T. Snapshots whose outcome window runs past the data are still built; the
    caller decides (see :func:`complete_snapshots`).
    """
    dd = default_dates(frames, definition, as_of=as_of)
    first_doc = pd.concat(
        [
            frames.orders.groupby("customer_id")["order_date"].min(),
            frames.invoices.groupby("customer_id")["issue_date"].min(),
        ],
        axis=1,
    ).min(axis=1)
    parts = []
    for i, t in enumerate(dates):
        ts = pd.Timestamp(t)
        feats = compute_features(frames, t, names=features)
        active = first_doc.reindex(feats.index) <= ts
        ddate = dd.reindex(feats.index)
        alive = ~(ddate <= ts)
        keep = active & alive
        snap = feats[keep.to_numpy()].copy()
        d = ddate[keep.to_numpy()]
        snap["default_12m"] = (
            ((d > ts) & (d <= ts + pd.Timedelta(days=horizon_days))).astype(int).to_numpy()
        )
        snap["snapshot_date"] = ts
        parts.append(snap.reset_index())
        if progress:
            progress(i + 1, len(dates))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def complete_snapshots(
    snapshots: pd.DataFrame, data_end: date, horizon_days: int = 365
) -> pd.DataFrame:
    """Only snapshots whose whole outcome window lies within the data."""
    limit = pd.Timestamp(data_end) - pd.Timedelta(days=horizon_days)
    return snapshots[snapshots["snapshot_date"] <= limit]


def out_of_time_split(snapshots: pd.DataFrame, split: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Snapshots before ``split`` train; the ones on or after it test."""
    ts = pd.Timestamp(split)
    return snapshots[snapshots["snapshot_date"] < ts], snapshots[snapshots["snapshot_date"] >= ts]


def model_columns(snapshots: pd.DataFrame) -> list[str]:
    """The feature columns of a snapshot table (registry features only)."""
    return [c for c in snapshots.columns if c in REGISTRY]


# ------------------------------------------------------------------ tuning and fitting


@dataclass
class TuneResult:
    best: dict[str, Any]
    table: list[dict[str, Any]] = field(default_factory=list)


def tune(
    X: pd.DataFrame,
    y: np.ndarray,
    grid: dict[str, list[Any]] | None = None,
    *,
    folds: int = 5,
    repeats: int = 2,
    seed: int = 42,
    base: dict[str, Any] | None = None,
) -> TuneResult:
    """Hyper-parameters with the best mean cross-validated AUC (training rows only)."""
    g = grid or DEFAULT_GRID
    keys = list(g)
    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    splits = list(cv.split(X, y))
    table = []
    for combo in itertools.product(*(g[k] for k in keys)):
        params = {**(base or {}), **dict(zip(keys, combo, strict=True))}
        aucs = []
        for tr, te in splits:
            m = Scorecard(**params).fit(X.iloc[tr], y[tr])
            aucs.append(roc_auc_score(y[te], -m.score(X.iloc[te])))
        table.append({**dict(zip(keys, combo, strict=True)), "cv_auc": float(np.mean(aucs))})
    best = max(table, key=lambda r: r["cv_auc"])
    return TuneResult({**(base or {}), **{k: best[k] for k in keys}}, table)


def fit_artefact(
    X: pd.DataFrame,
    y: np.ndarray,
    params: dict[str, Any] | None = None,
    **pack_kw: Any,
) -> tuple[Scorecard, dict[str, Any]]:
    """Fit a scorecard and pack its artefact (see :func:`pack`)."""
    model = Scorecard(**(params or {})).fit(X, y)
    return model, pack(model, X, y, **pack_kw)


def pack(
    model: Scorecard,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    name: str = "scorecard",
    target: dict[str, Any] | None = None,
    feature_definitions: dict[str, str] | None = None,
    description: str | None = None,
    extra_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The artefact of a scorecard fitted on ``(X, y)``: fingerprint, score distribution, metrics."""
    scores = model.score(X)
    metrics = {"training": validate(y, scores, model.predict_pd(X))}
    metrics.update(extra_metrics or {})
    defs = feature_definitions
    if defs is None:
        defs = {fb.name: REGISTRY[fb.name].description for fb in model.bins_ if fb.name in REGISTRY}
    return model_to_dict(
        model,
        name=name,
        target=target,
        fingerprint=table_fingerprint(X, y),
        training={
            "rows": int(len(y)),
            "bads": int(np.sum(y)),
            "score_distribution": score_distribution(scores),
        },
        metrics=metrics,
        feature_definitions=defs,
        description=description,
    )


# ------------------------------------------------------------------ portfolio models

MIN_BADS = 30
"""A portfolio model is trained only with at least this many bad snapshots."""

PORTFOLIO_FEATURES = [n for n, f in REGISTRY.items() if n != "exposure"]
"""Candidate columns of a portfolio model (exposure is the EAD, not a risk driver)."""


@dataclass
class PortfolioTraining:
    """Outcome of :func:`train_portfolio_model`."""

    ok: bool
    reason: str = ""
    model: Scorecard | None = None
    artefact: dict[str, Any] | None = None
    train_rows: int = 0
    train_bads: int = 0
    test_rows: int = 0
    test_bads: int = 0
    oot: dict[str, Any] | None = None


def snapshot_dates(
    frames: Frames, as_of: date, horizon_days: int = 365, warmup_days: int = 180
) -> list[date]:
    """Month ends from ``warmup_days`` after the first document to ``as_of − horizon``."""
    firsts = [frames.orders["order_date"].min(), frames.invoices["issue_date"].min()]
    known = [f for f in firsts if pd.notna(f)]
    if not known:
        return []
    start = (min(known) + pd.Timedelta(days=warmup_days)).date()
    end = (pd.Timestamp(as_of) - pd.Timedelta(days=horizon_days)).date()
    return month_ends(start, end) if start <= end else []


def train_portfolio_model(
    frames: Frames,
    as_of: date,
    *,
    definition: DefaultDefinition | None = None,
    horizon_days: int = 365,
    min_bads: int = MIN_BADS,
    test_share: float = 0.25,
    params: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PortfolioTraining:
    """Train a scorecard on the portfolio's own history, tested out of time.

    Snapshots are month ends whose 12-month outcome is complete by ``as_of``; the latest
    ``test_share`` of snapshot dates form the out-of-time test set.
    """
    frames = frames.as_of(as_of)
    dates = snapshot_dates(frames, as_of, horizon_days)
    if len(dates) < 2:
        return PortfolioTraining(
            False, f"not enough history: {len(dates)} complete monthly snapshot(s)"
        )
    snaps = build_snapshots(
        frames,
        dates,
        definition=definition,
        horizon_days=horizon_days,
        features=PORTFOLIO_FEATURES,
        progress=progress,
        as_of=as_of,
    )
    bads = int(snaps["default_12m"].sum()) if len(snaps) else 0
    if bads < min_bads:
        return PortfolioTraining(False, f"only {bads} bad snapshots (at least {min_bads} needed)")
    split = (
        dates[max(1, int(round(len(dates) * (1 - test_share))))] if len(dates) > 1 else dates[-1]
    )
    train, test = out_of_time_split(snaps, split)
    if (
        train["default_12m"].sum() < min_bads * (1 - test_share)
        or train["default_12m"].nunique() < 2
    ):
        train, test = snaps, snaps.iloc[0:0]
    cols = [c for c in PORTFOLIO_FEATURES if c in snaps.columns]
    # drop columns that carry no information at all (all missing)
    cols = [c for c in cols if train[c].notna().any()]
    Xtr, ytr = train[cols], train["default_12m"].to_numpy()
    model, art = fit_artefact(
        Xtr,
        ytr,
        params=params,
        name="portfolio",
        target={
            "column": "default_12m",
            "definition": (definition or DefaultDefinition()).__dict__
            | {"horizon_days": horizon_days},
        },
        description=f"trained on {len(dates)} month-end snapshots up to {dates[-1]}; out of time from {split}",
    )
    oot = None
    if len(test) and test["default_12m"].nunique() == 2:
        Xte = test[cols]
        oot = validate(
            test["default_12m"].to_numpy(),
            model.score(Xte),
            model.predict_pd(Xte),
            art["training"]["score_distribution"],
        )
        # metrics are part of the checksummed content: rebuild the artefact with them
        model, art = fit_artefact(
            Xtr,
            ytr,
            params=params,
            name="portfolio",
            target=art["target"],
            description=art["description"],
            extra_metrics={"out_of_time": oot, "split_date": split.isoformat()},
        )
    return PortfolioTraining(
        True,
        model=model,
        artefact=art,
        train_rows=len(train),
        train_bads=int(ytr.sum()),
        test_rows=len(test),
        test_bads=int(test["default_12m"].sum()) if len(test) else 0,
        oot=oot,
    )
