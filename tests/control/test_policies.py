from datetime import date
from decimal import Decimal

import pytest

from riskdesk.control import concentration as conc
from riskdesk.control.avoidance import DEFAULT_POLICY, ContractTerms, review_contract, rule_for
from riskdesk.control.config import ApprovalConfig, ControlConfig, LimitPolicy
from riskdesk.control.insurance import InsuredBuyer, OverdueInvoice, PolicyTerms, insurer_tasks
from riskdesk.control.limits import ApprovalRefused, check_approval, policy_limit

D = Decimal


def test_policy_limit_takes_the_tightest_of_size_loss_appetite_and_cap() -> None:
    p = LimitPolicy()
    by_size = policy_limit(p, grade=3, pd=0.001, revenue=D("1000000"))
    assert by_size.amount == D("80000")  # 8 % of revenue; EL bound is 11.1 M
    by_el = policy_limit(p, grade=3, pd=0.05, revenue=D("100000000"))
    assert by_el.amount == D("222000")  # 5000 / (0.05 × 0.45) = 222 222 → rounded down
    assert policy_limit(p, grade=9, pd=0.3, revenue=D("1000000")).amount == 0
    assert policy_limit(p, grade=None, pd=None, revenue=None).amount == p.default_limit_unrated
    assert policy_limit(p, grade=1, pd=0.0001, revenue=D("1e12")).amount == p.max_limit


def test_maker_checker_refuses_self_approval_and_needs_risk_manager_for_large_increase() -> None:
    cfg = ApprovalConfig(risk_manager_threshold=D("100000"))
    with pytest.raises(ApprovalRefused, match="own request"):
        check_approval(
            cfg,
            requester="ann",
            approver="ann",
            approver_role="risk_manager",
            current=D("0"),
            requested=D("10"),
        )
    with pytest.raises(ApprovalRefused, match="risk_manager"):
        check_approval(
            cfg,
            requester="ann",
            approver="bob",
            approver_role="analyst",
            current=D("50000"),
            requested=D("200000"),
        )
    check_approval(
        cfg,
        requester="ann",
        approver="bob",
        approver_role="analyst",
        current=D("50000"),
        requested=D("120000"),
    )
    check_approval(
        cfg,
        requester="ann",
        approver="cat",
        approver_role="risk_manager",
        current=D("50000"),
        requested=D("900000"),
    )
    with pytest.raises(ApprovalRefused):
        check_approval(
            cfg,
            requester="ann",
            approver="sam",
            approver_role="sales",
            current=D("0"),
            requested=D("1"),
        )


def test_config_merges_overrides_and_refuses_unknown_keys() -> None:
    cfg = ControlConfig.from_json(
        {
            "ladder": {"watch_utilisation": "0.7", "decision_for": {"unrated": "watch"}},
            "limit_basis": "gross",
        }
    )
    assert cfg.ladder.watch_utilisation == D("0.7")
    assert cfg.ladder.decision_for["unrated"] == "watch"
    assert cfg.ladder.decision_for["blocklist"] == "stop"
    assert cfg.limit_basis == "gross"
    with pytest.raises(ValueError):
        ControlConfig.from_json({"ladder": {"nope": 1}})
    with pytest.raises(ValueError):
        ControlConfig.from_json({"ladder": {"decision_for": {"unrated": "maybe"}}})
    again = ControlConfig.from_json(cfg.to_json())
    assert again.ladder.watch_utilisation == D("0.7")


ROWS = [
    conc.ExposureRow(1, D("600"), "g1", "steel", "north", "DE"),
    conc.ExposureRow(2, D("200"), "g1", "steel", "south", "DE"),
    conc.ExposureRow(3, D("100"), "g2", "food", "south", "FR"),
    conc.ExposureRow(4, D("100"), "g3", "food", "south", "FR"),
]


def test_concentration_shares_hhi_and_lorenz() -> None:
    c = conc.concentration(ROWS, "customer")
    assert c.shares["1"] == D("0.6")
    assert c.hhi == pytest.approx(0.36 + 0.04 + 0.01 + 0.01)
    assert c.top_n_share[1] == D("0.6")
    assert c.lorenz_x[0] == 0 and c.lorenz_y[-1] == pytest.approx(1.0)
    assert 0 < c.gini < 1
    even = conc.concentration([conc.ExposureRow(i, D("5")) for i in range(4)], "customer")
    assert even.gini == pytest.approx(0.0) and even.hhi == pytest.approx(0.25)
    assert conc.concentration(ROWS, "industry").shares == {"steel": D("0.8"), "food": D("0.2")}


def test_concentration_breaches_for_a_key_and_for_every_key() -> None:
    rules = [
        conc.ConcentrationRule(1, "industry", "steel", D("0.5")),
        conc.ConcentrationRule(2, "customer", None, D("0.3")),
        conc.ConcentrationRule(3, "country", "FR", D("0.5")),
    ]
    got = {(b.rule_id, b.key) for b in conc.breaches(ROWS, rules)}
    assert got == {(1, "steel"), (2, "1")}


def test_insurer_task_due_before_the_reporting_deadline() -> None:
    pol = PolicyTerms(1, "Atradius", 60)
    buyers = [InsuredBuyer(10, 1, 100), InsuredBuyer(11, 1, 101)]
    overdue = [
        OverdueInvoice(5, 10, date(2026, 5, 1)),
        OverdueInvoice(6, 10, date(2026, 4, 1)),
        OverdueInvoice(7, 12, date(2026, 4, 1)),
    ]
    (t,) = insurer_tasks(buyers, [pol], overdue, date(2026, 5, 10), lead_days=10)
    assert t.kind == "report_to_insurer" and t.customer_id == 10
    assert t.deadline == date(2026, 5, 31) and t.due_date == date(2026, 5, 21)
    assert t.cause_id == 6 and not t.late
    (late,) = insurer_tasks(buyers, [pol], overdue, date(2026, 6, 5), lead_days=10)
    assert late.late and late.due_date == date(2026, 6, 5)


def test_insured_limit_running_out_asks_for_renewal() -> None:
    pol = PolicyTerms(1, "Allianz Trade", 60)
    buyers = [InsuredBuyer(10, 1, 100, valid_until=date(2026, 6, 15))]
    (t,) = insurer_tasks(buyers, [pol], [], date(2026, 6, 1), lead_days=10)
    assert t.kind == "take_insurance" and t.due_date == date(2026, 6, 5)
    assert insurer_tasks(buyers, [pol], [], date(2026, 3, 1), lead_days=10) == []


def test_contract_review_lists_looser_terms() -> None:
    rule = rule_for(7, DEFAULT_POLICY)
    assert rule is not None
    gap = review_contract(ContractTerms(1, 2, 60, ("late_interest",)), 7, rule)
    assert gap is not None
    assert {p["code"] for p in gap.problems} == {
        "payment_terms",
        "missing_clause",
        "guarantee_required",
    }
    ok = ContractTerms(1, 2, 30, ("late_interest", "retention_of_title", "guarantee"))
    assert review_contract(ok, 7, rule) is None
    assert rule_for(10, DEFAULT_POLICY).order_decision == "prepayment_only"  # type: ignore[union-attr]
