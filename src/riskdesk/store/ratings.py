"""Repository for expert assessments, Delphi rounds, AHP weight sets and ratings.

:func:`current_rating` is the one other stages call: the customer's rating in force.
Every write goes to the audit log in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from riskdesk.assess import delphi as dl
from riskdesk.assess.expert import (
    Consensus,
    Judgement,
    consensus,
    latest_per_assessor,
    matrix_counts,
    qualitative_notches,
    validate,
)
from riskdesk.assess.rating import (
    DEFAULT_POLICY,
    SYSTEM,
    RatingError,
    RatingPolicy,
    check_approval,
    effective,
    propose,
)
from riskdesk.assess.scale import grade_info
from riskdesk.store.audit import record
from riskdesk.store.models import (
    AhpWeightSet,
    Customer,
    DelphiRound,
    ExpertAssessment,
    Rating,
)
from riskdesk.store.types import utcnow

# ---------------------------------------------------------------- current rating


@dataclass(frozen=True)
class CurrentRating:
    """The rating in force for a customer.

    ``status`` is ``current`` or ``review_due`` (its validity date has passed; the grade
    still applies until a new rating is approved).
    """

    rating_id: int
    customer_id: int
    grade: int
    label: str
    pd: float
    valid_until: date
    status: str
    override_active: bool
    base_source: str
    approved_at: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "rating_id": self.rating_id,
            "customer_id": self.customer_id,
            "grade": self.grade,
            "label": self.label,
            "pd": self.pd,
            "valid_until": self.valid_until.isoformat(),
            "status": self.status,
            "override_active": self.override_active,
            "base_source": self.base_source,
        }


def _today() -> date:
    return utcnow().date()


def current_rating(
    session: Session, customer_id: int, on: date | None = None
) -> CurrentRating | None:
    """The customer's effective rating on ``on`` (default today), or None when no rating has
    been approved. An expired override falls back to the grade without it."""
    on = on or _today()
    r = session.scalars(
        select(Rating)
        .where(Rating.customer_id == customer_id, Rating.status == "approved")
        .order_by(Rating.approved_at.desc(), Rating.id.desc())
        .limit(1)
    ).first()
    if r is None:
        return None
    return _current_from_row(r, on)


def _current_from_row(r: Rating, on: date) -> CurrentRating:
    eff = effective(
        base_grade=r.base_grade,
        base_pd=r.base_pd,
        qualitative_notches=r.qualitative_notches,
        override_notches=r.override_notches,
        override_expires=r.override_expires,
        final_grade=r.final_grade,
        final_pd=r.final_pd,
        valid_until=r.valid_until,
        on=on,
    )
    return CurrentRating(
        rating_id=r.id,
        customer_id=r.customer_id,
        grade=eff.grade,
        label=grade_info(eff.grade).label,
        pd=eff.pd,
        valid_until=r.valid_until,
        status="review_due" if eff.review_due else "current",
        override_active=eff.override_active,
        base_source=r.base_source,
        approved_at=r.approved_at,
    )


def current_ratings(
    session: Session, customer_ids: list[int] | None = None, on: date | None = None
) -> dict[int, CurrentRating]:
    """:func:`current_rating` for many customers at once (all when ``customer_ids`` is None)."""
    on = on or _today()
    q = select(Rating).where(Rating.status == "approved")
    if customer_ids is not None:
        if not customer_ids:
            return {}
        q = q.where(Rating.customer_id.in_(customer_ids))
    out: dict[int, CurrentRating] = {}
    latest: dict[int, Rating] = {}
    for r in session.scalars(q.order_by(Rating.approved_at, Rating.id)):
        latest[r.customer_id] = r
    for cid, r in latest.items():
        out[cid] = _current_from_row(r, on)
    return out


# ---------------------------------------------------------------- expert assessments


def assessment_dict(a: ExpertAssessment) -> dict[str, Any]:
    return {
        "id": a.id,
        "customer_id": a.customer_id,
        "source": a.source,
        "likelihood": a.likelihood,
        "impact": a.impact,
        "score": a.likelihood * a.impact,
        "assessor": a.assessor,
        "comment": a.comment,
        "evidence": list(a.evidence or []),
        "delphi_round_id": a.delphi_round_id,
        "active": a.active,
        "created_at": a.created_at.isoformat() if a.created_at else None,
    }


def add_assessment(
    session: Session,
    customer_id: int,
    *,
    source: str,
    likelihood: int,
    impact: int,
    assessor: str,
    comment: str | None = None,
    evidence: list[str] | None = None,
    actor: str | None = None,
    delphi_round_id: int | None = None,
) -> ExpertAssessment:
    """Record one assessor's judgement; it replaces that assessor's earlier one for the
    same source (the earlier stays in history, inactive)."""
    validate(source, likelihood, impact, assessor)
    if session.get(Customer, customer_id) is None:
        raise LookupError(f"no customer {customer_id}")
    session.execute(
        update(ExpertAssessment)
        .where(
            ExpertAssessment.customer_id == customer_id,
            ExpertAssessment.source == source,
            ExpertAssessment.assessor == assessor,
            ExpertAssessment.active.is_(True),
        )
        .values(active=False)
    )
    row = ExpertAssessment(
        customer_id=customer_id,
        source=source.strip(),
        likelihood=likelihood,
        impact=impact,
        assessor=assessor,
        comment=comment,
        evidence=[str(e) for e in (evidence or [])],
        delphi_round_id=delphi_round_id,
        active=True,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    record(
        session,
        actor=actor or assessor,
        action="expert.assess",
        entity="customer",
        entity_id=customer_id,
        after=assessment_dict(row),
    )
    return row


def list_assessments(
    session: Session, customer_id: int, active_only: bool = False
) -> list[ExpertAssessment]:
    q = select(ExpertAssessment).where(ExpertAssessment.customer_id == customer_id)
    if active_only:
        q = q.where(ExpertAssessment.active.is_(True))
    return list(session.scalars(q.order_by(ExpertAssessment.id)))


def all_consensus(session: Session) -> dict[int, tuple[list[Consensus], list[int]]]:
    """Consensus and assessment ids of every customer with active assessments (one query)."""
    rows = session.execute(
        select(
            ExpertAssessment.id,
            ExpertAssessment.customer_id,
            ExpertAssessment.source,
            ExpertAssessment.likelihood,
            ExpertAssessment.impact,
            ExpertAssessment.assessor,
        )
        .where(ExpertAssessment.active.is_(True))
        .order_by(ExpertAssessment.id)
    ).all()
    js: dict[int, list[Judgement]] = {}
    ids: dict[int, list[int]] = {}
    for aid, cid, src, lik, imp, who in rows:
        js.setdefault(cid, []).append(Judgement(src, lik, imp, who))
        ids.setdefault(cid, []).append(aid)
    return {cid: (consensus(latest_per_assessor(j)), ids[cid]) for cid, j in js.items()}


def latest_hashes(session: Session) -> dict[int, str | None]:
    """The inputs hash of each customer's newest approved or proposed rating."""
    rows = session.execute(
        select(Rating.customer_id, Rating.inputs_hash)
        .where(Rating.status.in_(("approved", "proposed")))
        .order_by(Rating.id)
    ).all()
    return {cid: h for cid, h in rows}


