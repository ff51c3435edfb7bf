# ruff: noqa: N803, N806  (X is scikit-learn's name for the feature matrix)
"""A points scorecard with the scikit-learn estimator contract.

Fitting (:meth:`Scorecard.fit`):

1. every column is binned by optbinning's ``OptimalBinning`` (numerical columns with a monotonic
   event-rate trend, ``auto_asc_desc`` by default; categorical columns grouped by event rate);
   missing values always form their own bin with their empirical weight of evidence (WoE;
   0 = neutral when training had no missing value);
2. columns with an information value below ``min_iv`` are dropped (at most ``max_features`` are
   kept, best IV first, and of two WoE columns correlated above ``max_corr`` the weaker goes);
3. a ``LogisticRegression`` is fitted on the WoE columns; a column whose coefficient has the
   wrong sign (it would reverse its own WoE) is dropped and the regression refitted;
4. points per bin follow optbinning's ``pdo_odds`` scaling: ``factor = pdo / ln 2``,
   ``offset = base_points − factor·ln(base_odds)``, and for a column with WoE ``w``,
   coefficient ``c``, intercept ``b`` and ``n`` columns: ``points = −(w·c + b/n)·factor + offset/n``.
   A customer's score is the sum of its bins' points; ``base_points`` is the score at good:bad
   odds ``base_odds``, and every ``pdo`` points double the odds. Higher score = lower risk.
5. the score is calibrated to a PD on the training data (:mod:`riskdesk.assess.calibration`).

**Unseen categories** (a category value not met in training) are scored as the column's
*missing* bin, the same as optbinning's own ``Scorecard.score``. Numerical values that are not
numbers are missing too.

**Reason codes**: for each row, the columns where it lost the most points against the best
bin of that column (``max points − its points``), largest first; columns with no loss are not
reasons.

Scoring is vectorised: per column a ``np.searchsorted`` over the bin edges (or one categorical
code lookup) gives bin indices, and the points are gathered and summed with numpy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from optbinning import OptimalBinning
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from riskdesk.assess.calibration import Calibrator, make_calibrator
from riskdesk.assess.scale import grades_for_pd

MISSING = "Missing"


@dataclass
class FeatureBins:
    """The fitted bins of one column: the last entry of every list is the missing bin."""

    name: str
    kind: str  # "numerical" | "categorical"
    edges: list[float] = field(default_factory=list)  # numerical: bin i is [edges[i-1], edges[i])
    categories: list[list[str]] = field(default_factory=list)  # categorical: values per bin
    labels: list[str] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    event: list[int] = field(default_factory=list)
    woe: list[float] = field(default_factory=list)
    iv: list[float] = field(default_factory=list)
    trend: str = ""
    coef: float = 0.0
    points: list[float] = field(default_factory=list)

    @property
    def n_bins(self) -> int:
        """Regular bins (the missing bin excluded)."""
        return len(self.woe) - 1

    @property
    def total_iv(self) -> float:
        return float(sum(self.iv))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureBins:
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            edges=[float(v) for v in d.get("edges", [])],
            categories=[[str(c) for c in b] for b in d.get("categories", [])],
            labels=[str(v) for v in d.get("labels", [])],
            count=[int(v) for v in d.get("count", [])],
            event=[int(v) for v in d.get("event", [])],
            woe=[float(v) for v in d["woe"]],
            iv=[float(v) for v in d.get("iv", [])],
            trend=str(d.get("trend", "")),
            coef=float(d["coef"]),
            points=[float(v) for v in d["points"]],
        )


def is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))


def _as_str(s: pd.Series) -> npt.NDArray[np.object_]:
    """Category values as strings; missing stays None."""
    out = s.astype(object).to_numpy(copy=True)
    miss = pd.isna(s).to_numpy()
    out[~miss] = [str(v) for v in out[~miss]]
    out[miss] = None
    return out


class _Lookup:
    """Precomputed arrays for one column's bin lookup (built once per :class:`FeatureBins`)."""

    def __init__(self, fb: FeatureBins) -> None:
        self.missing = fb.n_bins
        self.edges = np.asarray(fb.edges, dtype=float)
        mapping = {c: i for i, cats in enumerate(fb.categories) for c in cats}
        self.known = pa.array(list(mapping), type=pa.large_string())
        self.to_bin = np.array([*mapping.values(), fb.n_bins], dtype=np.intp)
        self.key = (tuple(fb.edges), tuple(tuple(c) for c in fb.categories))


def _lookup(fb: FeatureBins) -> _Lookup:
    lk: _Lookup | None = getattr(fb, "_lookup_cache", None)
    if lk is None or lk.key != (tuple(fb.edges), tuple(tuple(c) for c in fb.categories)):
        lk = _Lookup(fb)
        fb._lookup_cache = lk  # type: ignore[attr-defined]
    return lk


