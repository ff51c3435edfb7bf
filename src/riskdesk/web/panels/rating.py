"""Rating panels: rating history on the customer page, portfolio risk matrix on the dashboard.

Also :func:`heatmap`, the 5x5 risk matrix as a Plotly heat map (used by the rating pages).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from markupsafe import escape
from sqlalchemy.orm import Session

from riskdesk.assess.scale import grade_info
from riskdesk.store import ratings as repo
from riskdesk.web.charts import plot_div, style
from riskdesk.web.i18n import t
from riskdesk.web.panels import Panel

ZONE_COLOURS = [
    [0.0, "#d1fae5"],
    [0.16, "#d1fae5"],
    [0.17, "#fef3c7"],
    [0.36, "#fef3c7"],
    [0.37, "#fdba74"],
    [0.79, "#fdba74"],
    [0.8, "#f87171"],
    [1.0, "#f87171"],
]
"""Background by likelihood x impact: low (<5), medium (5-9), high (10-19), critical (≥20)."""


def heatmap(grid: list[list[int]], lang: str, title: str, div_id: str = "risk-matrix") -> str:
    """The 5x5 matrix: cells coloured by zone, each showing how many judgements fall there."""
    levels = [1, 2, 3, 4, 5]
    z = [[li * ii for li in levels] for ii in levels]
    text = [[str(grid[ii - 1][li - 1] or "") for li in levels] for ii in levels]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=levels,
            y=levels,
            zmin=1,
            zmax=25,
            colorscale=ZONE_COLOURS,
            showscale=False,
            text=text,
            texttemplate="<b>%{text}</b>",
            textfont={"size": 18},
            customdata=[[grid[ii - 1][li - 1] for li in levels] for ii in levels],
            hovertemplate=(
                f"{t('rating.likelihood', lang)} %{{x}} × {t('rating.impact', lang)} %{{y}}"
                f"<br>{t('rating.count', lang)}: %{{customdata}}<extra></extra>"
            ),
            xgap=2,
            ygap=2,
        )
    )
    style(fig, height=360)
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": t("rating.likelihood", lang)}, "dtick": 1},
        yaxis={"title": {"text": t("rating.impact", lang)}, "dtick": 1},
    )
    html = plot_div(fig)
    return f'<div class="risk-heatmap" id="{escape(div_id)}">{html}</div>'


def history_table(rows: list[dict[str, Any]], lang: str) -> str:
    if not rows:
        return f'<p class="empty muted">{escape(t("rating.no_ratings", lang))}</p>'
    head = "".join(
        f"<th>{escape(t(k, lang))}</th>"
        for k in (
            "rating.col.date",
            "rating.col.status",
            "rating.col.base",
            "rating.col.notches",
            "rating.col.grade",
            "rating.col.proposed_by",
            "rating.col.approved_by",
            "rating.col.valid_until",
        )
    )
    body = []
    for r in rows:
        g = grade_info(r["final_grade"])
        body.append(
            f'<tr class="rating-row" data-rating-id="{r["id"]}" data-status="{escape(r["status"])}">'
            f"<td>{escape((r['proposed_at'] or '')[:10])}</td>"
            f"<td>{escape(t('rating.status.' + r['status'], lang))}</td>"
            f"<td>{r['base_grade']} · {escape(t('rating.source.' + r['base_source'], lang))}</td>"
            f'<td class="num">{r["qualitative_notches"]:+d} / {r["override_notches"]:+d}</td>'
            f"<td><b>{g.grade} {escape(g.label)}</b></td>"
            f"<td>{escape(r['proposed_by'])}</td>"
            f"<td>{escape(r['approved_by'] or '')}</td>"
            f"<td>{escape(r['valid_until'])}</td></tr>"
        )
    return f'<table class="data rating-history"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def customer_panels(session: Session, customer: Any, lang: str) -> list[Panel]:
    rows = [repo.rating_dict(r) for r in repo.rating_history(session, customer.id)[:10]]
    cur = repo.current_rating(session, customer.id)
    if cur is None:
        head = f"<p>{escape(t('rating.no_current', lang))}</p>"
    else:
        g = grade_info(cur.grade)
        name = g.name_zh if lang == "zh" else g.name_en
        head = (
            f'<p class="current-rating">{escape(t("rating.current", lang))}: '
            f"<b>{g.grade} {escape(g.label)}</b> ({escape(name)}), PD {cur.pd:.2%}, "
            f"{escape(t('rating.valid_until', lang))} {cur.valid_until.isoformat()} · "
            f"{escape(t('rating.state.' + cur.status, lang))}</p>"
        )
    link = (
        f'<p><a href="/rating/customers/{customer.id}">'
        f"{escape(t('rating.open_assessment', lang))}</a></p>"
    )
    return [Panel(t("rating.panel.history", lang), head + history_table(rows, lang) + link, 30)]


def dashboard_panels(session: Session, user: Any, lang: str) -> list[Panel]:
    pm = repo.portfolio_matrix(session)
    html = heatmap(pm["grid"], lang, t("rating.portfolio_matrix", lang), "portfolio-matrix")
    html += (
        f'<p class="muted">{escape(t("rating.portfolio_note", lang, n=pm["customers"]))} '
        f'<a href="/rating/matrix">{escape(t("rating.more", lang))}</a></p>'
    )
    return [Panel(t("rating.portfolio_matrix", lang), html, 40)]
