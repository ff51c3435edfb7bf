"""Declarative alert rules: JSON rule sets validated with pydantic, run by a small interpreter.

A rule set::

    {"thresholds": {"medium": 40, "high": 70, "critical": 100},
     "rules": [{"id": "overdue_61", "severity": "high",
                "title": {"en": "…", "zh": "…"}, "playbook": {"en": "…", "zh": "…"},
                "events": ["clock.tick", "invoice.overdue"],            # optional filter
                "when": {"all": [{"field": "state.overdue_61_90", "op": ">", "value": 0}]}}]}

Conditions are ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` or a comparison
``{"field": F, "op": OP, "value": V}``. Fields are ``state.<feature>`` (after the event),
``prev.<feature>`` (before it), ``event.<name>``, ``customer.<attr>`` and ``rating.<attr>``.
Operators: ``> >= < <= == !=``, ``in``, ``not_in``, ``exists``, ``changed``
(``state.x`` differs from ``prev.x``), ``increased_by`` (``state.x − prev.x ≥ V``) and
``crosses_above`` (``prev.x < V ≤ state.x``). ``V`` may be a constant or
``{"field": G, "times": k}`` (another field scaled). A rule has a ``severity`` or ``points``;
the points of the rules that hold add up and ``thresholds`` turn the total into a severity
(alert ``points_total``). Nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from riskdesk.domain.events import SEVERITY_RANK, Severity
from riskdesk.monitor.events import DERIVED_TYPES, EVENT_TYPES
from riskdesk.monitor.state import FEATURES

COMPARE_OPS = (">", ">=", "<", "<=", "==", "!=")
OPS = COMPARE_OPS + ("in", "not_in", "exists", "changed", "increased_by", "crosses_above")
EVENT_FIELDS = (
    "type",
    "amount",
    "amount_ccy",
    "currency",
    "days_overdue",
    "score",
    "previous_score",
    "clause",
    "code",
    "value",
    "disputed",
    "invoice_id",
    "order_id",
)
CUSTOMER_FIELDS = ("industry", "region", "country", "status", "owner", "currency")
RATING_FIELDS = ("grade", "pd")
POINTS_RULE = "points_total"


class RuleError(ValueError):
    """A rule or rule set that is not valid; the message says where and why."""


def check_field(name: str) -> str:
    ns, _, attr = name.partition(".")
    allowed: dict[str, tuple[str, ...]] = {
        "state": FEATURES,
        "prev": FEATURES,
        "event": EVENT_FIELDS,
        "customer": CUSTOMER_FIELDS,
        "rating": RATING_FIELDS,
    }
    if ns not in allowed:
        raise ValueError(
            f"unknown field {name!r}: use state.*, prev.*, event.*, customer.* or rating.*"
        )
    if attr not in allowed[ns]:
        raise ValueError(f"unknown field {name!r}; {ns}.* knows: {', '.join(allowed[ns])}")
    return name


class FieldRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    field: str
    times: float = 1.0

    @field_validator("field")
    @classmethod
    def _known(cls, v: str) -> str:
        return check_field(v)


class Condition(BaseModel):
    """One node of a rule's condition tree."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")
    field: str | None = None
    op: str | None = None
    value: Any = None

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        shapes = [
            self.all is not None,
            self.any is not None,
            self.not_ is not None,
            self.field is not None,
        ]
        if sum(shapes) != 1:
            raise ValueError("a condition is exactly one of: all, any, not, or field/op/value")
        if self.all is not None and not self.all:
            raise ValueError("'all' needs at least one condition")
        if self.any is not None and not self.any:
            raise ValueError("'any' needs at least one condition")
        if self.field is not None:
            check_field(self.field)
            if self.op not in OPS:
                raise ValueError(f"unknown operator {self.op!r}; use one of: {', '.join(OPS)}")
            if self.op in ("changed", "increased_by", "crosses_above") and not (
                self.field.startswith("state.")
            ):
                raise ValueError(f"operator {self.op!r} needs a state.* field")
            if self.op in ("in", "not_in"):
                if not isinstance(self.value, list):
                    raise ValueError(f"operator {self.op!r} needs a list value")
            elif self.op in ("exists", "changed"):
                pass
            elif isinstance(self.value, dict):
                FieldRef.model_validate(self.value)
            elif self.value is None or isinstance(self.value, list):
                raise ValueError(f"operator {self.op!r} needs a single value")
            if self.op in ("increased_by", "crosses_above") and not isinstance(
                self.value, int | float
            ):
                raise ValueError(f"operator {self.op!r} needs a number")
        return self


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    title: dict[Literal["en", "zh"], str]
    playbook: dict[Literal["en", "zh"], str]
    when: Condition
    severity: Severity | None = None
    points: int | None = Field(default=None, ge=1, le=1000)
    events: list[str] | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _one_weight(self) -> Rule:
        if (self.severity is None) == (self.points is None):
            raise ValueError(f"rule {self.id!r}: give exactly one of 'severity' or 'points'")
        if self.id == POINTS_RULE:
            raise ValueError(f"{POINTS_RULE!r} is reserved for the points total")
        for lang in ("en", "zh"):
            if not self.title.get(lang) or not self.playbook.get(lang):
                raise ValueError(f"rule {self.id!r}: title and playbook need 'en' and 'zh'")
        for e in self.events or []:
            if e not in EVENT_TYPES and e not in DERIVED_TYPES:
                raise ValueError(
                    f"rule {self.id!r}: unknown event type {e!r}; use one of: "
                    + ", ".join(EVENT_TYPES + DERIVED_TYPES)
                )
        return self


class RuleSetBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: dict[Severity, int] = Field(default_factory=dict)
    points_playbook: dict[Literal["en", "zh"], str] | None = None
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique(self) -> RuleSetBody:
        seen: set[str] = set()
        for r in self.rules:
            if r.id in seen:
                raise ValueError(f"duplicate rule id {r.id!r}")
            seen.add(r.id)
        return self


def parse_rule_set(data: Any) -> RuleSetBody:
    """Validate a rule set (dict or JSON text); raise :class:`RuleError` with every problem."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise RuleError(f"not valid JSON: {exc}") from None
    try:
        return RuleSetBody.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors()[:10]:
            loc = ".".join(str(x) for x in err.get("loc", ()))
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            msgs.append(f"{loc}: {msg}" if loc else msg)
        raise RuleError("; ".join(msgs)) from None


def default_rule_set() -> dict[str, Any]:
    """The shipped default rule set for trade credit (``default_rules.json``)."""
    text = resources.files("riskdesk.monitor").joinpath("default_rules.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# --------------------------------------------------------------------------- interpreter

Scope = Mapping[str, Mapping[str, Any]]
Pred = Callable[[Scope], bool]
Parts = tuple[Mapping[str, Any], ...]
"""A scope's namespaces in the order of ``_NS``: what compiled predicates read."""
PartsPred = Callable[[Parts], bool]
_MISSING = object()
_EMPTY: Mapping[str, Any] = {}
_NS = {"state": 0, "prev": 1, "event": 2, "customer": 3, "rating": 4}


def _parts(scope: Scope) -> Parts:
    get = scope.get
    return (
        get("state", _EMPTY),
        get("prev", _EMPTY),
        get("event", _EMPTY),
        get("customer", _EMPTY),
        get("rating", _EMPTY),
    )


def _getter(name: str) -> Callable[[Parts], Any]:
    """A reader of the field ``name`` ("ns.attr", split once at compile time): the value,
    or ``_MISSING`` when it is absent or NaN."""
    ns, _, attr = name.partition(".")
    i = _NS[ns]

    def get(parts: Parts) -> Any:
        v = parts[i].get(attr, _MISSING)
        if v != v:  # NaN (the only value not equal to itself among field values)
            return _MISSING
        return v

    return get


def _num(v: Any) -> float | None:
    if type(v) is float:  # the common case: a feature value (NaN was already turned MISSING)
        return v
    if v is _MISSING or v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def compile_condition(c: Condition) -> Pred:
    """Turn a validated condition tree into a predicate over a scope (no eval)."""
    pred = _compile(c)
    return lambda scope: pred(_parts(scope))


