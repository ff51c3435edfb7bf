"""A self-contained HTML validation report of a scorecard on a labelled table.

Sections a model validator expects: the model (version, checksum, scaling, training data
fingerprint), the data (rows, bads, missing values), the scorecard (bins with WoE, IV and
points per feature), performance (ROC, KS, calibration by grade with binomial tests) and
stability (PSI and score distributions against training). plotly.js is embedded inline, so
the file opens offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from plotly.offline import get_plotlyjs
from sklearn.metrics import roc_curve

from riskdesk.assess.scorecard import Scorecard
from riskdesk.assess.validation import validate

TEMPLATES = Path(__file__).parent / "templates"


def _div(fig: go.Figure, height: int = 340) -> str:
    fig.update_layout(
        template="plotly_white", height=height, margin={"l": 50, "r": 20, "t": 40, "b": 45}
    )
    html: str = fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
    return html


def _roc(y: npt.NDArray[Any], p: npt.NDArray[Any], auc: float) -> str:
    fpr, tpr, _ = roc_curve(y, p)
    fig = go.Figure()
    fig.add_scatter(x=fpr, y=tpr, mode="lines", name=f"model (AUC {auc:.3f})")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="random", line={"dash": "dot"})
    fig.update_layout(
        title="ROC", xaxis_title="false positive rate", yaxis_title="true positive rate"
    )
    return _div(fig)


def _ks(y: npt.NDArray[Any], score: npt.NDArray[Any], ks: float) -> str:
    order = np.argsort(score)
    s, t = score[order], y[order]
    bad = np.cumsum(t) / max(t.sum(), 1)
    good = np.cumsum(1 - t) / max((1 - t).sum(), 1)
    fig = go.Figure()
    fig.add_scatter(x=s, y=bad, mode="lines", name="bads (cumulative)")
    fig.add_scatter(x=s, y=good, mode="lines", name="goods (cumulative)")
    fig.update_layout(title=f"KS = {ks:.3f}", xaxis_title="score", yaxis_title="cumulative share")
    return _div(fig)


def _calibration(rows: list[dict[str, Any]]) -> str:
    labels = [f"{r['grade']} {r['label']}" for r in rows]
    fig = go.Figure()
    fig.add_bar(x=labels, y=[r["observed_rate"] for r in rows], name="observed default rate")
    fig.add_scatter(
        x=labels, y=[r["mean_pd"] for r in rows], mode="lines+markers", name="mean predicted PD"
    )
    fig.update_layout(title="Calibration by grade", yaxis_title="rate", yaxis_tickformat=".1%")
    return _div(fig)


def _distribution(train: dict[str, list[float]] | None, score: npt.NDArray[Any]) -> str:
    fig = go.Figure()
    if train:
        edges = np.asarray(train["edges"], dtype=float)
        counts = np.bincount(
            np.searchsorted(edges, score, side="right"), minlength=len(train["shares"])
        )
        names = [f"≤ {edges[0]:.0f}"] + [
            f"{a:.0f}–{b:.0f}" for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        names += [f"> {edges[-1]:.0f}"] if len(edges) else []
        names = names[: len(train["shares"])] if len(edges) else ["all"]
        fig.add_bar(x=names, y=train["shares"], name="training")
        fig.add_bar(x=names, y=counts / max(len(score), 1), name="this table")
        fig.update_layout(
            title="Score distribution by training decile", yaxis_tickformat=".0%", barmode="group"
        )
    else:
        fig.add_histogram(x=score, name="this table")
        fig.update_layout(title="Score distribution")
    return _div(fig)


def build_report(
    model: Scorecard,
    content: dict[str, Any],
    table: pd.DataFrame,
    y: npt.ArrayLike,
    *,
    table_name: str = "",
) -> str:
    """The report as one HTML string."""
    t = np.asarray(y, dtype=int)
    score = model.score(table)
    pd_ = model.predict_pd(table)
    train_dist = (content.get("training") or {}).get("score_distribution")
    metrics = validate(t, score, pd_, train_dist)
    features = []
    for fb in model.bins_:
        col = table[fb.name] if fb.name in table else pd.Series(dtype=float)
        rows = []
        for i, label in enumerate(fb.labels):
            cnt = fb.count[i]
            rows.append(
                {
                    "label": label,
                    "count": cnt,
                    "event_rate": (fb.event[i] / cnt) if cnt else None,
                    "woe": fb.woe[i],
                    "iv": fb.iv[i],
                    "points": fb.points[i],
                }
            )
        features.append(
            {
                "name": fb.name,
                "kind": fb.kind,
                "trend": fb.trend,
                "coef": fb.coef,
                "iv": fb.total_iv,
                "missing_share": float(col.isna().mean()) if len(col) else 0.0,
                "definition": (content.get("feature_definitions") or {}).get(fb.name, ""),
                "bins": rows,
            }
        )
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    tpl = env.get_template("model_report.html")
    return tpl.render(
        content=content,
        table_name=table_name,
        columns=len(table.columns),
        metrics=metrics,
        features=features,
        summary=content.get("binning_summary") or [],
        charts={
            "roc": _roc(t, pd_, metrics["auc"]),
            "ks": _ks(t, score, metrics["ks"]),
            "calibration": _calibration(metrics["calibration_by_grade"]),
            "distribution": _distribution(train_dist, score),
        },
        plotly_js=get_plotlyjs(),
    )


def write_report(path: str | Path, html: str) -> None:
    Path(path).write_text(html, encoding="utf-8")