INT_LUT_MAX = 4_000_000
"""Integer columns spanning at most this many values are binned through a direct table."""


def bin_codes(fb: FeatureBins, col: pd.Series) -> npt.NDArray[np.intp]:
    """Bin index of every value (``fb.n_bins`` = the missing bin); vectorised, no per-row Python.

    Numbers: the count of edges ≤ the value, i.e. ``np.searchsorted(edges, x, "right")``
    (computed by a few vectorised comparisons; integer columns with a small range through a
    precomputed value → bin table). Categories: Arrow's hash lookup ``index_in`` of the known
    values, then an index → bin array; missing and unseen values get the missing bin.
    """
    lk = _lookup(fb)
    if fb.kind == "numerical":
        dtype = col.dtype
        if pd.api.types.is_integer_dtype(dtype) and isinstance(dtype, np.dtype) and len(col):
            xi = col.to_numpy()
            lo, hi = int(xi.min()), int(xi.max())
            if hi - lo <= INT_LUT_MAX:
                table = np.searchsorted(lk.edges, np.arange(lo, hi + 1, dtype=float), side="right")
                return table.astype(np.intp)[xi - lo]
        if isinstance(dtype, np.dtype) and dtype == np.float64:
            x = col.to_numpy()
        else:
            x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if len(lk.edges) < 120:
            # a few vectorised comparisons beat a binary search per value
            small = np.zeros(len(x), dtype=np.int8)
            for edge in lk.edges:
                np.add(small, x >= edge, out=small, casting="unsafe")
            small[np.isnan(x)] = lk.missing
            return small  # type: ignore[return-value]
        codes = np.searchsorted(lk.edges, x, side="right").astype(np.intp)
        codes[np.isnan(x)] = lk.missing
        return codes
    if pd.api.types.is_string_dtype(col.dtype) and not pd.api.types.is_object_dtype(col.dtype):
        arr: Any = pa.array(col, from_pandas=True)
    else:
        arr = pa.array(_as_str(col), type=pa.large_string(), from_pandas=True)
    if arr.type != lk.known.type:
        arr = arr.cast(lk.known.type)
    idx = pc.fill_null(pc.index_in(arr, value_set=lk.known), len(lk.known))
    return lk.to_bin[np.asarray(idx.to_numpy(), dtype=np.intp)]


def bin_points(fb: FeatureBins, col: pd.Series) -> npt.NDArray[np.float64]:
    """The points of every value: :func:`bin_codes` fused with the points lookup (one gather)."""
    pts = np.asarray(fb.points, dtype=float)
    if fb.kind == "numerical":
        dtype = col.dtype
        if pd.api.types.is_integer_dtype(dtype) and isinstance(dtype, np.dtype) and len(col):
            xi = col.to_numpy()
            lo, hi = int(xi.min()), int(xi.max())
            if hi - lo <= INT_LUT_MAX:
                lk = _lookup(fb)
                table = np.searchsorted(lk.edges, np.arange(lo, hi + 1, dtype=float), side="right")
                return pts[table][xi - lo]
        return pts[bin_codes(fb, col)]
    lk = _lookup(fb)
    if pd.api.types.is_string_dtype(col.dtype) and not pd.api.types.is_object_dtype(col.dtype):
        arr: Any = pa.array(col, from_pandas=True)
    else:
        arr = pa.array(_as_str(col), type=pa.large_string(), from_pandas=True)
    if arr.type != lk.known.type:
        arr = arr.cast(lk.known.type)
    idx = pc.fill_null(pc.index_in(arr, value_set=lk.known), len(lk.known))
    return pts[lk.to_bin][np.asarray(idx.to_numpy(), dtype=np.intp)]


