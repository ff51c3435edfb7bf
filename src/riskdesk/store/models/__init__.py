"""All tables. Stage-specific tables live in their own modules and are imported here."""

from riskdesk.store.models.auth import ApiToken, AuditEntry, User
from riskdesk.store.models.base import Base
from riskdesk.store.models.core import (
    Contract,
    CreditNote,
    Customer,
    DemoTruth,
    ExternalSignal,
    FxRate,
    Invoice,
    MarketIndicator,
    Order,
    Payment,
    PaymentAllocation,
    Setting,
)
from riskdesk.store.models.rating import AhpWeightSet, DelphiRound, ExpertAssessment, Rating

__all__ = [
    "AhpWeightSet",
    "ApiToken",
    "AuditEntry",
    "Base",
    "Contract",
    "CreditNote",
    "Customer",
    "DelphiRound",
    "DemoTruth",
    "ExpertAssessment",
    "ExternalSignal",
    "FxRate",
    "Invoice",
    "MarketIndicator",
    "Order",
    "Payment",
    "PaymentAllocation",
    "Rating",
    "Setting",
    "User",
]
