"""Core business records: customers, contracts, orders, invoices, payments, market data."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from riskdesk.store.models.base import Base
from riskdesk.store.types import Amount, JSONType, Rate, UTCDateTime, utcnow


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Customer(TimestampMixin, Base):
    """A business customer. ``external_id`` is the user's own customer code (the import key)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    legal_id: Mapped[str | None] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    group_code: Mapped[str | None] = mapped_column(String(64), index=True)
    industry: Mapped[str | None] = mapped_column(String(64), index=True)
    region: Mapped[str | None] = mapped_column(String(64), index=True)
    country: Mapped[str | None] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    revenue: Mapped[Decimal | None] = mapped_column(Amount)
    employees: Mapped[int | None] = mapped_column(Integer)
    founded_on: Mapped[date | None] = mapped_column(Date)
    market_share: Mapped[Decimal | None] = mapped_column(Rate)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    crm_id: Mapped[str | None] = mapped_column(String(64), index=True)
    erp_id: Mapped[str | None] = mapped_column(String(64), index=True)


class Contract(TimestampMixin, Base):
    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    credit_terms: Mapped[str | None] = mapped_column(Text)
    min_volume_amount: Mapped[Decimal | None] = mapped_column(Amount)
    min_volume_currency: Mapped[str | None] = mapped_column(String(3))
    min_volume_period: Mapped[str | None] = mapped_column(String(8))  # month|quarter|year
    clauses: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")


class Order(TimestampMixin, Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    order_date: Mapped[date] = mapped_column(Date, index=True)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="open")
    shipped_date: Mapped[date | None] = mapped_column(Date)
    placed_by: Mapped[str | None] = mapped_column(String(64))


class Invoice(TimestampMixin, Base):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    issue_date: Mapped[date] = mapped_column(Date, index=True)
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    disputed: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="open")


class Payment(TimestampMixin, Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    payment_date: Mapped[date] = mapped_column(Date, index=True)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str | None] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(128))


class PaymentAllocation(Base):
    """The part of a payment applied to one invoice (partial payments allowed)."""

    __tablename__ = "payment_allocations"
    __table_args__ = (UniqueConstraint("payment_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Amount)


class CreditNote(TimestampMixin, Base):
    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    issue_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(Text)


class MarketIndicator(Base):
    """One value of a market index (per industry and/or region) for one period."""

    __tablename__ = "market_indicators"
    __table_args__ = (UniqueConstraint("code", "period_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    industry: Mapped[str | None] = mapped_column(String(64), index=True)
    region: Mapped[str | None] = mapped_column(String(64), index=True)
    period_date: Mapped[date] = mapped_column(Date)
    value: Mapped[Decimal] = mapped_column(Rate)


class ExternalSignal(TimestampMixin, Base):
    """Bureau scores, legal and negative events about a customer."""

    __tablename__ = "external_signals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    signal_date: Mapped[date] = mapped_column(Date)
    value: Mapped[Decimal | None] = mapped_column(Rate)
    source: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)


class FxRate(Base):
    """1 ``base`` = ``rate`` ``quote`` on ``rate_date``."""

    __tablename__ = "fx_rates"
    __table_args__ = (UniqueConstraint("rate_date", "base", "quote"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rate_date: Mapped[date] = mapped_column(Date)
    base: Mapped[str] = mapped_column(String(3))
    quote: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(Rate)


class DemoTruth(Base):
    """Ground truth of a synthetic demo portfolio, to measure the stages against."""

    __tablename__ = "demo_truth"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    latent_risk: Mapped[float] = mapped_column()
    default_date: Mapped[date | None] = mapped_column(Date)
    breaches_contract: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Setting(Base):
    """Key/value settings kept in the database (generated secrets, rule thresholds …)."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)


Index("ix_invoices_customer_due", Invoice.customer_id, Invoice.due_date)
Index("ix_orders_customer_date", Order.customer_id, Order.order_date)
Index("ix_payments_customer_date", Payment.customer_id, Payment.payment_date)
# The order check's document read (control_repo): only the open ones, so it does not visit every
# order and invoice of the customer's history (migration 0003_control_open_docs).
_OPEN_ORDERS = "status IN ('open', 'shipped')"
_OPEN_INVOICES = "status NOT IN ('paid', 'cancelled', 'written_off')"
Index(
    "ix_orders_customer_open",
    Order.customer_id,
    Order.order_date,
    sqlite_where=text(_OPEN_ORDERS),
    postgresql_where=text(_OPEN_ORDERS),
)
Index(
    "ix_invoices_customer_open",
    Invoice.customer_id,
    Invoice.issue_date,
    sqlite_where=text(_OPEN_INVOICES),
    postgresql_where=text(_OPEN_INVOICES),
)
