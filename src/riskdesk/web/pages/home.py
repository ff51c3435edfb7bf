"""The portfolio dashboard."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from fastapi import APIRouter, Request
from fastapi.responses import Response

from riskdesk.api.deps import CurrentUser, DbSession
from riskdesk.api.queries import BUCKETS, portfolio, today
from riskdesk.config import get_settings
from riskdesk.web.charts import plot_div, style
from riskdesk.web.i18n import code_labels, fmt_money, t
from riskdesk.web.panels import collect_dashboard_panels
from riskdesk.web.templating import render, request_lang

router = APIRouter(include_in_schema=False)

BUCKET_COLORS = ["#10b981", "#fbbf24", "#f59e0b", "#ea580c", "#dc2626"]


def ageing_chart(ageing: dict[str, Any], currency: str, lang: str, title_key: str) -> str:
    labels = [t(f"bucket.{b}", lang) for b in BUCKETS]
    values = [float(ageing[b]) for b in BUCKETS]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=values,
            marker_color=BUCKET_COLORS,
            text=[fmt_money(v, currency, lang) for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": t(title_key, lang), "x": 0},
        yaxis_title=f"{t('chart.amount', lang)} ({currency})",
        showlegend=False,
    )
    return plot_div(style(fig))


def _codes(
    kind: str, pairs: list[tuple[str | None, Any]], lang: str
) -> tuple[list[str], list[str]]:
    """Readable labels for the codes of ``pairs`` and the codes themselves (shown on hover)."""
    codes = [k for k, _ in pairs]
    return code_labels(kind, codes, lang), [k or "–" for k in codes]


@router.get("/")
def dashboard(request: Request, session: DbSession, user: CurrentUser) -> Response:
    lang = request_lang(request)
    base = get_settings().base_currency
    as_of = today()
    p = portfolio(session, user, as_of, base)
    charts: dict[str, str] = {}
    if p["customers"]:
        ind = p["by_industry"][:12]
        labels, codes = _codes("industry", ind, lang)
        fig = go.Figure(
            go.Bar(
                x=[n for _, n in ind][::-1],
                y=labels[::-1],
                customdata=codes[::-1],
                orientation="h",
                marker_color="#2563eb",
                hovertemplate="%{y} [%{customdata}]: %{x}<extra></extra>",
            )
        )
        fig.update_layout(
            title={"text": t("dashboard.by_industry", lang), "x": 0},
            xaxis_title=t("chart.customers", lang),
            xaxis={
                "tickformat": ",d",
                "tick0": 0,
                "dtick": max(1, -(-max(n for _, n in ind) // 6)),
            },
        )
        charts["industry"] = plot_div(style(fig))
        reg = p["by_region"]
        labels, codes = _codes("region", reg, lang)
        fig = go.Figure(
            go.Pie(
                labels=labels,
                values=[n for _, n in reg],
                customdata=codes,
                hole=0.45,
                textinfo="label+percent",
                hovertemplate="%{label} [%{customdata}]: %{value}<extra></extra>",
            )
        )
        fig.update_layout(title={"text": t("dashboard.by_region", lang), "x": 0})
        charts["region"] = plot_div(style(fig))
        charts["ageing"] = ageing_chart(
            p["exposure"]["ageing"], base, lang, "dashboard.ageing_title"
        )
        exp = p["exposure_by_industry"][:12]
        if exp:
            labels, codes = _codes("industry", exp, lang)
            fig = go.Figure(
                go.Bar(
                    x=[float(v) for _, v in exp][::-1],
                    y=labels[::-1],
                    customdata=codes[::-1],
                    orientation="h",
                    marker_color="#f59e0b",
                    hovertemplate="%{y} [%{customdata}]: %{x:,.0f}<extra></extra>",
                )
            )
            fig.update_layout(
                title={"text": t("dashboard.exposure_by_industry", lang), "x": 0},
                xaxis_title=f"{t('chart.amount', lang)} ({base})",
            )
            charts["exposure_industry"] = plot_div(style(fig))
    exposure = p["exposure"]
    share = (exposure["overdue"] / exposure["open_invoices"]) if exposure["open_invoices"] else None
    return render(
        request,
        "service/dashboard.html",
        {
            "p": p,
            "base": base,
            "charts": charts,
            "overdue_share": share,
            "panels": collect_dashboard_panels(session, user, lang),
        },
    )
