"""Control pages: a customer's exposure with drill-down, limits and requests, the approval
queue of held orders, concentration (Lorenz, HHI), insurance and tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape
from sqlalchemy import select

from riskdesk.api.deps import CurrentUser, DbSession, can_see, visible_customer
from riskdesk.api.errors import ApiError
from riskdesk.control.limits import ApprovalRefused
from riskdesk.store import control_repo as repo
from riskdesk.store.models import CreditLimit, Customer, LimitRequest
from riskdesk.store.types import MAX_ID
from riskdesk.web.i18n import CODE_KINDS, code_label, fmt_pct, t
from riskdesk.web.nav import NavItem
from riskdesk.web.panels.control import customer_summary, exposure_table, lorenz_figure
from riskdesk.web.templating import render, request_lang

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]

router = APIRouter(prefix="/control", include_in_schema=False)
NAV = [
    NavItem("/control/holds", "control.nav.holds", 40),
    NavItem(
        "/control/limits",
        "control.nav.limits",
        41,
        roles=("admin", "risk_manager", "analyst", "auditor"),
    ),
    NavItem(
        "/control/concentration",
        "control.nav.concentration",
        42,
        roles=("admin", "risk_manager", "analyst", "auditor"),
    ),
    NavItem(
        "/control/insurance",
        "control.nav.insurance",
        43,
        roles=("admin", "risk_manager", "analyst", "auditor"),
    ),
    NavItem("/control/tasks", "control.nav.tasks", 44),
]
STAFF = ("admin", "risk_manager", "analyst", "auditor")
DECIDERS = ("admin", "risk_manager", "analyst")


def _require(user: Any, roles: tuple[str, ...]) -> None:
    if user.role not in roles:
        raise ApiError(403, "Forbidden", f"this needs one of the roles: {', '.join(roles)}")


def _names(session: Any, ids: set[int]) -> dict[int, Customer]:
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(ids)))}


NO_KEY = "(none)"
"""The concentration key of a customer without a value in that dimension."""


def _customer_of(dimension: str, key: str) -> int | None:
    """The customer a concentration key names: a customer id, or a group headed by a parent."""
    if dimension == "customer" and key.isdigit():
        return int(key)
    if dimension == "group" and key.startswith("parent:") and key[7:].isdigit():
        return int(key[7:])
    return None


def _shown_key(
    dimension: str, key: str, lang: str, customers: dict[int, Customer]
) -> dict[str, str | None]:
    """How a concentration key is shown: a readable ``label``, the raw key kept as ``title``
    (the tooltip) and, for a customer or a parent's group, a link to the customer."""
    if key == NO_KEY:
        return {"label": t("common.unknown", lang), "title": None, "href": None}
    if dimension in CODE_KINDS:
        return {"label": code_label(dimension, key, lang), "title": key, "href": None}
    if dimension == "group" and key.startswith("code:"):
        return {"label": key[5:], "title": key, "href": None}
    cid = _customer_of(dimension, key)
    if cid is not None and cid in customers:
        c = customers[cid]
        return {"label": c.name, "title": c.external_id, "href": f"/customers/{cid}"}
    return {"label": key, "title": None, "href": None}


def _key_html(shown: dict[str, str | None]) -> Markup:
    title = Markup(' title="{}"').format(shown["title"]) if shown["title"] else Markup("")
    if shown["href"]:
        return Markup('<a href="{}"{}>{}</a>').format(shown["href"], title, shown["label"])
    return Markup("<span{}>{}</span>").format(title, shown["label"])


