"""Control pages: a customer's exposure with drill-down, limits and requests, the approval
queue of held orders, concentration (Lorenz, HHI), insurance and tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from riskdesk.api.deps import CurrentUser, DbSession, can_see, visible_customer
from riskdesk.api.errors import ApiError
from riskdesk.control.limits import ApprovalRefused
from riskdesk.store import control_repo as repo
from riskdesk.store.models import CreditLimit, Customer, LimitRequest
from riskdesk.store.types import MAX_ID
from riskdesk.web.i18n import t
from riskdesk.web.nav import NavItem
from riskdesk.web.panels.control import customer_summary, exposure_table, lorenz_figure
from riskdesk.web.templating import render, request_lang

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]

router = APIRouter(prefix="/control", include_in_schema=False)
NAV = [
    NavItem("/control/holds", "control.nav.holds", 40),
    NavItem(
        "/control/limits",
        "control.nav.limits",
        41,
        roles=("admin", "risk_manager", "analyst", "auditor"),
    ),
    NavItem(
        "/control/concentration",
        "control.nav.concentration",
        42,
        roles=("admin", "risk_manager", "analyst", "auditor"),
    ),
    NavItem(
        "/control/insurance",
        "control.nav.insurance",
        43,
        roles=("admin", "risk_manager", "analyst", "auditor"),
    ),
    NavItem("/control/tasks", "control.nav.tasks", 44),
]
STAFF = ("admin", "risk_manager", "analyst", "auditor")
DECIDERS = ("admin", "risk_manager", "analyst")


def _require(user: Any, roles: tuple[str, ...]) -> None:
    if user.role not in roles:
        raise ApiError(403, "Forbidden", f"this needs one of the roles: {', '.join(roles)}")


def _names(session: Any, ids: set[int]) -> dict[int, Customer]:
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(ids)))}


@router.get("/customers/{customer_id}")
def customer_page(
    request: Request,
    customer_id: IdPath,
    session: DbSession,
    user: CurrentUser,
) -> Response:
    lang = request_lang(request)
    c = visible_customer(session, user, customer_id)
    s = customer_summary(session, c, lang)
    hist = [repo.limit_dict(x) for x in repo.limit_history(session, c.id)]
    checks = [repo.check_dict(x) for x in repo.list_checks(session, customer_id=c.id, limit=20)]
    return render(
        request,
        "control/customer.html",
        {
            "customer": c,
            "s": s,
            "table": exposure_table(s["exposure"], lang),
            "history": hist,
            "checks": checks,
            "tasks": [repo.action_dict(a) for a in repo.list_actions(session, customer_id=c.id)],
        },
    )


@router.get("/holds")
def holds_page(
    request: Request, session: DbSession, user: CurrentUser, error: str | None = None
) -> Response:
    rows = repo.list_checks(session, status="held", limit=500)
    custs = _names(session, {r.customer_id for r in rows})
    visible = [
        repo.check_dict(r)
        for r in rows
        if r.customer_id in custs and can_see(user, custs[r.customer_id])
    ]
    recent = [
        repo.check_dict(r)
        for r in repo.list_checks(session, limit=50)
        if r.status in ("released", "rejected")
    ]
    return render(
        request,
        "control/holds.html",
        {
            "holds": visible,
            "customers": custs,
            "recent": recent if user.role in STAFF else [],
            "can_decide": user.role in DECIDERS,
            "error": error,
        },
    )


def _hold(
    request: Request, check_id: int, session: Any, user: Any, reason: str, release: bool
) -> Response:
    _require(user, DECIDERS)
    try:
        repo.decide_hold(session, check_id, actor=user.username, release=release, reason=reason)
    except (repo.ControlError, ApprovalRefused) as exc:
        session.rollback()
        return holds_page(request, session, user, error=str(exc))
    return RedirectResponse("/control/holds", status_code=303)


@router.post("/holds/{check_id}/release")
def release(
    request: Request,
    check_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _hold(request, check_id, session, user, reason, True)


@router.post("/holds/{check_id}/reject")
def reject(
    request: Request,
    check_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _hold(request, check_id, session, user, reason, False)


@router.get("/limits")
def limits_page(
    request: Request, session: DbSession, user: CurrentUser, error: str | None = None
) -> Response:
    _require(user, STAFF)
    reqs = list(
        session.scalars(
            select(LimitRequest).where(LimitRequest.status == "pending").order_by(LimitRequest.id)
        )
    )
    lims = list(
        session.scalars(
            select(CreditLimit)
            .where(CreditLimit.status == "active")
            .order_by(CreditLimit.amount.desc())
            .limit(200)
        )
    )
    custs = _names(
        session, {r.customer_id for r in reqs} | {x.customer_id for x in lims if x.customer_id}
    )
    return render(
        request,
        "control/limits.html",
        {
            "requests": [repo.request_dict(r) for r in reqs],
            "limits": [repo.limit_dict(x) for x in lims],
            "customers": custs,
            "can_decide": user.role in DECIDERS,
            "username": user.username,
            "error": error,
        },
    )


def _decide(
    request: Request, rid: int, session: Any, user: Any, reason: str, approve: bool
) -> Response:
    _require(user, DECIDERS)
    try:
        repo.decide_request(session, rid, approver=user.username, approve=approve, reason=reason)
    except (repo.ControlError, ApprovalRefused) as exc:
        session.rollback()
        return limits_page(request, session, user, error=str(exc))
    return RedirectResponse("/control/limits", status_code=303)


@router.post("/requests/{rid}/approve")
def approve(
    request: Request,
    rid: IdPath,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _decide(request, rid, session, user, reason, True)


@router.post("/requests/{rid}/reject")
def reject_request(
    request: Request,
    rid: IdPath,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _decide(request, rid, session, user, reason, False)


@router.get("/concentration")
def concentration_page(request: Request, session: DbSession, user: CurrentUser) -> Response:
    _require(user, STAFF)
    lang = request_lang(request)
    on = repo.utcnow().date()
    rep = repo.concentration_report(session, on)
    dims = rep["dimensions"]
    cust = dims["customer"]
    return render(
        request,
        "control/concentration.html",
        {
            "rep": rep,
            "dims": {k: v.as_dict(10) for k, v in dims.items()},
            "chart": lorenz_figure(
                cust.lorenz_x, cust.lorenz_y, lang, t("control.lorenz_title", lang)
            ),
            "breaches": rep["breaches"],
            "as_of": on,
        },
    )


@router.get("/insurance")
def insurance_page(request: Request, session: DbSession, user: CurrentUser) -> Response:
    _require(user, STAFF)
    return render(
        request,
        "control/insurance.html",
        {
            "buyers": repo.insurance_overview(session, repo.utcnow().date()),
        },
    )


@router.get("/tasks")
def tasks_page(request: Request, session: DbSession, user: CurrentUser) -> Response:
    owner = user.username if user.role == "sales" else None
    rows = [repo.action_dict(a) for a in repo.list_actions(session, owner=owner)]
    return render(request, "control/tasks.html", {"tasks": rows})