def _compile(c: Condition) -> PartsPred:
    """A validated condition tree as a predicate over a scope's :data:`Parts` (each field's
    namespace resolved to a tuple index at compile time)."""
    if c.all is not None:
        parts = tuple(_compile(x) for x in c.all)
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            p0, p1 = parts
            return lambda v: p0(v) and p1(v)

        def all_(v: Parts) -> bool:
            for p in parts:
                if not p(v):
                    return False
            return True

        return all_
    if c.any is not None:
        parts = tuple(_compile(x) for x in c.any)
        if len(parts) == 1:
            return parts[0]

        def any_(v: Parts) -> bool:
            for p in parts:
                if p(v):
                    return True
            return False

        return any_
    if c.not_ is not None:
        inner = _compile(c.not_)
        return lambda v: not inner(v)
    assert c.field is not None and c.op is not None
    name, op, value = c.field, c.op, c.value
    ns, _, attr = name.partition(".")
    i = _NS[ns]
    get, get_prev = _getter(name), _getter("prev." + attr)
    if op == "exists":
        return lambda v: get(v) is not _MISSING
    if op == "changed":
        return lambda v: get(v) != get_prev(v)
    if op == "increased_by":
        k = float(value)

        def inc(v: Parts) -> bool:
            a, b = _num(get(v)), _num(get_prev(v))
            if a is None:
                return False
            return a - (b or 0.0) >= k

        return inc
    if op == "crosses_above":
        k = float(value)
        pi = _NS["prev"]

        def cross(v: Parts) -> bool:
            # get/get_prev and _num inlined (the hot path of every event): NaN and a missing
            # value count as no value, as in _getter
            a = v[i].get(attr, _MISSING)
            if type(a) is float:
                if a != a or a < k:
                    return False
            else:
                a = _num(a)
                if a is None or a < k:
                    return False
            b = v[pi].get(attr, _MISSING)
            if type(b) is float:
                return b != b or b < k
            b = _num(b)
            return b is None or b < k

        return cross
    if op in ("in", "not_in"):
        options = list(value)
        neg = op == "not_in"
        return lambda v: (get(v) in options) != neg
    fn = _CMP[op]
    if isinstance(value, dict):
        ref = FieldRef.model_validate(value)
        get_ref = _getter(ref.field)
        times = ref.times

        def cmp_ref(v: Parts) -> bool:
            a, b = _num(get(v)), _num(get_ref(v))
            return a is not None and b is not None and fn(a, b * times)

        return cmp_ref
    if isinstance(value, int | float) and not isinstance(value, bool):
        k = float(value)
        # the orderings, written out (a comparison with NaN is false: no value, as in _getter)
        if op == ">":

            def gt(v: Parts) -> bool:
                a = v[i].get(attr, _MISSING)
                if type(a) is float:
                    return a > k
                a = _num(a)
                return a is not None and a > k

            return gt
        if op == ">=":

            def ge(v: Parts) -> bool:
                a = v[i].get(attr, _MISSING)
                if type(a) is float:
                    return a >= k
                a = _num(a)
                return a is not None and a >= k

            return ge
        if op == "<":

            def lt(v: Parts) -> bool:
                a = v[i].get(attr, _MISSING)
                if type(a) is float:
                    return a < k
                a = _num(a)
                return a is not None and a < k

            return lt
        if op == "<=":

            def le(v: Parts) -> bool:
                a = v[i].get(attr, _MISSING)
                if type(a) is float:
                    return a <= k
                a = _num(a)
                return a is not None and a <= k

            return le

        def cmp_num(v: Parts) -> bool:
            a = v[i].get(attr, _MISSING)  # get() and _num inlined
            if type(a) is float:
                return a == a and fn(a, k)  # NaN: no value
            a = _num(a)
            return a is not None and fn(a, k)

        return cmp_num

    def cmp_any(v: Parts) -> bool:
        a = get(v)
        if a is _MISSING:
            return False
        try:
            return bool(fn(a, value))
        except TypeError:
            return False

    return cmp_any


@dataclass(frozen=True)
class Hit:
    """A rule that held for one customer on one event. The engine hands out the same
    instance for the same rule, event type (and contributing rules): never mutate
    ``details``."""

    rule_id: str
    severity: Severity
    points: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def types_of(c: Condition) -> frozenset[str] | None:
    """The event types for which ``c`` can hold, read from its ``event.type == X`` /
    ``event.type in [...]`` comparisons; None when it may hold for any type."""
    if c.all is not None:
        out: frozenset[str] | None = None
        for x in c.all:
            t = types_of(x)
            if t is not None:
                out = t if out is None else out & t
        return out
    if c.any is not None:
        sets = [types_of(x) for x in c.any]
        if any(t is None for t in sets):
            return None
        return frozenset().union(*sets)  # type: ignore[arg-type]
    if c.field == "event.type":
        if c.op == "==" and isinstance(c.value, str):
            return frozenset((c.value,))
        if c.op == "in" and all(isinstance(v, str) for v in c.value):
            return frozenset(c.value)
    return None


