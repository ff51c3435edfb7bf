# ruff: noqa: N803, N806  (X is scikit-learn's name for the feature matrix)
"""The scorecard artefact: versioned, human-readable JSON with a SHA-256 checksum. Never pickle.

Layout (``format_version`` 1)::

    {
      "format": "riskdesk.scorecard",
      "format_version": 1,
      "model_version": "sc-20260130-1a2b3c4d",      # name + date + content digest prefix
      "created_at": "...", "description": "...",
      "target": {"column": "...", "bad_value": "..."},
      "hyper_parameters": {...},                      # Scorecard.__init__ arguments
      "scaling": {"pdo": 20, "base_odds": 50, "base_points": 600, "factor": ..., "offset": ...},
      "intercept": ...,                               # logistic regression intercept
      "features": [                                   # one per scorecard column, in score order
        {"name", "kind": "numerical"|"categorical", "edges": [...], "categories": [[...], ...],
         "labels": [...], "count": [...], "event": [...], "woe": [...], "iv": [...],
         "trend": "...", "coef": ..., "points": [...]}   # last list entry = the missing bin
      ],
      "unseen_category_rule": "missing_bin",
      "calibration": {"method": "platt", "a": ..., "b": ..., "floor": ..., "cap": ...},
      "training": {"rows", "bads", "fingerprint": "<sha256 of the training table>",
                   "score_distribution": {"edges": [...], "shares": [...]}},
      "feature_definitions": {"name": "description", ...},
      "binning_summary": [{"name", "kind", "iv", "bins"}, ...],
      "metrics": {...},
      "checksum": "sha256:<hex>"
    }

``checksum`` is the SHA-256 of the canonical JSON of everything else (keys sorted, no spaces,
floats written by Python's shortest round-trip repr). :func:`load_model` recomputes it and
raises :class:`ModelFileError` on any difference, so an edited or corrupt file is refused.
Floats round-trip exactly, so a loaded model scores bit-identically to the fitted one.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskdesk.assess.calibration import calibrator_from_dict
from riskdesk.assess.scorecard import FeatureBins, Scorecard

FORMAT = "riskdesk.scorecard"
FORMAT_VERSION = 1
UNSEEN_RULE = "missing_bin"


class ModelFileError(ValueError):
    """A model file that cannot be trusted: unreadable, wrong format, or checksum mismatch."""


def _clean(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating | float):
        f = float(o)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def canonical(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def checksum(content: dict[str, Any]) -> str:
    body = {k: v for k, v in content.items() if k != "checksum"}
    return "sha256:" + hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def table_fingerprint(X: pd.DataFrame, y: Any = None) -> str:
    """SHA-256 of a training table (column names, dtypes and values, row order included)."""
    h = hashlib.sha256()
    df = X.copy()
    if y is not None:
        df["__target__"] = np.asarray(y)
    h.update(json.dumps([str(c) for c in df.columns]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def model_to_dict(
    model: Scorecard,
    *,
    name: str = "scorecard",
    target: dict[str, Any] | None = None,
    fingerprint: str | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    feature_definitions: dict[str, str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The artefact of a fitted scorecard (with its checksum)."""
    body: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "description": description or "",
        "target": target or {},
        "hyper_parameters": model.get_params(deep=False),
        "scaling": {
            "pdo": model.pdo,
            "base_odds": model.base_odds,
            "base_points": model.base_points,
            "factor": float(model.factor_),
            "offset": float(model.offset_),
        },
        "intercept": model.intercept_,
        "features": [fb.to_dict() for fb in model.bins_],
        "unseen_category_rule": UNSEEN_RULE,
        "calibration": model.calibrator_.to_dict(),
        "training": {**(training or {}), "fingerprint": fingerprint},
        "feature_definitions": feature_definitions or {},
        "binning_summary": model.binning_summary_.to_dict("records")
        if hasattr(model, "binning_summary_")
        else [],
        "metrics": metrics or {},
    }
    body = _clean(body)
    digest = hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()
    body["model_version"] = f"{name}-{datetime.now(UTC):%Y%m%d}-{digest[:8]}"
    body["checksum"] = checksum(body)
    return body


def model_from_dict(content: dict[str, Any]) -> Scorecard:
    """Rebuild a scoring-ready :class:`Scorecard` from a verified artefact."""
    verify(content)
    try:
        hp = dict(content.get("hyper_parameters") or {})
        model = Scorecard(**hp)
        model.bins_ = [FeatureBins.from_dict(d) for d in content["features"]]
        model.intercept_ = float(content["intercept"])
        model.coef_ = {fb.name: fb.coef for fb in model.bins_}
        model.factor_ = float(content["scaling"]["factor"])
        model.offset_ = float(content["scaling"]["offset"])
        model.calibrator_ = calibrator_from_dict(content["calibration"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"model file content is not usable: {exc}") from exc
    model.binning_summary_ = pd.DataFrame(content.get("binning_summary") or [])
    model.features_in_ = [fb.name for fb in model.bins_]
    model.categorical_ = [fb.name for fb in model.bins_ if fb.kind == "categorical"]
    model.classes_ = np.array([0, 1])
    return model


def verify(content: Any) -> None:
    """Raise :class:`ModelFileError` unless ``content`` is an intact artefact we can read."""
    if not isinstance(content, dict):
        raise ModelFileError("a model file must hold one JSON object")
    if content.get("format") != FORMAT:
        raise ModelFileError(f"not a riskdesk scorecard (format {content.get('format')!r})")
    if content.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"model format version {content.get('format_version')!r} is not supported "
            f"(this riskdesk reads version {FORMAT_VERSION})"
        )
    stored = content.get("checksum")
    if not isinstance(stored, str) or stored != checksum(content):
        raise ModelFileError(
            "model checksum mismatch: the file was modified or is corrupt; refusing to load it"
        )
    try:
        for f in content["features"]:
            if len(f["points"]) != len(f["woe"]):
                raise ModelFileError(f"feature {f.get('name')!r}: points and bins disagree")
        content["calibration"]["method"]  # noqa: B018 - presence check
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"model file is incomplete: {exc}") from exc


def dumps_model(content: dict[str, Any]) -> str:
    """Pretty, diff-friendly JSON (the checksum covers content, not layout)."""
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def save_model(content: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(dumps_model(content), encoding="utf-8")


def loads_model(text: str) -> tuple[Scorecard, dict[str, Any]]:
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"model file is not valid JSON: {exc}") from exc
    return model_from_dict(content), content


def load_model(path: str | Path) -> tuple[Scorecard, dict[str, Any]]:
    """Read, verify and rebuild a model file; returns the model and its artefact dict."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"cannot read model file {p}: {exc}") from exc
    return loads_model(text)
