"""Qualitative assessment and rating tables: expert assessments, Delphi rounds, AHP weight
sets, ratings (each one a documented decision, kept with history)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from riskdesk.store.models.base import Base
from riskdesk.store.types import JSONType, UTCDateTime, utcnow


class ExpertAssessment(Base):
    """One assessor's likelihood (1-5) x impact (1-5) judgement of one risk source."""

    __tablename__ = "expert_assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(64))
    likelihood: Mapped[int] = mapped_column(Integer)
    impact: Mapped[int] = mapped_column(Integer)
    assessor: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(JSONType, default=list)
    delphi_round_id: Mapped[int | None] = mapped_column(
        ForeignKey("delphi_rounds.id", ondelete="SET NULL")
    )
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DelphiRound(Base):
    """One round of a Delphi consensus on one customer's risk source."""

    __tablename__ = "delphi_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(64))
    study: Mapped[str] = mapped_column(String(64), index=True)
    round_no: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float] = mapped_column(Float)
    max_rounds: Mapped[int] = mapped_column(Integer)
    answers: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AhpWeightSet(Base):
    """Criterion weights derived by AHP from a pairwise comparison matrix."""

    __tablename__ = "ahp_weight_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    criteria: Mapped[list[str]] = mapped_column(JSONType)
    matrix: Mapped[list[list[float]]] = mapped_column(JSONType)
    weights: Mapped[dict[str, float]] = mapped_column(JSONType)
    lambda_max: Mapped[float] = mapped_column(Float)
    ci: Mapped[float] = mapped_column(Float)
    cr: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rating(Base):
    """One rating decision: inputs, adjustment, who proposed and approved, and when.

    ``status``: proposed → approved (effective) | rejected; an approved rating becomes
    ``superseded`` when a newer one is approved. Rows are never deleted (history).
    """

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), index=True)
    base_source: Mapped[str] = mapped_column(String(32))  # model | expert_scorecard | manual
    base_grade: Mapped[int] = mapped_column(Integer)
    base_pd: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(64))
    qualitative_notches: Mapped[int] = mapped_column(Integer, default=0)
    override_notches: Mapped[int] = mapped_column(Integer, default=0)
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_expires: Mapped[date | None] = mapped_column(Date)
    final_grade: Mapped[int] = mapped_column(Integer)
    final_pd: Mapped[float] = mapped_column(Float)
    needs_risk_manager: Mapped[bool] = mapped_column(default=False)
    valid_until: Mapped[date] = mapped_column(Date)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    inputs_hash: Mapped[str | None] = mapped_column(String(64))
    assessments_used: Mapped[list[int]] = mapped_column(JSONType, default=list)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)


Index(
    "ix_expert_assessments_customer_source", ExpertAssessment.customer_id, ExpertAssessment.source
)
Index("ix_ratings_customer_status", Rating.customer_id, Rating.status)
