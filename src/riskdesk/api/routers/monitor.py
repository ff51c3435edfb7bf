"""Monitor API: event intake (batches), alerts, cases, snoozes and rule set versions.
Thin: the work is in :mod:`riskdesk.store.monitor_repo`."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import date
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response

from riskdesk.api.deps import (
    CurrentUser,
    DbSession,
    get_current_user,
    require_roles,
    visible_customer,
)
from riskdesk.api.errors import ApiError, problem
from riskdesk.domain.enums import Role
from riskdesk.monitor.cases import OUTCOMES
from riskdesk.monitor.rules import RuleError
from riskdesk.store import monitor_repo as repo
from riskdesk.store.models import Case, Customer, User

log = logging.getLogger("riskdesk.api")
router = APIRouter(tags=["monitor"])

_intake_role = require_roles("risk_manager", "analyst")
Intake = Annotated[User, Depends(_intake_role)]
Workers = Annotated[User, Depends(require_roles("risk_manager", "analyst", "sales"))]
RiskManagers = Annotated[User, Depends(require_roles("risk_manager"))]
MAX_BATCH = 5000
MAX_BODY_BYTES = MAX_BATCH * 8 * 1024
"""The largest body ``POST /api/v1/events`` reads (40 MiB: 8 KiB for each event of a full
batch); a larger one is refused with a 413 before it is held in memory."""
CaseId = Annotated[int, Path(ge=1, le=2_147_483_647)]
VersionNo = Annotated[int, Path(ge=1, le=2_147_483_647)]
EVENTS_PATH = "/api/v1/events"
"""Where :func:`post_events` is mounted (``riskdesk serve`` routes it straight to :func:`intake`)."""
NOTIFY_GAP = 0.1
"""Seconds between two notification sends of one process while intakes keep raising alerts."""


class _Notifier:
    """Sends the pending notifications (:func:`~riskdesk.connectors.notify.dispatch_pending`)
    after intakes that queued notifications, off the request: one sender per process at a time. A
    request that raises alerts while it runs makes it send once more, :data:`NOTIFY_GAP`
    seconds later (a send reads every delivery committed before it starts, so nothing is
    left pending and a busy intake does not pay one send per request)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    async def kick(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        threading.Thread(target=self._run, name="riskdesk-notify", daemon=True).start()

    def _run(self) -> None:
        from riskdesk.connectors.notify import dispatch_pending

        while True:
            with self._lock:
                self._again = False
            try:
                dispatch_pending(self.engine)
            except Exception:
                log.exception("sending the pending notifications failed")
            with self._lock:
                if not self._again:
                    self._running = False
                    return
            time.sleep(NOTIFY_GAP)


def _notifier(request: Request) -> _Notifier:
    state = request.app.state
    notifier: _Notifier | None = getattr(state, "monitor_notifier", None)
    if notifier is None:
        notifier = state.monitor_notifier = _Notifier(state.engine)
    return notifier


class _Refused(Exception):
    """The batch cannot be read: answered with ``response`` (a problem)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _invalid(field: str, message: str) -> _Refused:
    """A 422 problem worded as FastAPI's request validation words a bad ``list`` body."""
    errors = [{"field": field, "location": "body", "message": message}]
    return _Refused(problem(422, detail=f"{field}: {message}", field=field, errors=errors))


def _is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json`` (parameters ignored)."""
    if not content_type:
        return False
    kind = content_type.partition(";")[0].strip().lower()
    main, _, sub = kind.partition("/")
    return main == "application" and "/" not in sub and (sub == "json" or sub.endswith("+json"))


_NOT_JSON = object()


def _decode(body: bytes, content_type: str | None) -> Any:
    """The JSON document of the body (``_NOT_JSON`` when the body is empty or not declared
    as JSON); an undecodable body is a 422 (400 when it is not even text). Python's json
    reads it, as FastAPI did: orjson would save about 0.5 µs per event but reads integers
    beyond 64 bits as floats and refuses ``NaN``, which the endpoint always accepted."""
    if not body or not _is_json(content_type):
        return _NOT_JSON
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise _invalid(str(exc.pos), "JSON decode error") from None
    except Exception:
        raise ApiError(400, "Bad request", "There was an error parsing the body") from None


def _intake_sync(request: Request, body: bytes) -> repo.IngestResult:
    """Decode, authenticate, check and ingest one batch in one transaction (a worker thread)."""
    doc = _decode(body, request.headers.get("content-type"))
    session: Session = request.app.state.session_factory()
    try:
        user = _intake_role(get_current_user(request, session))
        if doc is _NOT_JSON:
            raise _invalid("body", "Field required" if not body else "Input should be a valid list")
        if not isinstance(doc, list):
            raise _invalid("body", "Input should be a valid list")
        if len(doc) > MAX_BATCH:
            raise ApiError(413, "Batch too large", f"send at most {MAX_BATCH} events per request")
        try:
            res = repo.ingest(session, doc, actor=f"api:{user.username}")
        except repo.StaleStateError as exc:
            # other writers kept changing these customers; nothing of this batch was stored,
            # and resending it is safe (intake is idempotent)
            raise ApiError(
                503,
                "Busy, try again",
                f"{exc}; nothing was stored, send the same batch again",
                headers={"Retry-After": "1"},
            ) from exc
        session.commit()
        return res
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _json(data: dict[str, Any], background: BackgroundTask | None) -> Response:
    try:
        content = orjson.dumps(data)
    except TypeError:  # e.g. an echoed event id beyond 64 bits: as FastAPI encodes it
        return JSONResponse(jsonable_encoder(data), background=background)
    return Response(content, media_type="application/json", background=background)


async def _read_body(request: Request) -> bytes | None:
    """The request's body, or None when it is larger than :data:`MAX_BODY_BYTES`: refused on
    its ``Content-Length`` before any of it is read, or counted as it streams (chunked)."""
    limit = MAX_BODY_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def intake(request: Request) -> Response:
    """``POST /api/v1/events`` without FastAPI's body and dependency machinery: the body is
    read here, and decoded, authenticated (bearer token or web session, roles
    ``risk_manager``/``analyst``/``admin``), ingested and committed in one worker-thread hop.
    Errors are the problems the declared endpoint gave: JSON that cannot be decoded 422
    (before authentication, as FastAPI decodes the body first), no or unknown token 401, wrong
    role 403, a body that is not a list 422, more than :data:`MAX_BATCH` events 413, stale
    states 503 with ``Retry-After``, a body over :data:`MAX_BODY_BYTES` 413."""
    body = await _read_body(request)
    if body is None:
        mib = MAX_BODY_BYTES / (1024 * 1024)
        return problem(
            413,
            "Content too large",
            f"the request body is larger than {mib:g} MiB; send the events in smaller batches "
            f"(at most {MAX_BATCH} per request)",
        )
    try:
        res = await asyncio.get_running_loop().run_in_executor(None, _intake_sync, request, body)
    except ApiError as exc:
        return problem(exc.status, exc.title, exc.detail, field=exc.field, headers=exc.headers)
    except _Refused as exc:
        return exc.response
    kick = BackgroundTask(_notifier(request).kick) if res.notifications else None
    return _json(res.as_dict(), kick)


_EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {},
                    "maxItems": MAX_BATCH,
                    "description": f"Events (JSON objects); at most {MAX_BATCH}.",
                }
            }
        },
    }
}


@router.post(
    "/events",
    summary="Ingest a batch of business events (idempotent)",
    response_model=None,
    openapi_extra=_EVENTS_BODY,
)
async def post_events(request: Request) -> Response:
    """A JSON array of events; the answer counts what was accepted, duplicated and rejected
    (each rejection with its reason) and the alerts raised. See :func:`intake`."""
    return await intake(request)


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


class RebuildIn(BaseModel):
    customers: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=10_000, description="External customer ids (or all)."
    )
    all: bool = Field(default=False, description="Every customer with a state or an event.")


@router.post(
    "/monitor/rebuild", summary="Rebuild customers' real-time states from their stored events"
)
def post_rebuild(session: DbSession, user: RiskManagers, body: RebuildIn) -> dict[str, Any]:
    """No alert is raised or changed; events no longer valid are left out and listed. For a
    large portfolio use ``riskdesk events rebuild --all`` (with a progress bar)."""
    if bool(body.customers) == body.all:
        raise ApiError(422, "Invalid request", "name the customers, or set all (not both)")
    try:
        return repo.rebuild_states(
            session, None if body.all else body.customers, actor=user.username
        )
    except repo.MonitorError as exc:
        raise ApiError(422, "Invalid request", str(exc)) from None
    except repo.StaleStateError as exc:
        raise ApiError(409, "Conflict", f"{exc}; nothing was rebuilt: try again") from None


class SubscriptionIn(BaseModel):
    channel: Literal["webhook", "email"]
    target: str = Field(min_length=3, max_length=500)
    min_severity: Literal["low", "medium", "high", "critical"] = "medium"
    digest: bool = False


@router.get("/subscriptions", summary="Your alert notification subscriptions")
def get_subscriptions(
    session: DbSession,
    user: CurrentUser,
    all_: Annotated[bool, Query(alias="all", description="Everyone's (admin).")] = False,
) -> dict[str, Any]:
    if all_ and user.role != Role.ADMIN.value:
        raise ApiError(403, "Forbidden", "only an admin lists everyone's subscriptions")
    subs = repo.list_subscriptions(session, None if all_ else user.id)
    return {"items": [repo.subscription_dict(x) for x in subs]}


@router.post("/subscriptions", status_code=201, summary="Subscribe yourself to alerts")
def post_subscription(session: DbSession, user: Workers, body: SubscriptionIn) -> dict[str, Any]:
    """A webhook (signed with HMAC; its secret is in this answer and never shown again) or an
    e-mail address, from a severity on, each alert or a daily digest. A sales user's
    subscription hears only about their own customers; webhooks are for admins and risk
    managers; an auditor changes nothing."""
    try:
        sub = repo.subscribe_self(
            session,
            user,
            body.channel,
            body.target,
            min_severity=body.min_severity,
            digest=body.digest,
        )
    except PermissionError as exc:
        raise ApiError(403, "Forbidden", str(exc)) from None
    except repo.MonitorError as exc:
        raise ApiError(422, "Invalid request", str(exc)) from None
    return repo.subscription_dict(sub, with_secret=True)


@router.post("/subscriptions/{sub_id}/deactivate", summary="Stop one of your subscriptions")
def deactivate_subscription(
    session: DbSession, user: CurrentUser, sub_id: Annotated[int, Path(ge=1, le=2_147_483_647)]
) -> dict[str, Any]:
    owner = None if user.role == Role.ADMIN.value else user.id
    try:
        sub = repo.deactivate_subscription(session, sub_id, actor=user.username, user_id=owner)
    except repo.MonitorError as exc:
        raise ApiError(404, "Not found", str(exc)) from None
    return repo.subscription_dict(sub)


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
        return repo.dry_run_version(session, version)
    except repo.MonitorError as exc:
        raise ApiError(404, "Not found", str(exc)) from None


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
