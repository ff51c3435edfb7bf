"""Expected loss = PD × LGD × EAD, and scoring a whole portfolio with a scorecard.

* **EAD** (exposure at default) = open invoice balance + open orders not yet invoiced, in the
  customer's currency (the ``exposure`` feature).
* **LGD** (loss given default) comes from an :class:`LgdPolicy`: a default, overrides by
  industry, and a lower value for insured customers (when the caller knows which are insured).
  The most specific rule wins: insured, then industry, then the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskdesk.assess.scale import grades_for_pd
from riskdesk.assess.scorecard import Scorecard


@dataclass(frozen=True)
class LgdPolicy:
    default: float = 0.45
    by_industry: dict[str, float] = field(default_factory=dict)
    insured: float | None = 0.10

    def __post_init__(self) -> None:
        for v in [
            self.default,
            *self.by_industry.values(),
            *([self.insured] if self.insured is not None else []),
        ]:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"an LGD must be within [0, 1], got {v}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> LgdPolicy:
        d = d or {}
        return cls(
            default=float(d.get("default", 0.45)),
            by_industry={str(k): float(v) for k, v in (d.get("by_industry") or {}).items()},
            insured=None if d.get("insured", 0.10) is None else float(d.get("insured", 0.10)),
        )

    def lgd(self, industry: pd.Series, insured: pd.Series | None = None) -> np.ndarray:
        out = industry.map(self.by_industry).astype("float64").fillna(self.default).to_numpy()
        if insured is not None and self.insured is not None:
            out = np.where(insured.fillna(False).astype(bool).to_numpy(), self.insured, out)
        return out


def expected_loss(pd_: np.ndarray, lgd: np.ndarray, ead: np.ndarray) -> np.ndarray:
    """PD × LGD × EAD (EAD below 0 counts as 0)."""
    return np.asarray(pd_, float) * np.asarray(lgd, float) * np.maximum(np.asarray(ead, float), 0.0)


def assess_portfolio(
    model: Scorecard,
    features: pd.DataFrame,
    *,
    lgd_policy: LgdPolicy | None = None,
    industry: pd.Series | None = None,
    insured: pd.Series | None = None,
    top_reasons: int = 3,
) -> pd.DataFrame:
    """Score, PD, grade, reasons, EAD, LGD and EL of every row of ``features``.

    ``features`` is indexed by customer_id and holds the model's columns (plus ``exposure``
    for the EAD; 0 when absent).
    """
    policy = lgd_policy or LgdPolicy()
    score = model.score(features)
    pd_ = model.calibrator_.predict(score)
    ead = (
        features["exposure"].fillna(0.0).to_numpy()
        if "exposure" in features
        else np.zeros(len(features))
    )
    ind = (
        industry.reindex(features.index)
        if industry is not None
        else pd.Series(None, index=features.index, dtype=object)
    )
    ins = insured.reindex(features.index) if insured is not None else None
    lgd = policy.lgd(ind, ins)
    reasons = [
        [{"feature": f, "points_lost": p} for f, p in r]
        for r in model.reasons(features, top=top_reasons)
    ]
    return pd.DataFrame(
        {
            "score": score,
            "pd": pd_,
            "grade": grades_for_pd(pd_),
            "reasons": reasons,
            "ead": ead,
            "lgd": lgd,
            "el": expected_loss(pd_, lgd, ead),
        },
        index=features.index,
    )
