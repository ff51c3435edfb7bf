"""Risk events and the risk-source catalogue."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import ValidationError

from riskdesk.api.deps import (
    MAX_ID,
    CurrentUser,
    DbSession,
    can_see,
    require_roles,
    visible_customer,
)
from riskdesk.api.errors import ApiError
from riskdesk.domain.enums import Role
from riskdesk.identify.catalogue import CatalogueError, SourceDef, check_manifestation_codes
from riskdesk.store.models import Customer, RiskEventRow
from riskdesk.store.risk_events import (
    EventFilter,
    SourceConflict,
    event_dict,
    event_history,
    list_events,
    list_sources,
    upsert_sources,
)

router = APIRouter(tags=["risk events"])

SeverityQ = Literal["low", "medium", "high", "critical"]
StatusQ = Literal["open", "closed", "all"]


def _page(total: int, limit: int, offset: int, rows: list[RiskEventRow]) -> dict[str, Any]:
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [event_dict(e) for e in rows],
    }


@router.get("/customers/{customer_id}/risk-events", summary="Risk events of one customer")
def customer_risk_events(
    customer_id: int,
    session: DbSession,
    user: CurrentUser,
    status: Annotated[StatusQ, Query(description="open, closed or all")] = "all",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    c = visible_customer(session, user, customer_id)
    f = EventFilter(customer_id=c.id, open=None if status == "all" else status == "open")
    total, rows = list_events(session, f, limit=limit, offset=offset)
    return _page(total, limit, offset, rows)


@router.get("/risk-events", summary="Risk events (filters, pagination)")
def risk_events(
    session: DbSession,
    user: CurrentUser,
    source: Annotated[str | None, Query(max_length=64)] = None,
    manifestation: Annotated[str | None, Query(max_length=64)] = None,
    severity: Annotated[SeverityQ | None, Query(description="Exactly this severity.")] = None,
    min_severity: Annotated[SeverityQ | None, Query(description="This severity or worse.")] = None,
    status: Annotated[StatusQ, Query(description="open, closed or all")] = "all",
    customer_id: Annotated[int | None, Query(ge=1)] = None,
    date_from: Annotated[
        date | None, Query(description="Events still open on or after this date.")
    ] = None,
    date_to: Annotated[
        date | None, Query(description="Events opened on or before this date.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    if date_from and date_to and date_from > date_to:
        raise ApiError(422, "Invalid date range", "date_from is after date_to", field="date_from")
    if customer_id is not None:
        visible_customer(session, user, customer_id)
    f = EventFilter(
        customer_id=customer_id,
        source=source,
        manifestation=manifestation,
        severity=severity,
        min_severity=min_severity,
        open=None if status == "all" else status == "open",
        date_from=date_from,
        date_to=date_to,
        owner=user.username if user.role == Role.SALES.value else None,
    )
    total, rows = list_events(session, f, limit=limit, offset=offset)
    return _page(total, limit, offset, rows)


@router.get("/risk-events/{event_id}", summary="One risk event with its history")
def risk_event(event_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    e = session.get(RiskEventRow, event_id)
    customer = session.get(Customer, e.customer_id) if e is not None else None
    if e is None or customer is None or not can_see(user, customer):
        raise ApiError(404, "Not found", f"no risk event {event_id}")
    return event_dict(e) | {"history": event_history(session, e.id)}


@router.get("/risk-sources", summary="Built-in and user-defined risk sources")
def risk_sources(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    return {"items": list_sources(session)}


@router.post(
    "/risk-sources",
    status_code=201,
    summary="Add or update user-defined risk sources (one object or a list)",
)
def add_risk_sources(
    body: dict[str, Any] | list[dict[str, Any]],
    session: DbSession,
    user: Annotated[Any, Depends(require_roles("risk_manager"))],
) -> dict[str, Any]:
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ApiError(422, "Invalid sources", "send at least one source")
    defs: list[SourceDef] = []
    for i, item in enumerate(items):
        try:
            defs.append(SourceDef.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ApiError(
                422, "Invalid source", f"source {i + 1}: {err['msg']}", field=loc
            ) from None
    clashes = check_manifestation_codes(defs, list(range(1, len(defs) + 1)))
    if clashes:
        raise ApiError(422, "Invalid source", CatalogueError(clashes).args[0], field="code")
    try:
        counts = upsert_sources(session, defs, actor=user.username)
    except SourceConflict as exc:
        raise ApiError(409, "Conflict", str(exc), field="code") from None
    return {**counts, "items": [d.model_dump() for d in defs]}
