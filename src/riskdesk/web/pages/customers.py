"""The customer list (search, filters, sorting, pagination) and the customer page."""

from __future__ import annotations

from functools import partial
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from riskdesk.api.deps import MAX_ID, CurrentUser, DbSession, visible_customer
from riskdesk.api.queries import (
    SORT_PATTERN,
    CustomerFilter,
    current_grades,
    customer_detail,
    facet_values,
    list_customers,
    today,
)
from riskdesk.domain.enums import Role
from riskdesk.web.i18n import code_label
from riskdesk.web.pages.home import ageing_chart
from riskdesk.web.panels import collect_customer_panels
from riskdesk.web.templating import render, request_lang

router = APIRouter(include_in_schema=False)

PAGE_SIZES = (25, 50, 100)


@router.get("/customers")
def customers_page(
    request: Request,
    session: DbSession,
    user: CurrentUser,
    q: Annotated[str | None, Query(max_length=200)] = None,
    industry: Annotated[str | None, Query(max_length=64)] = None,
    region: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    rating: Annotated[str | None, Query(max_length=8)] = None,
    sort: Annotated[str, Query(pattern=SORT_PATTERN)] = "name",
    limit: Annotated[int, Query(ge=1, le=500)] = 25,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Response:
    f = CustomerFilter(
        industry or None, region or None, owner or None, status or None, rating or None, q or None
    )
    lang = request_lang(request)
    total, rows = list_customers(session, user, f, sort, limit, offset)
    grades = current_grades(session, [c.id for c in rows])
    params = {
        k: v
        for k, v in {
            "q": q,
            "industry": industry,
            "region": region,
            "owner": owner,
            "status": status,
            "rating": rating,
        }.items()
        if v
    }

    def link(**changes: object) -> str:
        merged: dict[str, object] = {**params, "sort": sort, "limit": limit, "offset": offset}
        merged.update(changes)
        return "/customers?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})

    def sort_link(col: str) -> str:
        return link(sort=f"-{col}" if sort == col else col, offset=0)

    return render(
        request,
        "service/customers.html",
        {
            "rows": rows,
            "grades": grades,
            "total": total,
            "limit": limit,
            "offset": offset,
            "sort": sort,
            "filters": params,
            "facets": facet_values(session, user),
            "show_owner_filter": user.role != Role.SALES.value,
            "prev_link": link(offset=max(offset - limit, 0)) if offset > 0 else None,
            "next_link": link(offset=offset + limit) if offset + limit < total else None,
            "sort_link": sort_link,
            "page_sizes": PAGE_SIZES,
            "label": partial(code_label, lang=lang),
        },
    )


@router.get("/customers/{customer_id}")
def customer_page(
    customer_id: int, request: Request, session: DbSession, user: CurrentUser
) -> Response:
    lang = request_lang(request)
    customer = visible_customer(session, user, customer_id)
    d = customer_detail(session, customer, today())
    exposure = d["exposure"]
    chart = ageing_chart(exposure["ageing"], exposure["currency"], lang, "customer.ageing_title")
    return render(
        request,
        "service/customer.html",
        {
            "c": d,
            "chart": chart,
            "panels": collect_customer_panels(session, customer, lang),
            "label": partial(code_label, lang=lang),
        },
    )
