"""The rule interpreter: operators, validation messages, points and thresholds."""

from __future__ import annotations

import math
from typing import Any

import pytest

from riskdesk.monitor.rules import Engine, RuleError, default_rule_set, parse_rule_set


def _rule(when: dict[str, Any], **kw: Any) -> dict[str, Any]:
    base = {
        "id": kw.pop("id", "r"),
        "title": {"en": "t", "zh": "标"},
        "playbook": {"en": "p", "zh": "处"},
        "when": when,
    }
    if "points" not in kw:
        base["severity"] = "high"
    base.update(kw)
    return base


def _fires(
    when: dict[str, Any],
    state: dict[str, Any],
    prev: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
) -> bool:
    eng = Engine.from_json({"rules": [_rule(when)]})
    scope = {"state": state, "prev": prev or {}, "event": event or {"type": "order.placed"}}
    return bool(eng.evaluate(scope))


def test_comparisons_and_boolean_combinators() -> None:
    s = {"overdue_balance": 100.0, "max_days_overdue": 40.0}
    assert _fires({"field": "state.overdue_balance", "op": ">=", "value": 100}, s)
    assert not _fires({"field": "state.overdue_balance", "op": ">", "value": 100}, s)
    both = {
        "all": [
            {"field": "state.overdue_balance", "op": ">", "value": 50},
            {"field": "state.max_days_overdue", "op": "<", "value": 30},
        ]
    }
    assert not _fires(both, s)
    assert _fires({"any": both["all"]}, s)
    assert _fires({"not": both}, s)


def test_in_changed_increased_by_and_crosses_above() -> None:
    ev = {"type": "contract.breached", "clause": "minimum_volume"}
    assert _fires(
        {"field": "event.clause", "op": "in", "value": ["minimum_volume", "x"]}, {}, event=ev
    )
    assert not _fires(
        {"field": "event.clause", "op": "not_in", "value": ["minimum_volume"]}, {}, event=ev
    )
    assert _fires(
        {"field": "state.bureau_score", "op": "changed"},
        {"bureau_score": 500.0},
        {"bureau_score": 600.0},
    )
    assert not _fires(
        {"field": "state.bureau_score", "op": "changed"},
        {"bureau_score": 500.0},
        {"bureau_score": 500.0},
    )
    inc = {"field": "state.overdue_balance", "op": "increased_by", "value": 1000}
    assert _fires(inc, {"overdue_balance": 1500.0}, {"overdue_balance": 400.0})
    assert not _fires(inc, {"overdue_balance": 1300.0}, {"overdue_balance": 400.0})
    cross = {"field": "state.max_days_overdue", "op": "crosses_above", "value": 31}
    assert _fires(cross, {"max_days_overdue": 31.0}, {"max_days_overdue": 30.0})
    assert not _fires(cross, {"max_days_overdue": 45.0}, {"max_days_overdue": 40.0})


def test_field_reference_with_factor_and_missing_values() -> None:
    big = {
        "field": "event.amount_ccy",
        "op": ">=",
        "value": {"field": "state.open_invoice_balance", "times": 0.5},
    }
    assert _fires(
        big, {"open_invoice_balance": 1000.0}, event={"type": "order.placed", "amount_ccy": 500.0}
    )
    assert not _fires(
        big, {"open_invoice_balance": 1000.0}, event={"type": "order.placed", "amount_ccy": 499.0}
    )
    # NaN (no payments yet) never satisfies a comparison
    assert not _fires(
        {"field": "state.dbt_wavg_paid_180d", "op": ">", "value": 0},
        {"dbt_wavg_paid_180d": math.nan},
    )
    assert not _fires(
        {"field": "state.dbt_wavg_paid_180d", "op": "exists"}, {"dbt_wavg_paid_180d": math.nan}
    )


def test_points_add_up_to_a_severity() -> None:
    body = {
        "thresholds": {"medium": 40, "high": 70},
        "rules": [
            _rule({"field": "state.overdue_balance", "op": ">", "value": 0}, id="a", points=30),
            _rule({"field": "state.max_days_overdue", "op": ">", "value": 10}, id="b", points=45),
        ],
    }
    eng = Engine.from_json(body)
    hits = eng.evaluate(
        {"state": {"overdue_balance": 1.0, "max_days_overdue": 20.0}, "event": {"type": "x"}}
    )
    assert [(h.rule_id, h.severity.value, h.points) for h in hits] == [("points_total", "high", 75)]
    hits = eng.evaluate(
        {"state": {"overdue_balance": 1.0, "max_days_overdue": 0.0}, "event": {"type": "x"}}
    )
    assert hits == []  # 30 points stay below the lowest threshold


def test_event_filter_limits_a_rule_to_some_event_types() -> None:
    eng = Engine.from_json(
        {
            "rules": [
                _rule(
                    {"field": "state.overdue_balance", "op": ">", "value": 0},
                    events=["order.placed"],
                )
            ]
        }
    )
    state = {"overdue_balance": 5.0}
    assert eng.evaluate({"state": state, "event": {"type": "order.placed"}})
    assert not eng.evaluate({"state": state, "event": {"type": "payment.received"}})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (_rule({"field": "state.nope", "op": ">", "value": 1}), "unknown field 'state.nope'"),
        (
            _rule({"field": "state.overdue_balance", "op": "matches", "value": 1}),
            "unknown operator 'matches'",
        ),
        (
            _rule({"field": "state.overdue_balance", "op": ">", "value": 1, "all": []}),
            "exactly one of",
        ),
        (_rule({"field": "event.type", "op": "in", "value": "x"}), "needs a list"),
        (
            _rule(
                {"field": "state.overdue_balance", "op": ">", "value": 1}, points=5, severity="high"
            ),
            "exactly one of 'severity' or 'points'",
        ),
        (
            _rule(
                {"field": "state.overdue_balance", "op": ">", "value": 1}, events=["order.exploded"]
            ),
            "unknown event type",
        ),
        (
            _rule(
                {"field": "state.overdue_balance", "op": ">", "value": 1}, code="__import__('os')"
            ),
            "Extra inputs",
        ),
    ],
)
def test_invalid_rules_are_refused_with_a_clear_message(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_rule_set({"rules": [rule]})


def test_default_rule_set_is_valid_and_bilingual() -> None:
    body = parse_rule_set(default_rule_set())
    assert len(body.rules) >= 10
    assert all(r.playbook["zh"] and r.playbook["en"] for r in body.rules)
