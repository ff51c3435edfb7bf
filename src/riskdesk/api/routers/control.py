"""Control API: order checks, exposure, limits and requests, holds, concentration, insurance,
tasks. Thin: the work is in :mod:`riskdesk.store.control_repo`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from riskdesk.api.deps import (
    CurrentUser,
    DbSession,
    cached_bearer_user,
    get_current_user,
    is_read_only,
    require_roles,
    visible_customer,
)
from riskdesk.api.errors import ApiError
from riskdesk.control.limits import ApprovalRefused
from riskdesk.domain.enums import Role
from riskdesk.domain.money import MissingRate
from riskdesk.store import control_repo as repo
from riskdesk.store.models import LimitRequest, OrderCheck, User
from riskdesk.store.types import MAX_ID
from riskdesk.store.users import TokenUser

router = APIRouter(tags=["control"])

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A path id: INTEGER columns (32-bit on PostgreSQL), larger ones cannot exist."""

Deciders = Annotated[User, Depends(require_roles("risk_manager", "analyst"))]
RiskManagers = Annotated[User, Depends(require_roles("risk_manager"))]


def _out(obj: Any) -> Any:
    """Money as exact decimal strings, never floats."""
    return repo.jsonable(obj)


def _can(session: Any, user: User, customer_id: int) -> bool:
    from riskdesk.api.deps import can_see
    from riskdesk.store.models import Customer

    c = session.get(Customer, customer_id)
    return c is not None and can_see(user, c)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ApprovalRefused as exc:
        raise ApiError(403, "Refused", str(exc)) from None
    except (repo.ControlError, MissingRate, ValueError) as exc:
        raise ApiError(422, "Invalid request", str(exc)) from None


class OrderCheckIn(BaseModel):
    customer_id: int = Field(ge=1, le=MAX_ID)
    amount: str = Field(description="Decimal string, e.g. '12500.00'", examples=["12500.00"])
    currency: str = Field(min_length=3, max_length=3, examples=["EUR"])
    order_ref: str | None = Field(default=None, max_length=64)
    placed_by: str | None = Field(default=None, max_length=64)
    as_of: date | None = None


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class LimitIn(BaseModel):
    amount: str
    currency: str = Field(min_length=3, max_length=3)
    reason: str = Field(min_length=1, max_length=2000)
    valid_until: date | None = None
    sub_limits: dict[str, str] | None = None


class LimitRequestIn(BaseModel):
    customer_id: int = Field(ge=1, le=MAX_ID)
    amount: str
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    reason: str = Field(min_length=1, max_length=2000)
    valid_until: date | None = None


class TaskIn(BaseModel):
    kind: str
    title: str = Field(min_length=1, max_length=500)
    customer_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    owner: str | None = Field(default=None, max_length=64)
    due_date: date | None = None


@router.post("/orders/check")
async def order_check(body: OrderCheckIn, request: Request) -> JSONResponse:
    """Check an order: ``decision`` (pass | watch | hold | prepayment_only | stop) and every
    reason with its figures and messages (en/zh). Approved orders reserve headroom.

    The hot path: a bearer token found in the in-process auth cache costs no database read,
    and authentication, the check and its writes run in one worker-thread hop."""
    return await run_in_threadpool(_order_check, body, request, cached_bearer_user(request))


def _order_check(body: OrderCheckIn, request: Request, cached: TokenUser | None) -> JSONResponse:
    if cached is None:
        # the ordinary path: token (or web session) read from the database, use recorded
        session = request.app.state.session_factory()
        try:
            user = get_current_user(request, session)
            username, role = user.username, user.role
            session.commit()  # the token's last use, before the check takes its lock
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
    else:
        username, role = cached.username, cached.role
        if is_read_only(cached):
            raise ApiError(403, "Forbidden", "the auditor role is read-only")
    with _errors():
        try:
            out = repo.run_order_check(
                request.app.state.engine,
                body.customer_id,
                body.amount,
                body.currency,
                order_ref=body.order_ref,
                placed_by=body.placed_by or username,
                checked_by=username,
                on=body.as_of,
                visible_to=username if role == Role.SALES.value else None,
            )
        except repo.UnknownCustomer:
            raise ApiError(404, "Not found", f"no customer {body.customer_id}") from None
    return JSONResponse(repo.jsonable(out))


