# ruff: noqa: N806
"""Batch scoring speed: our vectorised scorecard vs. optbinning's ``Scorecard.score``.

Both are fitted on the same data with the same binning (the same ``OptimalBinning`` settings on
the same columns, WoE with empirical missing bins, the same ``LogisticRegression`` and pdo/odds
scaling), then score the same ``--rows`` rows (resampled from credit_scoring_4454, with missing
values and categorical columns). Reports rows/s of each, the speed-up and the largest score
difference. Run: ``.venv/bin/python bench/bench_scoring.py [--rows 1000000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from optbinning import BinningProcess
from optbinning import Scorecard as OBScorecard
from sklearn.linear_model import LogisticRegression

from riskdesk.assess.model_io import dumps_model, loads_model
from riskdesk.assess.scorecard import Scorecard
from riskdesk.assess.training import labelled, pack

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "credit_scoring_4454.csv"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best counts")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")

    X, y = labelled(pd.read_csv(a.data), "Status", "bad")
    ours = Scorecard().fit(X, y)
    # the artefact round trip is part of the path a production scorer takes
    ours, _ = loads_model(dumps_model(pack(ours, X, y)))
    cols = ours.feature_names_
    cats = [fb.name for fb in ours.bins_ if fb.kind == "categorical"]
    params = {
        fb.name: {"monotonic_trend": ours.monotonic_trend}
        for fb in ours.bins_
        if fb.kind == "numerical"
    }
    ob = OBScorecard(
        binning_process=BinningProcess(cols, categorical_variables=cats, binning_fit_params=params),
        estimator=LogisticRegression(C=ours.C, max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={
            "pdo": ours.pdo,
            "odds": ours.base_odds,
            "scorecard_points": ours.base_points,
        },
    )
    ob.fit(X[cols], y, metric_missing="empirical")

    rng = np.random.default_rng(42)
    big = X[cols].iloc[rng.integers(0, len(X), a.rows)].reset_index(drop=True)

    # warm both up on a small slice, then take the best of --repeat runs each (timeit practice)
    ours.score(big.head(1000))
    ob.score(big.head(1000))
    t_ours = t_pd = t_ob = float("inf")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        s_ours = ours.score(big)
        t_ours = min(t_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        p_ours = ours.predict_pd(big)
        t_pd = min(t_pd, time.perf_counter() - t0)
        t0 = time.perf_counter()
        s_ob = ob.score(big)
        t_ob = min(t_ob, time.perf_counter() - t0)
    res = {
        "rows": a.rows,
        "columns": len(cols),
        "categorical_columns": len(cats),
        "ours_seconds": round(t_ours, 3),
        "ours_rows_per_s": round(a.rows / t_ours),
        "ours_score_pd_seconds": round(t_pd, 3),
        "optbinning_seconds": round(t_ob, 3),
        "optbinning_rows_per_s": round(a.rows / t_ob),
        "speedup": round(t_ob / t_ours, 1),
        "max_abs_score_diff": float(np.max(np.abs(s_ours - s_ob))),
        "mean_score": float(np.mean(s_ours)),
    }
    _ = p_ours
    if a.json:
        print(json.dumps(res))
        return
    print(
        "| rows | columns (categorical) | ours s | ours rows/s | optbinning s | optbinning rows/s | speed-up | max abs score diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {res['rows']:,} | {res['columns']} ({res['categorical_columns']}) | {res['ours_seconds']} "
        f"| {res['ours_rows_per_s']:,} | {res['optbinning_seconds']} | {res['optbinning_rows_per_s']:,} "
        f"| {res['speedup']}× | {res['max_abs_score_diff']:.2e} |"
    )


if __name__ == "__main__":
    main()
