"""Quantitative assessment tables: the scorecard model registry and assessments history."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from riskdesk.store.models.base import Base
from riskdesk.store.types import Amount, JSONType, Rate, UTCDateTime, utcnow


class ScorecardModel(Base):
    """A registered scorecard: the whole JSON artefact (checksummed) and its metrics.

    At most one row is ``active``: the one the batch cycle scores with.
    """

    __tablename__ = "scorecard_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    format_version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(80))
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    registered_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Assessment(Base):
    """One quantitative assessment of one customer as of one date (history is kept)."""

    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    as_of: Mapped[date] = mapped_column(Date)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    score: Mapped[float] = mapped_column(Float)
    pd: Mapped[float] = mapped_column(Float)
    grade: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    ead: Mapped[Decimal] = mapped_column(Amount)
    lgd: Mapped[Decimal] = mapped_column(Rate)
    el: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_assessments_customer_as_of", Assessment.customer_id, Assessment.as_of)
Index("ix_assessments_as_of", Assessment.as_of)
