"""Batch step: run every detector as of the date and sync the risk events table."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select

from riskdesk.analytics.frames import load_frames
from riskdesk.identify.config import IdentifyConfig
from riskdesk.identify.detectors import detect_all
from riskdesk.store.db import session_scope
from riskdesk.store.models import RiskEventRow
from riskdesk.store.risk_events import load_config, sync_events

NAME = "identify"
ORDER = 10


def run_identification(
    engine: Engine,
    as_of: date,
    config: IdentifyConfig | None = None,
    progress: Any = None,
    actor: str = "system",
) -> dict[str, Any]:
    """Load the frames, detect, and open/update/close events; returns the sync summary."""
    if progress:
        progress(0, 3, "identify: loading tables")
    frames = load_frames(engine)
    with session_scope(engine) as s:
        cfg = config or load_config(s)
    if progress:
        progress(1, 3, "identify: detecting")
    events = detect_all(frames, as_of, cfg)
    if progress:
        progress(2, 3, "identify: saving events")
    with session_scope(engine) as s:
        res = sync_events(s, events, as_of, actor=actor)
        out = res.as_dict()
        out["open_total"] = int(
            s.scalar(select(func.count()).where(RiskEventRow.closed_on.is_(None))) or 0
        )
    if progress:
        progress(3, 3, "identify: done")
    return out


def run(engine: Engine, as_of: date, progress: Any = None) -> dict[str, Any]:
    return run_identification(engine, as_of, progress=progress)
