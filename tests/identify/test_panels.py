"""The customer timeline and the dashboard chart (panel functions on a real database)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import Engine

from riskdesk.analytics.steps.identify import run_identification
from riskdesk.store.db import session_scope
from riskdesk.store.models import Customer, Invoice
from riskdesk.web.panels.identify import customer_panels, dashboard_panels

AS_OF = date(2026, 6, 30)


def _seed(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as s:
        ids = []
        for ext, owner in (("A", "alice"), ("B", "bob")):
            c = Customer(external_id=ext, name=ext, currency="EUR", owner=owner)
            s.add(c)
            s.flush()
            ids.append(c.id)
            s.add(
                Invoice(
                    external_id=f"I{ext}",
                    customer_id=c.id,
                    issue_date=AS_OF - timedelta(days=100),
                    due_date=AS_OF - timedelta(days=70),
                    amount=Decimal("800"),
                    currency="EUR",
                )
            )
    return ids[0], ids[1]


def test_customer_panel_shows_a_bilingual_timeline_of_the_events(engine: Engine) -> None:
    a, _ = _seed(engine)
    with session_scope(engine) as s:
        empty = customer_panels(s, s.get(Customer, a), "en")
    assert "No risk events" in empty[0].html
    run_identification(engine, AS_OF)
    with session_scope(engine) as s:
        [en] = customer_panels(s, s.get(Customer, a), "en")
        [zh] = customer_panels(s, s.get(Customer, a), "zh")
    assert en.title == "Risk events" and zh.title == "风险事件"
    assert "plotly-graph-div" in en.html and "Overdue 61-90 days" in en.html
    assert "逾期61-90天" in zh.html and "invoice:" in zh.html
    assert "<b>1</b> open" in en.html


def test_dashboard_panel_counts_open_events_by_source_and_respects_the_sales_owner(
    engine: Engine,
) -> None:
    _seed(engine)
    run_identification(engine, AS_OF)
    rita = SimpleNamespace(username="rita", role="risk_manager")
    alice = SimpleNamespace(username="alice", role="sales")
    with session_scope(engine) as s:
        [all_] = dashboard_panels(s, rita, "zh")
        [mine] = dashboard_panels(s, alice, "en")
    assert all_.title == "按风险来源统计的未关闭风险事件"
    # the source's name, inside the figure's JSON (escaped, or raw when plotly uses orjson)
    assert json.dumps("客户信用")[1:-1] in all_.html or "客户信用" in all_.html
    assert "<b>2</b>" in all_.html and "<b>1</b>" in mine.html
    assert "plotly-graph-div" in mine.html
