"""Pages of the monitor: the alerts inbox (open cases and alerts); a case page (acknowledge,
comment, resolve, snooze a rule) with each alert's playbook; the alert rule sets (versions; a
version's rules and JSON, edited into a new draft, dry-run over the stored history,
published); the user's own alert notifications; a customer's whole real-time state, rebuilt
from the stored events on demand."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from riskdesk.api.deps import CurrentUser, DbSession, require_roles, visible_customer
from riskdesk.api.errors import ApiError
from riskdesk.api.routers.monitor import (
    CaseId,
    RiskManagers,
    VersionNo,
    Workers,
    _owner_filter,
    _visible_case,
)
from riskdesk.domain.events import Severity
from riskdesk.monitor.cases import OUTCOMES
from riskdesk.monitor.rules import RuleError
from riskdesk.store import monitor_repo as repo
from riskdesk.store.models import User
from riskdesk.store.types import utcnow
from riskdesk.web.i18n import t
from riskdesk.web.nav import NavItem
from riskdesk.web.panels.monitor import alerts_table, severity_badge
from riskdesk.web.templating import render, request_lang

router = APIRouter(prefix="/monitor", include_in_schema=False)
NAV = [
    NavItem("/monitor/alerts", "monitor.nav", 35),
    NavItem(
        "/monitor/rules",
        "monitor.rules_nav",
        36,
        roles=("admin", "risk_manager", "analyst", "auditor"),
    ),
    NavItem(
        "/monitor/notifications",
        "monitor.notify_nav",
        37,
        roles=("admin", "risk_manager", "analyst", "sales"),
    ),
]
Resolvers = Annotated[User, Depends(require_roles("risk_manager", "analyst"))]
Readers = Annotated[User, Depends(require_roles("risk_manager", "analyst", "auditor"))]
SEVERITIES = tuple(s.value for s in Severity)
MAX_RULES_TEXT = 1_000_000
"""The longest rule set JSON the editor takes (characters)."""


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
    return _case_page(request, session, user, case_id)


def _case_page(
    request: Request,
    session: Any,
    user: User,
    case_id: int,
    *,
    error: str | None = None,
    snooze: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
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
            "rules": sorted({a["rule"] for a in detail["alerts"]}),
            "today": utcnow().date().isoformat(),
            "error": error,
            "snooze": snooze or {},
        },
        status_code=status_code,
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


@router.post("/cases/{case_id}/snooze")
def snooze(
    request: Request,
    session: DbSession,
    user: Workers,
    case_id: CaseId,
    rule: Annotated[str, Form(min_length=1, max_length=64)],
    until: Annotated[str, Form(max_length=10)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Snooze one of the case's rules for its customer until a date, with a reason. A refused
    snooze (no reason, a date past or not a date) brings the case page back with the reason
    and what was typed."""
    case = _visible_case(session, user, case_id)
    lang = request_lang(request)
    try:
        day: date | None = date.fromisoformat(until)
    except ValueError:
        day = None
    if day is None:
        error = t("monitor.snooze_bad_date", lang, value=until)
    elif day < utcnow().date():
        error = t("monitor.snooze_past", lang)
    elif not reason.strip():
        error = t("monitor.snooze_no_reason", lang)
    else:
        try:
            repo.snooze(session, case.customer_ref, rule, day, reason, actor=user.username)
            return _back(case_id)
        except repo.MonitorError as exc:
            error = str(exc)
    return _case_page(
        request,
        session,
        user,
        case_id,
        error=t("monitor.snooze_refused", lang, detail=error),
        snooze={"rule": rule, "until": until, "reason": reason},
        status_code=422,
    )


# --------------------------------------------------------------------------- rule sets


@router.get("/rules")
def rules_page(request: Request, session: DbSession, user: Readers) -> Response:
    repo.ensure_default_rules(session)
    sets = [repo.rule_set_dict(r) for r in reversed(repo.list_rule_sets(session))]
    return render(request, "monitor/rules.html", {"sets": sets})


