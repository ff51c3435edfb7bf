"""The compiled rule engine (predicates, rules indexed by event type, shared hits) gives the
same hits as a plain interpreter of the documented semantics, on random rule sets and scopes."""

from __future__ import annotations

import math
import operator
import random
from typing import Any

import pytest

from riskdesk.domain.events import Severity
from riskdesk.monitor.events import DERIVED_TYPES, EVENT_TYPES
from riskdesk.monitor.rules import (
    CUSTOMER_FIELDS,
    EVENT_FIELDS,
    POINTS_RULE,
    RATING_FIELDS,
    Condition,
    Engine,
    RuleSetBody,
    default_rule_set,
    parse_rule_set,
)
from riskdesk.monitor.state import FEATURES

# ----------------------------------------------------------------- the reference interpreter

_MISSING = object()
_CMP = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _get(scope: dict[str, Any], name: str) -> Any:
    ns, _, attr = name.partition(".")
    v = scope.get(ns, {}).get(attr, _MISSING)
    if isinstance(v, float) and math.isnan(v):
        return _MISSING
    return v


def _num(v: Any) -> float | None:
    if v is _MISSING or v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _holds(c: Condition, s: dict[str, Any]) -> bool:
    if c.all is not None:
        return all(_holds(x, s) for x in c.all)
    if c.any is not None:
        return any(_holds(x, s) for x in c.any)
    if c.not_ is not None:
        return not _holds(c.not_, s)
    assert c.field is not None and c.op is not None
    a = _get(s, c.field)
    prev = "prev." + c.field.partition(".")[2]
    if c.op == "exists":
        return a is not _MISSING
    if c.op == "changed":
        return bool(a != _get(s, prev))
    if c.op == "increased_by":
        x, y = _num(a), _num(_get(s, prev))
        return x is not None and x - (y or 0.0) >= float(c.value)
    if c.op == "crosses_above":
        x, y = _num(a), _num(_get(s, prev))
        k = float(c.value)
        return x is not None and x >= k and (y is None or y < k)
    if c.op in ("in", "not_in"):
        return (a in c.value) != (c.op == "not_in")
    fn = _CMP[c.op]
    if isinstance(c.value, dict):
        x, y = _num(a), _num(_get(s, c.value["field"]))
        return x is not None and y is not None and fn(x, y * c.value.get("times", 1.0))
    if isinstance(c.value, int | float) and not isinstance(c.value, bool):
        x = _num(a)
        return x is not None and fn(x, float(c.value))
    if a is _MISSING:
        return False
    try:
        return bool(fn(a, c.value))
    except TypeError:
        return False


def _reference(body: RuleSetBody, scope: dict[str, Any]) -> list[tuple[Any, ...]]:
    etype = scope.get("event", {}).get("type")
    out: list[tuple[Any, ...]] = []
    total, contributing = 0, []
    for r in body.rules:
        if not r.enabled or (r.events and etype not in r.events) or not _holds(r.when, scope):
            continue
        if r.points is not None:
            total += r.points
            contributing.append(r.id)
        else:
            out.append((r.id, r.severity, 0, {"event": etype}))
    for limit, sev in sorted(((v, k) for k, v in body.thresholds.items()), reverse=True):
        if total and total >= limit:
            out.append((POINTS_RULE, sev, total, {"event": etype, "rules": contributing}))
            break
    return out


# ----------------------------------------------------------------- random rule sets and scopes

TYPES = (*EVENT_TYPES, *DERIVED_TYPES)
NUMS = (0, 1, 15, 30.5, 31, 61, 100, -5)
STRS = ("EUR", "retail", "north", "B", "contract.breached", "order.placed", "minimum_volume")
FIELDS = (
    [f"state.{f}" for f in FEATURES]
    + [f"prev.{f}" for f in FEATURES]
    + [f"event.{f}" for f in EVENT_FIELDS]
    + [f"customer.{f}" for f in CUSTOMER_FIELDS]
    + [f"rating.{f}" for f in RATING_FIELDS]
)


