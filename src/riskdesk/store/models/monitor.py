"""Monitor tables: processed events (idempotency + history), customer state, rule sets,
alerts, cases, comments, snoozes, notification subscriptions and deliveries."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from riskdesk.store.models.base import Base
from riskdesk.store.types import JSONDoc, JSONType, UTCDateTime, utcnow


class ProcessedEvent(Base):
    """Every accepted event, recorded in the same transaction as its state change."""

    __tablename__ = "monitor_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64))  # not indexed: nothing reads by it
    event_type: Mapped[str] = mapped_column(String(32))
    event_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[dict[str, Any]] = mapped_column(JSONDoc)  # written once, read whole


class CustomerState(Base):
    """The real-time state of one customer (keyed by its external id)."""

    __tablename__ = "monitor_customer_state"

    customer_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    as_of: Mapped[date | None] = mapped_column(Date)
    # rewritten by every intake batch, read whole: ``json``, not ``jsonb``, on PostgreSQL
    book: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    paid: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, nullable=True)
    """The book's settled invoices (its ``paid`` section, most of a customer's book), kept
    apart so that a write that leaves them as they were does not rewrite them; None: they are
    inside ``book`` (rows from before this column). Read the whole book with
    :func:`riskdesk.store.monitor_repo.stored_book`."""
    features: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    open_invoice_balance: Mapped[float] = mapped_column(Float, default=0.0)
    overdue_balance: Mapped[float] = mapped_column(Float, default=0.0)
    max_days_overdue: Mapped[float] = mapped_column(Float, default=0.0)
    events_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stamp: Mapped[int | None] = mapped_column(BigInteger)
    """A random number written with every change of the row (None: unknown). An intake process
    that keeps the book in memory reuses it only while the stored stamp is the one it wrote."""


class RuleSet(Base):
    """A version of the rule set: draft → published (one at a time) → retired."""

    __tablename__ = "monitor_rule_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dry_run: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Case(Base):
    """All open alerts of one customer gather in its one open case."""

    __tablename__ = "monitor_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Alert(Base):
    """One rule firing for one customer; de-duplicated by (customer, rule) while open."""

    __tablename__ = "monitor_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # by customer: the leading column of ix_monitor_alerts_open (below)
    customer_ref: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_set_version: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    points: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | closed
    case_id: Mapped[int | None] = mapped_column(ForeignKey("monitor_cases.id"), index=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    hits: Mapped[int] = mapped_column(Integer, default=1)
    event_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class CaseComment(Base):
    __tablename__ = "monitor_case_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("monitor_cases.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Snooze(Base):
    """Silence one rule for one customer until a date."""

    __tablename__ = "monitor_snoozes"
    __table_args__ = (UniqueConstraint("customer_ref", "rule_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(64))
    until: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """Who hears about which alerts: a webhook URL or an e-mail address, from a severity."""

    __tablename__ = "monitor_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # webhook | email
    target: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str | None] = mapped_column(String(128))
    min_severity: Mapped[str] = mapped_column(String(16), default="medium")
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One notification to send (an outbox row): pending → sent, or dead after the retries."""

    __tablename__ = "monitor_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("monitor_subscriptions.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


Index("ix_monitor_alerts_open", Alert.customer_ref, Alert.rule_id, Alert.status)
