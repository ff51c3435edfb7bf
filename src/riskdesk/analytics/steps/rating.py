"""Batch step ``rating``: propose (and auto-approve within the cap) a system rating for every
customer without a rating or whose inputs changed.

The base grade is the latest quantitative assessment when the scorecard stage has one,
otherwise the expert scorecard computed here for the whole portfolio (vectorised). The expert
consensus adds its notches. A customer whose newest rating (approved or pending) was built
from the same inputs is skipped, so running the step twice changes nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from riskdesk.analytics.frames import load_frames
from riskdesk.assess.expert import Consensus, qualitative_notches
from riskdesk.assess.expert_scorecard import (
    ExpertScorecard,
    default_scorecard,
    from_dict,
    score_portfolio,
    with_weights,
)
from riskdesk.store import ratings as repo
from riskdesk.store.db import session_scope
from riskdesk.store.models import Customer, Setting

NAME = "rating"
ORDER = 30
CHUNK = 5000


SETTING_KEY = "expert_scorecard"
"""``app_settings`` key of a custom expert-scorecard configuration (same JSON shape as the
default) and ``ahp_weight_sets`` name whose weights replace the scorecard's."""


def configured_scorecard(engine: Engine) -> ExpertScorecard:
    """The expert scorecard in force: a custom configuration from ``app_settings`` if any,
    else the default; with the weights of the newest AHP weight set named
    ``expert_scorecard`` when one exists."""
    with session_scope(engine) as s:
        row = s.get(Setting, SETTING_KEY)
        card = from_dict(row.value) if row is not None and row.value else default_scorecard()
        ws = repo.latest_weight_set(s, SETTING_KEY)
        if ws is not None:
            card = with_weights(card, ws.weights)
    return card


def expert_bases(
    engine: Engine, as_of: date, customer_ids: list[int] | None = None
) -> dict[int, repo.BaseGrade]:
    """Expert-scorecard base grades of every customer (or ``customer_ids``)."""
    card = configured_scorecard(engine)
    scored = score_portfolio(load_frames(engine), as_of, card, customer_ids=customer_ids)
    out: dict[int, repo.BaseGrade] = {}
    for cid, score, pd_, grade in zip(
        scored.index, scored["score"], scored["pd"], scored["grade"], strict=True
    ):
        out[int(cid)] = repo.BaseGrade(
            "expert_scorecard",
            int(grade),
            round(float(pd_), 6),
            card.model_version,
            {"score": round(float(score), 2)},
        )
    return out


def run(engine: Engine, as_of: date, progress: Any = None) -> dict[str, Any]:
    with session_scope(engine) as s:
        ids = [
            int(i)
            for i in s.scalars(
                select(Customer.id).where(Customer.status != "inactive").order_by(Customer.id)
            )
        ]
    if not ids:
        return {"customers": 0, "proposed": 0, "approved": 0, "pending": 0, "unchanged": 0}
    with session_scope(engine) as s:
        models = repo.quantitative_bases(s)
        hashes = repo.latest_hashes(s)
        consensus = repo.all_consensus(s)
    missing = [i for i in ids if i not in models]
    experts = expert_bases(engine, as_of, missing) if missing else {}
    proposed = approved = unchanged = from_model = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        todo: list[tuple[int, repo.BaseGrade, list[Consensus], list[int]]] = []
        for cid in chunk:
            base = models.get(cid) or experts.get(cid)
            if base is None:
                continue
            cons, used = consensus.get(cid, ([], []))
            if hashes.get(cid) == repo.inputs_hash(base, qualitative_notches(cons), used):
                unchanged += 1
                continue
            todo.append((cid, base, cons, used))
            from_model += base.source == "model"
        with session_scope(engine) as s:
            done = repo.bulk_system_ratings(s, todo, on=as_of)
        proposed += done["proposed"]
        approved += done["approved"]
        if progress is not None:
            progress(min(start + CHUNK, len(ids)), len(ids), "rating")
    return {
        "customers": len(ids),
        "proposed": proposed,
        "approved": approved,
        "pending": proposed - approved,
        "unchanged": unchanged,
        "from_model": from_model,
        "as_of": pd.Timestamp(as_of).date().isoformat(),
    }


def base_for(engine: Engine, customer_id: int, as_of: date) -> repo.BaseGrade | None:
    """The base grade of one customer: the quantitative assessment, else the expert scorecard."""
    with session_scope(engine) as s:
        q = repo.quantitative_base(s, customer_id)
    if q is not None:
        return q
    card = configured_scorecard(engine)
    scored = score_portfolio(load_frames(engine), as_of, card, customer_ids=[customer_id])
    if customer_id not in scored.index:
        return None
    row: pd.Series = scored.loc[customer_id]  # type: ignore[assignment]
    vals = {str(k): v for k, v in row.items()}
    return repo.BaseGrade(
        "expert_scorecard",
        int(vals["grade"]),
        round(float(vals["pd"]), 6),
        card.model_version,
        {"score": round(float(vals["score"]), 2), "reasons": card.reasons(row)},
    )