def _leaf(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.2:  # the comparisons the engine indexes rules by
        if rng.random() < 0.5:
            return {"field": "event.type", "op": "==", "value": rng.choice(TYPES)}
        return {"field": "event.type", "op": "in", "value": rng.sample(TYPES, rng.randint(1, 3))}
    op = rng.choice(("exists", "changed", "increased_by", "crosses_above", "in", "not_in", *_CMP))
    if op in ("changed", "increased_by", "crosses_above"):
        field = "state." + rng.choice(FEATURES)
    else:
        field = rng.choice(FIELDS)
    leaf: dict[str, Any] = {"field": field, "op": op}
    if op in ("increased_by", "crosses_above"):
        leaf["value"] = rng.choice(NUMS)
    elif op in ("in", "not_in"):
        leaf["value"] = rng.sample(STRS + NUMS, rng.randint(1, 3))
    elif op != "exists" and op != "changed":
        r = rng.random()
        if r < 0.5:
            leaf["value"] = rng.choice(NUMS)
        elif r < 0.7:
            leaf["value"] = {"field": rng.choice(FIELDS), "times": rng.choice((0.5, 1.0, 2))}
        elif r < 0.85:
            leaf["value"] = rng.choice(STRS)
        else:
            leaf["value"] = rng.choice((True, False))
    return leaf


def _cond(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    r = rng.random()
    if depth < 3 and r < 0.2:
        return {"all": [_cond(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 3 and r < 0.35:
        return {"any": [_cond(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 3 and r < 0.42:
        return {"not": _cond(rng, depth + 1)}
    return _leaf(rng)


def _rule_set(rng: random.Random) -> dict[str, Any]:
    rules = []
    for i in range(rng.randint(1, 10)):
        rule: dict[str, Any] = {
            "id": f"r{i}",
            "title": {"en": "t", "zh": "标"},
            "playbook": {"en": "p", "zh": "处"},
            "when": _cond(rng),
            "enabled": rng.random() < 0.9,
        }
        if rng.random() < 0.5:
            rule["points"] = rng.choice((10, 25, 40))
        else:
            rule["severity"] = rng.choice([s.value for s in Severity])
        if rng.random() < 0.3:
            rule["events"] = rng.sample(TYPES, rng.randint(1, 3))
        rules.append(rule)
    return {"thresholds": {"medium": 30, "high": 60, "critical": 90}, "rules": rules}


def _value(rng: random.Random) -> Any:
    return rng.choice((*NUMS, 31.0, 60.0, 61.0, math.nan, None, True, "12", "x", *STRS))


def _scope(rng: random.Random) -> dict[str, Any]:
    def feats() -> dict[str, Any]:
        return {f: rng.choice((0.0, 15.0, 31.0, 61.0, 100.0, math.nan)) for f in FEATURES}

    state = feats()
    prev = state if rng.random() < 0.2 else feats()
    event: dict[str, Any] = {"type": rng.choice((*TYPES, "x"))}
    for f in EVENT_FIELDS[1:]:
        if rng.random() < 0.4:
            event[f] = _value(rng)
    scope: dict[str, Any] = {"state": state, "prev": prev, "event": event}
    if rng.random() < 0.8:
        scope["customer"] = {f: rng.choice(STRS + (None,)) for f in CUSTOMER_FIELDS}
    if rng.random() < 0.5:
        scope["rating"] = {"grade": rng.choice(("A", "B", "C")), "pd": rng.random()}
    return scope


def _hits(engine: Engine, scope: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(h.rule_id, h.severity, h.points, h.details) for h in engine.evaluate(scope)]


@pytest.mark.parametrize("seed", range(8))
def test_compiled_engine_agrees_with_the_reference_interpreter(seed: int) -> None:
    rng = random.Random(seed)
    fired = 0
    for _ in range(40):
        body = parse_rule_set(_rule_set(rng))
        engine = Engine(body)
        for _ in range(60):
            scope = _scope(rng)
            want = _reference(body, scope)
            assert _hits(engine, scope) == want, (body.model_dump(), scope)
            assert _hits(engine, scope) == want  # again: the shared hits are still the same
            fired += bool(want)
    assert fired > 100  # the random rules do fire


def test_default_rules_agree_with_the_reference_interpreter() -> None:
    rng = random.Random(3)
    body = parse_rule_set(default_rule_set())
    engine = Engine(body)
    kinds: set[str] = set()
    for _ in range(3000):
        scope = _scope(rng)
        want = _reference(body, scope)
        assert _hits(engine, scope) == want, scope
        kinds.update(h[0] for h in want)
    assert {"overdue_31", "bureau_drop", "contract_breach", POINTS_RULE} <= kinds


def test_rules_are_indexed_by_the_event_types_they_can_fire_on() -> None:
    body = parse_rule_set(
        {
            "rules": [
                {
                    "id": "breach",
                    "severity": "high",
                    "title": {"en": "t", "zh": "标"},
                    "playbook": {"en": "p", "zh": "处"},
                    "when": {
                        "all": [
                            {"field": "event.type", "op": "==", "value": "contract.breached"},
                            {"field": "state.overdue_balance", "op": ">", "value": 0},
                        ]
                    },
                }
            ]
        }
    )
    engine = Engine(body)
    assert [r for _, r, _, _ in engine._plans["contract.breached"]] == ["breach"]
    assert engine._plans["order.placed"] == ()
    state = {"overdue_balance": 1.0}
    assert engine.evaluate({"state": state, "event": {"type": "contract.breached"}})
    assert not engine.evaluate({"state": state, "event": {"type": "order.placed"}})
    # one shared hit per rule and event type
    scope = {"state": state, "event": {"type": "contract.breached"}}
    (first,) = engine.evaluate(scope)
    assert engine.evaluate(scope)[0] is first
    assert first.details == {"event": "contract.breached"} and first.severity == "high"
