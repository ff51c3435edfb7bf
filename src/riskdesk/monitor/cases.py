"""Alert and case life cycle on plain values: states, allowed transitions, SLAs, escalation."""

from __future__ import annotations

from datetime import datetime, timedelta

from riskdesk.domain.events import SEVERITY_RANK

CASE_STATES = ("open", "acknowledged", "resolved")
OUTCOMES = ("confirmed_risk", "false_alarm")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("acknowledged", "resolved"),
    "acknowledged": ("resolved",),
    "resolved": (),
}
ACK_SLA = {
    "critical": timedelta(hours=4),
    "high": timedelta(hours=24),
    "medium": timedelta(days=3),
    "low": timedelta(days=7),
}
"""How long a case may stay unacknowledged before the clock escalates it."""


class CaseError(ValueError):
    """A case action that is not allowed in the case's state."""


def check_transition(current: str, target: str, outcome: str | None = None) -> None:
    if target not in TRANSITIONS.get(current, ()):
        raise CaseError(f"a case that is {current} cannot become {target}")
    if target == "resolved" and outcome not in OUTCOMES:
        raise CaseError(f"resolving needs an outcome: {' or '.join(OUTCOMES)}")


def sla_due(opened: datetime, severity: str) -> datetime:
    return opened + ACK_SLA.get(severity, ACK_SLA["low"])


def needs_escalation(status: str, due: datetime | None, now: datetime) -> bool:
    return status == "open" and due is not None and now > due


def worse(a: str, b: str) -> bool:
    """True when severity ``a`` is worse than ``b``."""
    return SEVERITY_RANK.get(a, 0) > SEVERITY_RANK.get(b, 0)


def severity_at_least(value: str, minimum: str) -> bool:
    return SEVERITY_RANK.get(value, 0) >= SEVERITY_RANK.get(minimum, 0)