def _judgement(a: ExpertAssessment) -> Judgement:
    return Judgement(a.source, a.likelihood, a.impact, a.assessor, a.comment)


def customer_consensus(session: Session, customer_id: int) -> tuple[list[Consensus], list[int]]:
    """Consensus per source from the active assessments, and the ids used."""
    rows = list_assessments(session, customer_id, active_only=True)
    return consensus(latest_per_assessor(_judgement(a) for a in rows)), [a.id for a in rows]


def customer_matrix(session: Session, customer_id: int) -> dict[str, Any]:
    """The 5x5 matrix of one customer: individual judgements and consensus per source."""
    rows = list_assessments(session, customer_id, active_only=True)
    cons, _ids = customer_consensus(session, customer_id)
    return {
        "customer_id": customer_id,
        "grid": matrix_counts((a.likelihood, a.impact) for a in rows),
        "consensus": [c.as_dict() for c in cons],
        "assessments": [assessment_dict(a) for a in rows],
        "notches": qualitative_notches(cons),
    }


def portfolio_matrix(session: Session) -> dict[str, Any]:
    """The 5x5 portfolio matrix: each (customer, source) consensus counted once."""
    rows = session.execute(
        select(
            ExpertAssessment.customer_id,
            ExpertAssessment.source,
            ExpertAssessment.likelihood,
            ExpertAssessment.impact,
            ExpertAssessment.assessor,
        ).where(ExpertAssessment.active.is_(True))
    ).all()
    by_customer: dict[int, list[Judgement]] = {}
    for cid, src, lik, imp, who in rows:
        by_customer.setdefault(cid, []).append(Judgement(src, lik, imp, who))
    points: list[tuple[float, float]] = []
    for js in by_customer.values():
        points.extend((c.likelihood, c.impact) for c in consensus(js))
    return {"grid": matrix_counts(points), "customers": len(by_customer), "points": len(points)}


