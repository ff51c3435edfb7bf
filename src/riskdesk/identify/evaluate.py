"""Measure the detectors against known outcomes by replaying identification month by month.

For every month end of the history the detectors run on what was known then. A *warning* is
an event at or above ``min_severity`` other than the default itself. Against the ground truth:

* defaulters (default date inside the replayed history, late enough to be warned): the share
  warned at least ``lead_days`` before the default (by a warning in the year before it), and
  the median lead time from the first warning in that year to the default;
* customers that never default: the share with a warning in the last year (false alarms),
  and the mean share of them warned at a single month end (the alert load).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from riskdesk.analytics.frames import Frames
from riskdesk.domain.events import SEVERITY_RANK
from riskdesk.identify.config import IdentifyConfig
from riskdesk.identify.detectors import detect_all

WINDOW_DAYS = 365


@dataclass
class Evaluation:
    as_of: date
    months: int
    min_severity: str
    lead_days: int
    defaulters: int
    warned: int
    warned_share: float | None
    median_lead_days: float | None
    healthy: int
    flagged: int
    false_alarm_share: float | None
    healthy_flagged_per_run_share: float | None = None
    by_manifestation: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return d


def month_ends(start: date, end: date) -> list[date]:
    """Month ends after ``start`` up to ``end`` (``end`` itself is the last run)."""
    ends = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="ME")
    out = [d.date() for d in ends if d.date() < end]
    return [*out, end]


def replay(
    frames: Frames,
    dates: list[date],
    config: IdentifyConfig,
    min_severity: str = "medium",
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Warnings (customer_id, run_date, manifestation) found at each of ``dates``."""
    rank = SEVERITY_RANK[min_severity]
    parts = []
    for i, d in enumerate(dates):
        ev = detect_all(frames, d, config, with_evidence=False)
        ev = ev[
            (ev["severity"].map(SEVERITY_RANK) >= rank) & (ev["manifestation"] != "credit.default")
        ]
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": ev["customer_id"].to_numpy(),
                    "run_date": pd.Timestamp(d),
                    "manifestation": ev["manifestation"].to_numpy(),
                }
            ).drop_duplicates()
        )
        if progress:
            progress(i + 1, len(dates))
    if not parts:
        return pd.DataFrame(columns=["customer_id", "run_date", "manifestation"])
    return pd.concat(parts, ignore_index=True)


def evaluate(
    frames: Frames,
    truth: pd.DataFrame,
    as_of: date,
    config: IdentifyConfig | None = None,
    *,
    min_severity: str = "medium",
    lead_days: int = 60,
    months: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Replay identification monthly and score it against ``truth`` (customer_id, default_date)."""
    cfg = config or IdentifyConfig()
    firsts = [
        frames.orders["order_date"].min(),
        frames.invoices["issue_date"].min(),
    ]
    firsts = [f for f in firsts if pd.notna(f)]
    if not firsts:
        raise ValueError("no orders or invoices to replay")
    data_start = min(firsts).date()
    # a year of history before the first run, so 'same months last year' exists
    start = max(data_start + pd.Timedelta(days=365).to_pytimedelta(), date(1900, 1, 1))
    if months is not None:
        start = max(start, (pd.Timestamp(as_of) - pd.DateOffset(months=months)).date())
    if start >= as_of:
        raise ValueError("not enough history before the evaluation date (needs over a year)")
    dates = month_ends(start, as_of)
    warns = replay(frames, dates, cfg, min_severity, progress)
    ts_end = pd.Timestamp(as_of)
    first_run = pd.Timestamp(dates[0])
    t = truth[["customer_id", "default_date"]].copy()
    t["default_date"] = pd.to_datetime(t["default_date"])
    lead = pd.Timedelta(days=lead_days)
    window = pd.Timedelta(days=WINDOW_DAYS)

    d = t[t["default_date"].notna() & (t["default_date"] <= ts_end)]
    d = d[d["default_date"] - lead >= first_run]
    w = warns.merge(d, on="customer_id")
    w = w[(w["run_date"] < w["default_date"]) & (w["run_date"] >= w["default_date"] - window)]
    first_warn = w.groupby("customer_id")["run_date"].min()
    lead_by = (d.set_index("customer_id")["default_date"] - first_warn).dropna().dt.days
    early = w[w["run_date"] <= w["default_date"] - lead]
    warned_ids = set(early["customer_id"])

    healthy_ids = set(t.loc[t["default_date"].isna(), "customer_id"])
    recent = warns[warns["run_date"] > ts_end - window]
    flagged = recent[recent["customer_id"].isin(healthy_ids)]
    flagged_ids = set(flagged["customer_id"])
    runs_last_year = [d for d in dates if pd.Timestamp(d) > ts_end - window]
    per_run = flagged.groupby("run_date")["customer_id"].nunique()
    per_run_share = (
        float(per_run.reindex(pd.to_datetime(runs_last_year), fill_value=0).mean())
        / len(healthy_ids)
        if healthy_ids and runs_last_year
        else None
    )

    by: dict[str, dict[str, float]] = {}
    for man in sorted(set(warns["manifestation"])):
        e = early[early["manifestation"] == man]
        f = flagged[flagged["manifestation"] == man]
        by[man] = {
            "defaulters_warned_share": round(e["customer_id"].nunique() / len(d), 4)
            if len(d)
            else 0.0,
            "healthy_flagged_share": round(f["customer_id"].nunique() / len(healthy_ids), 4)
            if healthy_ids
            else 0.0,
        }
    return Evaluation(
        as_of=as_of,
        months=len(dates),
        min_severity=min_severity,
        lead_days=lead_days,
        defaulters=len(d),
        warned=len(warned_ids),
        warned_share=round(len(warned_ids) / len(d), 4) if len(d) else None,
        median_lead_days=float(np.median(lead_by.to_numpy())) if len(lead_by) else None,
        healthy=len(healthy_ids),
        flagged=len(flagged_ids),
        false_alarm_share=round(len(flagged_ids) / len(healthy_ids), 4) if healthy_ids else None,
        healthy_flagged_per_run_share=None if per_run_share is None else round(per_run_share, 4),
        by_manifestation=by,
    )
