"""Control panels: exposure, limit and headroom on the customer page (with drill-down to the
documents); holds, tasks and the Lorenz curve of exposure on the dashboard."""

from __future__ import annotations

from datetime import date
from typing import Any

import plotly.graph_objects as go
from markupsafe import escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from riskdesk.control.exposure import Exposure
from riskdesk.store import control_repo as repo
from riskdesk.store.models import ControlAction, Customer, OrderCheck
from riskdesk.web.charts import plot_div, style
from riskdesk.web.i18n import fmt_money, fmt_pct, t
from riskdesk.web.panels import Panel


def lorenz_figure(x: list[float], y: list[float], lang: str, title: str) -> str:
    """The Lorenz curve of exposure against the line of equal shares."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name=t("control.equal", lang),
            line={"dash": "dot", "color": "#94a3b8"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            name=t("control.lorenz", lang),
            fill="tonexty",
            line={"color": "#2563eb"},
        )
    )
    style(fig, height=320)
    fig.update_layout(
        title=title,
        xaxis={"title": t("control.share_customers", lang), "tickformat": ".0%"},
        yaxis={"title": t("control.share_exposure", lang), "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.25},
    )
    return plot_div(fig)


def exposure_table(e: Exposure, lang: str, *, docs: bool = True) -> str:
    """Exposure by component; each figure lists the ids of the documents behind it."""
    rows = []
    for k, f in e.components.items():
        if f.amount == 0 and not f.docs:
            continue
        ids = ", ".join(str(d) for d in f.docs[:50]) + (" …" if len(f.docs) > 50 else "")
        counted = (
            ""
            if k in e.counted
            else f" <span class='muted'>({t('control.not_counted', lang)})</span>"
        )
        rows.append(
            f"<tr><td>{escape(t('control.comp.' + k, lang))}{counted}</td>"
            f"<td class='num'>{escape(fmt_money(f.amount, e.currency, lang))}</td>"
            + (f"<td class='muted docs'>{escape(ids)}</td>" if docs else "")
            + "</tr>"
        )
    for key, fig in (
        ("control.insured", e.insured),
        ("control.guaranteed", e.guaranteed),
        ("control.unallocated_credit", e.unallocated_credit),
    ):
        if fig.amount:
            rows.append(
                f"<tr><td>− {escape(t(key, lang))}</td>"
                f"<td class='num'>{escape(fmt_money(fig.amount, e.currency, lang))}</td>"
                + (
                    f"<td class='muted docs'>{escape(', '.join(map(str, fig.docs)))}</td>"
                    if docs
                    else ""
                )
                + "</tr>"
            )
    head = (
        f"<tr><th>{escape(t('control.component', lang))}</th>"
        f"<th class='num'>{escape(t('control.amount', lang))}</th>"
        + (f"<th>{escape(t('control.documents', lang))}</th>" if docs else "")
        + "</tr>"
    )
    foot = (
        f"<tr><th>{escape(t('control.gross', lang))}</th><th class='num'>"
        f"{escape(fmt_money(e.gross, e.currency, lang))}</th>{'<th></th>' if docs else ''}</tr>"
        f"<tr><th>{escape(t('control.net', lang))}</th><th class='num'>"
        f"{escape(fmt_money(e.net, e.currency, lang))}</th>{'<th></th>' if docs else ''}</tr>"
    )
    return (
        f"<table class='data exposure'><thead>{head}</thead><tbody>{''.join(rows)}</tbody>"
        f"<tfoot>{foot}</tfoot></table>"
    )


def customer_summary(
    session: Session, customer: Customer, lang: str, on: date | None = None
) -> dict[str, Any]:
    on = on or repo.utcnow().date()
    cfg = repo.load_config(session)
    lim = repo.current_limit(session, customer.id, on)
    e = repo.customer_exposure(session, customer, on, cfg=cfg)
    used = e.net if cfg.limit_basis == "net" else e.gross
    return {
        "limit": lim,
        "exposure": e,
        "used": used,
        "basis": cfg.limit_basis,
        "headroom": (lim.amount - used) if lim else None,
        "utilisation": (used / lim.amount) if lim and lim.amount > 0 else None,
    }


def customer_panels(session: Session, customer: Customer, lang: str) -> list[Panel]:
    s = customer_summary(session, customer, lang)
    e: Exposure = s["exposure"]
    lim = s["limit"]
    if lim is not None:
        head = (
            f"<p><b>{escape(t('control.limit', lang))}</b> "
            f"{escape(fmt_money(lim.amount, lim.currency, lang))} · "
            f"<b>{escape(t('control.used', lang))}</b> "
            f"{escape(fmt_money(s['used'], e.currency, lang))} · "
            f"<b>{escape(t('control.headroom', lang))}</b> "
            f"<span id='headroom'>{escape(fmt_money(s['headroom'], e.currency, lang))}</span>"
            + (
                f" · {escape(fmt_pct(s['utilisation'], lang))}"
                if s["utilisation"] is not None
                else ""
            )
            + "</p>"
        )
    else:
        head = f"<p class='muted'>{escape(t('control.no_limit', lang))}</p>"
    held = (
        session.scalar(
            select(func.count())
            .select_from(OrderCheck)
            .where(OrderCheck.customer_id == customer.id, OrderCheck.status == "held")
        )
        or 0
    )
    tasks = (
        session.scalar(
            select(func.count())
            .select_from(ControlAction)
            .where(ControlAction.customer_id == customer.id, ControlAction.status == "open")
        )
        or 0
    )
    links = (
        f"<p><a href='/control/customers/{customer.id}'>{escape(t('control.details', lang))}</a>"
        f" · {escape(t('control.holds', lang))}: {held} · {escape(t('control.open_tasks', lang))}: {tasks}</p>"
    )
    return [
        Panel(
            t("control.exposure_title", lang),
            head + exposure_table(e, lang, docs=False) + links,
            order=30,
        )
    ]


def dashboard_panels(session: Session, user: Any, lang: str) -> list[Panel]:
    panels: list[Panel] = []
    held = (
        session.scalar(
            select(func.count()).select_from(OrderCheck).where(OrderCheck.status == "held")
        )
        or 0
    )
    q = select(func.count()).select_from(ControlAction).where(ControlAction.status == "open")
    if getattr(user, "role", None) == "sales":
        q = q.where(ControlAction.owner == user.username)
    tasks = session.scalar(q) or 0
    html = (
        f"<p><a href='/control/holds'>{escape(t('control.holds', lang))}</a>: "
        f"<b id='holds-count'>{held}</b> · <a href='/control/tasks'>"
        f"{escape(t('control.open_tasks', lang))}</a>: <b>{tasks}</b></p>"
    )
    panels.append(Panel(t("control.queue_title", lang), html, order=40))
    snap = repo.snapshot(session)
    if snap and getattr(user, "role", None) != "sales" and snap.get("customer"):
        c = snap["customer"]
        body = (
            f"<p>HHI {c['hhi']:.4f} · Gini {c['gini']:.3f} · "
            f"{escape(t('control.top5', lang))} {escape(fmt_pct(c['top_n_share'].get('5'), lang))}"
            f" · {escape(t('control.as_of', lang))} {escape(snap['as_of'])}</p>"
        )
        body += lorenz_figure(c["lorenz_x"], c["lorenz_y"], lang, "")
        body += f"<p><a href='/control/concentration'>{escape(t('control.details', lang))}</a></p>"
        panels.append(Panel(t("control.concentration_title", lang), body, order=41))
    return panels