# ---------------------------------------------------------------- Delphi


def _delphi_state(rows: list[DelphiRound]) -> dl.DelphiState:
    first = rows[0]
    state = dl.start(first.source, dl.DelphiConfig(first.threshold, first.max_rounds))
    for r in rows:
        for a in r.answers:
            state = dl.submit(
                state,
                Judgement(
                    first.source, a["likelihood"], a["impact"], a["assessor"], a.get("comment")
                ),
            )
        if r.state != dl.OPEN:
            state = dl.close_round(state)
    return state


def delphi_rounds(session: Session, study: str) -> list[DelphiRound]:
    return list(
        session.scalars(
            select(DelphiRound).where(DelphiRound.study == study).order_by(DelphiRound.round_no)
        )
    )


def delphi_start(
    session: Session,
    customer_id: int,
    source: str,
    *,
    actor: str,
    threshold: float = 1.0,
    max_rounds: int = 3,
) -> DelphiRound:
    """Open round 1 of a new Delphi study; returns the round (its ``study`` names it)."""
    dl.DelphiConfig(threshold, max_rounds)  # validates
    if session.get(Customer, customer_id) is None:
        raise LookupError(f"no customer {customer_id}")
    study = f"{customer_id}-{source}-{utcnow().strftime('%Y%m%d%H%M%S%f')}"
    row = DelphiRound(
        customer_id=customer_id,
        source=source,
        study=study,
        round_no=1,
        threshold=threshold,
        max_rounds=max_rounds,
        answers=[],
        state=dl.OPEN,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    record(
        session,
        actor=actor,
        action="delphi.start",
        entity="customer",
        entity_id=customer_id,
        after={"study": study, "source": source},
    )
    return row


def delphi_answer(session: Session, study: str, answer: Judgement) -> DelphiRound:
    rows = delphi_rounds(session, study)
    if not rows:
        raise LookupError(f"no Delphi study {study!r}")
    state = dl.submit(_delphi_state(rows), answer)  # validates
    current = rows[-1]
    current.answers = [
        {
            "assessor": a.assessor,
            "likelihood": a.likelihood,
            "impact": a.impact,
            "comment": a.comment,
        }
        for a in state.answers
    ]
    session.flush()
    return current


def delphi_close(session: Session, study: str, *, actor: str) -> dl.DelphiState:
    """Close the open round; on convergence or exhaustion the last answers become the
    assessors' active assessments."""
    rows = delphi_rounds(session, study)
    if not rows:
        raise LookupError(f"no Delphi study {study!r}")
    state = dl.close_round(_delphi_state(rows))
    current = rows[-1]
    current.summary = state.history[-1].as_dict()
    current.state = "closed" if state.status == dl.OPEN else state.status
    if state.status == dl.OPEN:
        session.add(
            DelphiRound(
                customer_id=current.customer_id,
                source=current.source,
                study=study,
                round_no=state.round_no,
                threshold=current.threshold,
                max_rounds=current.max_rounds,
                answers=[],
                state=dl.OPEN,
                created_at=utcnow(),
            )
        )
    else:
        for a in state.closed_answers[-1]:
            add_assessment(
                session,
                current.customer_id,
                source=a.source,
                likelihood=a.likelihood,
                impact=a.impact,
                assessor=a.assessor,
                comment=a.comment,
                actor=actor,
                delphi_round_id=current.id,
            )
    session.flush()
    record(
        session,
        actor=actor,
        action="delphi.close",
        entity="customer",
        entity_id=current.customer_id,
        after={"study": study, "status": state.status, "summary": current.summary},
    )
    return state


# ---------------------------------------------------------------- AHP


def save_weight_set(
    session: Session,
    name: str,
    criteria: list[str],
    matrix: list[list[float]],
    result: Any,
    *,
    actor: str,
) -> AhpWeightSet:
    row = AhpWeightSet(
        name=name,
        criteria=list(criteria),
        matrix=[[float(x) for x in r] for r in matrix],
        weights={c: float(w) for c, w in zip(criteria, result.weights, strict=True)},
        lambda_max=float(result.lambda_max),
        ci=float(result.ci),
        cr=float(result.cr),
        created_by=actor,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    record(
        session,
        actor=actor,
        action="ahp.weights",
        entity="ahp_weight_set",
        entity_id=row.id,
        after={"name": name, "weights": row.weights, "cr": row.cr},
    )
    return row


def latest_weight_set(session: Session, name: str) -> AhpWeightSet | None:
    return session.scalars(
        select(AhpWeightSet).where(AhpWeightSet.name == name).order_by(AhpWeightSet.id.desc())
    ).first()


# ---------------------------------------------------------------- ratings


def rating_dict(r: Rating) -> dict[str, Any]:
    return {
        "id": r.id,
        "customer_id": r.customer_id,
        "status": r.status,
        "base_source": r.base_source,
        "base_grade": r.base_grade,
        "base_pd": r.base_pd,
        "model_version": r.model_version,
        "qualitative_notches": r.qualitative_notches,
        "override_notches": r.override_notches,
        "override_reason": r.override_reason,
        "override_expires": r.override_expires.isoformat() if r.override_expires else None,
        "final_grade": r.final_grade,
        "final_label": grade_info(r.final_grade).label,
        "final_pd": r.final_pd,
        "needs_risk_manager": r.needs_risk_manager,
        "valid_until": r.valid_until.isoformat(),
        "inputs": r.inputs,
        "assessments_used": list(r.assessments_used or []),
        "proposed_by": r.proposed_by,
        "proposed_at": r.proposed_at.isoformat() if r.proposed_at else None,
        "approved_by": r.approved_by,
        "approved_at": r.approved_at.isoformat() if r.approved_at else None,
        "decision_reason": r.decision_reason,
    }


@dataclass(frozen=True)
class BaseGrade:
    """Where a rating starts: the quantitative model or the expert scorecard."""

    source: str  # model | expert_scorecard | manual
    grade: int
    pd: float | None = None
    model_version: str | None = None
    details: dict[str, Any] | None = None


def quantitative_base(session: Session, customer_id: int) -> BaseGrade | None:
    """The latest quantitative assessment, when the scorecard stage is installed."""
    try:
        from riskdesk.store.assessments import latest_assessment  # type: ignore[import-not-found]
    except ImportError:
        return None
    a = latest_assessment(session, customer_id)
    if a is None:
        return None

    def get(name: str) -> Any:
        return a.get(name) if isinstance(a, dict) else getattr(a, name, None)

    grade, pd = get("grade"), get("pd")
    if grade is None:
        return None
    version = get("model_version") or get("model")
    return BaseGrade(
        "model",
        int(grade),
        None if pd is None else float(pd),
        None if version is None else str(version),
        {"score": get("score")},
    )


def quantitative_bases(session: Session) -> dict[int, BaseGrade]:
    """The latest quantitative assessment of every customer (one query), when the scorecard
    stage's ``assessments`` table is installed; else empty."""
    try:
        from riskdesk.store.models.assess import Assessment  # type: ignore[import-not-found]
    except ImportError:
        return {}
    rn = (
        func.row_number()
        .over(
            partition_by=Assessment.customer_id,
            order_by=(Assessment.as_of.desc(), Assessment.id.desc()),
        )
        .label("rn")
    )
    sub = select(
        Assessment.customer_id,
        Assessment.grade,
        Assessment.pd,
        Assessment.model_version,
        Assessment.score,
        rn,
    ).subquery()
    rows = session.execute(
        select(sub.c.customer_id, sub.c.grade, sub.c.pd, sub.c.model_version, sub.c.score).where(
            sub.c.rn == 1
        )
    ).all()
    return {
        int(cid): BaseGrade(
            "model",
            int(grade),
            None if pd_ is None else float(pd_),
            None if version is None else str(version),
            {"score": None if score is None else float(score)},
        )
        for cid, grade, pd_, version, score in rows
    }


def inputs_hash(base: BaseGrade, notches: int, assessment_ids: list[int]) -> str:
    """What a rating decision rests on: base source, grade and model version, the expert
    notches and the assessments used (a PD drifting inside its grade is no new decision)."""
    blob = json.dumps(
        {
            "src": base.source,
            "grade": base.grade,
            "v": base.model_version,
            "q": notches,
            "a": sorted(assessment_ids),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def propose_rating(
    session: Session,
    customer_id: int,
    *,
    base: BaseGrade,
    proposed_by: str,
    on: date | None = None,
    override_notches: int = 0,
    override_reason: str | None = None,
    override_expires: date | None = None,
    use_expert_consensus: bool = True,
    auto_approve: bool = False,
    policy: RatingPolicy = DEFAULT_POLICY,
    known_consensus: tuple[list[Consensus], list[int]] | None = None,
) -> Rating:
    """Propose a rating (status ``proposed``). ``auto_approve`` (system batch only) approves
    at once when no override is involved and the move stays within the cap.
    ``known_consensus`` (consensus, assessment ids) saves the lookup in batch runs."""
    on = on or _today()
    if session.get(Customer, customer_id) is None:
        raise LookupError(f"no customer {customer_id}")
    cons: list[Consensus] = []
    used: list[int] = []
    if not use_expert_consensus:
        pass
    elif known_consensus is not None:
        cons, used = known_consensus
    else:
        cons, used = customer_consensus(session, customer_id)
    q = qualitative_notches(cons)
    p = propose(
        base_grade=base.grade,
        base_source=base.source,
        base_pd=base.pd,
        on=on,
        qualitative_notches=q,
        override_notches=override_notches,
        override_reason=override_reason,
        override_expires=override_expires,
        policy=policy,
    )
    now = utcnow()
    inputs = {
        "as_of": on.isoformat(),
        "base": {
            "source": base.source,
            "grade": base.grade,
            "pd": base.pd,
            "model_version": base.model_version,
            "details": base.details,
        },
        "consensus": [c.as_dict() for c in cons],
        "qualitative_notches": q,
        "policy": {"cap": policy.cap, "review_months": policy.review_months(p.final_grade)},
        "notes": list(p.notes),
    }
    r = Rating(
        customer_id=customer_id,
        status="proposed",
        base_source=base.source,
        base_grade=base.grade,
        base_pd=base.pd,
        model_version=base.model_version,
        qualitative_notches=q,
        override_notches=p.override_notches,
        override_reason=p.override_reason,
        override_expires=p.override_expires,
        final_grade=p.final_grade,
        final_pd=p.final_pd,
        needs_risk_manager=p.needs_risk_manager,
        valid_until=p.valid_until,
        inputs=inputs,
        inputs_hash=inputs_hash(base, q, used),
        assessments_used=used,
        proposed_by=proposed_by,
        proposed_at=now,
    )
    session.add(r)
    session.flush()
    record(
        session,
        actor=proposed_by,
        action="rating.propose",
        entity="rating",
        entity_id=r.id,
        after=rating_dict(r),
        reason=override_reason,
    )
    if auto_approve:
        if proposed_by != SYSTEM:
            raise RatingError("only system ratings are auto-approved")
        if not p.override_notches and not p.needs_risk_manager:
            _approve(session, r, approver=SYSTEM, reason="auto-approved system rating")
    return r


def _approve(session: Session, r: Rating, *, approver: str, reason: str | None) -> None:
    before = rating_dict(r)
    prior = session.scalars(
        select(Rating).where(
            Rating.customer_id == r.customer_id, Rating.status == "approved", Rating.id != r.id
        )
    ).all()
    for old in prior:
        old.status = "superseded"
    r.status = "approved"
    r.approved_by = approver
    r.approved_at = utcnow()
    r.decision_reason = reason
    session.flush()
    record(
        session,
        actor=approver,
        action="rating.approve",
        entity="rating",
        entity_id=r.id,
        before=before,
        after=rating_dict(r),
        reason=reason,
    )


def approve_rating(
    session: Session,
    rating_id: int,
    *,
    approver: str,
    approver_role: str,
    reason: str | None = None,
) -> Rating:
    """Approve a proposed rating; refuses self-approval and cap moves by a non-risk-manager."""
    r = session.get(Rating, rating_id)
    if r is None:
        raise LookupError(f"no rating {rating_id}")
    check_approval(
        proposed_by=r.proposed_by,
        approver=approver,
        approver_role=approver_role,
        needs_risk_manager=r.needs_risk_manager,
        status=r.status,
    )
    _approve(session, r, approver=approver, reason=reason)
    return r


def reject_rating(
    session: Session, rating_id: int, *, approver: str, approver_role: str, reason: str
) -> Rating:
    r = session.get(Rating, rating_id)
    if r is None:
        raise LookupError(f"no rating {rating_id}")
    if not reason or not reason.strip():
        raise RatingError("a rejection needs a reason")
    check_approval(
        proposed_by=r.proposed_by,
        approver=approver,
        approver_role=approver_role,
        needs_risk_manager=False,
        status=r.status,
    )
    before = rating_dict(r)
    r.status = "rejected"
    r.approved_by = approver
    r.approved_at = utcnow()
    r.decision_reason = reason
    session.flush()
    record(
        session,
        actor=approver,
        action="rating.reject",
        entity="rating",
        entity_id=r.id,
        before=before,
        after=rating_dict(r),
        reason=reason,
    )
    return r


def rating_history(session: Session, customer_id: int) -> list[Rating]:
    """Every rating of the customer, newest first."""
    return list(
        session.scalars(
            select(Rating).where(Rating.customer_id == customer_id).order_by(Rating.id.desc())
        )
    )


def bulk_system_ratings(
    session: Session,
    items: list[tuple[int, BaseGrade, list[Consensus], list[int]]],
    *,
    on: date,
    policy: RatingPolicy = DEFAULT_POLICY,
) -> dict[str, int]:
    """System ratings for many customers at once (the daily batch): one INSERT, one UPDATE
    superseding the customers' previous approved ratings, and one audit entry per call that
    lists every rating (id, customer, grade, inputs hash). Each rating row keeps its full
    decision record. Ratings within the cap are approved at once; others stay proposed."""
    if not items:
        return {"proposed": 0, "approved": 0}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for cid, base, cons, used in items:
        q = qualitative_notches(cons)
        p = propose(
            base_grade=base.grade,
            base_source=base.source,
            base_pd=base.pd,
            on=on,
            qualitative_notches=q,
            policy=policy,
        )
        auto = not p.needs_risk_manager
        rows.append(
            {
                "customer_id": cid,
                "status": "approved" if auto else "proposed",
                "base_source": base.source,
                "base_grade": base.grade,
                "base_pd": base.pd,
                "model_version": base.model_version,
                "qualitative_notches": q,
                "override_notches": 0,
                "override_reason": None,
                "override_expires": None,
                "final_grade": p.final_grade,
                "final_pd": p.final_pd,
                "needs_risk_manager": p.needs_risk_manager,
                "valid_until": p.valid_until,
                "inputs": {
                    "as_of": on.isoformat(),
                    "base": {
                        "source": base.source,
                        "grade": base.grade,
                        "pd": base.pd,
                        "model_version": base.model_version,
                        "details": base.details,
                    },
                    "consensus": [c.as_dict() for c in cons],
                    "qualitative_notches": q,
                    "policy": {
                        "cap": policy.cap,
                        "review_months": policy.review_months(p.final_grade),
                    },
                    "notes": list(p.notes),
                },
                "inputs_hash": inputs_hash(base, q, used),
                "assessments_used": list(used),
                "proposed_by": SYSTEM,
                "proposed_at": now,
                "approved_by": SYSTEM if auto else None,
                "approved_at": now if auto else None,
                "decision_reason": "auto-approved system rating" if auto else None,
            }
        )
    approved_ids = [r["customer_id"] for r in rows if r["status"] == "approved"]
    if approved_ids:
        session.execute(
            update(Rating)
            .where(Rating.customer_id.in_(approved_ids), Rating.status == "approved")
            .values(status="superseded")
        )
    new_ids = list(
        session.scalars(insert(Rating).returning(Rating.id, sort_by_parameter_order=True), rows)
    )
    record(
        session,
        actor=SYSTEM,
        action="rating.batch",
        entity="rating",
        entity_id=f"{new_ids[0]}-{new_ids[-1]}",
        after={
            "as_of": on.isoformat(),
            "ratings": [
                [rid, r["customer_id"], r["status"], r["final_grade"], r["inputs_hash"][:16]]
                for rid, r in zip(new_ids, rows, strict=True)
            ],
        },
        reason="daily rating step: system ratings from the model or the expert scorecard",
    )
    return {"proposed": len(rows), "approved": len(approved_ids)}
