"""Expert assessments, ratings and AHP over HTTP."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from riskdesk.api.deps import CurrentUser, DbSession, require_roles, visible_customer
from riskdesk.api.errors import ApiError
from riskdesk.assess import ahp
from riskdesk.assess.expert import (
    BUILTIN_SOURCES,
    IMPACT_LEVELS,
    LIKELIHOOD_LEVELS,
    AssessmentError,
)
from riskdesk.assess.rating import RatingError
from riskdesk.store import ratings as repo
from riskdesk.store.models import Rating, User
from riskdesk.store.types import utcnow

router = APIRouter(tags=["assessment & rating"])

Assessor = Annotated[User, Depends(require_roles("analyst", "risk_manager"))]
RiskManager = Annotated[User, Depends(require_roles("risk_manager"))]


class AssessmentIn(BaseModel):
    source: str = Field(min_length=1, max_length=64, examples=["credit"])
    likelihood: int = Field(ge=1, le=5)
    impact: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=4000)
    evidence: list[str] = Field(default_factory=list, max_length=50)


class ProposalIn(BaseModel):
    grade: int | None = Field(
        default=None, ge=1, le=10, description="Manual base grade; default: model or expert."
    )
    override_notches: int = Field(default=0, ge=-9, le=9)
    override_reason: str | None = Field(default=None, max_length=4000)
    override_expires: date | None = None
    as_of: date | None = None


class DecisionIn(BaseModel):
    reason: str | None = Field(default=None, max_length=4000)


class AhpIn(BaseModel):
    criteria: list[str] | None = Field(default=None, max_length=15)
    matrix: list[list[float | str]] = Field(max_length=15)
    save_as: str | None = Field(default=None, max_length=100)


@router.get("/assessment/levels", summary="Risk sources and the level descriptions (zh/en)")
def levels(user: CurrentUser) -> dict[str, Any]:
    return {
        "sources": {k: {"en": en, "zh": zh} for k, (en, zh) in BUILTIN_SOURCES.items()},
        "likelihood": {k: {"en": en, "zh": zh} for k, (en, zh) in LIKELIHOOD_LEVELS.items()},
        "impact": {k: {"en": en, "zh": zh} for k, (en, zh) in IMPACT_LEVELS.items()},
    }


@router.get("/customers/{customer_id}/assessments", summary="Expert assessments and matrix")
def list_assessments(customer_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    c = visible_customer(session, user, customer_id)
    return repo.customer_matrix(session, c.id)


@router.post(
    "/customers/{customer_id}/assessments",
    status_code=201,
    summary="Record the current user's likelihood x impact judgement",
)
def add_assessment(
    customer_id: int, body: AssessmentIn, session: DbSession, user: Assessor
) -> dict[str, Any]:
    c = visible_customer(session, user, customer_id)
    try:
        row = repo.add_assessment(
            session,
            c.id,
            source=body.source.strip(),
            likelihood=body.likelihood,
            impact=body.impact,
            assessor=user.username,
            comment=body.comment,
            evidence=body.evidence,
        )
    except AssessmentError as exc:
        raise ApiError(422, "Invalid assessment", str(exc)) from None
    return repo.assessment_dict(row)


@router.get("/risk-matrix", summary="Portfolio 5x5 risk matrix (consensus per customer/source)")
def risk_matrix(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    return repo.portfolio_matrix(session)


@router.get("/customers/{customer_id}/ratings", summary="Current rating and rating history")
def ratings(customer_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    c = visible_customer(session, user, customer_id)
    cur = repo.current_rating(session, c.id)
    return {
        "customer_id": c.id,
        "current": cur.as_dict() if cur else None,
        "items": [repo.rating_dict(r) for r in repo.rating_history(session, c.id)],
    }


@router.post("/customers/{customer_id}/ratings", status_code=201, summary="Propose a rating")
def propose(
    customer_id: int, body: ProposalIn, session: DbSession, user: Assessor
) -> dict[str, Any]:
    c = visible_customer(session, user, customer_id)
    as_of = body.as_of or utcnow().date()
    if body.grade is not None:
        base: repo.BaseGrade | None = repo.BaseGrade("manual", body.grade, None, None)
    else:
        from riskdesk.analytics.steps.rating import base_for

        bind = session.get_bind()
        base = repo.quantitative_base(session, c.id) or base_for(bind, c.id, as_of)  # type: ignore[arg-type]
    if base is None:
        raise ApiError(422, "No base grade", "give a manual grade", field="grade")
    try:
        r = repo.propose_rating(
            session,
            c.id,
            base=base,
            proposed_by=user.username,
            on=as_of,
            override_notches=body.override_notches,
            override_reason=body.override_reason,
            override_expires=body.override_expires,
        )
    except RatingError as exc:
        raise ApiError(422, "Rating refused", str(exc)) from None
    return repo.rating_dict(r)


def _rating_for(session: Any, user: User, rating_id: int) -> Rating:
    r = session.get(Rating, rating_id)
    if r is None:
        raise ApiError(404, "Not found", f"no rating {rating_id}")
    visible_customer(session, user, r.customer_id)
    return r  # type: ignore[no-any-return]


@router.post("/ratings/{rating_id}/approve", summary="Approve a proposed rating (not your own)")
def approve(
    rating_id: int, session: DbSession, user: RiskManager, body: DecisionIn | None = None
) -> dict[str, Any]:
    _rating_for(session, user, rating_id)
    try:
        r = repo.approve_rating(
            session,
            rating_id,
            approver=user.username,
            approver_role=user.role,
            reason=body.reason if body else None,
        )
    except RatingError as exc:
        raise ApiError(409, "Approval refused", str(exc)) from None
    return repo.rating_dict(r)


@router.post("/ratings/{rating_id}/reject", summary="Reject a proposed rating (with a reason)")
def reject(
    rating_id: int, body: DecisionIn, session: DbSession, user: RiskManager
) -> dict[str, Any]:
    _rating_for(session, user, rating_id)
    try:
        r = repo.reject_rating(
            session,
            rating_id,
            approver=user.username,
            approver_role=user.role,
            reason=body.reason or "",
        )
    except RatingError as exc:
        raise ApiError(409, "Rejection refused", str(exc)) from None
    return repo.rating_dict(r)


@router.post("/ahp", summary="AHP weights and consistency ratio of a comparison matrix")
def ahp_weights(body: AhpIn, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    try:
        crit, matrix = ahp.parse_matrix({"criteria": body.criteria, "matrix": body.matrix})
        res = ahp.weights(matrix, crit)
    except ahp.AhpError as exc:
        raise ApiError(422, "Invalid comparison matrix", str(exc), field="matrix") from None
    if not res.consistent:
        raise ApiError(
            422, "Inconsistent judgements", str(ahp.InconsistentMatrix(res)), field="matrix"
        )
    out = res.as_dict()
    if body.save_as:
        if user.role not in ("analyst", "risk_manager", "admin"):
            raise ApiError(403, "Forbidden", "saving weights needs analyst or risk_manager")
        out["saved_id"] = repo.save_weight_set(
            session, body.save_as, list(res.criteria), matrix, res, actor=user.username
        ).id
    return out
