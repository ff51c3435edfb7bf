from datetime import date
from decimal import Decimal

import pytest

from riskdesk.control.avoidance import DEFAULT_POLICY, rule_for
from riskdesk.control.config import LadderConfig
from riskdesk.control.exposure import CoverDoc, InvoiceDoc, OrderDoc, compute_exposure
from riskdesk.control.ladder import (
    ConcentrationInfo,
    LimitInfo,
    OrderContext,
    RatingInfo,
    check_order,
)
from riskdesk.domain.money import FxTable

D = Decimal

ON = date(2026, 6, 30)
CFG = LadderConfig()


def ctx(
    amount: str = "100",
    *,
    open_orders: str = "0",
    invoices=(),
    covers=(),
    limit="10000",
    grade=3,
    **kw,
) -> OrderContext:
    exp = compute_exposure(
        currency="EUR",
        as_of=ON,
        fx=FxTable(),
        orders=[OrderDoc(1, D(open_orders), "EUR", "open")] if D(open_orders) else [],
        invoices=list(invoices),
        covers=list(covers),
    )
    base = dict(
        as_of=ON,
        amount=D(amount),
        currency="EUR",
        exposure=exp,
        limit=(
            limit
            if isinstance(limit, LimitInfo) or limit is None
            else LimitInfo(1, D(limit), "EUR", date(2027, 1, 1))
        ),
        rating=RatingInfo(grade, 0.005, date(2027, 1, 1)) if grade is not None else None,
        avoidance=rule_for(grade, DEFAULT_POLICY),
    )
    base.update(kw)
    return OrderContext(**base)


def codes(c: OrderContext) -> set[str]:
    return {r.code for r in check_order(c, CFG).reasons}


def test_small_order_for_a_good_customer_passes_with_no_reasons() -> None:
    r = check_order(ctx(), CFG)
    assert r.decision == "pass" and r.reasons == []
    assert r.headroom_before == D("10000.00") and r.reserves


def test_near_limit_is_watch() -> None:
    r = check_order(ctx("1000", open_orders="7500"), CFG)
    assert r.decision == "watch" and [x.code for x in r.reasons] == ["near_limit"]


def test_over_limit_is_hold_with_figures() -> None:
    r = check_order(ctx("3000", open_orders="8000"), CFG)
    assert r.decision == "hold" and not r.reserves
    (reason,) = r.reasons
    assert reason.code == "over_limit"
    assert reason.figures["headroom"] == D("2000.00")
    assert reason.figures["exposure_after"] == D("11000.00")
    assert "超过额度" in reason.message_zh and "over the limit" in reason.message_en


def test_far_over_limit_stops() -> None:
    assert check_order(ctx("9000", open_orders="8000"), CFG).decision == "stop"


def test_overdue_age_and_amount() -> None:
    old = InvoiceDoc(5, D("2000"), "EUR", date(2026, 5, 1))  # 60 days
    r = check_order(ctx(invoices=[old]), CFG)
    assert {x.code for x in r.reasons} == {"overdue_days_hold", "overdue_amount"}
    assert r.decision == "hold"
    recent = InvoiceDoc(5, D("10"), "EUR", date(2026, 6, 25))
    assert codes(ctx(invoices=[recent])) == {"overdue_days"}
    ancient = InvoiceDoc(5, D("10"), "EUR", date(2026, 1, 1))
    assert check_order(ctx(invoices=[ancient]), CFG).decision == "stop"


def test_bad_grades_watch_hold_and_avoidance_prepayment() -> None:
    assert codes(ctx(grade=7)) == {"grade_watch"}
    assert check_order(ctx(grade=8), CFG).decision == "hold"
    r = check_order(ctx(grade=9), CFG)
    assert r.decision == "prepayment_only"
    assert {"grade_hold", "avoidance_policy"} <= {x.code for x in r.reasons}


def test_unrated_expired_rating_no_limit_and_expired_limit_hold() -> None:
    assert codes(ctx(grade=None)) == {"unrated"}
    c = ctx(rating=RatingInfo(3, 0.005, date(2026, 1, 1)))
    assert codes(c) == {"rating_expired"}
    assert codes(ctx(limit=None)) == {"no_limit"}
    c = ctx(limit=LimitInfo(1, D("10000"), "EUR", date(2026, 6, 1)))
    assert codes(c) == {"limit_expired"} and check_order(c, CFG).decision == "hold"


def test_blocklist_and_blocked_customer_stop() -> None:
    r = check_order(ctx(blocklisted="fraud"), CFG)
    assert r.decision == "stop" and r.reasons[0].figures["blocklist_reason"] == "fraud"
    assert codes(ctx(customer_status="defaulted")) == {"customer_blocked"}


def test_concentration_breach_is_reported() -> None:
    c = ctx(concentration=[ConcentrationInfo("industry", "steel", D("0.31"), D("0.25"))])
    r = check_order(c, CFG)
    assert r.decision == "watch" and r.reasons[0].figures["dimension"] == "industry"
    ok = ctx(concentration=[ConcentrationInfo("industry", "steel", D("0.2"), D("0.25"))])
    assert codes(ok) == set()


def test_uninsured_headroom_when_order_goes_past_cover() -> None:
    cover = CoverDoc(1, "insurance", D("1000"), "EUR", D("0.9"))
    assert codes(ctx("500", open_orders="400", covers=[cover])) == set()
    r = check_order(ctx("500", open_orders="800", covers=[cover]), CFG)
    (reason,) = r.reasons
    assert reason.code == "uninsured_headroom" and reason.figures["uninsured"] == D("300.00")


def test_every_reason_that_applies_is_reported_and_worst_wins() -> None:
    old = InvoiceDoc(5, D("5000"), "EUR", date(2026, 5, 1))
    r = check_order(ctx("9000", invoices=[old], grade=8, blocklisted="x"), CFG)
    assert r.decision == "stop"
    assert {"blocklist", "grade_hold", "overdue_days_hold", "overdue_amount", "over_limit"} <= {
        x.code for x in r.reasons
    }


def test_thresholds_and_rungs_are_configuration() -> None:
    cfg = LadderConfig(watch_utilisation=D("0.5"))
    assert check_order(ctx("6000"), cfg).decision == "watch"
    cfg.decision_for = {**cfg.decision_for, "near_limit": "hold"}
    assert check_order(ctx("6000"), cfg).decision == "hold"


def test_sub_limit_on_a_bucket() -> None:
    lim = LimitInfo(1, D("10000"), "EUR", None, {"overdue_1_30": D("100")})
    inv = InvoiceDoc(5, D("200"), "EUR", date(2026, 6, 25))
    assert "sub_limit" not in codes(ctx(invoices=[inv]))
    r = check_order(ctx(invoices=[inv], limit=lim), CFG)
    sub = [x for x in r.reasons if x.code == "sub_limit"]
    assert sub and sub[0].figures["value"] == D("200.00") and r.decision == "hold"


def test_non_positive_amount_is_refused() -> None:
    with pytest.raises(ValueError):
        check_order(ctx("0"), CFG)
