"""The audit log page (admin and auditor)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from riskdesk.api.deps import MAX_ID, DbSession, require_roles
from riskdesk.api.queries import audit_dict
from riskdesk.store.audit import verify
from riskdesk.store.models import AuditEntry, User
from riskdesk.web.templating import render

router = APIRouter(include_in_schema=False)

AuditReader = Annotated[User, Depends(require_roles("auditor"))]


@router.get("/audit")
def audit_page(
    request: Request,
    session: DbSession,
    _: AuditReader,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    check: Annotated[bool, Query()] = False,
) -> Response:
    limit = 50
    stmt = select(AuditEntry)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = [
        audit_dict(e)
        for e in session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    ]
    params = {k: v for k, v in {"actor": actor, "action": action}.items() if v}

    def link(off: int) -> str:
        return "/audit?" + urlencode({**params, "offset": off})

    return render(
        request,
        "service/audit.html",
        {
            "rows": rows,
            "total": total,
            "filters": params,
            "verify": verify(session) if check else None,
            "prev_link": link(max(offset - limit, 0)) if offset else None,
            "next_link": link(offset + limit) if offset + limit < total else None,
        },
    )
