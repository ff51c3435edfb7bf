"""Pages: a customer's expert assessments (form + heat map), rating proposal and approval;
the portfolio risk matrix."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from riskdesk.api.deps import CurrentUser, DbSession, visible_customer
from riskdesk.api.errors import ApiError
from riskdesk.assess.expert import (
    BUILTIN_SOURCES,
    IMPACT_LEVELS,
    LIKELIHOOD_LEVELS,
    AssessmentError,
)
from riskdesk.assess.rating import APPROVER_ROLES, RatingError
from riskdesk.assess.scale import MASTER_SCALE
from riskdesk.store import ratings as repo
from riskdesk.store.models import Rating
from riskdesk.store.types import utcnow
from riskdesk.web.i18n import t
from riskdesk.web.nav import NavItem
from riskdesk.web.panels.rating import heatmap, history_table
from riskdesk.web.templating import render, request_lang

router = APIRouter(prefix="/rating", include_in_schema=False)
NAV = [NavItem("/rating/matrix", "rating.nav", 30)]
ASSESSORS = ("analyst", "risk_manager", "admin")


def _page(
    request: Request,
    session: DbSession,
    user: CurrentUser,
    customer_id: int,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    lang = request_lang(request)
    c = visible_customer(session, user, customer_id)
    m = repo.customer_matrix(session, c.id)
    rows = [repo.rating_dict(r) for r in repo.rating_history(session, c.id)]
    cur = repo.current_rating(session, c.id)
    return render(
        request,
        "rating/customer.html",
        {
            "customer": c,
            "matrix": m,
            "heatmap": heatmap(m["grid"], lang, t("rating.customer_matrix", lang)),
            "history": history_table(rows, lang),
            "pending": [r for r in rows if r["status"] == "proposed"],
            "current": cur,
            "sources": BUILTIN_SOURCES,
            "likelihood_levels": LIKELIHOOD_LEVELS,
            "impact_levels": IMPACT_LEVELS,
            "grades": MASTER_SCALE,
            "can_assess": user.role in ASSESSORS,
            "can_approve": user.role in APPROVER_ROLES,
            "username": user.username,
            "error": error,
            "today": utcnow().date().isoformat(),
        },
        status_code=status_code,
    )


@router.get("/customers/{customer_id}")
def customer_page(
    request: Request, customer_id: int, session: DbSession, user: CurrentUser
) -> Response:
    return _page(request, session, user, customer_id)


def _require(user: CurrentUser, roles: tuple[str, ...] | frozenset[str]) -> None:
    if user.role not in roles:
        raise ApiError(403, "Forbidden", f"this needs one of the roles: {', '.join(sorted(roles))}")


@router.post("/customers/{customer_id}/assessments")
def add_assessment(
    request: Request,
    customer_id: int,
    session: DbSession,
    user: CurrentUser,
    source: Annotated[str, Form()],
    likelihood: Annotated[int, Form()],
    impact: Annotated[int, Form()],
    comment: Annotated[str, Form()] = "",
    evidence: Annotated[str, Form()] = "",
) -> Response:
    _require(user, ASSESSORS)
    c = visible_customer(session, user, customer_id)
    try:
        repo.add_assessment(
            session,
            c.id,
            source=source.strip(),
            likelihood=likelihood,
            impact=impact,
            assessor=user.username,
            comment=comment.strip() or None,
            evidence=[e.strip() for e in evidence.splitlines() if e.strip()],
        )
    except AssessmentError as exc:
        return _page(request, session, user, customer_id, str(exc), 422)
    return RedirectResponse(f"/rating/customers/{c.id}#matrix", status_code=303)


@router.post("/customers/{customer_id}/propose")
def propose(
    request: Request,
    customer_id: int,
    session: DbSession,
    user: CurrentUser,
    grade: Annotated[int, Form()],
    override_notches: Annotated[int, Form()] = 0,
    override_reason: Annotated[str, Form()] = "",
    override_expires: Annotated[str, Form()] = "",
) -> Response:
    _require(user, ASSESSORS)
    c = visible_customer(session, user, customer_id)
    try:
        expires = date.fromisoformat(override_expires) if override_expires else None
        repo.propose_rating(
            session,
            c.id,
            base=repo.BaseGrade("manual", grade, None, None),
            proposed_by=user.username,
            override_notches=override_notches,
            override_reason=override_reason.strip() or None,
            override_expires=expires,
        )
    except (RatingError, ValueError) as exc:
        return _page(request, session, user, customer_id, str(exc), 422)
    return RedirectResponse(f"/rating/customers/{c.id}#ratings", status_code=303)


@router.post("/ratings/{rating_id}/approve")
def approve(
    request: Request,
    rating_id: int,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
    decision: Annotated[str, Form()] = "approve",
) -> Response:
    _require(user, APPROVER_ROLES)
    r = session.get(Rating, rating_id)
    if r is None:
        raise ApiError(404, "Not found", f"no rating {rating_id}")
    visible_customer(session, user, r.customer_id)
    try:
        if decision == "reject":
            repo.reject_rating(
                session,
                rating_id,
                approver=user.username,
                approver_role=user.role,
                reason=reason.strip(),
            )
        else:
            repo.approve_rating(
                session,
                rating_id,
                approver=user.username,
                approver_role=user.role,
                reason=reason.strip() or None,
            )
    except RatingError as exc:
        session.rollback()
        return _page(request, session, user, r.customer_id, str(exc), 409)
    return RedirectResponse(f"/rating/customers/{r.customer_id}#ratings", status_code=303)


@router.get("/matrix")
def portfolio(request: Request, session: DbSession, user: CurrentUser) -> Response:
    lang = request_lang(request)
    pm = repo.portfolio_matrix(session)
    return render(
        request,
        "rating/portfolio.html",
        {"pm": pm, "heatmap": heatmap(pm["grid"], lang, t("rating.portfolio_matrix", lang))},
    )
