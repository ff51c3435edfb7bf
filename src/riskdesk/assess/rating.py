"""Rating decision rules (pure): combine a base grade with qualitative notches and an
optional override, enforce the notch cap and approval rules, and set the review date.

* The base grade comes from the quantitative model or, where there is none, the expert
  scorecard.
* Qualitative notches come from the expert consensus (:func:`riskdesk.assess.expert.qualitative_notches`).
* An override moves the grade further; it needs a reason and an expiry date. When it has
  expired, the effective grade falls back to the grade without it.
* A total move of more than ``cap`` notches needs a risk manager's approval; nobody approves
  their own proposal.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date

from riskdesk.assess.scale import BEST, WORST, grade_info, notch

APPROVER_ROLES = frozenset({"risk_manager", "admin"})
"""Roles that may approve a move beyond the cap."""
RATING_ROLES = frozenset({"analyst", "risk_manager", "admin"})
"""Roles that may approve a rating within the cap."""
SYSTEM = "system"


class RatingError(ValueError):
    """A proposal or approval that the rules refuse."""


@dataclass(frozen=True)
class RatingPolicy:
    """Configurable rules. ``review_months`` maps the worst grade of a band to months."""

    cap: int = 2
    high_risk_from: int = 7
    medium_risk_from: int = 4
    review_months_high: int = 3
    review_months_medium: int = 6
    review_months_low: int = 12
    max_override_days: int = 366

    def risk_band(self, grade: int) -> str:
        if grade >= self.high_risk_from:
            return "high"
        if grade >= self.medium_risk_from:
            return "medium"
        return "low"

    def review_months(self, grade: int) -> int:
        return {
            "high": self.review_months_high,
            "medium": self.review_months_medium,
            "low": self.review_months_low,
        }[self.risk_band(grade)]


DEFAULT_POLICY = RatingPolicy()


def add_months(d: date, months: int) -> date:
    """``d`` plus ``months`` calendar months (day clipped to the month's length)."""
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


@dataclass(frozen=True)
class Proposal:
    """The outcome of :func:`propose`: the documented decision before approval."""

    base_source: str
    base_grade: int
    base_pd: float | None
    qualitative_notches: int
    override_notches: int
    override_reason: str | None
    override_expires: date | None
    final_grade: int
    final_pd: float
    needs_risk_manager: bool
    valid_until: date
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_notches(self) -> int:
        return self.qualitative_notches + self.override_notches


def pd_for(grade: int, base_grade: int, base_pd: float | None) -> float:
    """The PD a grade stands for: the model's own PD when the grade was not moved."""
    if grade == base_grade and base_pd is not None:
        return float(base_pd)
    return grade_info(grade).pd_mid


def propose(
    *,
    base_grade: int,
    base_source: str,
    on: date,
    base_pd: float | None = None,
    qualitative_notches: int = 0,
    override_notches: int = 0,
    override_reason: str | None = None,
    override_expires: date | None = None,
    policy: RatingPolicy = DEFAULT_POLICY,
) -> Proposal:
    """Build a rating proposal, refusing what the rules do not allow."""
    if not BEST <= base_grade <= WORST:
        raise RatingError(f"a base grade must be within {BEST}..{WORST}, got {base_grade}")
    if base_pd is not None and not 0.0 <= base_pd <= 1.0:
        raise RatingError(f"a PD must be within [0, 1], got {base_pd}")
    if override_notches:
        if not override_reason or not override_reason.strip():
            raise RatingError("an override needs a reason")
        if override_expires is None:
            raise RatingError("an override needs an expiry date")
        if override_expires <= on:
            raise RatingError("an override's expiry date must lie in the future")
        if (override_expires - on).days > policy.max_override_days:
            raise RatingError(f"an override may last at most {policy.max_override_days} days")
    else:
        override_reason = override_reason.strip() if override_reason else None
        override_expires = None
    final = notch(base_grade, qualitative_notches + override_notches)
    moved = final - base_grade
    notes = []
    needs_rm = abs(moved) > policy.cap or abs(qualitative_notches + override_notches) > policy.cap
    if needs_rm:
        notes.append(
            f"the grade moves {moved:+d} notches (cap ±{policy.cap}): a risk manager must approve"
        )
    return Proposal(
        base_source=base_source,
        base_grade=base_grade,
        base_pd=base_pd,
        qualitative_notches=qualitative_notches,
        override_notches=override_notches,
        override_reason=override_reason,
        override_expires=override_expires,
        final_grade=final,
        final_pd=pd_for(final, base_grade, base_pd),
        needs_risk_manager=needs_rm,
        valid_until=add_months(on, policy.review_months(final)),
        notes=tuple(notes),
    )


def check_approval(
    *,
    proposed_by: str,
    approver: str,
    approver_role: str,
    needs_risk_manager: bool,
    status: str,
) -> None:
    """Refuse an approval the rules do not allow (raises :class:`RatingError`)."""
    if status != "proposed":
        raise RatingError(f"only a proposed rating can be approved (this one is {status})")
    if approver == proposed_by:
        raise RatingError("the proposer cannot approve their own rating")
    if needs_risk_manager and approver_role not in APPROVER_ROLES:
        raise RatingError(
            "this rating moves beyond the notch cap: only a risk manager may approve it"
        )
    if approver_role not in RATING_ROLES:
        raise RatingError(f"role {approver_role!r} may not approve ratings")


@dataclass(frozen=True)
class Effective:
    """The rating in force on a date."""

    grade: int
    pd: float
    override_active: bool
    review_due: bool


def effective(
    *,
    base_grade: int,
    base_pd: float | None,
    qualitative_notches: int,
    override_notches: int,
    override_expires: date | None,
    final_grade: int,
    final_pd: float,
    valid_until: date,
    on: date,
) -> Effective:
    """The grade in force on ``on``: an expired override falls back to the grade without it."""
    expired = bool(override_notches) and override_expires is not None and on >= override_expires
    if expired:
        grade = notch(base_grade, qualitative_notches)
        return Effective(grade, pd_for(grade, base_grade, base_pd), False, on > valid_until)
    return Effective(final_grade, final_pd, bool(override_notches), on > valid_until)
