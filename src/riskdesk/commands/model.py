# ruff: noqa: N806  (X is scikit-learn's name for the feature matrix)
"""``riskdesk model train|score|validate|report|register|list`` — scorecards on any labelled table."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from riskdesk.assess.model_io import ModelFileError, load_model, save_model
from riskdesk.assess.scale import grade_info
from riskdesk.assess.training import fit_artefact, labelled, tune
from riskdesk.commands._common import JsonOpt, console, emit, engine, err_console, fail

model_app = typer.Typer(
    help="Scorecards: train, score, validate and report on CSV/XLSX tables.", no_args_is_help=True
)

TableOpt = Annotated[Path, typer.Option("--table", help="CSV or XLSX file, one row per case.")]
ModelOpt = Annotated[Path, typer.Option("--model", help="Model JSON file.")]
TargetOpt = Annotated[str, typer.Option("--target", help="Column holding the outcome.")]
BadOpt = Annotated[
    str | None,
    typer.Option("--bad-value", help="Value of the target that means bad (default: 1/true)."),
]


def read_table(path: Path, as_json: bool) -> pd.DataFrame:
    """A CSV or XLSX table; a clear error when the file is missing or unreadable."""
    if not path.exists():
        raise fail(f"no such file: {path}", 2, as_json)
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path)
        else:
            df = pd.read_csv(path)
    except Exception as exc:  # pandas raises many kinds; all mean "not a table"
        raise fail(f"cannot read {path} as a table: {exc}", 2, as_json) from None
    if df.empty:
        raise fail(f"{path} has no rows", 2, as_json)
    return df


def _load(path: Path, as_json: bool) -> tuple[Any, dict[str, Any]]:
    try:
        return load_model(path)
    except ModelFileError as exc:
        raise fail(str(exc), 2, as_json) from None


def _labelled(
    df: pd.DataFrame, target: str, bad: str | None, as_json: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        return labelled(df, target, bad)
    except (KeyError, ValueError) as exc:
        raise fail(str(exc).strip("'\""), 2, as_json) from None


@model_app.command("train")
def train(
    table: TableOpt,
    target: TargetOpt,
    out: Annotated[Path, typer.Option("--out", help="Where to write the model JSON.")],
    bad_value: BadOpt = None,
    categorical: Annotated[
        str | None, typer.Option(help="Comma-separated columns to treat as categories.")
    ] = None,
    exclude: Annotated[
        str | None, typer.Option(help="Comma-separated columns to leave out (ids, dates …).")
    ] = None,
    tune_: Annotated[
        bool,
        typer.Option("--tune", help="Pick trend and regularisation by cross-validation."),
    ] = False,
    min_iv: Annotated[float, typer.Option(help="Minimum information value of a column.")] = 0.02,
    pdo: Annotated[float, typer.Option(help="Points to double the odds.")] = 20.0,
    base_odds: Annotated[float, typer.Option(help="Good:bad odds at the base points.")] = 50.0,
    base_points: Annotated[float, typer.Option(help="Score at the base odds.")] = 600.0,
    calibration: Annotated[str, typer.Option(help="platt or isotonic.")] = "platt",
    name: Annotated[str, typer.Option(help="Model name (prefix of its version).")] = "scorecard",
    as_json: JsonOpt = False,
) -> None:
    """Fit a scorecard on a labelled table and write its JSON artefact."""
    if calibration not in ("platt", "isotonic"):
        raise fail("--calibration must be platt or isotonic", 2, as_json)
    df = read_table(table, as_json)
    drop = [c.strip() for c in (exclude or "").split(",") if c.strip()]
    unknown = [c for c in drop if c not in df.columns]
    if unknown:
        raise fail(f"--exclude names unknown columns: {', '.join(unknown)}", 2, as_json)
    X, y = _labelled(df.drop(columns=drop), target, bad_value, as_json)
    cats = [c.strip() for c in (categorical or "").split(",") if c.strip()]
    if any(c not in X.columns for c in cats):
        raise fail("--categorical names unknown columns", 2, as_json)
    params: dict[str, Any] = {
        "categorical": cats or None,
        "min_iv": min_iv,
        "pdo": pdo,
        "base_odds": base_odds,
        "base_points": base_points,
        "calibration": calibration,
    }
    cv: list[dict[str, Any]] = []
    try:
        if tune_:
            with err_console.status("tuning by cross-validation…"):
                res = tune(X, y, base=params)
            params, cv = res.best, res.table
        with err_console.status("fitting…"):
            model, art = fit_artefact(
                X,
                y,
                params,
                name=name,
                target={"column": target, "bad_value": bad_value},
                description=f"trained on {table.name}",
                extra_metrics={"cross_validation": cv} if cv else None,
            )
    except ValueError as exc:
        raise fail(str(exc), 2, as_json) from None
    save_model(art, out)
    tr = art["metrics"]["training"]
    result = {
        "ok": True,
        "model": str(out),
        "model_version": art["model_version"],
        "rows": int(len(y)),
        "bads": int(y.sum()),
        "features": [fb.name for fb in model.bins_],
        "training_auc": tr["auc"],
        "training_gini": tr["gini"],
        "params": {k: params[k] for k in ("monotonic_trend", "C") if k in params},
    }

    def render(r: dict[str, Any]) -> None:
        console.print(
            f"[green]model written[/] {r['model']} ([bold]{r['model_version']}[/]) — "
            f"{r['rows']} rows, {r['bads']} bads, {len(r['features'])} columns, "
            f"training AUC {r['training_auc']:.3f}"
        )

    emit(result, as_json, render)


@model_app.command("score")
def score(
    model: ModelOpt,
    table: TableOpt,
    out: Annotated[Path, typer.Option("--out", help="CSV to write the scores to.")],
    top: Annotated[int, typer.Option(min=0, max=10, help="Reason codes per row.")] = 3,
    id_column: Annotated[
        str | None, typer.Option("--id", help="Column to copy into the output as the row key.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score every row: score, PD, grade and the top reasons."""
    m, content = _load(model, as_json)
    df = read_table(table, as_json)
    missing = [n for n in m.feature_names_ if n not in df.columns]
    if missing:
        raise fail(f"the table lacks the model's columns: {', '.join(missing)}", 2, as_json)
    if id_column is not None and id_column not in df.columns:
        raise fail(f"no column {id_column!r}", 2, as_json)
    s = m.score(df)
    p = m.calibrator_.predict(s)
    from riskdesk.assess.scale import grades_for_pd

    g = grades_for_pd(p)
    reasons = m.reasons(df, top=top) if top else [[] for _ in range(len(df))]
    labels = {i: grade_info(i).label for i in range(1, 11)}
    header = (
        ([id_column] if id_column else ["row"])
        + ["score", "pd", "grade", "grade_label"]
        + [f"reason_{i + 1}" for i in range(top)]
    )
    keys = df[id_column].tolist() if id_column else list(range(1, len(df) + 1))
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for k, sc, pd_, gr, rs in zip(keys, s, p, g, reasons, strict=True):
            cells = [f"{f} (-{pts:.1f})" for f, pts in rs] + [""] * (top - len(rs))
            w.writerow([k, f"{sc:.4f}", f"{pd_:.6f}", int(gr), labels[int(gr)], *cells])
    result = {
        "ok": True,
        "rows": len(df),
        "out": str(out),
        "model_version": content["model_version"],
        "mean_pd": float(p.mean()),
        "by_grade": {
            str(k): int(v) for k, v in zip(*np.unique(g, return_counts=True), strict=True)
        },
    }
    emit(
        result,
        as_json,
        lambda r: console.print(f"[green]{r['rows']} rows scored[/] → {r['out']}"),
    )