_Plan = tuple[tuple[PartsPred, str, int, Hit | None], ...]
_HIT_CACHE_MAX = 4096


@dataclass
class Engine:
    """A compiled rule set; :meth:`evaluate` is pure and cheap.

    Each enabled rule is compiled once into a predicate, and for every event type the
    rules that can hold for it (its ``events`` filter and the ``event.type`` comparisons of
    its condition allow that type) are listed in rule-set order: an event evaluates only
    those."""

    body: RuleSetBody
    version: int = 0
    _compiled: list[tuple[Rule, PartsPred, frozenset[str] | None, frozenset[str] | None]] = field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        self._compiled = [
            (
                r,
                _compile(r.when),
                frozenset(r.events) if r.events else None,
                types_of(r.when),
            )
            for r in self.body.rules
            if r.enabled
        ]
        self._thresholds = sorted(
            ((v, k) for k, v in self.body.thresholds.items()), key=lambda x: x[0], reverse=True
        )
        self._plans: dict[str, _Plan] = {t: self._plan(t) for t in (*EVENT_TYPES, *DERIVED_TYPES)}
        self._hits: dict[tuple[Any, ...], Hit | None] = {}

    def _plan(self, etype: Any) -> _Plan:
        """The rules that can hold for an event of type ``etype``: (predicate, id, points,
        hit): a rule with points has no hit of its own (0 points for a rule with a severity,
        whose hit is made here, once per plan)."""
        plan: list[tuple[PartsPred, str, int, Hit | None]] = []
        for r, pred, events, types in self._compiled:
            if (events is None or etype in events) and (types is None or etype in types):
                if r.points:
                    plan.append((pred, r.id, r.points, None))
                else:
                    assert r.severity is not None
                    plan.append((pred, r.id, 0, Hit(r.id, r.severity, 0, {"event": etype})))
        return tuple(plan)

    @classmethod
    def from_json(cls, data: Any, version: int = 0) -> Engine:
        return cls(parse_rule_set(data), version)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.body.rules if r.id == rule_id), None)

    def _points_hit(self, etype: Any, contributing: list[str], total: int) -> Hit | None:
        for limit, sev in self._thresholds:
            if total >= limit:
                return Hit(POINTS_RULE, sev, total, {"event": etype, "rules": contributing})
        return None

    def evaluate(self, scope: Scope) -> list[Hit]:
        """The hits of the rules on ``scope`` (``{"state", "prev", "event", "customer",
        "rating"}``; a missing namespace reads as empty)."""
        return self.evaluate_parts(_parts(scope))

    def evaluate_parts(self, parts: Parts) -> list[Hit]:
        """:meth:`evaluate` on the scope's namespaces given in order: (state, prev, event,
        customer, rating)."""
        etype = parts[2].get("type")
        plan = self._plans.get(etype) if type(etype) is str else None
        cache: dict[tuple[Any, ...], Hit | None] | None = self._hits
        if plan is None:  # a type no event has (tests, dry runs of odd scopes): no caching
            plan = self._plan(etype)
            cache = None
        hits: list[Hit] = []
        contributing: list[str] | None = None
        total = 0
        for pred, rule_id, points, hit in plan:
            if not pred(parts):
                continue
            if hit is not None:
                hits.append(hit)
                continue
            total += points
            if contributing is None:
                contributing = [rule_id]
            else:
                contributing.append(rule_id)
        if contributing is not None:
            if cache is None:
                ph = self._points_hit(etype, contributing, total)
            else:
                key = ("p", etype, *contributing)
                if key in cache:
                    ph = cache[key]
                else:
                    ph = self._points_hit(etype, contributing, total)
                    if len(cache) < _HIT_CACHE_MAX:
                        cache[key] = ph
            if ph is not None:
                hits.append(ph)
        return hits


def max_severity(values: list[str]) -> str:
    return max(values, key=lambda v: SEVERITY_RANK.get(v, 0)) if values else Severity.LOW.value