@router.get("/customers/{customer_id}/exposure")
def exposure(
    customer_id: Id, session: DbSession, user: CurrentUser, as_of: date | None = None
) -> dict[str, Any]:
    """Exposure in the limit's currency, every figure with the ids of its documents."""
    c = visible_customer(session, user, customer_id)
    on = as_of or repo.utcnow().date()
    with _errors():
        cfg = repo.load_config(session)
        e = repo.customer_exposure(session, c, on, cfg=cfg)
        lim = repo.current_limit(session, c.id, on)
    used = e.net if cfg.limit_basis == "net" else e.gross
    return _out(
        {
            "customer_id": c.id,
            "exposure": e.as_dict(),
            "basis": cfg.limit_basis,
            "used": used,
            "limit": repo.limit_dict(lim) if lim else None,
            "headroom": lim.amount - used if lim else None,
        }
    )


@router.get("/customers/{customer_id}/limits")
def limits(customer_id: Id, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    """The limit in force and its history."""
    c = visible_customer(session, user, customer_id)
    hist = repo.limit_history(session, c.id)
    current = next((h for h in hist if h.status == "active"), None)
    return _out(
        {
            "customer_id": c.id,
            "current": repo.limit_dict(current) if current else None,
            "history": [repo.limit_dict(h) for h in hist],
        }
    )


@router.put("/customers/{customer_id}/limit")
def set_limit(
    customer_id: Id, body: LimitIn, session: DbSession, user: RiskManagers
) -> dict[str, Any]:
    """Set a limit by hand (risk_manager, admin); audited."""
    c = visible_customer(session, user, customer_id)
    with _errors():
        lim = repo.set_limit(
            session,
            customer_id=c.id,
            amount=body.amount,
            currency=body.currency,
            actor=user.username,
            reason=body.reason,
            valid_until=body.valid_until,
            sub_limits=body.sub_limits,
        )
    return _out(repo.limit_dict(lim))


@router.post("/limit-requests", status_code=201)
def create_request(body: LimitRequestIn, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    """Ask for a limit change; someone else must approve it."""
    visible_customer(session, user, body.customer_id)
    with _errors():
        r = repo.request_limit(
            session,
            customer_id=body.customer_id,
            amount=body.amount,
            currency=body.currency,
            requested_by=user.username,
            reason=body.reason,
            valid_until=body.valid_until,
        )
    return _out(repo.request_dict(r))


@router.get("/limit-requests")
def list_requests(session: DbSession, user: CurrentUser, status: str = "pending") -> dict[str, Any]:
    from sqlalchemy import select

    rows = session.scalars(
        select(LimitRequest).where(LimitRequest.status == status).order_by(LimitRequest.id)
    ).all()
    out = [repo.request_dict(r) for r in rows if _can(session, user, r.customer_id)]
    return _out({"requests": out})


def _decide_request(
    request_id: int, body: ReasonIn, session: Any, user: User, approve: bool
) -> dict[str, Any]:
    if session.get(LimitRequest, request_id) is None:
        raise ApiError(404, "Not found", f"no limit request {request_id}")
    with _errors():
        r = repo.decide_request(
            session, request_id, approver=user.username, approve=approve, reason=body.reason
        )
    return _out(repo.request_dict(r))


@router.post("/limit-requests/{request_id}/approve")
def approve_request(
    request_id: Id, body: ReasonIn, session: DbSession, user: Deciders
) -> dict[str, Any]:
    """Approve (maker-checker: not your own; large increases need a risk_manager)."""
    return _out(_decide_request(request_id, body, session, user, True))


@router.post("/limit-requests/{request_id}/reject")
def reject_request(
    request_id: Id, body: ReasonIn, session: DbSession, user: Deciders
) -> dict[str, Any]:
    return _out(_decide_request(request_id, body, session, user, False))


@router.get("/holds")
def holds(
    session: DbSession,
    user: CurrentUser,
    status: str = "held",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The approval queue (sales users see their own customers' orders only)."""
    rows = [
        c
        for c in repo.list_checks(session, status=status, limit=limit)
        if _can(session, user, c.customer_id)
    ]
    return _out({"holds": [repo.check_dict(c) for c in rows]})


def _decide_hold(
    check_id: int, body: ReasonIn, session: Any, user: User, release: bool
) -> dict[str, Any]:
    if session.get(OrderCheck, check_id) is None:
        raise ApiError(404, "Not found", f"no order check {check_id}")
    with _errors():
        c = repo.decide_hold(
            session, check_id, actor=user.username, release=release, reason=body.reason
        )
    return _out(repo.check_dict(c))


@router.post("/holds/{check_id}/release")
def release_hold(
    check_id: Id, body: ReasonIn, session: DbSession, user: Deciders
) -> dict[str, Any]:
    """Release a held order (documented decision; the seller is notified)."""
    return _out(_decide_hold(check_id, body, session, user, True))


@router.post("/holds/{check_id}/reject")
def reject_hold(check_id: Id, body: ReasonIn, session: DbSession, user: Deciders) -> dict[str, Any]:
    return _out(_decide_hold(check_id, body, session, user, False))


@router.get("/concentration")
def concentration(
    session: DbSession,
    user: Deciders,
    as_of: date | None = None,
    top: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """HHI, top-N shares, Gini and Lorenz curve by dimension, and breaches."""
    on = as_of or repo.utcnow().date()
    rep = repo.concentration_report(session, on)
    return _out(
        {
            "as_of": on,
            "currency": rep["currency"],
            "dimensions": {
                k: {**v.as_dict(top), "lorenz": {"x": v.lorenz_x, "y": v.lorenz_y}}
                for k, v in rep["dimensions"].items()
            },
            "breaches": [b.__dict__ for b in rep["breaches"]],
        }
    )


@router.get("/insurance")
def insurance(session: DbSession, user: Deciders, as_of: date | None = None) -> dict[str, Any]:
    """Insured buyers with insured and uninsured exposure."""
    return _out({"buyers": repo.insurance_overview(session, as_of or repo.utcnow().date())})


@router.get("/tasks")
def tasks(
    session: DbSession,
    user: CurrentUser,
    status: str = "open",
    owner: str | None = None,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    """Control actions; a sales user sees the tasks they own."""
    if user.role == "sales":
        owner = user.username
    rows = repo.list_actions(
        session, status=None if status == "all" else status, owner=owner, customer_id=customer_id
    )
    return _out({"tasks": [repo.action_dict(a) for a in rows]})


@router.post("/tasks", status_code=201)
def add_task(body: TaskIn, session: DbSession, user: Deciders) -> dict[str, Any]:
    if body.customer_id is not None:
        visible_customer(session, user, body.customer_id)
    with _errors():
        a = repo.add_action(
            session,
            kind=body.kind,
            title=body.title,
            created_by=user.username,
            customer_id=body.customer_id,
            owner=body.owner,
            due_date=body.due_date,
        )
    assert a is not None
    return _out(repo.action_dict(a))


@router.post("/tasks/{task_id}/done")
def task_done(task_id: Id, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    from riskdesk.store.models import ControlAction

    a = session.get(ControlAction, task_id)
    if a is None or (user.role == "sales" and a.owner != user.username):
        raise ApiError(404, "Not found", f"no task {task_id}")
    with _errors():
        a = repo.close_action(session, task_id, actor=user.username)
    return _out(repo.action_dict(a))
