"""Closed vocabularies shared across the stages."""

from __future__ import annotations

from enum import StrEnum


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    BLOCKED = "blocked"
    DEFAULTED = "defaulted"
    PROSPECT = "prospect"


class ContractStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    EXPIRED = "expired"
    TERMINATED = "terminated"


class OrderStatus(StrEnum):
    OPEN = "open"
    SHIPPED = "shipped"
    INVOICED = "invoiced"
    CANCELLED = "cancelled"


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    WRITTEN_OFF = "written_off"
    CANCELLED = "cancelled"


class SignalKind(StrEnum):
    """External signals about a customer."""

    BUREAU_SCORE = "bureau_score"
    LEGAL_EVENT = "legal_event"
    NEGATIVE_NEWS = "negative_news"
    BANKRUPTCY = "bankruptcy"
    WRITE_OFF = "write_off"


class Role(StrEnum):
    ADMIN = "admin"
    RISK_MANAGER = "risk_manager"
    ANALYST = "analyst"
    SALES = "sales"
    AUDITOR = "auditor"


CLAUSES = (
    "retention_of_title",
    "late_interest",
    "guarantee",
    "letter_of_credit",
    "prepayment",
    "cross_default",
    "minimum_volume",
)
"""Contract clauses riskdesk knows about (free-text clauses are kept too)."""
