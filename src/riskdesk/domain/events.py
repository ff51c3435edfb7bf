"""The ``RiskEvent`` value object: one finding of a risk source's manifestation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a finding is. Ordered: low < medium < high < critical."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.value]

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls(value.strip().lower())
        except ValueError as exc:
            raise ValueError(
                f"unknown severity {value!r}; use one of {', '.join(s.value for s in cls)}"
            ) from exc


SEVERITY_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True)
class RiskEvent:
    """A manifestation of a risk source found for one customer.

    ``subject`` names what the finding is about (``invoice:17``, ``contract:3``,
    ``index:STEEL-EU``, ``signal:9`` or ``customer``); together with the customer and the
    manifestation code it is the event's identity, so re-running identification updates the
    same event instead of creating a new one. ``evidence`` points at the records behind it
    (ids and key figures) and is JSON-able.
    """

    customer_id: int
    source: str
    manifestation: str
    severity: Severity
    first_seen: date
    subject: str = "customer"
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.customer_id, self.manifestation, self.subject)
