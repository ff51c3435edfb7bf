"""Analytic Hierarchy Process: criterion weights from a pairwise comparison matrix.

Weights are the normalised principal eigenvector (numpy); consistency index
CI = (λmax − n)/(n − 1) and ratio CR = CI/RI with Saaty's random index RI. A matrix with
CR ≥ 0.1 is refused, naming the judgements that conflict most: the entries whose value
a_ij departs most from the ratio w_i/w_j the weights imply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RANDOM_INDEX: dict[int, float] = {
    1: 0.0,
    2: 0.0,
    3: 0.58,
    4: 0.90,
    5: 1.12,
    6: 1.24,
    7: 1.32,
    8: 1.41,
    9: 1.45,
    10: 1.49,
    11: 1.51,
    12: 1.48,
    13: 1.56,
    14: 1.57,
    15: 1.59,
}
"""Saaty's random consistency index by matrix size."""
CR_LIMIT = 0.1
SAATY_VALUES = np.array([1 / v for v in range(9, 1, -1)] + list(range(1, 10)), dtype=float)
_TOL = 1e-3


class AhpError(ValueError):
    """A malformed comparison matrix."""


@dataclass(frozen=True)
class Conflict:
    """A judgement a_ij far from what the derived weights imply (w_i/w_j)."""

    row: str
    col: str
    given: float
    implied: float

    @property
    def deviation(self) -> float:
        """How many times too large (>1) or too small (<1) the judgement is, on a log scale."""
        return abs(float(np.log(self.given / self.implied)))

    def explain(self) -> str:
        return (
            f"{self.row} vs {self.col}: judged {_fmt(self.given)}, "
            f"the other judgements imply about {_fmt(self.implied)}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "row": self.row,
            "col": self.col,
            "given": self.given,
            "implied": round(self.implied, 4),
            "explanation": self.explain(),
        }


def _fmt(v: float) -> str:
    if v >= 0.95:
        return f"{v:.3g}"
    return f"1/{1 / v:.3g}"


@dataclass(frozen=True)
class AhpResult:
    criteria: tuple[str, ...]
    weights: tuple[float, ...]
    lambda_max: float
    ci: float
    cr: float
    conflicts: tuple[Conflict, ...] = field(default_factory=tuple)

    @property
    def consistent(self) -> bool:
        return self.cr < CR_LIMIT

    def as_dict(self) -> dict[str, object]:
        return {
            "criteria": list(self.criteria),
            "weights": {c: round(w, 6) for c, w in zip(self.criteria, self.weights, strict=True)},
            "lambda_max": round(self.lambda_max, 6),
            "ci": round(self.ci, 6),
            "cr": round(self.cr, 6),
            "consistent": self.consistent,
            "conflicts": [c.as_dict() for c in self.conflicts],
        }


class InconsistentMatrix(AhpError):
    """CR ≥ 0.1: the judgements contradict each other too much."""

    def __init__(self, result: AhpResult) -> None:
        self.result = result
        worst = "; ".join(c.explain() for c in result.conflicts[:3])
        super().__init__(
            f"the comparison matrix is inconsistent (CR = {result.cr:.3f} ≥ {CR_LIMIT}); "
            f"revise the judgements that conflict most: {worst}"
        )


