"""The assessment API and web panels over a seeded, scored portfolio (SQLite and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from tests.seed import PORTFOLIO

from riskdesk.analytics.steps import assess as step
from riskdesk.api.app import create_app
from riskdesk.assess.training import fit_artefact
from riskdesk.store.assessments import register_model
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Customer, User
from riskdesk.web.panels.assess import customer_panels, dashboard_panels

SEED = PORTFOLIO


def _scored(db_url: str):  # type: ignore[no-untyped-def]
    p = SEED.seed(db_url)
    rng = np.random.default_rng(5)
    dpd = rng.integers(0, 200, 500).astype(float)
    y = (rng.random(500) < 1 / (1 + np.exp(-(-2 + dpd / 50)))).astype(int)
    _, art = fit_artefact(pd.DataFrame({"max_days_overdue": dpd}), y, {"min_iv": 0.0})
    eng = make_engine(db_url)
    with session_scope(eng) as s:
        register_model(s, art, actor="tester")
    step.run(eng, SEED.AS_OF)
    return p, eng


def test_assessment_endpoint_returns_latest_and_history_to_visible_users(db_url: str) -> None:
    p, eng = _scored(db_url)
    cid = p.ids["C001"]  # owned by alice
    with TestClient(create_app(db_url)) as client:
        r = client.get(
            f"/api/v1/customers/{cid}/assessment",
            headers={"Authorization": f"Bearer {p.tokens['rita']}"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["latest"]["grade"] in range(1, 11)
        assert body["latest"]["reasons"][0]["feature"] == "max_days_overdue"  # 149 days overdue
        assert float(body["latest"]["ead"]) == 3000.0
        assert len(body["history"]) == 1
        r = client.get(
            f"/api/v1/customers/{cid}/assessment",
            headers={"Authorization": f"Bearer {p.tokens['bob']}"},  # sales, not the owner
        )
        assert r.status_code == 404
    eng.dispose()


def test_panels_show_grade_reasons_and_portfolio_in_both_languages(db_url: str) -> None:
    p, eng = _scored(db_url)
    with session_scope(eng) as s:
        c = s.get(Customer, p.ids["C001"])
        en = customer_panels(s, c, "en")[0]
        zh = customer_panels(s, c, "zh")[0]
        assert "Expected loss" in en.html and "预期损失" in zh.html
        assert "PD" in en.html
        rita = s.query(User).filter_by(username="rita").one()
        dash = dashboard_panels(s, rita, "zh")[0]
        assert "预期损失合计" in dash.html and "plotly" in dash.html.lower()
    eng.dispose()
