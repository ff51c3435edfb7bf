# ruff: noqa: N806
"""Scorecard quality on the shared public credit data: ours vs. optbinning's own Scorecard.

Stratified 70/30 split with seed 42; the test-set AUC of both on the same split.
Run: ``.venv/bin/python bench/bench_shared_data.py [--data DIR] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import pandas as pd
from optbinning import BinningProcess
from optbinning import Scorecard as OBScorecard
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from riskdesk.assess.scorecard import Scorecard, is_categorical
from riskdesk.assess.training import tune
from riskdesk.assess.validation import validate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = [("german_credit.csv", "creditability", "bad"), ("credit_scoring_4454.csv", "Status", "bad")]


def run(data: Path) -> list[dict]:
    out = []
    for fname, target, bad in SETS:
        df = pd.read_csv(data / fname)
        y = (df.pop(target).astype(str) == bad).astype(int)
        Xtr, Xte, ytr, yte = train_test_split(df, y, test_size=0.3, stratify=y, random_state=42)
        t0 = time.perf_counter()
        tuned = tune(Xtr, ytr.to_numpy())  # cross-validation on the training rows only
        ours = Scorecard(**tuned.best).fit(Xtr, ytr)
        t_ours = time.perf_counter() - t0
        plain = Scorecard().fit(Xtr, ytr)
        auc_plain = roc_auc_score(yte, plain.predict_pd(Xte))
        auc_ours = roc_auc_score(yte, ours.predict_pd(Xte))
        v = validate(yte.to_numpy(), ours.score(Xte), ours.predict_pd(Xte))
        cats = [c for c in df.columns if is_categorical(df[c])]
        t0 = time.perf_counter()
        ob = OBScorecard(
            binning_process=BinningProcess(list(df.columns), categorical_variables=cats),
            estimator=LogisticRegression(max_iter=1000),
            scaling_method="pdo_odds",
            scaling_method_params={"pdo": 20, "odds": 50, "scorecard_points": 600},
        )
        ob.fit(Xtr, ytr, metric_missing="empirical")
        t_ob = time.perf_counter() - t0
        auc_ob = roc_auc_score(yte, ob.predict_proba(Xte)[:, 1])
        out.append(
            {
                "data": fname,
                "rows": len(df),
                "bad_rate": round(float(y.mean()), 4),
                "features_used": len(ours.bins_),
                "chosen": tuned.best,
                "auc_ours": round(float(auc_ours), 4),
                "auc_ours_defaults": round(float(auc_plain), 4),
                "auc_optbinning": round(float(auc_ob), 4),
                "gini_ours": round(2 * float(auc_ours) - 1, 4),
                "ks_ours": round(v["ks"], 4),
                "fit_seconds_ours": round(t_ours, 2),
                "fit_seconds_optbinning": round(t_ob, 2),
            }
        )
    return out


def demo(url: str, as_of: str) -> dict:
    """Out-of-time quality of a portfolio model trained on a demo database's own history.

    The model is trained only on what the books show (defaults by our default definition);
    ``demo_truth`` is used afterwards, to measure: the AUC of the PD as of ``as_of`` for the
    generator's true defaults in the following 12 months.
    """
    from datetime import date

    from sqlalchemy import text

    from riskdesk.analytics.frames import load_frames
    from riskdesk.assess.features import compute_features
    from riskdesk.assess.training import train_portfolio_model
    from riskdesk.store.db import make_engine

    on = date.fromisoformat(as_of)
    eng = make_engine(url)
    frames = load_frames(eng)
    t0 = time.perf_counter()
    tr = train_portfolio_model(frames, on)
    t_train = time.perf_counter() - t0
    if not tr.ok or tr.model is None or tr.oot is None:
        return {"ok": False, "reason": tr.reason}
    feats = compute_features(frames, on, names=tr.model.feature_names_)
    p = tr.model.predict_pd(feats)
    with eng.connect() as c:
        truth = pd.read_sql_query(text("SELECT customer_id, default_date FROM demo_truth"), c)
    truth["default_date"] = pd.to_datetime(truth["default_date"])
    t = truth.set_index("customer_id")["default_date"].reindex(feats.index)
    ts = pd.Timestamp(on)
    alive = ~(t <= ts)
    future = ((t > ts) & (t <= ts + pd.Timedelta(days=365))).to_numpy()
    mask = alive.to_numpy()
    return {
        "ok": True,
        "train_snapshots": tr.train_rows,
        "train_bads": tr.train_bads,
        "oot_snapshots": tr.test_rows,
        "oot_bads": tr.test_bads,
        "oot_auc": round(tr.oot["auc"], 4),
        "oot_ks": round(tr.oot["ks"], 4),
        "oot_psi": round(tr.oot.get("psi", float("nan")), 4),
        "oot_bad_rate": round(tr.oot["bad_rate"], 4),
        "oot_mean_pd": round(tr.oot["mean_pd"], 4),
        "oot_calibration": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
            for r in tr.oot["calibration_by_grade"]
        ],
        "features": tr.model.feature_names_,
        "truth_auc_next_12m": round(float(roc_auc_score(future[mask], p[mask])), 4),
        "truth_defaults_next_12m": int(future[mask].sum()),
        "train_seconds": round(t_train, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--demo", help="database URL of a `riskdesk demo` portfolio to measure too")
    ap.add_argument("--as-of", default="2026-09-30", help="the demo's as-of date")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    if a.demo:
        print(json.dumps(demo(a.demo, a.as_of), indent=1))
        return
    res = run(a.data)
    if a.json:
        print(json.dumps(res))
        return
    print(
        "| data | rows | bad rate | features | tuned (CV on train) | AUC ours | AUC ours, defaults "
        "| AUC optbinning Scorecard | Gini ours | KS ours | fit s (incl. tuning) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in res:
        print(
            f"| {r['data']} | {r['rows']} | {r['bad_rate']} | {r['features_used']} | {r['chosen']} "
            f"| {r['auc_ours']} | {r['auc_ours_defaults']} | {r['auc_optbinning']} | {r['gini_ours']} "
            f"| {r['ks_ours']} | {r['fit_seconds_ours']} |"
        )


if __name__ == "__main__":
    main()
