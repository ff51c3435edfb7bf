"""Expert assessment: likelihood x impact forms per risk source, the 5x5 risk matrix and
consensus over several assessors. Pure functions on plain data (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

BUILTIN_SOURCES: dict[str, tuple[str, str]] = {
    "market": ("market environment change", "市场环境变化"),
    "credit": ("customer credit", "客户信用"),
    "contract": ("contract breach", "合同违约"),
    "demand": ("demand change", "客户需求变化"),
}
"""Built-in risk sources: code → (English, Chinese). Other source codes are accepted too."""

LIKELIHOOD_LEVELS: dict[int, tuple[str, str]] = {
    1: ("rare — not expected within 12 months (<5%)", "罕见 — 12个月内预计不会发生 (<5%)"),
    2: ("unlikely — could happen (5–20%)", "不太可能 — 有可能发生 (5–20%)"),
    3: ("possible — may well happen (20–50%)", "可能 — 很可能发生 (20–50%)"),
    4: ("likely — expected to happen (50–80%)", "很可能 — 预计会发生 (50–80%)"),
    5: ("almost certain — happening or imminent (>80%)", "几乎确定 — 正在发生或即将发生 (>80%)"),
}
IMPACT_LEVELS: dict[int, tuple[str, str]] = {
    1: ("negligible — no loss, minor delay", "可忽略 — 无损失，轻微延误"),
    2: ("minor — late payment, loss < 5% of exposure", "较小 — 延迟付款，损失低于敞口的5%"),
    3: ("moderate — loss 5–20% of exposure", "中等 — 损失为敞口的5–20%"),
    4: ("major — loss 20–50% of exposure", "重大 — 损失为敞口的20–50%"),
    5: ("severe — loss > 50% of exposure or default", "严重 — 损失超过敞口的50%或违约"),
}

ZONES: tuple[tuple[int, str, str, str], ...] = (
    # (minimum likelihood x impact, zone, English, Chinese)
    (20, "critical", "critical", "极高"),
    (10, "high", "high", "高"),
    (5, "medium", "medium", "中"),
    (1, "low", "low", "低"),
)


class AssessmentError(ValueError):
    """An invalid assessment form."""


@dataclass(frozen=True)
class Judgement:
    """One assessor's judgement of one risk source."""

    source: str
    likelihood: int
    impact: int
    assessor: str
    comment: str | None = None
    evidence: tuple[str, ...] = ()

    @property
    def score(self) -> int:
        return self.likelihood * self.impact


def validate(source: str, likelihood: int, impact: int, assessor: str) -> None:
    """Refuse a form with an empty source/assessor or a level outside 1..5."""
    if not source or not source.strip():
        raise AssessmentError("a risk source code is required")
    if len(source) > 64:
        raise AssessmentError("a risk source code has at most 64 characters")
    if not assessor or not assessor.strip():
        raise AssessmentError("an assessor is required")
    for name, v in (("likelihood", likelihood), ("impact", impact)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
            raise AssessmentError(f"{name} must be an integer from 1 to 5, got {v!r}")


def zone(score: float) -> str:
    """The risk zone of a likelihood x impact score (1..25)."""
    for low, name, _en, _zh in ZONES:
        if score >= low:
            return name
    return "low"


@dataclass(frozen=True)
class Consensus:
    """Aggregate of several assessors on one source: medians and spread."""

    source: str
    n: int
    likelihood: float
    impact: float
    likelihood_iqr: float
    impact_iqr: float
    likelihood_range: int
    impact_range: int
    assessors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def score(self) -> float:
        return self.likelihood * self.impact

    @property
    def spread(self) -> float:
        """The larger of the two interquartile ranges: the disagreement to drive below a
        threshold."""
        return max(self.likelihood_iqr, self.impact_iqr)

    @property
    def zone(self) -> str:
        return zone(self.score)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "n": self.n,
            "likelihood": self.likelihood,
            "impact": self.impact,
            "score": self.score,
            "zone": self.zone,
            "likelihood_iqr": self.likelihood_iqr,
            "impact_iqr": self.impact_iqr,
            "likelihood_range": self.likelihood_range,
            "impact_range": self.impact_range,
            "spread": self.spread,
            "assessors": list(self.assessors),
        }


def _iqr(a: np.ndarray) -> float:
    q75, q25 = np.percentile(a, [75, 25])
    return float(q75 - q25)


def latest_per_assessor(judgements: Iterable[Judgement]) -> list[Judgement]:
    """Keep each assessor's last judgement per source (input order = time order)."""
    last: dict[tuple[str, str], Judgement] = {}
    for j in judgements:
        last[(j.source, j.assessor)] = j
    return list(last.values())


def consensus(judgements: Sequence[Judgement]) -> list[Consensus]:
    """Median likelihood and impact per source with IQR and max−min spread."""
    by_source: dict[str, list[Judgement]] = {}
    for j in judgements:
        by_source.setdefault(j.source, []).append(j)
    out = []
    for source in sorted(by_source):
        js = by_source[source]
        lik = np.array([j.likelihood for j in js], dtype=float)
        imp = np.array([j.impact for j in js], dtype=float)
        out.append(
            Consensus(
                source=source,
                n=len(js),
                likelihood=float(np.median(lik)),
                impact=float(np.median(imp)),
                likelihood_iqr=_iqr(lik),
                impact_iqr=_iqr(imp),
                likelihood_range=int(lik.max() - lik.min()),
                impact_range=int(imp.max() - imp.min()),
                assessors=tuple(sorted({j.assessor for j in js})),
            )
        )
    return out


def matrix_counts(points: Iterable[tuple[float, float]]) -> list[list[int]]:
    """A 5x5 count grid: ``grid[impact-1][likelihood-1]`` = how many points fall there
    (medians are rounded half up)."""
    grid = [[0] * 5 for _ in range(5)]
    for lik, imp in points:
        li = min(5, max(1, int(np.floor(lik + 0.5))))
        ii = min(5, max(1, int(np.floor(imp + 0.5))))
        grid[ii - 1][li - 1] += 1
    return grid


def qualitative_notches(items: Sequence[Consensus]) -> int:
    """Notches (positive = worse) suggested by the expert consensus.

    The worst source decides: a critical score (≥ 20) → +2, a high one (≥ 10) → +1;
    when every source assessed is low (< 5) and at least two sources were assessed → −1.
    """
    if not items:
        return 0
    worst = max(c.score for c in items)
    if worst >= 20:
        return 2
    if worst >= 10:
        return 1
    if len(items) >= 2 and worst < 5:
        return -1
    return 0
