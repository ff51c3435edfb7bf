"""The master scale: ten grades, each a band of probability of default (12 months).

Grade 1 is the best, 10 the worst; ``D`` (default) is outside the scale. Every rating in
riskdesk — scorecard, expert scorecard, final decision — lands on this scale, so they can be
compared and notched. Bands are geometric (each grade ~2x the PD of the one before), as in
most bank and trade-credit master scales.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Grade:
    grade: int
    label: str
    pd_low: float
    pd_high: float
    name_en: str
    name_zh: str

    @property
    def pd_mid(self) -> float:
        """Geometric middle of the band: the PD a grade stands for."""
        return float(np.sqrt(max(self.pd_low, 1e-5) * self.pd_high))


_BOUNDS = [0.0, 0.0015, 0.003, 0.006, 0.012, 0.025, 0.05, 0.10, 0.20, 0.35, 1.0]
_NAMES = [
    ("AAA", "minimal", "极低"),
    ("AA", "very low", "很低"),
    ("A", "low", "低"),
    ("BBB", "moderate", "中等偏低"),
    ("BB", "medium", "中等"),
    ("B", "elevated", "中等偏高"),
    ("CCC", "high", "高"),
    ("CC", "very high", "很高"),
    ("C", "severe", "严重"),
    ("D-", "near default", "濒临违约"),
]

MASTER_SCALE: tuple[Grade, ...] = tuple(
    Grade(i + 1, label, _BOUNDS[i], _BOUNDS[i + 1], en, zh)
    for i, (label, en, zh) in enumerate(_NAMES)
)
"""Grades 1 (best) … 10 (worst)."""

BEST, WORST = 1, len(MASTER_SCALE)


def grade_for_pd(pd: float) -> int:
    """The grade whose PD band holds ``pd`` (lower bound inclusive)."""
    if not 0.0 <= pd <= 1.0:
        raise ValueError(f"a PD must be within [0, 1], got {pd}")
    return min(bisect_right(_BOUNDS, pd), WORST)


def grades_for_pd(pd: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Vectorised :func:`grade_for_pd`."""
    arr = np.asarray(pd, dtype=float)
    return np.clip(np.searchsorted(_BOUNDS, arr, side="right"), BEST, WORST).astype(np.int64)


def grade_info(grade: int) -> Grade:
    if not BEST <= grade <= WORST:
        raise ValueError(f"grades run from {BEST} to {WORST}, got {grade}")
    return MASTER_SCALE[grade - 1]


def notch(grade: int, notches: int) -> int:
    """Move ``grade`` by ``notches`` (positive = worse), kept on the scale."""
    return max(BEST, min(WORST, grade + notches))
