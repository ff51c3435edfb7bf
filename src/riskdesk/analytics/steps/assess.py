"""Batch step ``assess``: score every customer with the active scorecard and store the result.

When no model is registered the step trains one from the portfolio's own history (monthly
snapshots, 12-month default outcome, out-of-time test) if there are at least
:data:`~riskdesk.assess.training.MIN_BADS` bad snapshots, registers and activates it, and
scores; otherwise it reports that a model is missing (the expert scorecard of the rating step
covers the cold start).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import Engine

from riskdesk.analytics.frames import Frames, load_frames
from riskdesk.assess.features import REGISTRY, compute_features
from riskdesk.assess.loss import LgdPolicy, assess_portfolio
from riskdesk.assess.scorecard import Scorecard
from riskdesk.assess.training import train_portfolio_model
from riskdesk.store.assessments import active_model, register_model, save_assessments
from riskdesk.store.db import session_scope

NAME = "assess"
ORDER = 20
ACTOR = "system:assess"


def score_and_store(
    engine: Engine,
    frames: Frames,
    as_of: date,
    model: Scorecard,
    content: dict[str, Any],
    *,
    lgd_policy: LgdPolicy | None = None,
    actor: str = ACTOR,
) -> dict[str, Any]:
    """Features → score, PD, grade, reasons, EAD, LGD, EL for every customer, stored as one batch."""
    names = list(dict.fromkeys([*model.feature_names_, "exposure"]))
    known = [n for n in names if n in REGISTRY]
    unknown = [n for n in model.feature_names_ if n not in REGISTRY]
    if unknown:
        raise ValueError(
            f"model {content.get('model_version')} uses columns that are not portfolio features: "
            + ", ".join(unknown)
        )
    feats = compute_features(frames, as_of, names=known)
    cust = frames.customers.set_index("customer_id")
    results = assess_portfolio(
        model, feats, lgd_policy=lgd_policy, industry=cust["industry"].reindex(feats.index)
    )
    version = str(content["model_version"])
    with session_scope(engine) as s:
        n = save_assessments(
            s,
            results,
            as_of=as_of,
            model_version=version,
            actor=actor,
            currency=cust["currency"],
        )
    grades = np.bincount(results["grade"].to_numpy(), minlength=11)[1:]
    return {
        "status": "scored",
        "model_version": version,
        "customers": n,
        "mean_pd": round(float(results["pd"].mean()), 6) if n else None,
        "total_ead": round(float(results["ead"].sum()), 2),
        "total_el": round(float(results["el"].sum()), 2),
        "by_grade": {str(g + 1): int(c) for g, c in enumerate(grades) if c},
    }


def run(
    engine: Engine,
    as_of: date,
    progress: Any = None,
    *,
    lgd_policy: LgdPolicy | None = None,
) -> dict[str, Any]:
    frames = load_frames(engine)
    with session_scope(engine) as s:
        got = active_model(s)
    out: dict[str, Any] = {"as_of": as_of.isoformat()}
    if got is None:

        def tick(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total, "assess: training snapshots")

        tr = train_portfolio_model(frames, as_of, progress=tick)
        if not tr.ok or tr.model is None or tr.artefact is None:
            return {**out, "status": "no_model", "reason": tr.reason}
        with session_scope(engine) as s:
            register_model(s, tr.artefact, actor=ACTOR, activate=True)
        out["trained"] = {
            "model_version": tr.artefact["model_version"],
            "train_rows": tr.train_rows,
            "train_bads": tr.train_bads,
            "test_rows": tr.test_rows,
            "test_bads": tr.test_bads,
            "oot_auc": None if tr.oot is None else round(tr.oot["auc"], 4),
        }
        got = (tr.model, tr.artefact)
    model, content = got
    return {**out, **score_and_store(engine, frames, as_of, model, content, lgd_policy=lgd_policy)}
