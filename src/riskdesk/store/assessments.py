"""Repository: the scorecard model registry and the assessments history.

:func:`latest_assessment` is what other stages call. Registering or activating a model and
storing a batch of assessments are written to the audit log in the caller's transaction.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from riskdesk.assess.model_io import ModelFileError, model_from_dict, verify
from riskdesk.assess.scale import grade_info
from riskdesk.assess.scorecard import Scorecard
from riskdesk.store.audit import record
from riskdesk.store.models import Assessment, Customer, ScorecardModel

CHUNK = 5000


def register_model(
    session: Session,
    content: dict[str, Any],
    *,
    actor: str,
    activate: bool = True,
    name: str | None = None,
) -> ScorecardModel:
    """Store a verified artefact (idempotent on its version) and optionally make it active."""
    verify(content)
    version = str(content["model_version"])
    row = session.scalar(select(ScorecardModel).where(ScorecardModel.version == version))
    if row is None:
        row = ScorecardModel(
            version=version,
            name=name or version.rsplit("-", 2)[0],
            format_version=int(content["format_version"]),
            checksum=str(content["checksum"]),
            content=content,
            metrics=content.get("metrics"),
            description=content.get("description"),
            active=False,
            registered_by=actor,
        )
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="model.register",
            entity="scorecard_model",
            entity_id=version,
            after={
                "version": version,
                "checksum": row.checksum,
                "training": content.get("training", {}).get("fingerprint"),
            },
        )
    if activate and not row.active:
        activate_model(session, version, actor=actor)
    return row


def activate_model(
    session: Session, version: str, *, actor: str, reason: str | None = None
) -> ScorecardModel:
    row = session.scalar(select(ScorecardModel).where(ScorecardModel.version == version))
    if row is None:
        raise KeyError(f"no registered model {version!r}")
    before = session.scalar(select(ScorecardModel.version).where(ScorecardModel.active.is_(True)))
    session.execute(
        update(ScorecardModel).where(ScorecardModel.active.is_(True)).values(active=False)
    )
    row.active = True
    session.flush()
    record(
        session,
        actor=actor,
        action="model.activate",
        entity="scorecard_model",
        entity_id=version,
        before={"active": before},
        after={"active": version},
        reason=reason,
    )
    return row


def active_model(session: Session) -> tuple[Scorecard, dict[str, Any]] | None:
    """The active scorecard, rebuilt and verified (``ModelFileError`` if the stored one is bad)."""
    row = session.scalar(select(ScorecardModel).where(ScorecardModel.active.is_(True)).limit(1))
    if row is None:
        return None
    content = dict(row.content)
    try:
        return model_from_dict(content), content
    except ModelFileError as exc:
        raise ModelFileError(f"registered model {row.version}: {exc}") from exc


def list_models(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(ScorecardModel).order_by(ScorecardModel.id))
    return [
        {
            "version": r.version,
            "name": r.name,
            "active": r.active,
            "created_at": r.created_at,
            "registered_by": r.registered_by,
        }
        for r in rows
    ]


def save_assessments(
    session: Session,
    results: pd.DataFrame,
    *,
    as_of: date,
    model_version: str,
    actor: str,
    currency: pd.Series | None = None,
) -> int:
    """Store one batch (index customer_id; columns score, pd, grade, reasons, ead, lgd, el).

    Re-running the same date and model replaces that batch (idempotent). Rows are inserted
    with one executemany per chunk, not one ORM object each.
    """
    session.execute(
        delete(Assessment).where(
            Assessment.as_of == as_of, Assessment.model_version == model_version
        )
    )
    cur = currency.reindex(results.index) if currency is not None else None
    ids = results.index.to_numpy()
    score = results["score"].to_numpy(dtype=float)
    pd_ = results["pd"].to_numpy(dtype=float)
    grade = results["grade"].to_numpy(dtype=np.int64)
    ead = results["ead"].to_numpy(dtype=float)
    lgd = results["lgd"].to_numpy(dtype=float)
    el = results["el"].to_numpy(dtype=float)
    reasons = results["reasons"].tolist()
    cur_v = cur.tolist() if cur is not None else [None] * len(ids)
    n = len(ids)
    for start in range(0, n, CHUNK):
        rows = [
            {
                "customer_id": int(ids[i]),
                "as_of": as_of,
                "model_version": model_version,
                "score": float(score[i]),
                "pd": float(pd_[i]),
                "grade": int(grade[i]),
                "reasons": reasons[i],
                "ead": Decimal(f"{ead[i]:.2f}"),
                "lgd": Decimal(f"{lgd[i]:.6f}"),
                "el": Decimal(f"{el[i]:.2f}"),
                "currency": cur_v[i],
            }
            for i in range(start, min(start + CHUNK, n))
        ]
        if rows:
            session.execute(insert(Assessment), rows)
    record(
        session,
        actor=actor,
        action="assessment.batch",
        entity="assessments",
        entity_id=f"{as_of.isoformat()}/{model_version}",
        after={
            "customers": n,
            "model_version": model_version,
            "as_of": as_of,
            "mean_pd": float(pd_.mean()) if n else None,
            "total_el": float(el.sum()) if n else 0.0,
        },
    )
    return n


class AssessmentRecord(dict[str, Any]):
    """A stored assessment as a dict whose keys are also attributes (``a["pd"]`` = ``a.pd``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _row(a: Assessment) -> AssessmentRecord:
    g = grade_info(a.grade)
    return AssessmentRecord(
        {
            "customer_id": a.customer_id,
            "as_of": a.as_of,
            "model_version": a.model_version,
            "score": a.score,
            "pd": a.pd,
            "grade": a.grade,
            "grade_label": g.label,
            "grade_name_en": g.name_en,
            "grade_name_zh": g.name_zh,
            "reasons": a.reasons,
            "ead": a.ead,
            "lgd": a.lgd,
            "el": a.el,
            "currency": a.currency,
            "created_at": a.created_at,
        }
    )


def latest_assessment(session: Session, customer_id: int) -> AssessmentRecord | None:
    """The newest assessment of a customer (latest as-of date, then latest stored), or None."""
    a = session.scalar(
        select(Assessment)
        .where(Assessment.customer_id == customer_id)
        .order_by(Assessment.as_of.desc(), Assessment.id.desc())
        .limit(1)
    )
    return _row(a) if a else None


def assessment_history(
    session: Session, customer_id: int, limit: int = 60
) -> list[AssessmentRecord]:
    """Assessments of a customer, oldest first (at most ``limit``, the newest ones)."""
    rows = list(
        session.scalars(
            select(Assessment)
            .where(Assessment.customer_id == customer_id)
            .order_by(Assessment.as_of.desc(), Assessment.id.desc())
            .limit(limit)
        )
    )
    return [_row(a) for a in reversed(rows)]


def latest_batch_date(session: Session) -> date | None:
    return session.scalar(select(func.max(Assessment.as_of)))


def portfolio_by_grade(session: Session, owner: str | None = None) -> list[dict[str, Any]]:
    """Customers, EAD and EL by grade in the latest batch (optionally one sales owner's)."""
    last = latest_batch_date(session)
    if last is None:
        return []
    q = (
        select(Assessment.grade, func.count(), func.sum(Assessment.ead), func.sum(Assessment.el))
        .where(Assessment.as_of == last)
        .group_by(Assessment.grade)
        .order_by(Assessment.grade)
    )
    if owner is not None:
        q = q.join(Customer, Customer.id == Assessment.customer_id).where(Customer.owner == owner)
    return [
        {
            "grade": int(g),
            "label": grade_info(int(g)).label,
            "customers": int(n),
            "ead": float(ead or 0),
            "el": float(el or 0),
            "as_of": last,
        }
        for g, n, ead, el in session.execute(q)
    ]
