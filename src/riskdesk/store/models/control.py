"""Control tables: credit limits and their history, limit change requests, order checks and
reservations, insurance, collateral, the avoidance table, blocklist, concentration limits and
control actions (tasks)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from riskdesk.store.models.base import Base
from riskdesk.store.types import Amount, JSONType, Rate, UTCDateTime, utcnow


class CreditLimit(Base):
    """One version of a customer's (or a group's) credit limit; old versions are kept.

    ``status`` is ``active`` for the version in force and ``superseded`` for history.
    """

    __tablename__ = "control_credit_limits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    group_key: Mapped[str | None] = mapped_column(String(80), index=True)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))  # policy | manual | request
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    sub_limits: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    basis: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LimitRequest(Base):
    """A request to change a limit, approved or rejected by someone else (maker-checker)."""

    __tablename__ = "control_limit_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    current_amount: Mapped[Decimal] = mapped_column(Amount)
    requested_amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    valid_until: Mapped[date | None] = mapped_column(Date)
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    needs_risk_manager: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    limit_id: Mapped[int | None] = mapped_column(ForeignKey("control_credit_limits.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderCheck(Base):
    """One order credit check: the decision, every reason, and what happened after."""

    __tablename__ = "control_order_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    order_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    placed_by: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    amount_limit_ccy: Mapped[Decimal | None] = mapped_column(Amount)
    limit_currency: Mapped[str | None] = mapped_column(String(3))
    decision: Mapped[str] = mapped_column(String(16), index=True)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # approved | held | released | rejected | prepayment | stopped
    status: Mapped[str] = mapped_column(String(16), index=True)
    checked_by: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reservation(Base):
    """Headroom held by an approved order until it is invoiced, cancelled or expires."""

    __tablename__ = "control_reservations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_check_id: Mapped[int] = mapped_column(
        ForeignKey("control_order_checks.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    order_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|consumed|...
    expires_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InsurancePolicy(Base):
    """A credit-insurance policy (whole turnover or single buyers)."""

    __tablename__ = "control_insurance_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    insurer: Mapped[str] = mapped_column(String(100))
    policy_no: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    cover_pct: Mapped[Decimal] = mapped_column(Rate)
    deductible: Mapped[Decimal] = mapped_column(Amount, default=Decimal("0"))
    report_overdue_days: Mapped[int] = mapped_column(Integer, default=60)
    max_credit_days: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InsuredLimit(Base):
    """The limit the insurer grants on one buyer under a policy."""

    __tablename__ = "control_insured_limits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_id: Mapped[int] = mapped_column(
        ForeignKey("control_insurance_policies.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")


class Collateral(Base):
    """A guarantee or letter of credit securing a customer's debt."""

    __tablename__ = "control_collateral"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # guarantee | letter_of_credit
    issuer: Mapped[str | None] = mapped_column(String(100))
    reference: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")


class AvoidanceRuleRow(Base):
    """One row of the avoidance policy table by grade."""

    __tablename__ = "control_avoidance_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grade_from: Mapped[int] = mapped_column(Integer)
    grade_to: Mapped[int] = mapped_column(Integer)
    max_payment_terms_days: Mapped[int | None] = mapped_column(Integer)
    prepayment_share: Mapped[Decimal] = mapped_column(Rate, default=Decimal("0"))
    guarantee_required: Mapped[bool] = mapped_column(Boolean, default=False)
    clauses: Mapped[list[str]] = mapped_column(JSONType, default=list)
    order_decision: Mapped[str | None] = mapped_column(String(16))


class BlocklistEntry(Base):
    """A customer (or a legal id not yet a customer) we do not sell to on credit."""

    __tablename__ = "control_blocklist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    legal_id: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConcentrationLimit(Base):
    """Maximum share of total exposure for one key (or every key) of a dimension."""

    __tablename__ = "control_concentration_limits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16))
    key: Mapped[str | None] = mapped_column(String(80))
    max_share: Mapped[Decimal] = mapped_column(Rate)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ControlAction(Base):
    """A control task: who does what by when, why, and whether it is done.

    Also used for notifications to the person who placed a held order (kind ``notify``).
    ``dedup_key`` makes policy-created tasks idempotent.
    """

    __tablename__ = "control_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32), index=True)
    title: Mapped[str] = mapped_column(Text)
    title_zh: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16), default="manual")  # manual | policy
    cause_type: Mapped[str | None] = mapped_column(String(32))
    cause_id: Mapped[str | None] = mapped_column(String(64))
    dedup_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(64))


Index("ix_control_reservations_customer_status", Reservation.customer_id, Reservation.status)
Index("ix_control_credit_limits_customer_status", CreditLimit.customer_id, CreditLimit.status)
