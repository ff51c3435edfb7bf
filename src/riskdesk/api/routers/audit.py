"""The audit log (admin and auditor): filtered reading and chain verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from riskdesk.api.deps import MAX_ID, DbSession, require_roles
from riskdesk.api.errors import ApiError
from riskdesk.api.queries import audit_dict
from riskdesk.store.audit import verify
from riskdesk.store.models import AuditEntry

router = APIRouter(
    prefix="/audit", tags=["audit"], dependencies=[Depends(require_roles("auditor"))]
)


@router.get("", summary="Audit entries, newest first (admin, auditor)")
def audit_entries(
    session: DbSession,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    entity: Annotated[str | None, Query(max_length=64)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="ISO timestamp with a zone.")] = None,
    until: Annotated[datetime | None, Query(description="ISO timestamp with a zone.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    stmt = select(AuditEntry)
    for col, val in (
        (AuditEntry.actor, actor),
        (AuditEntry.action, action),
        (AuditEntry.entity, entity),
        (AuditEntry.entity_id, entity_id),
    ):
        if val is not None:
            stmt = stmt.where(col == val)
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and bound.tzinfo is None:
            raise ApiError(422, "Invalid input", f"{name} needs a time zone, e.g. Z", field=name)
    if since is not None:
        stmt = stmt.where(AuditEntry.ts >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.ts < until)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [audit_dict(e) for e in rows],
    }


@router.get("/verify", summary="Verify the hash chain (admin, auditor)")
def audit_verify(session: DbSession) -> dict[str, Any]:
    r = verify(session)
    return {"ok": r.ok, "checked": r.checked, "bad_id": r.bad_id, "problem": r.problem}
