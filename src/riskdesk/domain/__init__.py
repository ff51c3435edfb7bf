"""Pure data types and value objects; no I/O."""

from riskdesk.domain.enums import (
    ContractStatus,
    CustomerStatus,
    InvoiceStatus,
    OrderStatus,
    Role,
    SignalKind,
)
from riskdesk.domain.money import CurrencyMismatch, FxTable, MissingRate, Money, to_decimal

__all__ = [
    "ContractStatus",
    "CurrencyMismatch",
    "CustomerStatus",
    "FxTable",
    "InvoiceStatus",
    "MissingRate",
    "Money",
    "OrderStatus",
    "Role",
    "SignalKind",
    "to_decimal",
]
