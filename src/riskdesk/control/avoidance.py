"""Avoidance: a policy table by grade (payment terms, prepayment, guarantees, clauses).

Applied when orders are checked (e.g. grades 9–10 → prepayment only) and when contracts are
reviewed (:func:`review_contract` lists every way a contract is looser than the policy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class AvoidanceRule:
    grade_from: int
    grade_to: int
    max_payment_terms_days: int | None = None
    prepayment_share: Decimal = Decimal("0")
    guarantee_required: bool = False
    clauses: tuple[str, ...] = ()
    order_decision: str | None = None
    """The ladder rung this policy imposes on every order (``None`` = none)."""

    def covers(self, grade: int) -> bool:
        return self.grade_from <= grade <= self.grade_to


DEFAULT_POLICY: tuple[AvoidanceRule, ...] = (
    AvoidanceRule(1, 4, 60, Decimal("0"), False, ()),
    AvoidanceRule(5, 6, 45, Decimal("0"), False, ("retention_of_title",)),
    AvoidanceRule(7, 8, 30, Decimal("0.30"), True, ("retention_of_title", "late_interest")),
    AvoidanceRule(
        9,
        10,
        0,
        Decimal("1"),
        True,
        ("retention_of_title", "late_interest", "prepayment"),
        "prepayment_only",
    ),
)
"""A sensible starting table; replaced by the rows of ``control_avoidance_rules`` when set."""


def rule_for(grade: int | None, table: Sequence[AvoidanceRule]) -> AvoidanceRule | None:
    """The first rule that covers ``grade`` (``None`` for unrated customers)."""
    if grade is None:
        return None
    return next((r for r in table if r.covers(grade)), None)


@dataclass(frozen=True)
class ContractTerms:
    contract_id: int
    customer_id: int
    payment_terms_days: int
    clauses: tuple[str, ...] = ()


@dataclass(frozen=True)
class TermsGap:
    contract_id: int
    customer_id: int
    grade: int
    problems: list[dict[str, Any]] = field(default_factory=list)


def review_contract(terms: ContractTerms, grade: int, rule: AvoidanceRule) -> TermsGap | None:
    """Every way ``terms`` are looser than ``rule``; ``None`` when the contract complies."""
    problems: list[dict[str, Any]] = []
    if rule.max_payment_terms_days is not None and (
        terms.payment_terms_days > rule.max_payment_terms_days
    ):
        problems.append(
            {
                "code": "payment_terms",
                "contract": terms.payment_terms_days,
                "policy": rule.max_payment_terms_days,
            }
        )
    have = set(terms.clauses)
    for clause in rule.clauses:
        if clause not in have:
            problems.append({"code": "missing_clause", "clause": clause})
    if rule.guarantee_required and not have & {"guarantee", "letter_of_credit"}:
        problems.append({"code": "guarantee_required"})
    if not problems:
        return None
    return TermsGap(terms.contract_id, terms.customer_id, grade, problems)
