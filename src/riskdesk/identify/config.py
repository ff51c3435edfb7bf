"""Thresholds of the detectors (:class:`IdentifyConfig`), with credit-management defaults.

Overrides are merged on top of the defaults: stored defaults (``app_settings`` key
``identify.config``) first, then a ``--config`` JSON file. Amount thresholds are in the
customer's own currency.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from riskdesk.domain.events import Severity

SETTINGS_KEY = "identify.config"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


BUCKETS = ("1_30", "31_60", "61_90", "90_plus")


class CreditConfig(_Section):
    overdue_severity: dict[str, str] = Field(
        default_factory=lambda: {
            "1_30": "low",
            "31_60": "low",
            "61_90": "low",
            "90_plus": "high",
        },
        description="Severity of one overdue invoice by ageing bucket.",
    )
    escalate_count: int = Field(
        2,
        ge=1,
        description="When this many invoices of a customer are 31+ days overdue at once, each "
        "of them is raised one severity level (a pattern, not a one-off).",
    )
    min_overdue_amount: float = Field(
        50.0, ge=0, description="Ignore overdue balances below this (customer currency)."
    )
    partial_tolerance: float = Field(
        0.01, ge=0, description="Balances at or below this count as settled."
    )
    recent_days: int = Field(120, ge=1, description="Window of recent invoices (by due date).")
    history_days: int = Field(365, ge=30, description="History window before the recent one.")
    min_invoices: int = Field(3, ge=1, description="Invoices needed in each window.")
    worsening_days: float = Field(
        15.0, gt=0, description="Increase of mean days beyond terms that counts as worsening."
    )
    worsening_min_days: float = Field(
        20.0, ge=0, description="Recent mean days beyond terms must also reach this."
    )
    worsening_medium_days: float = Field(
        30.0, gt=0, description="Increase that makes it medium (below: low)."
    )
    default_min_amount: float = Field(
        1000.0, ge=0, description="90+ days overdue balance that counts as a default."
    )

    @field_validator("overdue_severity")
    @classmethod
    def _buckets(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = set(v) - set(BUCKETS)
        if unknown:
            raise ValueError(f"unknown ageing bucket(s) {sorted(unknown)}; use {list(BUCKETS)}")
        defaults = {"1_30": "low", "31_60": "low", "61_90": "low", "90_plus": "high"}
        return {b: Severity.parse(v.get(b, defaults[b])).value for b in BUCKETS}


class ContractConfig(_Section):
    terms_window_days: int = Field(180, ge=1)
    terms_grace_days: int = Field(30, ge=0, description="Days late that break the terms.")
    terms_min_count: int = Field(3, ge=1, description="Broken invoices that make it repeated.")
    min_volume_medium_shortfall: float = Field(
        0.75, gt=0, le=1, description="Shortfall (share of the minimum) that makes it medium."
    )
    disputes_min_count: int = Field(2, ge=1)
    expiring_days: int = Field(60, ge=0, description="Warn this many days before the end.")
    expired_grace_days: int = Field(30, ge=0, description="Keep warning after the end.")


class DemandConfig(_Section):
    window_days: int = Field(182, ge=7, description="Recent window compared to last year.")
    drop_ratio: float = Field(0.5, gt=0, lt=1, description="Fall that counts as a drop.")
    drop_medium_ratio: float = Field(0.9, gt=0, le=1, description="Fall that makes it medium.")
    persistence_days: int = Field(
        30,
        ge=0,
        description="A medium drop must also have been a drop in the window ending this many "
        "days earlier (two consecutive monthly readings); 0 = one reading is enough.",
    )
    min_baseline_orders: int = Field(6, ge=1, description="Orders last year in the window.")
    significance: float = Field(
        0.05,
        gt=0,
        le=1,
        description="A drop (or spike) in the number of orders must be this unlikely under "
        "the customer's own rate (Poisson), so ordinary lumpiness does not alarm.",
    )
    silent_factor: float = Field(3.0, gt=1, description="Silence of this many usual intervals.")
    silent_min_days: int = Field(45, ge=1)
    silent_min_orders: int = Field(4, ge=2)
    spike_days: int = Field(30, ge=1)
    spike_factor: float = Field(3.0, gt=1, description="Recent volume / usual volume.")
    spike_history_days: int = Field(365, ge=30)
    spike_min_orders: int = Field(6, ge=1, description="Orders in the history window.")


class MarketConfig(_Section):
    lookback_days: int = Field(182, ge=28, description="Compare with the value this long ago.")
    drop_ratio: float = Field(0.10, gt=0, lt=1, description="Fall that counts as a drop (low).")
    medium_ratio: float = Field(0.20, gt=0, lt=1, description="Fall that makes it medium.")
    high_ratio: float = Field(0.35, gt=0, lt=1, description="Fall that makes it high.")
    stale_days: int = Field(120, ge=1, description="Ignore index values older than this.")
    context_severity: str = Field(
        "low",
        description="A market drop is portfolio context: for a customer whose own behaviour is "
        "clean and whose exposure is not material, its severity is capped at this level.",
    )
    material_exposure: float = Field(
        1_000_000.0,
        ge=0,
        description="Open invoice balance (in exposure_currency) from which a customer keeps the "
        "index's own severity even without a symptom of its own (0 = every exposed customer).",
    )
    exposure_currency: str = Field("EUR", min_length=3, max_length=3)
    min_symptoms: int = Field(
        1,
        ge=1,
        description="Distinct own symptoms (combine.symptoms) a customer needs for a market "
        "drop to keep the index's severity.",
    )
    symptom_severity: str = Field(
        "medium",
        description="Least severity of an own symptom that counts for min_symptoms: a symptom "
        "we grade as noise (low) does not turn context into a warning.",
    )

    @field_validator("context_severity", "symptom_severity")
    @classmethod
    def _severity(cls, v: str) -> str:
        return Severity.parse(v).value


class ExternalConfig(_Section):
    bureau_lookback_days: int = Field(365, ge=30)
    bureau_drop_ratio: float = Field(
        0.15, gt=0, lt=1, description="Fall of the latest score from the mean of the year before."
    )
    bureau_min_scores: int = Field(2, ge=1, description="Earlier scores needed for the mean.")
    bureau_high_ratio: float = Field(
        0.30, gt=0, lt=1, description="Fall that makes a confirmed drop high (else medium)."
    )
    bureau_min_points: float = Field(
        10.0,
        ge=0,
        description="The fall must also be this many score points (a 5-point dip at 80 is noise).",
    )
    bureau_risk_score: float = Field(
        50.0,
        description="Score at or below which the bureau itself rates a company risky: a drop "
        "to this level is confirmed at once (set from your bureau's scale).",
    )
    bureau_persistence: int = Field(
        2,
        ge=1,
        description="Consecutive scores that must all be below the reference by bureau_drop_ratio "
        "to confirm a drop above the risk score; a single low reading is low severity.",
    )
    legal_days: int = Field(180, ge=1, description="A legal event counts this long.")


SYMPTOMS = [
    "credit.overdue_31_60",
    "credit.overdue_61_90",
    "credit.overdue_90_plus",
    "credit.partial_payment",
    "credit.payment_worsening",
    "contract.terms_broken",
    "contract.disputes",
    "contract.min_volume_missed",
    "demand.volume_drop",
    "demand.silent",
    "external.bureau_drop",
    "external.legal_event",
]


class CombineConfig(_Section):
    """How events of the same customer grade each other."""

    symptoms: list[str] = Field(
        default_factory=lambda: list(SYMPTOMS),
        description="Manifestations that are a customer-level symptom (the customer's own "
        "behaviour): they lift a market event from context to warning and count for "
        "escalation. 1–30 days overdue, expiring contracts and order spikes are not symptoms.",
    )
    escalate_sources: int = Field(
        3,
        ge=2,
        description="When symptoms from this many independent sources (credit, contract, "
        "demand, external) coincide for a customer, each low symptom becomes medium.",
    )


class IdentifyConfig(_Section):
    """All detector thresholds."""

    credit: CreditConfig = Field(default_factory=CreditConfig)
    contract: ContractConfig = Field(default_factory=ContractConfig)
    demand: DemandConfig = Field(default_factory=DemandConfig)
    market: MarketConfig = Field(default_factory=MarketConfig)
    external: ExternalConfig = Field(default_factory=ExternalConfig)
    combine: CombineConfig = Field(default_factory=CombineConfig)

    @classmethod
    def merged(cls, *overrides: dict[str, Any] | None) -> IdentifyConfig:
        """Defaults with each override (a nested, partial dict) applied in turn."""
        data: dict[str, Any] = cls().model_dump()
        for o in overrides:
            if not o:
                continue
            if not isinstance(o, dict):
                raise ValueError("a configuration must be a JSON object")
            for section, values in o.items():
                if section not in data:
                    raise ValueError(f"unknown configuration section {section!r}")
                if not isinstance(values, dict):
                    raise ValueError(f"section {section!r} must be an object")
                data[section] = {**data[section], **values}
        return cls.model_validate(data)
