"""The order-check ladder: pass → watch → hold → prepayment_only → stop, with every reason.

Pure logic: :func:`check_order` takes an :class:`OrderContext` (plain data gathered by the
store) and returns a :class:`CheckResult` with the decision (the worst rung of all reasons)
and every reason that applied, each with its figures and a message in English and Chinese.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from riskdesk.control.avoidance import AvoidanceRule
from riskdesk.control.config import LadderConfig, worst
from riskdesk.control.exposure import ZERO, Exposure
from riskdesk.domain.money import CENT


@dataclass(frozen=True)
class LimitInfo:
    id: int
    amount: Decimal
    currency: str
    valid_until: date | None = None
    sub_limits: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class RatingInfo:
    grade: int
    pd: float | None = None
    valid_until: date | None = None
    source: str = "rating"


@dataclass(frozen=True)
class ConcentrationInfo:
    """A concentration limit that applies to this customer and the share after the order."""

    dimension: str
    key: str
    share_after: Decimal
    max_share: Decimal


@dataclass
class OrderContext:
    """Everything the ladder needs, all amounts already in the limit currency."""

    as_of: date
    amount: Decimal
    currency: str
    exposure: Exposure | None
    limit: LimitInfo | None
    rating: RatingInfo | None = None
    customer_status: str = "active"
    blocklisted: str | None = None
    avoidance: AvoidanceRule | None = None
    group_exposure: Exposure | None = None
    group_limit: LimitInfo | None = None
    concentration: list[ConcentrationInfo] = field(default_factory=list)
    basis: str = "net"
    missing_fx: str | None = None


@dataclass(frozen=True)
class Reason:
    code: str
    decision: str
    message_en: str
    message_zh: str
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "decision": self.decision,
            "message": {"en": self.message_en, "zh": self.message_zh},
            "figures": self.figures,
        }


@dataclass
class CheckResult:
    decision: str
    reasons: list[Reason]
    exposure_after: Decimal | None = None
    headroom_before: Decimal | None = None

    @property
    def reserves(self) -> bool:
        """An approved order (pass / watch) reserves its amount against the headroom."""
        return self.decision in ("pass", "watch")

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": [r.as_dict() for r in self.reasons],
            "exposure_after": self.exposure_after,
            "headroom_before": self.headroom_before,
        }


def _q(d: Decimal) -> Decimal:
    return d.quantize(CENT)


def check_order(ctx: OrderContext, cfg: LadderConfig) -> CheckResult:
    """Run every rule of the ladder; the decision is the worst rung among the reasons."""
    reasons: list[Reason] = []

    def add(code: str, en: str, zh: str, **figures: Any) -> None:
        reasons.append(Reason(code, cfg.decision_for.get(code, "hold"), en, zh, figures))

    if ctx.amount <= 0:
        raise ValueError("an order amount must be positive")
    if ctx.blocklisted is not None:
        add(
            "blocklist",
            f"Customer is on the blocklist: {ctx.blocklisted}",
            f"客户在黑名单上：{ctx.blocklisted}",
            blocklist_reason=ctx.blocklisted,
        )
    if ctx.customer_status in ("blocked", "defaulted"):
        add(
            "customer_blocked",
            f"Customer status is {ctx.customer_status}",
            f"客户状态为 {ctx.customer_status}",
            status=ctx.customer_status,
        )
    if ctx.missing_fx:
        add(
            "missing_fx_rate",
            f"No FX rate to convert into the limit currency: {ctx.missing_fx}",
            f"缺少换算到额度币种的汇率：{ctx.missing_fx}",
            detail=ctx.missing_fx,
        )
    _rating_rules(ctx, cfg, add)
    exposure_after: Decimal | None = None
    headroom: Decimal | None = None
    if ctx.exposure is not None:
        gross_after, covered_after, net_after = ctx.exposure.after(ctx.amount)
        exposure_after = _q(net_after if ctx.basis == "net" else gross_after)
        _overdue_rules(ctx, cfg, add)
        caps = sum((c.cap for c in ctx.exposure.covers), ZERO)
        if ctx.exposure.covers and gross_after > caps:
            if True:
                add(
                    "uninsured_headroom",
                    f"The order takes exposure beyond its insurance/guarantee cover "
                    f"({_q(caps)} {ctx.currency}); {_q(gross_after - caps)} is uninsured",
                    f"订单使敞口超出保险/担保覆盖（{_q(caps)} {ctx.currency}），"
                    f"未保部分 {_q(gross_after - caps)}",
                    cover_cap=_q(caps),
                    gross_after=_q(gross_after),
                    uninsured=_q(gross_after - caps),
                )
    if ctx.limit is None:
        add("no_limit", "Customer has no valid credit limit", "客户没有有效的信用额度")
    elif ctx.exposure is not None and exposure_after is not None:
        lim = ctx.limit
        before = exposure_after - ctx.amount
        headroom = _q(lim.amount - before)
        if lim.valid_until is not None and lim.valid_until < ctx.as_of:
            add(
                "limit_expired",
                f"Credit limit expired on {lim.valid_until.isoformat()}",
                f"信用额度已于 {lim.valid_until.isoformat()} 到期",
                valid_until=lim.valid_until,
            )
        figs = {
            "limit": _q(lim.amount),
            "exposure_before": _q(before),
            "order": _q(ctx.amount),
            "exposure_after": exposure_after,
            "headroom": headroom,
            "currency": ctx.currency,
        }
        if exposure_after > lim.amount * cfg.over_limit_stop_ratio:
            add(
                "far_over_limit",
                f"Exposure after the order ({exposure_after}) is far over the limit "
                f"({_q(lim.amount)} {ctx.currency})",
                f"下单后敞口（{exposure_after}）远超额度（{_q(lim.amount)} {ctx.currency}）",
                **figs,
            )
        elif exposure_after > lim.amount:
            add(
                "over_limit",
                f"Exposure after the order ({exposure_after}) is over the limit "
                f"({_q(lim.amount)} {ctx.currency}); headroom was {headroom}",
                f"下单后敞口（{exposure_after}）超过额度（{_q(lim.amount)} {ctx.currency}），"
                f"剩余额度 {headroom}",
                **figs,
            )
        elif lim.amount > 0 and exposure_after >= lim.amount * cfg.watch_utilisation:
            add(
                "near_limit",
                f"Exposure after the order uses {_pct(exposure_after / lim.amount)} of the limit",
                f"下单后敞口占额度 {_pct(exposure_after / lim.amount)}",
                **figs,
            )
        for key, sub in lim.sub_limits.items():
            val = _component(ctx.exposure, key, ctx.amount)
            if val is not None and val > sub:
                add(
                    "sub_limit",
                    f"Sub-limit for {key} exceeded: {_q(val)} > {_q(sub)} {ctx.currency}",
                    f"{key} 子额度超限：{_q(val)} > {_q(sub)} {ctx.currency}",
                    component=key,
                    value=_q(val),
                    sub_limit=_q(sub),
                )
    if ctx.group_limit is not None and ctx.group_exposure is not None and ctx.exposure:
        g = ctx.group_exposure
        delta = (exposure_after or ZERO) - (
            ctx.exposure.net if ctx.basis == "net" else ctx.exposure.gross
        )
        g_after = _q((g.net if ctx.basis == "net" else g.gross) + delta)
        if g_after > ctx.group_limit.amount:
            add(
                "group_over_limit",
                f"Group exposure after the order ({g_after}) is over the group limit "
                f"({_q(ctx.group_limit.amount)} {ctx.currency})",
                f"下单后集团敞口（{g_after}）超过集团额度（{_q(ctx.group_limit.amount)} "
                f"{ctx.currency}）",
                group_limit=_q(ctx.group_limit.amount),
                group_exposure_after=g_after,
            )
    for c in ctx.concentration:
        if c.share_after > c.max_share:
            add(
                "concentration",
                f"Concentration by {c.dimension} '{c.key}' would reach {_pct(c.share_after)} "
                f"(limit {_pct(c.max_share)})",
                f"按{_DIM_ZH.get(c.dimension, c.dimension)}“{c.key}”的集中度将达 "
                f"{_pct(c.share_after)}（上限 {_pct(c.max_share)}）",
                dimension=c.dimension,
                key=c.key,
                share_after=c.share_after.quantize(Decimal("0.0001")),
                max_share=c.max_share,
            )
    decision = worst([r.decision for r in reasons])
    return CheckResult(decision, reasons, exposure_after, headroom)


_DIM_ZH = {
    "customer": "客户",
    "group": "集团",
    "industry": "行业",
    "region": "地区",
    "country": "国家",
}


def _pct(x: Decimal) -> str:
    return f"{(x * 100).quantize(Decimal('0.1'))}%"


def _component(exp: Exposure, key: str, amount: Decimal) -> Decimal | None:
    if key == "overdue":
        return exp.overdue
    if key in exp.components:
        return exp.components[key].amount + (amount if key == "open_orders" else ZERO)
    return None


def _rating_rules(ctx: OrderContext, cfg: LadderConfig, add: Any) -> None:
    r = ctx.rating
    if r is None:
        add("unrated", "Customer has no rating", "客户尚未评级")
    else:
        if r.valid_until is not None and r.valid_until < ctx.as_of:
            add(
                "rating_expired",
                f"Rating expired on {r.valid_until.isoformat()}",
                f"评级已于 {r.valid_until.isoformat()} 过期",
                grade=r.grade,
                valid_until=r.valid_until,
            )
        if r.grade >= cfg.grade_hold:
            add(
                "grade_hold",
                f"Grade {r.grade} is at or worse than {cfg.grade_hold}",
                f"评级 {r.grade} 等于或差于 {cfg.grade_hold}",
                grade=r.grade,
                pd=r.pd,
            )
        elif r.grade >= cfg.grade_watch:
            add(
                "grade_watch",
                f"Grade {r.grade} is at or worse than {cfg.grade_watch}",
                f"评级 {r.grade} 等于或差于 {cfg.grade_watch}",
                grade=r.grade,
                pd=r.pd,
            )
    a = ctx.avoidance
    if a is not None and a.order_decision and a.order_decision != "pass":
        reasons_ctx = {
            "grade_from": a.grade_from,
            "grade_to": a.grade_to,
            "prepayment_share": a.prepayment_share,
            "policy_decision": a.order_decision,
        }
        add(
            "avoidance_policy",
            f"Avoidance policy for grades {a.grade_from}–{a.grade_to}: {a.order_decision}",
            f"评级 {a.grade_from}–{a.grade_to} 的规避政策：{a.order_decision}",
            **reasons_ctx,
        )


def _overdue_rules(ctx: OrderContext, cfg: LadderConfig, add: Any) -> None:
    exp = ctx.exposure
    assert exp is not None
    days = exp.max_days_overdue
    figs = {"overdue": exp.overdue, "max_days_overdue": days, "currency": ctx.currency}
    if days > cfg.overdue_stop_days:
        add(
            "overdue_days_stop",
            f"An invoice is {days} days overdue (more than {cfg.overdue_stop_days})",
            f"有发票逾期 {days} 天（超过 {cfg.overdue_stop_days} 天）",
            **figs,
        )
    elif days > cfg.overdue_hold_days:
        add(
            "overdue_days_hold",
            f"An invoice is {days} days overdue (more than {cfg.overdue_hold_days})",
            f"有发票逾期 {days} 天（超过 {cfg.overdue_hold_days} 天）",
            **figs,
        )
    elif days >= cfg.overdue_watch_days:
        add(
            "overdue_days",
            f"An invoice is {days} days overdue",
            f"有发票逾期 {days} 天",
            **figs,
        )
    if ctx.limit is not None and ctx.limit.amount > 0:
        share = exp.overdue / ctx.limit.amount
        if share > cfg.overdue_hold_share:
            add(
                "overdue_amount",
                f"Overdue amount {exp.overdue} is {_pct(share)} of the limit "
                f"(threshold {_pct(cfg.overdue_hold_share)})",
                f"逾期金额 {exp.overdue} 占额度 {_pct(share)}（阈值 {_pct(cfg.overdue_hold_share)}）",
                **figs,
            )
