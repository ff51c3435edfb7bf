"""Expert scorecard: a cold-start rating without training data.

Each indicator has bands (an inclusive upper bound ``upto`` each, the last open-ended) with
points from 0 (worst) to 100 (best) and a weight; a missing value gets ``missing_points``.
The score is the weighted mean of the points (0…100). The score maps to a PD through a
straight line in log-odds, anchored at ``pd_at_score_0`` and ``pd_at_score_100``:

    logit_good(score) = a + b·score,  a = ln((1−PD0)/PD0),  b = (ln((1−PD100)/PD100) − a)/100
    PD = 1 / (1 + exp(logit_good))

and the PD lands on the master scale (:mod:`riskdesk.assess.scale`). Weights may come from
AHP (:func:`with_weights`). Scoring is vectorised: one ``searchsorted`` per indicator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from riskdesk.analytics.frames import Frames
from riskdesk.assess.scale import grades_for_pd

DERIVED = {
    "overdue_share": ("overdue_balance", "open_invoice_balance"),
    "tenure_years": ("tenure_days",),
}
"""Indicators computed here from the batch features."""
EXPERT_INPUTS = frozenset({"management_quality"})
"""Indicators that people enter (not computed from data)."""


class ScorecardConfigError(ValueError):
    """An invalid scorecard configuration."""


@dataclass(frozen=True)
class Indicator:
    name: str
    label_en: str
    label_zh: str
    weight: float
    uppers: tuple[float, ...]  # inclusive upper bounds; the last band is open (inf)
    points: tuple[float, ...]
    missing_points: float


@dataclass(frozen=True)
class ExpertScorecard:
    name: str
    version: str
    indicators: tuple[Indicator, ...]
    pd_at_score_0: float
    pd_at_score_100: float

    @property
    def model_version(self) -> str:
        return f"expert:{self.name}@{self.version}"

    def weights(self) -> dict[str, float]:
        return {i.name: i.weight for i in self.indicators}

    def pd_for_score(self, score: np.ndarray | float) -> np.ndarray:
        s = np.asarray(score, dtype=float)
        a = np.log((1 - self.pd_at_score_0) / self.pd_at_score_0)
        b = (np.log((1 - self.pd_at_score_100) / self.pd_at_score_100) - a) / 100.0
        return 1.0 / (1.0 + np.exp(a + b * s))

    def score(self, values: pd.DataFrame) -> pd.DataFrame:
        """Score every row of ``values`` (one column per indicator; absent columns count as
        missing). Returns ``score``, ``pd``, ``grade`` and ``points_<indicator>``."""
        out = pd.DataFrame(index=values.index)
        total = np.zeros(len(values))
        for ind in self.indicators:
            col = (
                pd.to_numeric(values[ind.name], errors="coerce").to_numpy(dtype=float)
                if ind.name in values
                else np.full(len(values), np.nan)
            )
            idx = np.searchsorted(np.asarray(ind.uppers), col, side="left")
            pts = np.asarray(ind.points + (ind.points[-1],))[np.minimum(idx, len(ind.points) - 1)]
            pts = np.where(np.isnan(col), ind.missing_points, pts)
            out[f"points_{ind.name}"] = pts
            total += ind.weight * pts
        out["score"] = total
        out["pd"] = self.pd_for_score(total)
        out["grade"] = grades_for_pd(out["pd"].to_numpy())
        return out

    def reasons(self, row: pd.Series, n: int = 3) -> list[str]:
        """The indicators that cost the most points (weight × (100 − points))."""
        lost = {i.name: i.weight * (100 - float(row[f"points_{i.name}"])) for i in self.indicators}
        return [k for k, v in sorted(lost.items(), key=lambda kv: -kv[1])[:n] if v > 0]


def from_dict(cfg: Mapping[str, Any]) -> ExpertScorecard:
    """Build and validate a scorecard from its JSON configuration."""
    try:
        inds = []
        for raw in cfg["indicators"]:
            bands = raw["bands"]
            if not bands:
                raise ScorecardConfigError(f"{raw['name']}: at least one band is needed")
            uppers = [b["upto"] for b in bands]
            if uppers[-1] is not None:
                raise ScorecardConfigError(f"{raw['name']}: the last band needs upto = null")
            bounds = [float(u) for u in uppers[:-1]]
            if any(x >= y for x, y in zip(bounds, bounds[1:], strict=False)):
                raise ScorecardConfigError(f"{raw['name']}: band bounds must increase")
            pts = tuple(float(b["points"]) for b in bands)
            if any(not 0 <= p <= 100 for p in (*pts, float(raw["missing_points"]))):
                raise ScorecardConfigError(f"{raw['name']}: points must be within 0..100")
            w = float(raw["weight"])
            if w < 0:
                raise ScorecardConfigError(f"{raw['name']}: a weight cannot be negative")
            inds.append(
                Indicator(
                    name=str(raw["name"]),
                    label_en=str(raw.get("label_en", raw["name"])),
                    label_zh=str(raw.get("label_zh", raw["name"])),
                    weight=w,
                    uppers=tuple(bounds),
                    points=pts,
                    missing_points=float(raw["missing_points"]),
                )
            )
        total = sum(i.weight for i in inds)
        if total <= 0:
            raise ScorecardConfigError("the weights must not all be zero")
        if len({i.name for i in inds}) != len(inds):
            raise ScorecardConfigError("indicator names must be unique")
        inds = [
            Indicator(
                i.name,
                i.label_en,
                i.label_zh,
                i.weight / total,
                i.uppers,
                i.points,
                i.missing_points,
            )
            for i in inds
        ]
        p0, p100 = float(cfg["pd_at_score_0"]), float(cfg["pd_at_score_100"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ScorecardConfigError):
            raise
        raise ScorecardConfigError(f"invalid scorecard configuration: {exc}") from exc
    if not 0 < p100 < p0 < 1:
        raise ScorecardConfigError("need 0 < pd_at_score_100 < pd_at_score_0 < 1")
    return ExpertScorecard(
        str(cfg.get("name", "custom")), str(cfg.get("version", "1")), tuple(inds), p0, p100
    )


def default_config() -> dict[str, Any]:
    text = resources.files("riskdesk.assess").joinpath("expert_scorecard_default.json").read_text()
    return dict(json.loads(text))


def default_scorecard() -> ExpertScorecard:
    return from_dict(default_config())


def with_weights(card: ExpertScorecard, weights: Mapping[str, float]) -> ExpertScorecard:
    """The same scorecard with new weights (e.g. from AHP); unnamed indicators get 0."""
    unknown = set(weights) - {i.name for i in card.indicators}
    if unknown:
        raise ScorecardConfigError(f"unknown indicators: {', '.join(sorted(unknown))}")
    total = sum(float(w) for w in weights.values())
    if total <= 0:
        raise ScorecardConfigError("the weights must not all be zero")
    inds = tuple(
        Indicator(
            i.name,
            i.label_en,
            i.label_zh,
            float(weights.get(i.name, 0.0)) / total,
            i.uppers,
            i.points,
            i.missing_points,
        )
        for i in card.indicators
    )
    return ExpertScorecard(
        card.name, card.version + "+ahp", inds, card.pd_at_score_0, card.pd_at_score_100
    )


# --------------------------------------------------------------------- indicator values


_FEATURES = [
    "max_days_overdue",
    "dbt_wavg_paid_180d",
    "overdue_balance",
    "open_invoice_balance",
    "tenure_days",
    "bureau_score",
    "order_trend_ratio",
    "negative_signals_365d",
]


def indicator_values(
    frames: Frames,
    as_of: date,
    expert_inputs: pd.DataFrame | None = None,
    customer_ids: list[int] | None = None,
) -> pd.DataFrame:
    """Indicator values per customer (index ``customer_id``) from the batch features, plus
    expert inputs (a frame indexed by ``customer_id``)."""
    try:
        from riskdesk.assess.features import compute_features
    except ImportError:  # the feature module is not installed: the few basics ourselves
        feats = _basic_features(frames, as_of)
    else:
        feats = compute_features(frames, as_of, _FEATURES, customer_ids)
    if customer_ids is not None:
        feats = feats[feats.index.isin(customer_ids)]
    vals = pd.DataFrame(index=feats.index)
    for name in feats.columns:
        vals[name] = feats[name]
    open_bal = feats["open_invoice_balance"].astype(float)
    vals["overdue_share"] = np.where(
        open_bal > 0.005,
        feats["overdue_balance"].astype(float) / open_bal.where(open_bal > 0.005),
        0.0,
    )
    vals["tenure_years"] = feats["tenure_days"].astype(float) / 365.25
    if expert_inputs is not None and len(expert_inputs):
        vals = vals.join(expert_inputs[[c for c in expert_inputs.columns if c not in vals]])
    return vals


def _basic_features(frames: Frames, as_of: date) -> pd.DataFrame:
    """Fallback when :mod:`riskdesk.assess.features` is absent: open/overdue balances and
    worst days overdue (single currency, payments by allocation), tenure, bureau score."""
    f = frames.as_of(as_of)
    t = pd.Timestamp(as_of)
    idx = pd.Index(f.customers["customer_id"].astype("int64"), name="customer_id")
    inv = f.invoices[f.invoices["status"] != "cancelled"]
    paid = f.allocations.groupby("invoice_id")["amount"].sum()
    cn = f.credit_notes.dropna(subset=["invoice_id"]).groupby("invoice_id")["amount"].sum()
    open_amt = (
        inv["amount"]
        - inv["invoice_id"].map(paid).fillna(0.0)
        - inv["invoice_id"].map(cn).fillna(0.0)
    ).clip(lower=0.0)
    days = (t - inv["due_date"]).dt.days
    is_open = open_amt > 0.005
    df = pd.DataFrame(
        {
            "customer_id": inv["customer_id"],
            "open": open_amt.where(is_open, 0.0),
            "overdue": open_amt.where(is_open & (days >= 1), 0.0),
            "dpd": days.where(is_open, 0).clip(lower=0),
        }
    )
    g = df.groupby("customer_id")
    out = pd.DataFrame(index=idx)
    out["open_invoice_balance"] = g["open"].sum().reindex(idx).fillna(0.0)
    out["overdue_balance"] = g["overdue"].sum().reindex(idx).fillna(0.0)
    out["max_days_overdue"] = g["dpd"].max().reindex(idx).fillna(0.0).astype(float)
    out["dbt_wavg_paid_180d"] = np.nan
    first = (
        pd.concat(
            [
                inv[["customer_id", "issue_date"]].rename(columns={"issue_date": "d"}),
                f.orders[["customer_id", "order_date"]].rename(columns={"order_date": "d"}),
            ]
        )
        .groupby("customer_id")["d"]
        .min()
    )
    out["tenure_days"] = (t - first.reindex(idx)).dt.days.astype(float)
    bs = f.external_signals[f.external_signals["kind"] == "bureau_score"].sort_values("signal_date")
    out["bureau_score"] = bs.groupby("customer_id")["value"].last().reindex(idx)
    out["order_trend_ratio"] = np.nan
    neg = f.external_signals[
        f.external_signals["kind"].isin(["legal_event", "negative_news", "bankruptcy", "write_off"])
        & (f.external_signals["signal_date"] > t - pd.Timedelta(days=365))
    ]
    out["negative_signals_365d"] = neg.groupby("customer_id").size().reindex(idx).fillna(0.0)
    return out


def score_portfolio(
    frames: Frames,
    as_of: date,
    card: ExpertScorecard | None = None,
    expert_inputs: pd.DataFrame | None = None,
    customer_ids: list[int] | None = None,
) -> pd.DataFrame:
    """Expert-scorecard score, PD and grade of every customer (or ``customer_ids``)."""
    card = card or default_scorecard()
    vals = indicator_values(frames, as_of, expert_inputs, customer_ids)
    scored = card.score(vals)
    return vals.join(scored)
