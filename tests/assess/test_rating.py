"""Rating decision rules: notching, cap, overrides, approvals, review dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from riskdesk.assess import rating as rt
from riskdesk.assess.scale import grade_info

ON = date(2026, 11, 30)


def test_override_without_reason_is_refused() -> None:
    with pytest.raises(rt.RatingError, match="reason"):
        rt.propose(
            base_grade=4,
            base_source="model",
            on=ON,
            override_notches=1,
            override_expires=ON + timedelta(days=30),
        )
    with pytest.raises(rt.RatingError, match="reason"):
        rt.propose(
            base_grade=4,
            base_source="model",
            on=ON,
            override_notches=1,
            override_reason="  ",
            override_expires=ON + timedelta(days=30),
        )


def test_override_needs_a_future_expiry() -> None:
    with pytest.raises(rt.RatingError, match="expiry"):
        rt.propose(
            base_grade=4, base_source="model", on=ON, override_notches=1, override_reason="new info"
        )
    with pytest.raises(rt.RatingError, match="future"):
        rt.propose(
            base_grade=4,
            base_source="model",
            on=ON,
            override_notches=1,
            override_reason="new info",
            override_expires=ON,
        )


def test_moves_within_the_cap_need_no_risk_manager_beyond_it_they_do() -> None:
    small = rt.propose(
        base_grade=4,
        base_source="model",
        on=ON,
        qualitative_notches=1,
        override_notches=1,
        override_reason="x",
        override_expires=ON + timedelta(days=30),
    )
    assert small.final_grade == 6 and not small.needs_risk_manager
    big = rt.propose(
        base_grade=4,
        base_source="model",
        on=ON,
        qualitative_notches=1,
        override_notches=2,
        override_reason="x",
        override_expires=ON + timedelta(days=30),
    )
    assert big.final_grade == 7 and big.needs_risk_manager
    with pytest.raises(rt.RatingError, match="risk manager"):
        rt.check_approval(
            proposed_by="ana",
            approver="bob",
            approver_role="analyst",
            needs_risk_manager=True,
            status="proposed",
        )
    rt.check_approval(
        proposed_by="ana",
        approver="rita",
        approver_role="risk_manager",
        needs_risk_manager=True,
        status="proposed",
    )


def test_proposer_cannot_approve_and_sales_cannot_approve() -> None:
    with pytest.raises(rt.RatingError, match="proposer"):
        rt.check_approval(
            proposed_by="rita",
            approver="rita",
            approver_role="risk_manager",
            needs_risk_manager=False,
            status="proposed",
        )
    with pytest.raises(rt.RatingError, match="may not approve"):
        rt.check_approval(
            proposed_by="ana",
            approver="sam",
            approver_role="sales",
            needs_risk_manager=False,
            status="proposed",
        )
    with pytest.raises(rt.RatingError, match="only a proposed"):
        rt.check_approval(
            proposed_by="ana",
            approver="rita",
            approver_role="risk_manager",
            needs_risk_manager=False,
            status="approved",
        )


def test_expired_override_falls_back_to_the_grade_without_it() -> None:
    p = rt.propose(
        base_grade=3,
        base_pd=0.004,
        base_source="model",
        on=ON,
        qualitative_notches=1,
        override_notches=2,
        override_reason="fraud alert",
        override_expires=ON + timedelta(days=60),
    )
    args = dict(
        base_grade=3,
        base_pd=0.004,
        qualitative_notches=1,
        override_notches=2,
        override_expires=p.override_expires,
        final_grade=p.final_grade,
        final_pd=p.final_pd,
        valid_until=p.valid_until,
    )
    during = rt.effective(on=ON + timedelta(days=59), **args)  # type: ignore[arg-type]
    assert during.grade == 6 and during.override_active
    after = rt.effective(on=ON + timedelta(days=60), **args)  # type: ignore[arg-type]
    assert after.grade == 4 and not after.override_active
    assert after.pd == grade_info(4).pd_mid


def test_unmoved_grade_keeps_the_model_pd_and_review_date_depends_on_risk() -> None:
    p = rt.propose(base_grade=2, base_pd=0.002, base_source="model", on=ON)
    assert p.final_pd == 0.002
    assert p.valid_until == date(2027, 11, 30)  # low risk: 12 months
    assert rt.propose(base_grade=5, base_source="model", on=ON).valid_until == date(2027, 5, 30)
    assert rt.propose(base_grade=8, base_source="model", on=ON).valid_until == date(2027, 2, 28)
    policy = rt.RatingPolicy(review_months_high=1)
    assert rt.propose(base_grade=8, base_source="model", on=ON, policy=policy).valid_until == date(
        2026, 12, 30
    )


def test_grades_stay_on_the_scale() -> None:
    assert (
        rt.propose(base_grade=10, base_source="model", on=ON, qualitative_notches=2).final_grade
        == 10
    )
    with pytest.raises(rt.RatingError):
        rt.propose(base_grade=11, base_source="model", on=ON)
