"""Batch features and the assess step on a seeded database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from tests.seed import PORTFOLIO

from riskdesk.analytics.features_batch import core_features_as_of, features_as_of
from riskdesk.analytics.steps import assess as step
from riskdesk.assess.training import fit_artefact
from riskdesk.store.assessments import latest_assessment, register_model
from riskdesk.store.db import session_scope
from riskdesk.store.models import Assessment, AuditEntry

SEED = PORTFOLIO


def small_model() -> dict:
    """A scorecard over two portfolio features, fitted on synthetic rows."""
    rng = np.random.default_rng(3)
    n = 600
    dpd = rng.integers(0, 200, n).astype(float)
    bal = rng.gamma(2.0, 500.0, n)
    dpd[rng.random(n) < 0.1] = np.nan
    risk = 1 / (1 + np.exp(-(-2.5 + dpd / 60 + bal / 3000)))
    y = (rng.random(n) < np.nan_to_num(risk, nan=0.3)).astype(int)
    X = pd.DataFrame({"max_days_overdue": dpd, "overdue_balance": bal})
    _, art = fit_artefact(X, y, {"min_iv": 0.0}, name="test")
    return art


def test_batch_core_features_match_the_seeded_ageing(engine: Engine) -> None:
    p = SEED.seed(str(engine.url.render_as_string(hide_password=False)))
    core = core_features_as_of(engine, SEED.AS_OF)
    c1 = core.loc[p.ids["C001"]]
    assert c1["open_invoice_balance"] == pytest.approx(2400.0)
    assert c1["overdue_1_30"] == pytest.approx(300.0)
    assert c1["overdue_61_90"] == pytest.approx(700.0)
    assert c1["overdue_90_plus"] == pytest.approx(400.0)
    assert c1["overdue_balance"] == pytest.approx(1400.0)
    assert c1["max_days_overdue"] == 149
    wide = features_as_of(engine, SEED.AS_OF)
    assert wide.loc[p.ids["C001"], "open_orders_amount"] == pytest.approx(600.0)
    assert wide.loc[p.ids["C001"], "exposure"] == pytest.approx(3000.0)


def test_assess_step_without_a_model_or_history_reports_it(engine: Engine) -> None:
    SEED.seed(str(engine.url.render_as_string(hide_password=False)))
    out = step.run(engine, SEED.AS_OF)
    assert out["status"] == "no_model"
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Assessment)) == 0


def test_assess_step_scores_stores_history_and_is_idempotent(engine: Engine) -> None:
    p = SEED.seed(str(engine.url.render_as_string(hide_password=False)))
    art = small_model()
    with session_scope(engine) as s:
        register_model(s, art, actor="tester")
    out = step.run(engine, SEED.AS_OF)
    assert out["status"] == "scored" and out["customers"] == len(p.ids)
    again = step.run(engine, SEED.AS_OF)  # same date and model: replaced, not doubled
    assert again["customers"] == out["customers"]
    step.run(engine, date(2026, 7, 31))
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Assessment)) == 2 * len(p.ids)
        a = latest_assessment(s, p.ids["C001"])
        assert a is not None and a.as_of == date(2026, 7, 31)
        assert a.model_version == art["model_version"]
        assert 1 <= a.grade <= 10 and 0 < a.pd < 1
        assert float(a.el) == pytest.approx(float(a.ead) * float(a.lgd) * a.pd, abs=0.01)
        assert float(a.ead) == pytest.approx(3000.0)  # open balance + open order
        actions = set(s.scalars(select(AuditEntry.action)))
        assert {"model.register", "model.activate", "assessment.batch"} <= actions
