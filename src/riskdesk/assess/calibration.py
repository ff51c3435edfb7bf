"""Score → probability of default calibration (scikit-learn estimator contract).

Two calibrators, both serialisable to plain JSON (``to_dict`` / ``from_dict``):

* :class:`PlattCalibrator` — ``pd = 1 / (1 + exp(-(a·score + b)))``, a logistic regression of the
  outcome on the score (smooth, monotone, two parameters; the default).
* :class:`IsotonicCalibrator` — a monotone step function (``sklearn.isotonic``), interpolated
  linearly between its thresholds; good with a lot of data, stored as its thresholds.

PDs are clipped to ``[PD_FLOOR, PD_CAP]`` so no customer is ever certain to pay or to default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

PD_FLOOR = 0.0003
PD_CAP = 0.9997


class PlattCalibrator(BaseEstimator):
    """Logistic calibration of a score (higher score = lower PD when fitted on such data)."""

    def __init__(self, floor: float = PD_FLOOR, cap: float = PD_CAP) -> None:
        self.floor = floor
        self.cap = cap

    def fit(self, score: npt.ArrayLike, y: npt.ArrayLike) -> PlattCalibrator:
        s = np.asarray(score, dtype=float).reshape(-1, 1)
        t = np.asarray(y, dtype=int)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(s, t)
        self.a_ = float(lr.coef_[0, 0])
        self.b_ = float(lr.intercept_[0])
        return self

    def predict(self, score: npt.ArrayLike) -> npt.NDArray[np.float64]:
        s = np.asarray(score, dtype=float)
        return np.clip(expit(self.a_ * s + self.b_), self.floor, self.cap)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a_, "b": self.b_, "floor": self.floor, "cap": self.cap}


class IsotonicCalibrator(BaseEstimator):
    """Monotone (decreasing in the score) step calibration."""

    def __init__(self, floor: float = PD_FLOOR, cap: float = PD_CAP) -> None:
        self.floor = floor
        self.cap = cap

    def fit(self, score: npt.ArrayLike, y: npt.ArrayLike) -> IsotonicCalibrator:
        iso = IsotonicRegression(increasing=False, out_of_bounds="clip")
        iso.fit(np.asarray(score, dtype=float), np.asarray(y, dtype=float))
        self.x_ = [float(v) for v in iso.X_thresholds_]
        self.y_ = [float(v) for v in iso.y_thresholds_]
        return self

    def predict(self, score: npt.ArrayLike) -> npt.NDArray[np.float64]:
        s = np.asarray(score, dtype=float)
        return np.clip(np.interp(s, self.x_, self.y_), self.floor, self.cap)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "isotonic",
            "x": self.x_,
            "y": self.y_,
            "floor": self.floor,
            "cap": self.cap,
        }


Calibrator = PlattCalibrator | IsotonicCalibrator


def make_calibrator(method: str) -> Calibrator:
    if method == "platt":
        return PlattCalibrator()
    if method == "isotonic":
        return IsotonicCalibrator()
    raise ValueError(f"unknown calibration method {method!r} (platt or isotonic)")


def calibrator_from_dict(d: dict[str, Any]) -> Calibrator:
    """Rebuild a fitted calibrator from :meth:`to_dict` output."""
    method = d.get("method")
    cal: Calibrator
    if method == "platt":
        cal = PlattCalibrator(float(d["floor"]), float(d["cap"]))
        cal.a_, cal.b_ = float(d["a"]), float(d["b"])
        return cal
    if method == "isotonic":
        cal = IsotonicCalibrator(float(d["floor"]), float(d["cap"]))
        cal.x_ = [float(v) for v in d["x"]]
        cal.y_ = [float(v) for v in d["y"]]
        return cal
    raise ValueError(f"unknown calibration method {method!r}")
