"""Control configuration: the order-check ladder thresholds, limit policy and avoidance table.

Everything here is data (JSON-able), kept in ``app_settings`` under the key ``control`` and
merged over these defaults, so credit managers change thresholds without touching code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

DECISIONS = ("pass", "watch", "hold", "prepayment_only", "stop")
"""The ladder, mildest first."""


def severity(decision: str) -> int:
    return DECISIONS.index(decision)


def worst(decisions: list[str]) -> str:
    return max(decisions, key=severity, default="pass")


@dataclass
class LadderConfig:
    """Thresholds of the order check. ``decision_for`` maps each reason code to its rung."""

    watch_utilisation: Decimal = Decimal("0.80")
    """Exposure after the order at or above this share of the limit → ``near_limit``."""
    over_limit_stop_ratio: Decimal = Decimal("1.50")
    """Exposure after the order above limit × this → ``far_over_limit`` (else ``over_limit``)."""
    overdue_watch_days: int = 1
    overdue_hold_days: int = 30
    overdue_stop_days: int = 90
    overdue_hold_share: Decimal = Decimal("0.10")
    """Overdue amount above this share of the limit → ``overdue_amount``."""
    grade_watch: int = 7
    grade_hold: int = 8
    reservation_days: int = 30
    """An approved order holds its headroom this many days unless invoiced/cancelled first."""
    decision_for: dict[str, str] = field(
        default_factory=lambda: {
            "near_limit": "watch",
            "over_limit": "hold",
            "far_over_limit": "stop",
            "group_over_limit": "hold",
            "sub_limit": "hold",
            "overdue_days": "watch",
            "overdue_days_hold": "hold",
            "overdue_days_stop": "stop",
            "overdue_amount": "hold",
            "grade_watch": "watch",
            "grade_hold": "hold",
            "avoidance_policy": "prepayment_only",
            "concentration": "watch",
            "uninsured_headroom": "watch",
            "blocklist": "stop",
            "customer_blocked": "stop",
            "rating_expired": "hold",
            "unrated": "hold",
            "no_limit": "hold",
            "limit_expired": "hold",
            "missing_fx_rate": "hold",
        }
    )


@dataclass
class LimitPolicy:
    """The calculated credit limit.

    limit = min(revenue × ``revenue_share_by_grade[grade]``, EL appetite / (PD × LGD),
    ``max_limit``), rounded down to ``round_to``. Grades with share 0 get no credit.
    """

    revenue_share_by_grade: dict[str, Decimal] = field(
        default_factory=lambda: {
            "1": Decimal("0.10"),
            "2": Decimal("0.09"),
            "3": Decimal("0.08"),
            "4": Decimal("0.07"),
            "5": Decimal("0.06"),
            "6": Decimal("0.05"),
            "7": Decimal("0.035"),
            "8": Decimal("0.02"),
            "9": Decimal("0"),
            "10": Decimal("0"),
        }
    )
    expected_loss_appetite: Decimal = Decimal("5000")
    lgd: Decimal = Decimal("0.45")
    max_limit: Decimal = Decimal("5000000")
    default_limit_unrated: Decimal = Decimal("0")
    round_to: Decimal = Decimal("1000")
    valid_days: int = 365
    currency: str = "EUR"


@dataclass
class ApprovalConfig:
    """Maker-checker on limit changes."""

    risk_manager_threshold: Decimal = Decimal("100000")
    """An increase by more than this (limit currency) must be approved by a risk_manager."""
    approver_roles: tuple[str, ...] = ("analyst", "risk_manager", "admin")
    large_approver_roles: tuple[str, ...] = ("risk_manager",)
    hold_release_roles: tuple[str, ...] = ("risk_manager", "admin", "analyst")


@dataclass
class ControlConfig:
    ladder: LadderConfig = field(default_factory=LadderConfig)
    limits: LimitPolicy = field(default_factory=LimitPolicy)
    approval: ApprovalConfig = field(default_factory=ApprovalConfig)
    counted: tuple[str, ...] = (
        "open_orders",
        "shipped_not_invoiced",
        "reserved",
        "current",
        "overdue_1_30",
        "overdue_31_60",
        "overdue_61_90",
        "overdue_90_plus",
    )
    limit_basis: str = "net"
    """``net`` (after insurance and guarantees) or ``gross`` exposure is held against limits."""
    insurer_task_lead_days: int = 10
    """Report-to-insurer tasks are due this many days before the insurer's deadline."""

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ControlConfig:
        """Defaults with ``data`` merged over them (unknown keys are refused)."""
        cfg = cls()
        for key, val in (data or {}).items():
            if key not in {f.name for f in fields(cls)}:
                raise ValueError(f"unknown control setting {key!r}")
            cur = getattr(cfg, key)
            if hasattr(cur, "__dataclass_fields__"):
                _merge(cur, val, key)
            elif key == "counted":
                cfg.counted = tuple(val)
            else:
                setattr(cfg, key, type(cur)(val))
        if cfg.limit_basis not in ("net", "gross"):
            raise ValueError("limit_basis must be 'net' or 'gross'")
        for code, dec in cfg.ladder.decision_for.items():
            if dec not in DECISIONS:
                raise ValueError(f"decision for {code!r} must be one of {DECISIONS}")
        return cfg


def _merge(obj: Any, data: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in fields(obj)}
    for key, val in data.items():
        if key not in names:
            raise ValueError(f"unknown control setting {where}.{key}")
        cur = getattr(obj, key)
        if isinstance(cur, dict):
            merged = dict(cur)
            for k, v in val.items():
                sample = next(iter(cur.values()), None)
                merged[str(k)] = Decimal(str(v)) if isinstance(sample, Decimal) else v
            setattr(obj, key, merged)
        elif isinstance(cur, Decimal):
            setattr(obj, key, Decimal(str(val)))
        elif isinstance(cur, tuple):
            setattr(obj, key, tuple(val))
        else:
            setattr(obj, key, type(cur)(val))


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v
