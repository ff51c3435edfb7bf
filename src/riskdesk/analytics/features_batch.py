"""Batch features over the whole portfolio: load the tables once, compute every feature as of T.

The feature definitions live in :mod:`riskdesk.assess.features` (one definition per feature);
this module only does the I/O around them. The computation is vectorised pandas over the
point-in-time frames; DuckDB is not used yet (see docs/model.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pandas as pd
from sqlalchemy import Engine

from riskdesk.analytics.frames import Frames, load_frames
from riskdesk.assess.features import compute_features, core_state_features
from riskdesk.assess.training import (
    DefaultDefinition,
    PortfolioTraining,
    build_snapshots,
    train_portfolio_model,
)


def features_as_of(
    engine: Engine,
    as_of: date,
    names: list[str] | None = None,
    customer_ids: list[int] | None = None,
    frames: Frames | None = None,
) -> pd.DataFrame:
    """Registry features (default: all) of every customer (or ``customer_ids``) as of ``as_of``."""
    f = frames if frames is not None else load_frames(engine)
    return compute_features(f, as_of, names=names, customer_ids=customer_ids)


def core_features_as_of(engine: Engine, as_of: date) -> pd.DataFrame:
    """The core state features (the contract with the real-time state) of every customer."""
    return core_state_features(load_frames(engine), as_of)


def snapshots(
    engine: Engine,
    dates: list[date],
    *,
    definition: DefaultDefinition | None = None,
    features: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Training snapshots (features as of each date + ``default_12m``) from the database."""
    return build_snapshots(
        load_frames(engine), dates, definition=definition, features=features, progress=progress
    )


def train_from_database(
    engine: Engine,
    as_of: date,
    *,
    definition: DefaultDefinition | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PortfolioTraining:
    """Train a portfolio scorecard from the database's own history (see the training module)."""
    return train_portfolio_model(
        load_frames(engine), as_of, definition=definition, progress=progress
    )
