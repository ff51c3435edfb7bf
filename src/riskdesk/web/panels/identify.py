"""Identify panels: the customer's risk-event timeline and open events by source on the dashboard."""

from __future__ import annotations

from datetime import date
from typing import Any

import plotly.graph_objects as go
from markupsafe import escape
from sqlalchemy.orm import Session

from riskdesk.identify.catalogue import BUILTIN_BY_CODE, BUILTIN_MANIFESTATIONS
from riskdesk.store.models import RiskEventRow
from riskdesk.store.risk_events import customer_events, open_counts_by_source_severity
from riskdesk.web.charts import plot_div, style
from riskdesk.web.i18n import t
from riskdesk.web.panels import Panel

SEVERITIES = ("low", "medium", "high", "critical")
COLOURS = {"low": "#93c5fd", "medium": "#f59e0b", "high": "#ef4444", "critical": "#7f1d1d"}
MAX_ROWS = 30


def _manifestation_name(code: str, lang: str) -> str:
    m = BUILTIN_MANIFESTATIONS.get(code)
    return m.name(lang) if m is not None else code


def _source_name(code: str, lang: str) -> str:
    s = BUILTIN_BY_CODE.get(code)
    return s.name(lang) if s is not None else code


def timeline(events: list[RiskEventRow], lang: str, today: date | None = None) -> str:
    """A Gantt-like chart: one bar per event from first seen to closed (or today)."""
    end_default = today or date.today()
    fig = go.Figure()
    for sev in SEVERITIES:
        rows = [e for e in events if e.severity == sev]
        if not rows:
            continue
        starts = [e.first_seen for e in rows]
        ends = [e.closed_on or max(e.last_seen, end_default) for e in rows]
        fig.add_trace(
            go.Bar(
                base=[s.isoformat() for s in starts],
                x=[max((b - a).days, 1) * 86_400_000 for a, b in zip(starts, ends, strict=True)],
                y=[_manifestation_name(e.manifestation, lang) for e in rows],
                orientation="h",
                name=t(f"identify.sev.{sev}", lang),
                marker={"color": COLOURS[sev]},
                customdata=[
                    [
                        e.subject,
                        e.closed_on.isoformat() if e.closed_on else t("identify.still_open", lang),
                    ]
                    for e in rows
                ],
                hovertemplate="%{y}<br>%{customdata[0]}<br>%{base|%Y-%m-%d} → %{customdata[1]}"
                "<extra></extra>",
            )
        )
    style(fig, height=max(220, 60 + 28 * len({e.manifestation for e in events})))
    fig.update_layout(
        barmode="overlay",
        title={"text": t("identify.timeline", lang)},
        xaxis={"type": "date"},
        legend={"orientation": "h", "y": -0.2},
    )
    return plot_div(fig)


def _table(events: list[RiskEventRow], lang: str) -> str:
    head = "".join(
        f"<th>{escape(t(k, lang))}</th>"
        for k in (
            "identify.col.manifestation",
            "identify.col.severity",
            "identify.col.subject",
            "identify.col.since",
            "identify.col.closed",
        )
    )
    body = "".join(
        "<tr>"
        f"<td>{escape(_manifestation_name(e.manifestation, lang))}</td>"
        f"<td class='sev sev-{escape(e.severity)}'>{escape(t('identify.sev.' + e.severity, lang))}</td>"
        f"<td>{escape(e.subject)}</td>"
        f"<td>{escape(e.first_seen.isoformat())}</td>"
        f"<td>{escape(e.closed_on.isoformat() if e.closed_on else '')}</td>"
        "</tr>"
        for e in sorted(
            events, key=lambda e: (e.closed_on is not None, e.first_seen), reverse=False
        )[:MAX_ROWS]
    )
    return f"<table class='table risk-events'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def customer_panels(session: Session, customer: Any, lang: str) -> list[Panel]:
    events = customer_events(session, customer.id)
    title = t("identify.panel.events", lang)
    if not events:
        return [
            Panel(title, f'<p class="empty muted">{escape(t("identify.no_events", lang))}</p>', 20)
        ]
    n_open = sum(1 for e in events if e.closed_on is None)
    head = (
        f"<p id='risk-event-counts'><b>{n_open}</b> {escape(t('identify.open_count', lang))} · "
        f"<b>{len(events) - n_open}</b> {escape(t('identify.closed_count', lang))}</p>"
    )
    return [Panel(title, head + timeline(events, lang) + _table(events, lang), 20)]


def dashboard_panels(session: Session, user: Any, lang: str) -> list[Panel]:
    owner = user.username if getattr(user, "role", None) == "sales" else None
    counts = open_counts_by_source_severity(session, owner=owner)
    title = t("identify.panel.by_source", lang)
    if not counts:
        return [
            Panel(title, f'<p class="empty muted">{escape(t("identify.no_open", lang))}</p>', 25)
        ]
    sources = sorted({s for s, _, _ in counts})
    labels = [_source_name(s, lang) for s in sources]
    fig = go.Figure()
    for sev in SEVERITIES:
        by = {s: n for s, v, n in counts if v == sev}
        if not by:
            continue
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[by.get(s, 0) for s in sources],
                name=t(f"identify.sev.{sev}", lang),
                marker={"color": COLOURS[sev]},
            )
        )
    style(fig, height=320)
    fig.update_layout(barmode="stack", yaxis={"title": {"text": t("identify.count", lang)}})
    total = sum(n for _, _, n in counts)
    html = f"<p id='open-risk-events'><b>{total}</b> {escape(t('identify.open_count', lang))}</p>"
    return [Panel(title, html + plot_div(fig), 25)]
