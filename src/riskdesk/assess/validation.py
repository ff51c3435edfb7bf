"""Validation metrics of a scorecard: discrimination, calibration by grade, stability (PSI).

* AUC (``sklearn.metrics.roc_auc_score`` of the PD), Gini = 2·AUC − 1, KS = max |TPR − FPR|.
* Calibration by grade: per master-scale grade, rows, observed bads, observed default rate, mean
  predicted PD and a two-sided exact binomial test p-value (``scipy.stats.binomtest``) of the
  observed bads against the mean predicted PD.
* PSI of the score distribution against the training one: the training scores' deciles are the
  buckets (stored in the model); ``PSI = Σ (a − e)·ln(a / e)`` with shares floored at 1e-4.
  Usual reading: < 0.10 stable, 0.10–0.25 watch, > 0.25 shifted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score, roc_curve

from riskdesk.assess.scale import grade_info, grades_for_pd

PSI_FLOOR = 1e-4


def score_distribution(scores: npt.ArrayLike, buckets: int = 10) -> dict[str, list[float]]:
    """Quantile bucket edges of ``scores`` and the share of rows in each bucket."""
    s = np.asarray(scores, dtype=float)
    inner = np.unique(np.quantile(s, np.linspace(0, 1, buckets + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(inner, s, side="right"), minlength=len(inner) + 1)
    return {"edges": [float(e) for e in inner], "shares": [float(c) / len(s) for c in counts]}


def psi(expected: dict[str, list[float]], scores: npt.ArrayLike) -> float:
    """Population stability index of ``scores`` against a stored :func:`score_distribution`."""
    s = np.asarray(scores, dtype=float)
    edges = np.asarray(expected["edges"], dtype=float)
    e = np.maximum(np.asarray(expected["shares"], dtype=float), PSI_FLOOR)
    counts = np.bincount(np.searchsorted(edges, s, side="right"), minlength=len(e))
    a = np.maximum(counts / max(len(s), 1), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(y: npt.ArrayLike, pd_: npt.ArrayLike) -> float:
    fpr, tpr, _ = roc_curve(np.asarray(y, dtype=int), np.asarray(pd_, dtype=float))
    return float(np.max(np.abs(tpr - fpr)))


def calibration_by_grade(y: npt.ArrayLike, pd_: npt.ArrayLike) -> list[dict[str, Any]]:
    t = np.asarray(y, dtype=int)
    p = np.asarray(pd_, dtype=float)
    g = grades_for_pd(p)
    rows = []
    for grade in np.unique(g):
        m = g == grade
        n, bads = int(m.sum()), int(t[m].sum())
        mean_pd = float(p[m].mean())
        rows.append(
            {
                "grade": int(grade),
                "label": grade_info(int(grade)).label,
                "rows": n,
                "bads": bads,
                "observed_rate": bads / n,
                "mean_pd": mean_pd,
                "binomial_p": float(binomtest(bads, n, min(max(mean_pd, 1e-9), 1.0)).pvalue),
            }
        )
    return rows


def validate(
    y: npt.ArrayLike,
    scores: npt.ArrayLike,
    pd_: npt.ArrayLike,
    training_distribution: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """All validation numbers as one JSON-able dict."""
    t = np.asarray(y, dtype=int)
    p = np.asarray(pd_, dtype=float)
    if len(np.unique(t)) < 2:
        raise ValueError("validation needs both good and bad rows")
    auc = float(roc_auc_score(t, p))
    out: dict[str, Any] = {
        "rows": int(len(t)),
        "bads": int(t.sum()),
        "bad_rate": float(t.mean()),
        "auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks_statistic(t, p),
        "mean_pd": float(p.mean()),
        "brier": float(np.mean((p - t) ** 2)),
        "calibration_by_grade": calibration_by_grade(t, p),
    }
    if training_distribution is not None:
        out["psi"] = psi(training_distribution, scores)
    return out