def _validate(
    model: Path, table: Path, target: str, bad_value: str | None, as_json: bool
) -> tuple[Any, dict[str, Any], pd.DataFrame, np.ndarray]:
    m, content = _load(model, as_json)
    df = read_table(table, as_json)
    X, y = _labelled(df, target, bad_value, as_json)
    missing = [n for n in m.feature_names_ if n not in X.columns]
    if missing:
        raise fail(f"the table lacks the model's columns: {', '.join(missing)}", 2, as_json)
    if len(np.unique(y)) < 2:
        raise fail("validation needs both good and bad rows", 2, as_json)
    return m, content, X, y


@model_app.command("validate")
def validate_cmd(
    model: ModelOpt,
    table: TableOpt,
    target: TargetOpt,
    bad_value: BadOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """AUC, Gini, KS, calibration by grade and PSI against training."""
    from riskdesk.assess.validation import validate

    m, content, X, y = _validate(model, table, target, bad_value, as_json)
    s = m.score(X)
    res = validate(y, s, m.calibrator_.predict(s), content["training"].get("score_distribution"))
    res = {"ok": True, "model_version": content["model_version"], **res}

    def render(r: dict[str, Any]) -> None:
        console.print(
            f"[bold]{r['model_version']}[/] on {r['rows']} rows ({r['bads']} bads): "
            f"AUC {r['auc']:.4f}  Gini {r['gini']:.4f}  KS {r['ks']:.4f}  PSI {r.get('psi', 0):.4f}"
        )
        t = Table(title="calibration by grade")
        for c in ("grade", "rows", "bads", "observed", "mean PD", "binomial p"):
            t.add_column(c)
        for g in r["calibration_by_grade"]:
            t.add_row(
                f"{g['grade']} {g['label']}",
                str(g["rows"]),
                str(g["bads"]),
                f"{g['observed_rate']:.2%}",
                f"{g['mean_pd']:.2%}",
                f"{g['binomial_p']:.3f}",
            )
        console.print(t)

    emit(res, as_json, render)


@model_app.command("report")
def report(
    model: ModelOpt,
    table: TableOpt,
    target: TargetOpt,
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
    bad_value: BadOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A self-contained HTML validation report (charts work offline)."""
    from riskdesk.reports.model_report import build_report, write_report

    m, content, X, y = _validate(model, table, target, bad_value, as_json)
    with err_console.status("building the report…"):
        html = build_report(m, content, X, y, table_name=table.name)
    write_report(out, html)
    emit(
        {
            "ok": True,
            "out": str(out),
            "bytes": len(html.encode()),
            "model_version": content["model_version"],
        },
        as_json,
        lambda r: console.print(f"[green]report written[/] {r['out']}"),
    )


@model_app.command("register")
def register_cmd(
    ctx: typer.Context,
    model: ModelOpt,
    activate: Annotated[bool, typer.Option(help="Make it the model the batch uses.")] = True,
    actor: Annotated[str, typer.Option(help="Who registers it (audit log).")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Store a model file in the database's model registry (checksum verified)."""
    from riskdesk.store.assessments import register_model
    from riskdesk.store.db import session_scope

    _, content = _load(model, as_json)
    with session_scope(engine(ctx)) as s:
        row = register_model(s, content, actor=actor, activate=activate)
        out = {"ok": True, "model_version": row.version, "active": row.active}
    emit(out, as_json, lambda r: console.print(f"[green]registered[/] {r['model_version']}"))


@model_app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Registered models."""
    from riskdesk.store.assessments import list_models
    from riskdesk.store.db import session_scope

    with session_scope(engine(ctx)) as s:
        rows = list_models(s)

    def render(o: dict[str, Any]) -> None:
        t = Table(title="scorecard models")
        for c in ("version", "active", "registered_by", "created_at"):
            t.add_column(c)
        for r in o["models"]:
            t.add_row(
                r["version"], "yes" if r["active"] else "", r["registered_by"], str(r["created_at"])
            )
        console.print(t)

    emit({"models": rows}, as_json, render)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
