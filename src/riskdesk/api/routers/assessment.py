"""Quantitative assessment over HTTP: a customer's latest scorecard assessment and history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from riskdesk.api.deps import CurrentUser, DbSession, visible_customer
from riskdesk.store.assessments import assessment_history, latest_assessment, portfolio_by_grade

router = APIRouter(tags=["quantitative assessment"])


def _json(a: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k in ("ead", "el"):
        out[k] = None if out.get(k) is None else str(out[k])
    out["lgd"] = None if out.get("lgd") is None else float(out["lgd"])
    return out


@router.get(
    "/customers/{customer_id}/assessment",
    summary="Latest scorecard assessment (score, PD, grade, reasons, EAD, LGD, EL) and history",
)
def get_assessment(
    customer_id: int,
    session: DbSession,
    user: CurrentUser,
    history: int = Query(24, ge=0, le=500, description="How many past assessments to include."),
) -> dict[str, Any]:
    visible_customer(session, user, customer_id)
    latest = latest_assessment(session, customer_id)
    rows = assessment_history(session, customer_id, limit=history) if history else []
    return {
        "customer_id": customer_id,
        "latest": None if latest is None else _json(latest),
        "history": [_json(r) for r in rows],
    }


@router.get("/assessments/by-grade", summary="Latest batch: customers, EAD and EL by grade")
def by_grade(session: DbSession, user: CurrentUser) -> dict[str, Any]:
    owner = user.username if user.role == "sales" else None
    return {"grades": portfolio_by_grade(session, owner=owner)}
