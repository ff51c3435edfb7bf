"""Monitor API: event intake (batches), alerts, cases, snoozes and rule set versions.
Thin: the work is in :mod:`riskdesk.store.monitor_repo`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from riskdesk.api.deps import CurrentUser, DbSession, require_roles, visible_customer
from riskdesk.api.errors import ApiError
from riskdesk.domain.enums import Role
from riskdesk.monitor.cases import OUTCOMES
from riskdesk.monitor.rules import RuleError
from riskdesk.store import monitor_repo as repo
from riskdesk.store.models import Case, Customer, User

router = APIRouter(tags=["monitor"])

Intake = Annotated[User, Depends(require_roles("risk_manager", "analyst"))]
Workers = Annotated[User, Depends(require_roles("risk_manager", "analyst", "sales"))]
RiskManagers = Annotated[User, Depends(require_roles("risk_manager"))]
MAX_BATCH = 5000
CaseId = Annotated[int, Path(ge=1, le=2_147_483_647)]
VersionNo = Annotated[int, Path(ge=1, le=2_147_483_647)]


def _send_notifications(request: Request) -> None:
    from riskdesk.connectors.notify import dispatch_pending

    dispatch_pending(request.app.state.engine)


@router.post("/events", summary="Ingest a batch of business events (idempotent)")
def post_events(
    request: Request,
    session: DbSession,
    user: Intake,
    background: BackgroundTasks,
    events: Annotated[list[Any], Body(description="Events (JSON objects); at most 5000.")],
) -> dict[str, Any]:
    if len(events) > MAX_BATCH:
        raise ApiError(413, "Batch too large", f"send at most {MAX_BATCH} events per request")
    try:
        res = repo.ingest(session, events, actor=f"api:{user.username}")
    except repo.StaleStateError as exc:
        # other writers kept changing these customers; nothing of this batch was stored,
        # and resending it is safe (intake is idempotent)
        session.rollback()
        raise ApiError(
            503,
            "Busy, try again",
            f"{exc}; nothing was stored, send the same batch again",
            headers={"Retry-After": "1"},
        ) from exc
    if res.alerts_new:
        background.add_task(_send_notifications, request)
    return res.as_dict()


def _owner_filter(user: User) -> str | None:
    return user.username if user.role == Role.SALES.value else None


def _visible_case(session: Session, user: User, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise ApiError(404, "Not found", f"no case {case_id}")
    if user.role == Role.SALES.value:
        cust = session.get(Customer, case.customer_id) if case.customer_id else None
        if cust is None or cust.owner != user.username:
            raise ApiError(404, "Not found", f"no case {case_id}")
    return case


@router.get("/alerts", summary="Alerts (newest first)")
def get_alerts(
    session: DbSession,
    user: CurrentUser,
    status: Annotated[str, Query(pattern="^(open|closed|all)$")] = "open",
    customer: Annotated[str | None, Query(max_length=64, description="External id.")] = None,
    severity: Annotated[str | None, Query(pattern="^(low|medium|high|critical)$")] = None,
    lang: Annotated[str, Query(pattern="^(en|zh)$")] = "en",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    eng = repo.published_engine(session)
    rows = repo.list_alerts(
        session,
        status=None if status == "all" else status,
        customer=customer,
        severity=severity,
        owner=_owner_filter(user),
        limit=limit,
    )
    return {"items": [repo.alert_dict(a, eng, lang) for a in rows]}


class SnoozeIn(BaseModel):
    customer: str = Field(min_length=1, max_length=64)
    rule: str = Field(min_length=1, max_length=64)
    until: date
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/alerts/snooze", status_code=201, summary="Snooze a rule for one customer")
def post_snooze(session: DbSession, user: Workers, body: SnoozeIn) -> dict[str, Any]:
    if user.role == Role.SALES.value:
        cust = session.query(Customer).filter(Customer.external_id == body.customer).first()
        if cust is None or cust.owner != user.username:
            raise ApiError(404, "Not found", f"no customer {body.customer}")
    try:
        sn = repo.snooze(
            session, body.customer, body.rule, body.until, body.reason, actor=user.username
        )
    except repo.MonitorError as exc:
        raise ApiError(422, "Invalid request", str(exc)) from None
    return {"customer": sn.customer_ref, "rule": sn.rule_id, "until": sn.until, "reason": sn.reason}


@router.get("/cases", summary="Cases (default: not resolved)")
def get_cases(
    session: DbSession,
    user: CurrentUser,
    status: Annotated[str | None, Query(pattern="^(open|acknowledged|resolved)$")] = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    rows = repo.list_cases(
        session, status=status, assignee=assignee, owner=_owner_filter(user), limit=limit
    )
    return {"items": [repo.case_dict(c) for c in rows]}


@router.get("/cases/{case_id}", summary="One case with alerts, comments and playbooks")
def get_case(
    session: DbSession,
    user: CurrentUser,
    case_id: CaseId,
    lang: Annotated[str, Query(pattern="^(en|zh)$")] = "en",
) -> dict[str, Any]:
    return repo.case_detail(session, _visible_case(session, user, case_id), lang)


def _act(fn: Any, session: Session, *args: Any, **kw: Any) -> dict[str, Any]:
    try:
        fn(session, *args, **kw)
    except repo.MonitorError as exc:
        raise ApiError(409, "Conflict", str(exc)) from None
    return repo.case_dict(repo.get_case(session, args[0]))


@router.post("/cases/{case_id}/acknowledge", summary="Acknowledge a case")
def ack_case(session: DbSession, user: Workers, case_id: CaseId) -> dict[str, Any]:
    _visible_case(session, user, case_id)
    return _act(repo.acknowledge_case, session, case_id, actor=user.username)


class CommentIn(BaseModel):
    body: str = Field(min_length=1, max_length=5000)


@router.post("/cases/{case_id}/comments", status_code=201, summary="Comment on a case")
def comment_case(
    session: DbSession, user: Workers, case_id: CaseId, body: CommentIn
) -> dict[str, Any]:
    _visible_case(session, user, case_id)
    return _act(repo.comment_case, session, case_id, body.body, actor=user.username)


class ResolveIn(BaseModel):
    outcome: str = Field(pattern="^(" + "|".join(OUTCOMES) + ")$")
    reason: str | None = Field(default=None, max_length=2000)


@router.post("/cases/{case_id}/resolve", summary="Resolve a case with an outcome")
def resolve_case(
    session: DbSession, user: Intake, case_id: CaseId, body: ResolveIn
) -> dict[str, Any]:
    _visible_case(session, user, case_id)
    return _act(
        repo.resolve_case, session, case_id, body.outcome, actor=user.username, reason=body.reason
    )


@router.get("/customers/{customer_id}/monitor", summary="A customer's real-time state and alerts")
def customer_monitor(session: DbSession, user: CurrentUser, customer_id: int) -> dict[str, Any]:
    cust = visible_customer(session, user, customer_id)
    eng = repo.published_engine(session)
    return {
        "state": repo.customer_state(session, cust.external_id),
        "alerts": [
            repo.alert_dict(a, eng) for a in repo.list_alerts(session, customer=cust.external_id)
        ],
    }


@router.get("/rules", summary="Rule set versions")
def get_rules(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    repo.ensure_default_rules(session)
    return {"items": [repo.rule_set_dict(r) for r in repo.list_rule_sets(session)]}


@router.get("/rules/{version}", summary="One rule set version with its rules")
def get_rule_set(session: DbSession, user: CurrentUser, version: VersionNo) -> dict[str, Any]:
    repo.ensure_default_rules(session)
    try:
        return repo.rule_set_dict(repo.get_rule_set(session, version), with_body=True)
    except repo.MonitorError as exc:
        raise ApiError(404, "Not found", str(exc)) from None


@router.post("/rules", status_code=201, summary="Store a new draft rule set (validated)")
def post_rules(
    session: DbSession,
    user: RiskManagers,
    body: Annotated[dict[str, Any], Body()],
    note: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    repo.ensure_default_rules(session)
    try:
        return repo.rule_set_dict(
            repo.draft_rule_set(session, body, actor=user.username, note=note)
        )
    except RuleError as exc:
        raise ApiError(422, "Invalid rule set", str(exc)) from None


@router.post("/rules/{version}/dry-run", summary="Replay the stored history with a version")
def dry_run(session: DbSession, user: RiskManagers, version: VersionNo) -> dict[str, Any]:
    try:
        rs = repo.get_rule_set(session, version)
    except repo.MonitorError as exc:
        raise ApiError(404, "Not found", str(exc)) from None
    out = repo.dry_run(session, rs.body)
    rs.dry_run = {k: out[k] for k in ("events", "alerts", "customers", "by_rule")}
    return out


@router.post("/rules/{version}/publish", summary="Publish a version (atomic swap)")
def publish(
    session: DbSession,
    user: RiskManagers,
    version: VersionNo,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    try:
        return repo.rule_set_dict(
            repo.publish_rule_set(session, version, actor=user.username, reason=reason)
        )
    except repo.MonitorError as exc:
        raise ApiError(409, "Conflict", str(exc)) from None
