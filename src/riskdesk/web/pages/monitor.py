"""Pages: the alerts inbox (open cases and alerts) and a case page (acknowledge, comment,
resolve) with each alert's playbook."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from riskdesk.api.deps import CurrentUser, DbSession, require_roles
from riskdesk.api.errors import ApiError
from riskdesk.api.routers.monitor import CaseId, _owner_filter, _visible_case
from riskdesk.monitor.cases import OUTCOMES
from riskdesk.store import monitor_repo as repo
from riskdesk.store.models import User
from riskdesk.web.nav import NavItem
from riskdesk.web.panels.monitor import alerts_table, severity_badge
from riskdesk.web.templating import render, request_lang

router = APIRouter(prefix="/monitor", include_in_schema=False)
NAV = [NavItem("/monitor/alerts", "monitor.nav", 35)]
Workers = Annotated[User, Depends(require_roles("risk_manager", "analyst", "sales"))]
Resolvers = Annotated[User, Depends(require_roles("risk_manager", "analyst"))]


@router.get("/alerts")
def inbox(request: Request, session: DbSession, user: CurrentUser) -> Response:
    lang = request_lang(request)
    owner = _owner_filter(user)
    eng = repo.published_engine(session)
    cases = [repo.case_dict(c) for c in repo.list_cases(session, owner=owner, limit=200)]
    alerts = [
        repo.alert_dict(a, eng, lang) for a in repo.list_alerts(session, owner=owner, limit=200)
    ]
    return render(
        request,
        "monitor/inbox.html",
        {
            "cases": cases,
            "alerts_html": alerts_table(alerts, lang),
            "badge": lambda s: severity_badge(s, lang),
        },
    )


@router.get("/cases/{case_id}")
def case_page(request: Request, session: DbSession, user: CurrentUser, case_id: CaseId) -> Response:
    lang = request_lang(request)
    case = _visible_case(session, user, case_id)
    detail = repo.case_detail(session, case, lang)
    return render(
        request,
        "monitor/case.html",
        {
            "case": detail,
            "alerts_html": alerts_table(detail["alerts"], lang, with_customer=False),
            "badge": lambda s: severity_badge(s, lang),
            "outcomes": OUTCOMES,
        },
    )


def _back(case_id: int) -> RedirectResponse:
    return RedirectResponse(f"/monitor/cases/{case_id}", status_code=303)


def _do(fn, session, case_id: int, *args, **kw) -> RedirectResponse:  # type: ignore[no-untyped-def]
    try:
        fn(session, case_id, *args, **kw)
    except repo.MonitorError as exc:
        raise ApiError(409, "Conflict", str(exc)) from None
    return _back(case_id)


@router.post("/cases/{case_id}/acknowledge")
def acknowledge(session: DbSession, user: Workers, case_id: CaseId) -> Response:
    _visible_case(session, user, case_id)
    return _do(repo.acknowledge_case, session, case_id, actor=user.username)


@router.post("/cases/{case_id}/comment")
def comment(
    session: DbSession, user: Workers, case_id: CaseId, body: Annotated[str, Form(max_length=5000)]
) -> Response:
    _visible_case(session, user, case_id)
    return _do(repo.comment_case, session, case_id, body, actor=user.username)


@router.post("/cases/{case_id}/resolve")
def resolve(
    session: DbSession,
    user: Resolvers,
    case_id: CaseId,
    outcome: Annotated[str, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    _visible_case(session, user, case_id)
    return _do(
        repo.resolve_case, session, case_id, outcome, actor=user.username, reason=reason or None
    )
