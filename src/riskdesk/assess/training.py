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


def default_dates(frames: Frames, definition: DefaultDefinition | None = None) -> pd.Series:
    """First default date of each customer that ever defaulted (index customer_id)."""
    d = definition or DefaultDefinition()
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
    by_dpd = bad.groupby("customer_id")["trigger"].min()
    sig = frames.external_signals
    by_sig = sig[sig["kind"].isin(d.signals)].groupby("customer_id")["signal_date"].min()
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
) -> pd.DataFrame:
    """One row per (customer, snapshot date): features as of T and ``default_12m`` (0/1).

    A customer enters a snapshot once it has any order or invoice on or before T and is not
    yet in default at T. Snapshots whose outcome window runs past the data are still built; the
    caller decides (see :func:`complete_snapshots`).
    """
    dd = default_dates(frames, definition)
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
    *,
    name: str = "scorecard",
    target: dict[str, Any] | None = None,
    feature_definitions: dict[str, str] | None = None,
    description: str | None = None,
    extra_metrics: dict[str, Any] | None = None,
) -> tuple[Scorecard, dict[str, Any]]:
    """Fit a scorecard and pack its artefact (training fingerprint, score distribution, metrics)."""
    model = Scorecard(**(params or {})).fit(X, y)
    scores = model.score(X)
    metrics = {"training": validate(y, scores, model.predict_pd(X))}
    metrics.update(extra_metrics or {})
    defs = feature_definitions
    if defs is None:
        defs = {fb.name: REGISTRY[fb.name].description for fb in model.bins_ if fb.name in REGISTRY}
    art = model_to_dict(
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
    return model, art