class Scorecard(ClassifierMixin, BaseEstimator):
    """Optimal-binning WoE logistic scorecard with points scaling, calibration, reason codes.

    ``fit(X, y)`` takes a DataFrame and a 0/1 target (1 = bad). Learned attributes end in
    ``_``: ``bins_`` (selected columns' :class:`FeatureBins`), ``intercept_``, ``coef_``,
    ``calibrator_``, ``binning_summary_`` (IV of every candidate column), ``factor_``,
    ``offset_``.
    """

    def __init__(
        self,
        categorical: list[str] | None = None,
        monotonic_trend: str | None = "auto_asc_desc",
        max_n_bins: int | None = None,
        min_bin_size: float | None = None,
        min_iv: float = 0.02,
        max_features: int | None = None,
        max_corr: float = 0.8,
        C: float = 1.0,  # noqa: N803 - scikit-learn's name
        pdo: float = 20.0,
        base_odds: float = 50.0,
        base_points: float = 600.0,
        calibration: str = "platt",
    ) -> None:
        self.categorical = categorical
        self.monotonic_trend = monotonic_trend
        self.max_n_bins = max_n_bins
        self.min_bin_size = min_bin_size
        self.min_iv = min_iv
        self.max_features = max_features
        self.max_corr = max_corr
        self.C = C
        self.pdo = pdo
        self.base_odds = base_odds
        self.base_points = base_points
        self.calibration = calibration

    # ------------------------------------------------------------------ fitting

    def _binning(self, name: str, kind: str) -> OptimalBinning:
        kw: dict[str, Any] = {"name": name, "dtype": kind}
        if kind == "numerical" and self.monotonic_trend is not None:
            kw["monotonic_trend"] = self.monotonic_trend
        if self.max_n_bins is not None:
            kw["max_n_bins"] = self.max_n_bins
        if self.min_bin_size is not None:
            kw["min_bin_size"] = self.min_bin_size
        return OptimalBinning(**kw)

    def fit(self, X: pd.DataFrame, y: npt.ArrayLike) -> Scorecard:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("X must be a pandas DataFrame")
        target = np.asarray(y)
        if not set(np.unique(target)) <= {0, 1}:
            raise ValueError("y must be 0 (good) / 1 (bad)")
        if target.sum() == 0 or target.sum() == len(target):
            raise ValueError("y needs both good and bad rows")
        target = target.astype(int)
        cats = set(self.categorical or []) | {c for c in X.columns if is_categorical(X[c])}
        self.categorical_ = sorted(c for c in cats if c in X.columns)
        fitted: dict[str, FeatureBins] = {}
        summary = []
        for name in X.columns:
            kind = "categorical" if name in cats else "numerical"
            col = X[name]
            if kind == "categorical":
                values: Any = _as_str(col)
            else:
                values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            ob = self._binning(str(name), kind)
            ob.fit(values, target)
            fb = _bins_from_optbinning(str(name), kind, ob)
            fitted[str(name)] = fb
            summary.append({"name": str(name), "kind": kind, "iv": fb.total_iv, "bins": fb.n_bins})
        self.binning_summary_ = pd.DataFrame(summary).sort_values("iv", ascending=False)
        ranked = [
            r["name"] for r in self.binning_summary_.to_dict("records") if r["iv"] >= self.min_iv
        ]
        woe = {n: _woe_column(fitted[n], X[n]) for n in ranked}
        chosen: list[str] = []
        for n in ranked:  # best IV first; skip columns too correlated with a kept one
            if np.std(woe[n]) == 0:
                continue
            if any(abs(np.corrcoef(woe[n], woe[k])[0, 1]) > self.max_corr for k in chosen):
                continue
            chosen.append(n)
            if self.max_features is not None and len(chosen) >= self.max_features:
                break
        if not chosen:
            raise ValueError(f"no column reaches the minimum information value {self.min_iv}")
        while True:
            Xw = np.column_stack([woe[n] for n in chosen])
            lr = LogisticRegression(C=self.C, max_iter=1000).fit(Xw, target)
            coefs = lr.coef_.ravel()
            wrong = [n for n, c in zip(chosen, coefs, strict=True) if c > 0]
            if not wrong or len(chosen) == 1:
                break
            worst = max(wrong, key=lambda n: coefs[chosen.index(n)])
            chosen.remove(worst)
        self.estimator_ = lr
        self.intercept_ = float(lr.intercept_[0])
        self.coef_ = {n: float(c) for n, c in zip(chosen, coefs, strict=True)}
        self.factor_ = self.pdo / np.log(2)
        self.offset_ = self.base_points - self.factor_ * np.log(self.base_odds)
        n = len(chosen)
        self.bins_ = []
        for name in chosen:
            fb = fitted[name]
            fb.coef = self.coef_[name]
            w = np.asarray(fb.woe, dtype=float)
            pts = -(w * fb.coef + self.intercept_ / n) * self.factor_ + self.offset_ / n
            fb.points = [float(p) for p in pts]
            self.bins_.append(fb)
        self.features_in_ = [str(c) for c in X.columns]
        self.calibrator_: Calibrator = make_calibrator(self.calibration).fit(self.score(X), target)
        self.classes_ = np.array([0, 1])
        return self

    # ------------------------------------------------------------------ scoring

    @property
    def feature_names_(self) -> list[str]:
        return [fb.name for fb in self.bins_]

    def _check(self, X: pd.DataFrame) -> None:
        missing = [n for n in self.feature_names_ if n not in X.columns]
        if missing:
            raise KeyError(f"missing columns: {', '.join(missing)}")

    def points_matrix(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Points of every row (rows) for every scorecard column (columns)."""
        self._check(X)
        out = np.empty((len(X), len(self.bins_)), dtype=float)
        for j, fb in enumerate(self.bins_):
            out[:, j] = np.asarray(fb.points, dtype=float)[bin_codes(fb, X[fb.name])]
        return out

    def score(self, X: pd.DataFrame, y: Any = None) -> npt.NDArray[np.float64]:  # type: ignore[override]
        """Scorecard points of every row (higher = lower risk).

        Note: unlike scikit-learn's ``score`` this returns the per-row scores (the
        scorecard meaning); use :mod:`riskdesk.assess.validation` for metrics.
        """
        self._check(X)
        total = np.zeros(len(X), dtype=float)
        for fb in self.bins_:
            total += bin_points(fb, X[fb.name])
        return total

    def predict_pd(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        return self.calibrator_.predict(self.score(X))

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        p = self.predict_pd(X)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[np.int64]:
        return (self.predict_pd(X) >= 0.5).astype(np.int64)

    def grades(self, X: pd.DataFrame) -> npt.NDArray[np.int64]:
        return grades_for_pd(self.predict_pd(X))

    def reasons(self, X: pd.DataFrame, top: int = 3) -> list[list[tuple[str, float]]]:
        """Per row, up to ``top`` (column, points lost vs. its best bin), largest loss first."""
        pts = self.points_matrix(X)
        best = np.array([max(fb.points) for fb in self.bins_])
        loss = best[None, :] - pts
        k = min(top, loss.shape[1])
        order = np.argsort(-loss, axis=1, kind="stable")[:, :k]
        lost = np.take_along_axis(loss, order, axis=1)
        names = np.array(self.feature_names_, dtype=object)
        out: list[list[tuple[str, float]]] = []
        for row_names, row_loss in zip(names[order], lost, strict=True):
            out.append(
                [
                    (str(n), round(float(v), 2))
                    for n, v in zip(row_names, row_loss, strict=True)
                    if v > 1e-9
                ]
            )
        return out

    def table(self) -> pd.DataFrame:
        """One row per bin: column, bin label, count, event rate, WoE, IV, points."""
        rows = []
        for fb in self.bins_:
            for i, label in enumerate(fb.labels):
                cnt = fb.count[i] if i < len(fb.count) else 0
                ev = fb.event[i] if i < len(fb.event) else 0
                rows.append(
                    {
                        "feature": fb.name,
                        "bin": label,
                        "count": cnt,
                        "event_rate": ev / cnt if cnt else math.nan,
                        "woe": fb.woe[i],
                        "iv": fb.iv[i] if i < len(fb.iv) else 0.0,
                        "points": fb.points[i],
                    }
                )
        return pd.DataFrame(rows)


def _bins_from_optbinning(name: str, kind: str, ob: OptimalBinning) -> FeatureBins:
    bt = ob.binning_table.build(add_totals=False)
    n_regular = len(bt) - 2  # the last two rows are Special and Missing
    regular = bt.iloc[:n_regular]
    miss = bt.iloc[-1]
    fb = FeatureBins(name=name, kind=kind)
    if kind == "numerical":
        fb.edges = [float(s) for s in ob.splits]
    else:
        fb.categories = [[str(c) for c in group] for group in ob.splits]
        # categories optbinning left out of the groups (none by default) fall to missing
    fb.labels = [str(b) for b in regular["Bin"]] + [MISSING]
    fb.count = [int(v) for v in regular["Count"]] + [int(miss["Count"])]
    fb.event = [int(v) for v in regular["Event"]] + [int(miss["Event"])]
    fb.woe = [float(v) for v in regular["WoE"]] + [float(miss["WoE"])]
    fb.iv = [float(v) for v in regular["IV"]] + [float(miss["IV"])]
    fb.trend = event_rate_trend(fb) if kind == "numerical" else "by_event_rate"
    return fb


def event_rate_trend(fb: FeatureBins) -> str:
    """The realised trend of the event rate over the regular bins (missing bin excluded):
    ``ascending``, ``descending``, ``flat`` (one bin), ``peak``, ``valley`` or ``none``."""
    rates = np.array(
        [e / c if c else np.nan for e, c in zip(fb.event[:-1], fb.count[:-1], strict=True)]
    )
    d = np.diff(rates)
    if len(d) == 0:
        return "flat"
    if (d >= 0).all():
        return "ascending"
    if (d <= 0).all():
        return "descending"
    sign = np.sign(d[d != 0])
    changes = int(np.sum(sign[1:] != sign[:-1]))
    if changes == 1:
        return "peak" if sign[0] > 0 else "valley"
    return "none"


def _woe_column(fb: FeatureBins, col: pd.Series) -> npt.NDArray[np.float64]:
    return np.asarray(fb.woe, dtype=float)[bin_codes(fb, col)]


def woe_frame(model: Scorecard, X: pd.DataFrame) -> pd.DataFrame:
    """The WoE of every scorecard column (what the logistic regression sees)."""
    return pd.DataFrame({fb.name: _woe_column(fb, X[fb.name]) for fb in model.bins_}, index=X.index)