def _with_reason_html(checks: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Order checks whose concentration reasons on an industry, region or country get an
    ``html`` text with the code's label (the code in the tooltip) instead of the raw code the
    stored message names; every other reason keeps its stored message."""
    for check in checks:
        reasons = []
        for r in check.get("reasons") or []:
            f = r.get("figures") or {}
            if r.get("code") == "concentration" and f.get("dimension") in CODE_KINDS:
                dim = str(f["dimension"])
                key = _key_html(_shown_key(dim, str(f.get("key", "")), lang, {}))
                pattern = escape(t("control.reason.concentration", lang))
                r = {
                    **r,
                    "html": pattern.format(
                        dim=t(f"control.dim.{dim}", lang),
                        key=key,
                        share=fmt_pct(f.get("share_after"), lang),
                        max=fmt_pct(f.get("max_share"), lang),
                    ),
                }
            reasons.append(r)
        check["reasons"] = reasons
    return checks


@router.get("/customers/{customer_id}")
def customer_page(
    request: Request,
    customer_id: IdPath,
    session: DbSession,
    user: CurrentUser,
) -> Response:
    lang = request_lang(request)
    c = visible_customer(session, user, customer_id)
    s = customer_summary(session, c, lang)
    hist = [repo.limit_dict(x) for x in repo.limit_history(session, c.id)]
    checks = _with_reason_html(
        [repo.check_dict(x) for x in repo.list_checks(session, customer_id=c.id, limit=20)], lang
    )
    return render(
        request,
        "control/customer.html",
        {
            "customer": c,
            "s": s,
            "table": exposure_table(s["exposure"], lang),
            "history": hist,
            "checks": checks,
            "tasks": [repo.action_dict(a) for a in repo.list_actions(session, customer_id=c.id)],
        },
    )


@router.get("/holds")
def holds_page(
    request: Request, session: DbSession, user: CurrentUser, error: str | None = None
) -> Response:
    lang = request_lang(request)
    rows = repo.list_checks(session, status="held", limit=500)
    custs = _names(session, {r.customer_id for r in rows})
    visible = _with_reason_html(
        [
            repo.check_dict(r)
            for r in rows
            if r.customer_id in custs and can_see(user, custs[r.customer_id])
        ],
        lang,
    )
    recent = [
        repo.check_dict(r)
        for r in repo.list_checks(session, limit=50)
        if r.status in ("released", "rejected")
    ]
    return render(
        request,
        "control/holds.html",
        {
            "holds": visible,
            "customers": custs,
            "recent": recent if user.role in STAFF else [],
            "can_decide": user.role in DECIDERS,
            "error": error,
        },
    )


def _hold(
    request: Request, check_id: int, session: Any, user: Any, reason: str, release: bool
) -> Response:
    _require(user, DECIDERS)
    try:
        repo.decide_hold(session, check_id, actor=user.username, release=release, reason=reason)
    except (repo.ControlError, ApprovalRefused) as exc:
        session.rollback()
        return holds_page(request, session, user, error=str(exc))
    return RedirectResponse("/control/holds", status_code=303)


@router.post("/holds/{check_id}/release")
def release(
    request: Request,
    check_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _hold(request, check_id, session, user, reason, True)


@router.post("/holds/{check_id}/reject")
def reject(
    request: Request,
    check_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _hold(request, check_id, session, user, reason, False)


@router.get("/limits")
def limits_page(
    request: Request, session: DbSession, user: CurrentUser, error: str | None = None
) -> Response:
    _require(user, STAFF)
    reqs = list(
        session.scalars(
            select(LimitRequest).where(LimitRequest.status == "pending").order_by(LimitRequest.id)
        )
    )
    lims = list(
        session.scalars(
            select(CreditLimit)
            .where(CreditLimit.status == "active")
            .order_by(CreditLimit.amount.desc())
            .limit(200)
        )
    )
    custs = _names(
        session, {r.customer_id for r in reqs} | {x.customer_id for x in lims if x.customer_id}
    )
    return render(
        request,
        "control/limits.html",
        {
            "requests": [repo.request_dict(r) for r in reqs],
            "limits": [repo.limit_dict(x) for x in lims],
            "customers": custs,
            "can_decide": user.role in DECIDERS,
            "username": user.username,
            "error": error,
        },
    )


def _decide(
    request: Request, rid: int, session: Any, user: Any, reason: str, approve: bool
) -> Response:
    _require(user, DECIDERS)
    try:
        repo.decide_request(session, rid, approver=user.username, approve=approve, reason=reason)
    except (repo.ControlError, ApprovalRefused) as exc:
        session.rollback()
        return limits_page(request, session, user, error=str(exc))
    return RedirectResponse("/control/limits", status_code=303)


@router.post("/requests/{rid}/approve")
def approve(
    request: Request,
    rid: IdPath,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _decide(request, rid, session, user, reason, True)


@router.post("/requests/{rid}/reject")
def reject_request(
    request: Request,
    rid: IdPath,
    session: DbSession,
    user: CurrentUser,
    reason: Annotated[str, Form()] = "",
) -> Response:
    return _decide(request, rid, session, user, reason, False)


@router.get("/concentration")
def concentration_page(request: Request, session: DbSession, user: CurrentUser) -> Response:
    _require(user, STAFF)
    lang = request_lang(request)
    on = repo.utcnow().date()
    rep = repo.concentration_report(session, on)
    dims = rep["dimensions"]
    cust = dims["customer"]
    shown = {k: v.as_dict(10) for k, v in dims.items()}
    breaches = [
        {"dimension": b.dimension, "key": b.key, "share": b.share, "max_share": b.max_share}
        for b in rep["breaches"]
    ]
    largest: dict[str, list[dict[str, Any]]] = {
        name: [{"dimension": name, **x} for x in d["largest"]]  # type: ignore[attr-defined]
        for name, d in shown.items()
    }
    keyed = [x for xs in largest.values() for x in xs] + breaches
    ids = {_customer_of(x["dimension"], x["key"]) for x in keyed}
    custs = _names(session, {i for i in ids if i is not None})
    for x in keyed:
        x["shown"] = _key_html(_shown_key(x["dimension"], x["key"], lang, custs))
    for name, d in shown.items():
        d["largest"] = largest[name]
    return render(
        request,
        "control/concentration.html",
        {
            "rep": rep,
            "dims": shown,
            "chart": lorenz_figure(
                cust.lorenz_x, cust.lorenz_y, lang, t("control.lorenz_title", lang)
            ),
            "breaches": breaches,
            "as_of": on,
        },
    )


@router.get("/insurance")
def insurance_page(request: Request, session: DbSession, user: CurrentUser) -> Response:
    _require(user, STAFF)
    return render(
        request,
        "control/insurance.html",
        {
            "buyers": repo.insurance_overview(session, repo.utcnow().date()),
        },
    )


@router.get("/tasks")
def tasks_page(request: Request, session: DbSession, user: CurrentUser) -> Response:
    owner = user.username if user.role == "sales" else None
    rows = [repo.action_dict(a) for a in repo.list_actions(session, owner=owner)]
    return render(request, "control/tasks.html", {"tasks": rows})
