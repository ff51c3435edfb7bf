"""Monitor panels: real-time state and alerts on the customer page; open cases on the dashboard."""

from __future__ import annotations

from typing import Any

from markupsafe import escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from riskdesk.store import monitor_repo as repo
from riskdesk.store.models import Case, Customer
from riskdesk.web.i18n import fmt_num, t
from riskdesk.web.panels import Panel

SEV_CLASS = {
    "low": "sev-low",
    "medium": "sev-medium",
    "high": "sev-high",
    "critical": "sev-critical",
}


def severity_badge(sev: str, lang: str) -> str:
    return (
        f"<span class='badge {SEV_CLASS.get(sev, '')}' data-severity='{escape(sev)}'>"
        f"{escape(t('monitor.severity.' + sev, lang))}</span>"
    )


def alerts_table(alerts: list[dict[str, Any]], lang: str, with_customer: bool = True) -> str:
    if not alerts:
        return f"<p class='empty muted'>{escape(t('monitor.no_alerts', lang))}</p>"
    cols = (["monitor.customer"] if with_customer else []) + [
        "monitor.rule",
        "monitor.severity",
        "monitor.last_seen",
        "monitor.hits",
        "monitor.case",
    ]
    head = "".join(f"<th>{escape(t(c, lang))}</th>" for c in cols)
    rows = []
    for a in alerts:
        cells = [f"<td>{escape(a['customer'])}</td>"] if with_customer else []
        cells += [
            f"<td>{escape(a['title'])}</td>",
            f"<td>{severity_badge(a['severity'], lang)}</td>",
            f"<td>{escape(str(a['last_seen'])[:16])}</td>",
            f"<td class='num'>{a['hits']}</td>",
            f"<td><a href='/monitor/cases/{a['case_id']}'>#{a['case_id']}</a></td>",
        ]
        rows.append(f"<tr class='alert-row' data-rule='{escape(a['rule'])}'>{''.join(cells)}</tr>")
    return f"<table class='data monitor-alerts'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def customer_panels(session: Session, customer: Customer, lang: str) -> list[Panel]:
    state = repo.customer_state(session, customer.external_id)
    eng = repo.published_engine(session)
    alerts = [
        repo.alert_dict(a, eng, lang)
        for a in repo.list_alerts(session, customer=customer.external_id)
    ]
    if state is None:
        head = f"<p class='muted'>{escape(t('monitor.no_state', lang))}</p>"
    else:
        f = state["features"]

        def num(key: str, digits: int = 0) -> str:
            v = f.get(key)
            return "–" if v is None else escape(fmt_num(v, lang, digits))

        head = (
            f"<p class='muted'>{escape(t('monitor.state_as_of', lang))} {escape(str(state['as_of']))}"
            f" · {escape(state['currency'] or '')}</p><p>"
            f"<b>{escape(t('monitor.open_balance', lang))}</b> {num('open_invoice_balance', 2)} · "
            f"<b>{escape(t('monitor.overdue', lang))}</b> <span id='monitor-overdue'>{num('overdue_balance', 2)}</span> · "
            f"<b>{escape(t('monitor.max_dpd', lang))}</b> {num('max_days_overdue')} · "
            f"<b>{escape(t('monitor.dbt', lang))}</b> {num('dbt_wavg_paid_180d', 1)} · "
            f"<b>{escape(t('monitor.orders_90d', lang))}</b> {num('orders_count_90d')} · "
            f"<a href='/monitor/customers/{customer.id}/state' id='monitor-state-link'>"
            f"{escape(t('monitor.state_link', lang))}</a></p>"
        )
    html = head + alerts_table(alerts, lang, with_customer=False)
    return [Panel(t("monitor.panel_customer", lang), html, order=50)]


def dashboard_panels(session: Session, user: Any, lang: str) -> list[Panel]:
    q = select(Case.severity, func.count()).where(Case.status != "resolved").group_by(Case.severity)
    owner = user.username if getattr(user, "role", None) == "sales" else None
    if owner is not None:
        q = q.join(Customer, Customer.id == Case.customer_id).where(Customer.owner == owner)
    counts = dict(session.execute(q).tuples().all())
    parts = [
        f"{severity_badge(sev, lang)} <b class='case-count' data-severity='{sev}'>{counts.get(sev, 0)}</b>"
        for sev in ("critical", "high", "medium", "low")
    ]
    eng = repo.published_engine(session)
    latest = [
        repo.alert_dict(a, eng, lang) for a in repo.list_alerts(session, owner=owner, limit=5)
    ]
    html = (
        f"<p>{' · '.join(parts)} · <a href='/monitor/alerts'>{escape(t('monitor.all_cases', lang))}</a></p>"
        f"<h4>{escape(t('monitor.latest', lang))}</h4>" + alerts_table(latest, lang)
    )
    return [Panel(t("monitor.panel_dashboard", lang), html, order=20)]
