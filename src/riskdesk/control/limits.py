"""Credit limits: the policy calculation and the maker-checker rules for limit changes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from riskdesk.control.config import ApprovalConfig, LimitPolicy


@dataclass(frozen=True)
class PolicyLimit:
    amount: Decimal
    currency: str
    basis: dict[str, str]


def policy_limit(
    policy: LimitPolicy,
    *,
    grade: int | None,
    pd: float | None,
    revenue: Decimal | None,
) -> PolicyLimit:
    """The calculated limit for one customer (revenue already in ``policy.currency``).

    ``min(revenue × share by grade, EL appetite / (PD × LGD), max_limit)``, rounded down to
    ``policy.round_to``; unrated customers get ``default_limit_unrated``.
    """
    basis: dict[str, str] = {}
    if grade is None:
        return PolicyLimit(
            policy.default_limit_unrated, policy.currency, {"rule": "unrated default"}
        )
    candidates = [policy.max_limit]
    basis["max_limit"] = str(policy.max_limit)
    share = policy.revenue_share_by_grade.get(str(grade), Decimal("0"))
    basis["grade"] = str(grade)
    basis["revenue_share"] = str(share)
    if share <= 0:
        return PolicyLimit(Decimal("0"), policy.currency, {**basis, "rule": "no credit for grade"})
    if revenue is not None and revenue > 0:
        by_size = revenue * share
        candidates.append(by_size)
        basis["by_size"] = str(by_size.quantize(Decimal("0.01")))
    if pd is not None and pd > 0:
        by_el = policy.expected_loss_appetite / (Decimal(str(pd)) * policy.lgd)
        candidates.append(by_el)
        basis["by_expected_loss"] = str(by_el.quantize(Decimal("0.01")))
    amount = min(candidates)
    step = policy.round_to if policy.round_to > 0 else Decimal("1")
    amount = (amount / step).to_integral_value(rounding=ROUND_DOWN) * step
    return PolicyLimit(max(amount, Decimal("0")), policy.currency, basis)


class ApprovalRefused(PermissionError):
    """A limit change request cannot be approved by this person."""


def check_approval(
    cfg: ApprovalConfig,
    *,
    requester: str,
    approver: str,
    approver_role: str,
    current: Decimal,
    requested: Decimal,
) -> None:
    """Raise :class:`ApprovalRefused` unless ``approver`` may approve this change.

    Maker-checker: nobody approves their own request; an increase by more than
    ``risk_manager_threshold`` needs one of ``large_approver_roles``.
    """
    if requester == approver:
        raise ApprovalRefused("the requester cannot approve their own request (maker-checker)")
    if approver_role not in cfg.approver_roles:
        raise ApprovalRefused(f"role {approver_role!r} cannot approve limit changes")
    if requested - current > cfg.risk_manager_threshold and (
        approver_role not in cfg.large_approver_roles
    ):
        raise ApprovalRefused(
            f"an increase above {cfg.risk_manager_threshold} needs a "
            + " or ".join(cfg.large_approver_roles)
        )


def needs_risk_manager(cfg: ApprovalConfig, current: Decimal, requested: Decimal) -> bool:
    return requested - current > cfg.risk_manager_threshold
