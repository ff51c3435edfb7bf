"""Customers: a filtered, sorted, paginated list and one customer with its exposure."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from riskdesk.api.deps import MAX_ID, CurrentUser, DbSession, visible_customer
from riskdesk.api.queries import (
    SORT_PATTERN,
    SORTABLE,
    CustomerFilter,
    current_grades,
    customer_detail,
    customer_dict,
    exact,
    list_customers,
    today,
)

router = APIRouter(prefix="/customers", tags=["customers"])


@router.get("", summary="List customers (filters, search, sorting, pagination)")
def customers(
    session: DbSession,
    user: CurrentUser,
    industry: Annotated[str | None, Query(max_length=64)] = None,
    region: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    rating: Annotated[
        str | None,
        Query(max_length=8, description="Grade 1–10 or its label; applied when ratings exist."),
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Search in name and external id.")
    ] = None,
    sort: Annotated[
        str,
        Query(
            pattern=SORT_PATTERN,
            description=f"One of {', '.join(SORTABLE)}; prefix '-' for descending.",
        ),
    ] = "name",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    f = CustomerFilter(industry, region, owner, status, rating, q)
    total, rows = list_customers(session, user, f, sort, limit, offset)
    grades = current_grades(session, [c.id for c in rows])
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [exact(customer_dict(c)) | {"rating": grades.get(c.id)} for c in rows],
    }


@router.get("/{customer_id}", summary="One customer: contracts, open invoices, exposure, history")
def customer(
    customer_id: int,
    session: DbSession,
    user: CurrentUser,
    as_of: Annotated[
        date | None, Query(description="Age invoices as of this date (default today).")
    ] = None,
) -> dict[str, Any]:
    c = visible_customer(session, user, customer_id)
    return exact(customer_detail(session, c, as_of or today()))  # type: ignore[no-any-return]
