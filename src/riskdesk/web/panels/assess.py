"""Scorecard panels: the customer's score, grade, PD, EL and reasons with a score history
chart; on the dashboard, the portfolio by grade with expected loss."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from markupsafe import escape
from sqlalchemy.orm import Session

from riskdesk.assess.features import REGISTRY
from riskdesk.assess.scale import grade_info
from riskdesk.store.assessments import assessment_history, latest_assessment, portfolio_by_grade
from riskdesk.web.charts import plot_div, style
from riskdesk.web.i18n import t
from riskdesk.web.panels import Panel


def _money(v: Any, ccy: str | None = None) -> str:
    try:
        return f"{float(v):,.0f}" + (f" {ccy}" if ccy else "")
    except (TypeError, ValueError):
        return "–"


def _feature_label(name: str) -> str:
    f = REGISTRY.get(name)
    return f.description if f else name


def customer_panels(session: Session, customer: Any, lang: str) -> list[Panel]:
    a = latest_assessment(session, customer.id)
    title = t("assess.panel.customer", lang)
    if a is None:
        return [Panel(title, f'<p class="empty muted">{escape(t("assess.none", lang))}</p>', 25)]
    g = grade_info(int(a["grade"]))
    name = g.name_zh if lang.startswith("zh") else g.name_en
    rows = [
        (t("assess.score", lang), f"{a['score']:.0f}"),
        (t("assess.grade", lang), f"{g.grade} {g.label} ({name})"),
        (t("assess.pd", lang), f"{a['pd']:.2%}"),
        (t("assess.ead", lang), _money(a["ead"], a.get("currency"))),
        (t("assess.lgd", lang), f"{float(a['lgd']):.0%}"),
        (t("assess.el", lang), _money(a["el"], a.get("currency"))),
        (t("assess.as_of", lang), str(a["as_of"])),
        (t("assess.model", lang), str(a["model_version"])),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    reasons = a.get("reasons") or []
    if reasons:
        items = "".join(
            f"<li>{escape(_feature_label(str(r.get('feature'))))} "
            f'<span class="muted">(−{float(r.get("points_lost", 0)):.1f})</span></li>'
            for r in reasons
        )
        reason_html = f"<h4>{escape(t('assess.reasons', lang))}</h4><ol>{items}</ol>"
    else:
        reason_html = f'<p class="muted">{escape(t("assess.no_reasons", lang))}</p>'
    hist = assessment_history(session, customer.id, limit=36)
    chart = ""
    if len(hist) > 1:
        fig = go.Figure(
            go.Scatter(
                x=[str(h["as_of"]) for h in hist],
                y=[h["score"] for h in hist],
                mode="lines+markers",
                customdata=[[h["pd"], h["grade"]] for h in hist],
                hovertemplate="%{x}: %{y:.0f}<br>PD %{customdata[0]:.2%} · "
                + escape(t("assess.grade", lang))
                + " %{customdata[1]}<extra></extra>",
            )
        )
        style(fig, height=260)
        fig.update_layout(title={"text": t("assess.history", lang)})
        chart = plot_div(fig)
    html = f'<table class="kv">{table}</table>{reason_html}{chart}'
    return [Panel(title, html, 25)]


def dashboard_panels(session: Session, user: Any, lang: str) -> list[Panel]:
    owner = user.username if getattr(user, "role", None) == "sales" else None
    rows = portfolio_by_grade(session, owner=owner)
    title = t("assess.panel.dashboard", lang)
    if not rows:
        return [Panel(title, f'<p class="empty muted">{escape(t("assess.none", lang))}</p>', 25)]
    labels = [f"{r['grade']} {r['label']}" for r in rows]
    fig = go.Figure()
    fig.add_bar(x=labels, y=[r["customers"] for r in rows], name=t("assess.customers", lang))
    fig.add_scatter(
        x=labels,
        y=[r["el"] for r in rows],
        name=t("assess.el", lang),
        yaxis="y2",
        mode="lines+markers",
    )
    style(fig, height=320)
    fig.update_layout(
        yaxis={"title": {"text": t("assess.customers", lang)}},
        yaxis2={"title": {"text": t("assess.el", lang)}, "overlaying": "y", "side": "right"},
        legend={"orientation": "h"},
    )
    total_el = sum(r["el"] for r in rows)
    total_ead = sum(r["ead"] for r in rows)
    summary = (
        f"<p>{escape(t('assess.total_ead', lang))}: <b>{_money(total_ead)}</b> · "
        f"{escape(t('assess.total_el', lang))}: <b>{_money(total_el)}</b> · "
        f"{escape(t('assess.as_of', lang))} {escape(str(rows[0]['as_of']))}</p>"
    )
    return [Panel(title, summary + plot_div(fig), 25)]