def validate(matrix: Sequence[Sequence[float]], strict_scale: bool = True) -> np.ndarray:
    """Check a comparison matrix: square, positive, 1 on the diagonal, reciprocal
    (a_ji = 1/a_ij) and, with ``strict_scale``, every value on Saaty's 1–9 scale
    (1/9 … 1 … 9)."""
    try:
        a = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as exc:
        raise AhpError("the matrix must hold numbers only") from exc
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise AhpError(f"the matrix must be square, got shape {a.shape}")
    n = a.shape[0]
    if n < 2:
        raise AhpError("at least two criteria are needed")
    if n > max(RANDOM_INDEX):
        raise AhpError(f"at most {max(RANDOM_INDEX)} criteria are supported")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise AhpError("every entry must be a positive number")
    if not np.allclose(np.diag(a), 1.0):
        bad = [i + 1 for i in range(n) if not np.isclose(a[i, i], 1.0)]
        raise AhpError(f"the diagonal must be 1 (rows {bad})")
    prod = a * a.T
    if not np.allclose(prod, 1.0, rtol=_TOL * 10, atol=_TOL * 10):
        i, j = np.unravel_index(np.argmax(np.abs(np.log(prod))), prod.shape)
        raise AhpError(
            f"the matrix is not reciprocal: a[{i + 1},{j + 1}] = {a[i, j]:g} but "
            f"a[{j + 1},{i + 1}] = {a[j, i]:g} (must be {1 / a[i, j]:g})"
        )
    if strict_scale:
        dist = np.min(np.abs(a[..., None] - SAATY_VALUES[None, None, :]), axis=-1)
        if np.any(dist > 0.01):
            i, j = np.unravel_index(np.argmax(dist), dist.shape)
            raise AhpError(
                f"a[{i + 1},{j + 1}] = {a[i, j]:g} is not on Saaty's 1–9 scale "
                "(use 1..9 or their reciprocals 1/2..1/9)"
            )
    return a


def weights(
    matrix: Sequence[Sequence[float]],
    criteria: Sequence[str] | None = None,
    *,
    strict_scale: bool = True,
    n_conflicts: int = 3,
) -> AhpResult:
    """Priority weights, λmax, CI and CR of a comparison matrix (no refusal here)."""
    a = validate(matrix, strict_scale)
    n = a.shape[0]
    names = tuple(criteria) if criteria is not None else tuple(f"c{i + 1}" for i in range(n))
    if len(names) != n:
        raise AhpError(f"{len(names)} criteria named for a {n}x{n} matrix")
    if len(set(names)) != n:
        raise AhpError("criterion names must be unique")
    vals, vecs = np.linalg.eig(a)
    k = int(np.argmax(vals.real))
    lam = float(vals[k].real)
    w = np.abs(vecs[:, k].real)
    w = w / w.sum()
    ci = max(0.0, (lam - n) / (n - 1))
    ri = RANDOM_INDEX[n]
    cr = ci / ri if ri > 0 else 0.0
    implied = w[:, None] / w[None, :]
    dev = np.abs(np.log(a / implied))
    iu = np.triu_indices(n, 1)
    order = np.argsort(-dev[iu], kind="stable")[:n_conflicts]
    conflicts = tuple(
        Conflict(
            names[iu[0][o]],
            names[iu[1][o]],
            float(a[iu[0][o], iu[1][o]]),
            float(implied[iu[0][o], iu[1][o]]),
        )
        for o in order
        if dev[iu][o] > 1e-9
    )
    return AhpResult(names, tuple(float(x) for x in w), lam, ci, cr, conflicts)


def consistent_weights(
    matrix: Sequence[Sequence[float]],
    criteria: Sequence[str] | None = None,
    *,
    strict_scale: bool = True,
) -> AhpResult:
    """Like :func:`weights` but refuses a matrix with CR ≥ 0.1 (:class:`InconsistentMatrix`)."""
    res = weights(matrix, criteria, strict_scale=strict_scale)
    if not res.consistent:
        raise InconsistentMatrix(res)
    return res


def parse_matrix(data: object) -> tuple[list[str] | None, list[list[float]]]:
    """Read ``{"criteria": [...], "matrix": [[...]]}`` or a bare list of rows; entries may be
    numbers or fractions written as strings (``"1/3"``)."""
    if isinstance(data, dict):
        crit = data.get("criteria")
        rows = data.get("matrix")
    else:
        crit, rows = None, data
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise AhpError('expected {"criteria": [...], "matrix": [[...], ...]}')
    if crit is not None and (
        not isinstance(crit, list) or not all(isinstance(c, str) for c in crit)
    ):
        raise AhpError("criteria must be a list of names")
    return crit, [[_num(v) for v in r] for r in rows]


def _num(v: object) -> float:
    if isinstance(v, bool):
        raise AhpError(f"not a number: {v!r}")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        try:
            if "/" in s:
                num, den = s.split("/", 1)
                return float(num) / float(den)
            return float(s)
        except (ValueError, ZeroDivisionError) as exc:
            raise AhpError(f"not a number: {v!r}") from exc
    raise AhpError(f"not a number: {v!r}")
