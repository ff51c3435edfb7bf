"""Diversification: concentration of exposure by customer, group, industry, region, country.

Shares, top-N share, the Herfindahl–Hirschman index, the Lorenz curve and Gini coefficient,
and breaches of configured concentration limits. Pure logic on plain rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

DIMENSIONS = ("customer", "group", "industry", "region", "country")


@dataclass(frozen=True)
class ExposureRow:
    customer_id: int
    amount: Decimal
    group: str | None = None
    industry: str | None = None
    region: str | None = None
    country: str | None = None

    def key(self, dimension: str) -> str:
        if dimension == "customer":
            return str(self.customer_id)
        if dimension not in DIMENSIONS:
            raise ValueError(f"unknown concentration dimension {dimension!r}")
        return getattr(self, dimension) or "(none)"


@dataclass(frozen=True)
class ConcentrationRule:
    id: int
    dimension: str
    key: str | None  # None: applies to every key of the dimension
    max_share: Decimal


@dataclass
class Concentration:
    dimension: str
    total: Decimal
    shares: dict[str, Decimal]
    """Share of total exposure per key, largest first."""
    hhi: float
    top_n_share: dict[int, Decimal]
    lorenz_x: list[float]
    lorenz_y: list[float]
    gini: float

    def as_dict(self, top: int = 20) -> dict[str, object]:
        return {
            "dimension": self.dimension,
            "total": self.total,
            "hhi": round(self.hhi, 6),
            "gini": round(self.gini, 6),
            "top_n_share": {str(k): v for k, v in self.top_n_share.items()},
            "largest": [{"key": k, "share": v} for k, v in list(self.shares.items())[:top]],
        }


@dataclass(frozen=True)
class Breach:
    rule_id: int
    dimension: str
    key: str
    share: Decimal
    max_share: Decimal


def totals_by(rows: Sequence[ExposureRow], dimension: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        if r.amount > 0:
            out[r.key(dimension)] += r.amount
    return dict(out)


def concentration(
    rows: Sequence[ExposureRow], dimension: str, top_n: Sequence[int] = (1, 5, 10)
) -> Concentration:
    """Concentration of positive exposure along one dimension."""
    totals = totals_by(rows, dimension)
    total = sum(totals.values(), Decimal("0"))
    if total <= 0:
        return Concentration(
            dimension,
            Decimal("0"),
            {},
            0.0,
            {n: Decimal("0") for n in top_n},
            [0.0, 1.0],
            [0.0, 1.0],
            0.0,
        )
    ordered = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    q = Decimal("0.000001")
    shares = {k: (v / total).quantize(q) for k, v in ordered}
    amounts = np.array([float(v) for _, v in ordered], dtype=float)
    s = amounts / amounts.sum()
    hhi = float(np.sum(s**2))
    top = {n: (sum((v for _, v in ordered[:n]), Decimal("0")) / total).quantize(q) for n in top_n}
    asc = np.sort(amounts)
    cum = np.concatenate([[0.0], np.cumsum(asc) / asc.sum()])
    x = np.linspace(0.0, 1.0, len(cum))
    gini = float(1.0 - np.sum((cum[1:] + cum[:-1]) * np.diff(x)))
    if len(cum) > 501:  # keep the chart light: 500 evenly spaced points
        idx = np.unique(np.linspace(0, len(cum) - 1, 501).astype(int))
        x, cum = x[idx], cum[idx]
    return Concentration(dimension, total, shares, hhi, top, x.tolist(), cum.tolist(), gini)


def breaches(rows: Sequence[ExposureRow], rules: Sequence[ConcentrationRule]) -> list[Breach]:
    """Every (rule, key) whose share of total exposure is above the rule's maximum."""
    out: list[Breach] = []
    cache: dict[str, dict[str, Decimal]] = {}
    for rule in rules:
        if rule.dimension not in cache:
            totals = totals_by(rows, rule.dimension)
            total = sum(totals.values(), Decimal("0"))
            cache[rule.dimension] = {k: v / total for k, v in totals.items()} if total > 0 else {}
        shares = cache[rule.dimension]
        keys = [rule.key] if rule.key is not None else sorted(shares)
        for k in keys:
            share = shares.get(k, Decimal("0"))
            if share > rule.max_share:
                out.append(
                    Breach(
                        rule.id,
                        rule.dimension,
                        k,
                        share.quantize(Decimal("0.0001")),
                        rule.max_share,
                    )
                )
    return out


def share_after(key_total: Decimal, portfolio_total: Decimal, amount: Decimal) -> Decimal:
    """A key's share of the portfolio if an order of ``amount`` is added to it."""
    denom = portfolio_total + amount
    if denom <= 0:
        return Decimal("0")
    return (key_total + amount) / denom
