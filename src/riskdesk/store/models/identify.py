"""Identify tables: user-defined risk sources and manifestations, risk events and their history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from riskdesk.store.models.base import Base
from riskdesk.store.types import JSONType, UTCDateTime, utcnow


class RiskSourceRow(Base):
    """A user-defined risk source (built-in sources live in ``riskdesk.identify.catalogue``)."""

    __tablename__ = "risk_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200))
    description_en: Mapped[str | None] = mapped_column(Text)
    description_zh: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RiskManifestationRow(Base):
    """A user-defined manifestation of a risk source."""

    __tablename__ = "risk_manifestations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey("risk_sources.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200))
    description_en: Mapped[str | None] = mapped_column(Text)
    description_zh: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(8), default="medium")


class RiskEventRow(Base):
    """One risk event. Open while ``closed_on`` is null; at most one open event per key."""

    __tablename__ = "risk_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(64), index=True)
    manifestation: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(8), index=True)
    first_seen: Mapped[date] = mapped_column(Date)
    opened_on: Mapped[date] = mapped_column(Date, index=True)
    last_seen: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date, index=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


Index(
    "uq_risk_events_open_key",
    RiskEventRow.customer_id,
    RiskEventRow.manifestation,
    RiskEventRow.subject,
    unique=True,
    sqlite_where=text("closed_on IS NULL"),
    postgresql_where=text("closed_on IS NULL"),
)


class RiskEventHistory(Base):
    """What happened to an event: opened, severity changed, closed."""

    __tablename__ = "risk_event_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("risk_events.id", ondelete="CASCADE"), index=True
    )
    on_date: Mapped[date] = mapped_column(Date)
    change: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(8))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