def _rule_rows(body: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    rows = []
    for r in body.get("rules", []):
        title = r.get("title") or {}
        rows.append(
            {
                "id": r.get("id"),
                "title": title.get(lang) or title.get("en") or "",
                "severity": r.get("severity"),
                "points": r.get("points"),
                "events": r.get("events") or [],
            }
        )
    return rows


def _rule_set_page(
    request: Request,
    session: Any,
    user: User,
    version: int,
    *,
    text: str | None = None,
    note: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        rs = repo.get_rule_set(session, version)
    except repo.MonitorError as exc:
        raise ApiError(404, "Not found", str(exc)) from None
    lang = request_lang(request)
    return render(
        request,
        "monitor/rule_set.html",
        {
            "rs": repo.rule_set_dict(rs),
            "rules": _rule_rows(rs.body, lang),
            "text": json.dumps(rs.body, indent=2, ensure_ascii=False) if text is None else text,
            "note": note,
            "error": error,
            "can_edit": user.role in ("admin", "risk_manager"),
            "max_text": MAX_RULES_TEXT,
            "badge": lambda s: severity_badge(s, lang),
        },
        status_code=status_code,
    )


@router.get("/rules/{version}")
def rule_set_page(
    request: Request, session: DbSession, user: Readers, version: VersionNo
) -> Response:
    repo.ensure_default_rules(session)
    return _rule_set_page(request, session, user, version)


@router.post("/rules")
def rules_draft(
    request: Request,
    session: DbSession,
    user: RiskManagers,
    base: Annotated[int, Form(ge=1, le=2_147_483_647)],
    body: Annotated[str, Form(max_length=MAX_RULES_TEXT)],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """A new draft from the edited JSON (read with ``json.loads``, never evaluated). When it
    is refused, the page of the version it was edited from comes back with the reason and
    the text as it was sent, so nothing typed is lost."""
    lang = request_lang(request)
    repo.ensure_default_rules(session)
    try:
        data = json.loads(body)
    except ValueError as exc:
        error = t("monitor.rules_not_json", lang, detail=str(exc))
    else:
        try:
            rs = repo.draft_rule_set(session, data, actor=user.username, note=note or None)
        except RuleError as exc:
            error = t("monitor.rules_invalid", lang, detail=str(exc))
        else:
            return RedirectResponse(f"/monitor/rules/{rs.version}", status_code=303)
    return _rule_set_page(
        request, session, user, base, text=body, note=note, error=error, status_code=422
    )


@router.post("/rules/{version}/dry-run")
def rules_dry_run(session: DbSession, user: RiskManagers, version: VersionNo) -> Response:
    try:
        repo.dry_run_version(session, version)
    except repo.MonitorError as exc:
        raise ApiError(404, "Not found", str(exc)) from None
    return RedirectResponse(f"/monitor/rules/{version}#dry-run", status_code=303)


@router.post("/rules/{version}/publish")
def rules_publish(
    session: DbSession,
    user: RiskManagers,
    version: VersionNo,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        repo.publish_rule_set(session, version, actor=user.username, reason=reason or None)
    except repo.MonitorError as exc:
        raise ApiError(409, "Conflict", str(exc)) from None
    return RedirectResponse(f"/monitor/rules/{version}", status_code=303)


# --------------------------------------------------------------------------- notifications


def _notifications_page(
    request: Request,
    session: Any,
    user: User,
    *,
    created: dict[str, Any] | None = None,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    subs = [repo.subscription_dict(x) for x in repo.list_subscriptions(session, user.id)]
    return render(
        request,
        "monitor/notifications.html",
        {
            "subs": subs,
            "created": created,
            "error": error,
            "form": form or {"channel": "email", "min_severity": "high"},
            "severities": SEVERITIES,
            "channels": ("email", "webhook") if user.role in repo.WEBHOOK_ROLES else ("email",),
        },
        status_code=status_code,
    )


@router.get("/notifications")
def notifications_page(request: Request, session: DbSession, user: Workers) -> Response:
    return _notifications_page(request, session, user)


@router.post("/notifications")
def notifications_add(
    request: Request,
    session: DbSession,
    user: Workers,
    channel: Annotated[str, Form(max_length=16)],
    target: Annotated[str, Form(max_length=500)],
    min_severity: Annotated[str, Form(max_length=16)] = "medium",
    digest: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Subscribe yourself; a webhook's signing secret is shown on the answer, once. A refused
    subscription comes back with the reason and what was typed."""
    form = {
        "channel": channel,
        "target": target,
        "min_severity": min_severity,
        "digest": bool(digest),
    }
    try:
        sub = repo.subscribe_self(
            session, user, channel, target, min_severity=min_severity, digest=bool(digest)
        )
    except PermissionError as exc:
        raise ApiError(403, "Forbidden", str(exc)) from None
    except repo.MonitorError as exc:
        error = t("monitor.notify_refused", request_lang(request), detail=str(exc))
        return _notifications_page(request, session, user, error=error, form=form, status_code=422)
    created = repo.subscription_dict(sub, with_secret=True)
    return _notifications_page(request, session, user, created=created, status_code=201)


@router.post("/notifications/{sub_id}/deactivate")
def notifications_stop(
    session: DbSession, user: Workers, sub_id: Annotated[int, Path(ge=1, le=2_147_483_647)]
) -> Response:
    owner = None if user.role == "admin" else user.id
    try:
        repo.deactivate_subscription(session, sub_id, actor=user.username, user_id=owner)
    except repo.MonitorError as exc:
        raise ApiError(404, "Not found", str(exc)) from None
    return RedirectResponse("/monitor/notifications", status_code=303)


# --------------------------------------------------------------------------- customer state

CustomerId = Annotated[int, Path(ge=1, le=2_147_483_647)]


def _state_page(
    request: Request,
    session: Any,
    user: User,
    customer_id: int,
    *,
    rebuilt: dict[str, Any] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    customer = visible_customer(session, user, customer_id)
    return render(
        request,
        "monitor/state.html",
        {
            "customer": customer,
            "state": repo.customer_state(session, customer.external_id),
            "rebuilt": rebuilt,
            "error": error,
            "can_rebuild": user.role in ("admin", "risk_manager"),
        },
        status_code=status_code,
    )


@router.get("/customers/{customer_id}/state")
def state_page(
    request: Request, session: DbSession, user: CurrentUser, customer_id: CustomerId
) -> Response:
    """A customer's whole real-time state (every feature), and for a risk manager the way to
    rebuild it from the stored events."""
    return _state_page(request, session, user, customer_id)


@router.post("/customers/{customer_id}/state/rebuild")
def state_rebuild(
    request: Request, session: DbSession, user: RiskManagers, customer_id: CustomerId
) -> Response:
    customer = visible_customer(session, user, customer_id)
    try:
        out = repo.rebuild_states(session, [customer.external_id], actor=user.username)
    except (repo.MonitorError, repo.StaleStateError) as exc:
        error = t("monitor.rebuild_refused", request_lang(request), detail=str(exc))
        return _state_page(request, session, user, customer_id, error=error, status_code=409)
    return _state_page(request, session, user, customer_id, rebuilt=out)
